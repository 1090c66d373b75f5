"""Writes: POST /push/{view} (native: `rows` or `columns`) and POST /push (Feast's shape).

A push is a Parquet commit, so it runs in the threadpool and never stalls the reads on the loop.
Both take an `Idempotency-Key` header: the same key twice is one commit."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from featureline.errors import ConstraintViolationError, ValidationError, did_you_mean
from featureline.server._body import check_object, get_bool, json_type, push_columns, push_rows
from featureline.server._context import ServerContext
from featureline.server._dispatch import Call, Reply, Route
from featureline.server._feast import (
    PUSH_FIELDS,
    PUSH_MODES,
    feast_body,
    feast_errors,
    with_typo_hints,
)

__all__ = ["IDEMPOTENCY_HEADER", "NATIVE_PUSH_FIELDS", "routes"]

NATIVE_PUSH_FIELDS = ("columns", "rows")
IDEMPOTENCY_HEADER = b"idempotency-key"
_NULL = Reply(b"null")


def idempotency_key(call: Call) -> str | None:
    """The `Idempotency-Key` header: the same key twice is one commit (the second answers with the first)."""
    key = call.header(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > 200:
        raise ValidationError(
            "Header `Idempotency-Key` must be a non-empty string of at most 200 characters. Fix: send e.g. a UUID."
        )
    return key.strip()


def routes(ctx: ServerContext) -> list[Route]:
    store = ctx.store

    async def push(call: Call) -> dict[str, object] | Reply:
        view = call.path_params["view"]
        what = f"POST /push/{view}"
        body = check_object(await call.json(), NATIVE_PUSH_FIELDS, what)
        if ("rows" in body) == ("columns" in body):
            raise ValidationError(
                f"Give exactly one of `rows` or `columns` in the body of {what}. Fix: send "
                '{"rows": [{"col": value, ...}]} or {"columns": {"col": [values]}}.'
            )
        fv = store.get_feature_view(view)  # the version written (`view@v2`) types the columns
        table = (
            push_rows(fv, body["rows"], what)
            if "rows" in body
            else push_columns(fv, body["columns"], what)
        )
        try:
            result = await run_in_threadpool(store.push, view, table, idempotency_key(call))
        except ConstraintViolationError as e:  # a strict gate: the report, structured
            return Reply.json(
                {"error": type(e).__name__, "message": e.message, "report": e.report}, 422
            )
        return {
            "view": result.view,
            "version": result.version,
            "rows": result.rows,
            "commit": result.commit,
            "ingested_at": result.ingested_at,
            "replayed": result.replayed,
            "ignored_columns": list(result.ignored_columns),
            "non_finite": result.non_finite,
            # the ingestion gate: rows in = rows + quarantined
            "quarantined": result.quarantined,
            "violations": result.violations,
        }

    async def feast_push(call: Call) -> Reply:
        """Unknown fields are ignored, as by Feast; naive timestamps are UTC."""
        what = "POST /push"
        body = feast_body(await call.json(), what)
        name, table, target = with_typo_hints(body, PUSH_FIELDS, lambda: feast_push_args(body))
        await run_in_threadpool(store.push, name, table, idempotency_key(call), target)
        return _NULL

    def feast_push_args(body: dict[str, Any]) -> tuple[str, Any, str]:
        what = "POST /push"
        name = body.get("push_source_name")
        if not isinstance(name, str) or not name:
            raise ValidationError(
                f"Field `push_source_name` (the feature view to push to) must be a non-empty string, got {json_type(name)}."
            )
        to = body.get("to", "online")
        if to not in PUSH_MODES:
            raise ValidationError(
                f"`{to}` is not a push mode.{did_you_mean(str(to), PUSH_MODES)} Valid: "
                + ", ".join(f"`{m}`" for m in PUSH_MODES)
                + "."
            )
        for flag in ("allow_registry_cache", "transform_on_write"):
            get_bool(body, flag, True)
        if "df" not in body:
            raise ValidationError(
                f'The body of {what} has no `df`. Fix: add "df": {{"column": [values]}}.'
            )
        fv = store.get_feature_view(name)
        table = push_columns(fv, body["df"], f"{what} (`df`)", naive_is_utc=True, broadcast=True)
        # Feast's `online` also lands offline here: the offline store is the record online reads are checked against
        target = "offline" if to == "offline" else "online_and_offline"
        return name, table, target

    return [
        Route("/push/{view}", "POST", push),
        Route("/push", "POST", feast_errors(PUSH_FIELDS)(feast_push)),
    ]
