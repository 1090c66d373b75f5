"""Feast's other feature-server writes: POST /write-to-online-store, /materialize, /materialize-incremental.

What an unmodified Feast SDK with `online_store: {type: remote, path: ...}` calls: its
`RemoteOnlineStore.online_write_batch` (`write_to_online_store`, `push(to=ONLINE)`) posts
`/write-to-online-store`, which writes the online store only, as Feast's does (no offline commit:
the rows are in no training set; `featureline.write.write_online_only`), and its `materialize` / `materialize_incremental` post `/materialize` /
`/materialize-incremental` (checked with the real SDK by `bench/feast_sdk_check.py`). Bodies as
Feast's pydantic models read them: unknown fields ignored, naive timestamps UTC, an invalid body
a 422 (`_feast.feast_errors`). Each answers JSON null, as Feast does, after the work is done
(`?async=true` is not honored: the answer comes when the run has finished). All run in the
threadpool (Parquet commits).

`/materialize-incremental` copies what was *ingested* since the view's last incremental run
(late and corrected rows included; Feast goes by event time since its last end), bounded by
`end_ts` in event time: a row with a later event time is not copied, and the next run picks it
up (a run bounded by `end_ts` does not move the watermark, so it rescans from the last
unbounded run). `version` (Feast's `v2`) is accepted; every version of the named views is
materialized, that one included.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from featureline.errors import ValidationError
from featureline.server._body import get_bool, json_type, push_columns
from featureline.server._context import ServerContext
from featureline.server._dispatch import Call, Reply, Route
from featureline.server._feast import (
    MATERIALIZE_FIELDS,
    MATERIALIZE_INCREMENTAL_FIELDS,
    WRITE_FIELDS,
    feast_body,
    feast_errors,
    feast_timestamp,
    feature_views_arg,
    with_typo_hints,
)
from featureline.server.routes.push import idempotency_key
from featureline.write import write_online_only

__all__ = ["routes"]

_NULL = Reply(b"null")


def _feast_columns(view: Any, df: Any) -> Any:
    """Feast's remote store names the event and created columns `event_timestamp` and `created`:
    they fill the view's own timestamp columns when those are named otherwise."""
    if not isinstance(df, dict) or view.source is None:
        return df
    out = dict(df)
    for feast_name, ours in (
        ("event_timestamp", view.source.timestamp_field),
        ("created", view.source.created_timestamp_field),
    ):
        if ours and ours != feast_name and ours not in out and feast_name in out:
            out[ours] = out.pop(feast_name)
    created_field = view.source.created_timestamp_field
    if created_field and created_field not in out:  # optional in Feast: no created time
        out[created_field] = None  # broadcast to every row
    if created_field is None:
        created = out.get("created")
        if isinstance(created, list) and all(v is None for v in created):
            out.pop("created")  # the SDK sends `created: [null, ...]`; nothing to keep
    return out


def routes(ctx: ServerContext) -> list[Route]:
    store = ctx.store

    async def write_to_online_store(call: Call) -> Reply:
        what = "POST /write-to-online-store"
        body = feast_body(await call.json(), what)

        def args() -> tuple[Any, Any]:
            name = body.get("feature_view_name")
            if not isinstance(name, str) or not name:
                raise ValidationError(
                    f"Field `feature_view_name` of {what} must be a non-empty string, got {json_type(name)}."
                )
            for flag in ("allow_registry_cache", "transform_on_write"):
                get_bool(body, flag, True)
            if "df" not in body:
                raise ValidationError(
                    f'The body of {what} has no `df`. Fix: add "df": {{"column": [values]}}.'
                )
            fv = store.get_feature_view(name)
            df = _feast_columns(fv, body["df"])
            table = push_columns(fv, df, f"{what} (`df`)", naive_is_utc=True, broadcast=True)
            return fv, table

        fv, table = with_typo_hints(body, WRITE_FIELDS, args)
        idempotency_key(call)  # checked as on the other writes; an online-only write has no commit
        # online only, as Feast's write_to_online_store (the write path's one online-only entry;
        # FeatureStore.push has no `to="online"` yet, hence the write target from the store)
        await run_in_threadpool(
            write_online_only, store._write_target(), fv, table, principal=call.principal
        )
        return _NULL

    async def materialize(call: Call) -> Reply:
        what = "POST /materialize"
        body = feast_body(await call.json(), what)

        def args() -> tuple[datetime | None, datetime, list[str] | None]:
            views = feature_views_arg(body, what)
            if get_bool(body, "disable_event_timestamp", False):
                return None, datetime.now(UTC), views  # Feast: from the epoch to now
            for field in ("start_ts", "end_ts"):
                if body.get(field) is None:
                    raise ValidationError(
                        f"The body of {what} has no `{field}`. Fix: send `start_ts` and `end_ts` "
                        '(ISO 8601, naive is UTC, e.g. "2025-01-01T00:00:00"), or "disable_event_timestamp": true.'
                    )
            start = feast_timestamp(body["start_ts"], "start_ts", what)
            end = feast_timestamp(body["end_ts"], "end_ts", what)
            for v in views or ():
                store.get_feature_view(v)  # 404 with did-you-mean before any work
            return start, end, views

        start, end, views = with_typo_hints(body, MATERIALIZE_FIELDS, args)
        await run_in_threadpool(store.materialize, start, end, views)
        return _NULL

    async def materialize_incremental(call: Call) -> Reply:
        what = "POST /materialize-incremental"
        body = feast_body(await call.json(), what)

        def args() -> tuple[datetime, list[str] | None]:
            if body.get("end_ts") is None:
                raise ValidationError(
                    f'The body of {what} has no `end_ts`. Fix: send e.g. "end_ts": "2025-01-01T00:00:00" (naive is UTC).'
                )
            end = feast_timestamp(body["end_ts"], "end_ts", what)
            views = feature_views_arg(body, what)
            for v in views or ():
                store.get_feature_view(v)
            return end, views

        end, views = with_typo_hints(body, MATERIALIZE_INCREMENTAL_FIELDS, args)
        # bounded by `end_ts` in event time (module docstring)
        await run_in_threadpool(lambda: store.materialize_incremental(views, end=end))
        return _NULL

    return [
        Route(
            "/write-to-online-store",
            "POST",
            feast_errors(WRITE_FIELDS)(write_to_online_store),
        ),
        Route("/materialize", "POST", feast_errors(MATERIALIZE_FIELDS)(materialize)),
        Route(
            "/materialize-incremental",
            "POST",
            feast_errors(MATERIALIZE_INCREMENTAL_FIELDS)(materialize_incremental),
        ),
    ]
