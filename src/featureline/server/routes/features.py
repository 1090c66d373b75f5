"""Online reads: POST /features/online (native) and POST /get-online-features (Feast's shape).

The hot path: a read is an in-process lookup of tens of microseconds, so it runs inline on the
event loop (a thread hop would cost more than the read)."""

from __future__ import annotations

from typing import Any

from featureline.errors import ValidationError
from featureline.server._body import check_object, entities_arg, features_arg, get_bool
from featureline.server._context import ServerContext
from featureline.server._dispatch import Call, Route
from featureline.server._feast import (
    READ_FIELDS,
    feast_body,
    feast_errors,
    online_response,
    with_typo_hints,
)

__all__ = ["NATIVE_READ_FIELDS", "routes"]

NATIVE_READ_FIELDS = ("entities", "feature_service", "features", "full_feature_names")


def routes(ctx: ServerContext) -> list[Route]:
    store, max_entities = ctx.store, ctx.max_entities

    async def online(call: Call) -> dict[str, Any]:
        what = "POST /features/online"
        body = check_object(await call.json(), NATIVE_READ_FIELDS, what)
        features = features_arg(body, what)
        entities = entities_arg(body, max_entities, what)
        full = get_bool(body, "full_feature_names", False)
        # the request's caller, handed over (the route `passes_caller`: no other store path here)
        resp = store._read_online(features, entities, full, call.principal)
        data = resp.to_dict()
        return {
            "features": {name: data[name] for name in resp.feature_names},
            "statuses": resp.statuses,
            "event_timestamps": resp.event_timestamps,
            "entities": resp.keys,
        }

    async def feast_online(call: Call) -> dict[str, Any]:
        body = feast_body(await call.json(), "POST /get-online-features")
        return with_typo_hints(body, READ_FIELDS, lambda: feast_read(body, call.principal))

    def feast_read(body: dict[str, Any], caller: Any) -> dict[str, Any]:
        """Unknown fields are ignored, as by Feast; `include_feature_view_version_metadata` adds
        the views read and their versions (Feast's `feature_view_metadata`)."""
        what = "POST /get-online-features"
        features = features_arg(body, what, nullable=True)  # Feast: null is the field left out
        entities = entities_arg(body, max_entities, what)
        context = body.get("request_context")
        if (
            context
        ):  # request-time inputs of on-demand views, as Feast sends them: columns next to the keys
            entities = _with_request_context(entities, context, what)
        full = get_bool(body, "full_feature_names", False)
        with_versions = get_bool(body, "include_feature_view_version_metadata", False)
        # the request's caller, handed over (the route `passes_caller`: the catalog lookup below
        # checks no caller)
        resp = store._read_online(features, entities, full, caller)
        versions = None
        if with_versions:  # Feast's feature_view_metadata: each view read, once, with its version
            read = store.catalog().resolve(features)
            versions = list(dict.fromkeys((v.name, v.version) for _, v in read))
        return online_response(resp, versions)

    return [
        Route("/features/online", "POST", online, passes_caller=True),
        Route(
            "/get-online-features",
            "POST",
            feast_errors(READ_FIELDS)(feast_online),
            passes_caller=True,
        ),
    ]


def _with_request_context(entities: Any, context: Any, what: str) -> dict[str, list[Any]]:
    """The entity columns plus `request_context` columns (one value per entity row each)."""
    cols = dict(entities) if isinstance(entities, dict) else None
    if cols is None or not isinstance(context, dict):
        raise ValidationError(
            f"{what}: `request_context` must be an object of columns, e.g. "
            '{"km": [3.2, 1.0]}, next to `entities` given as columns.'
        )
    n = len(next(iter(cols.values()))) if cols else 0
    for name, values in context.items():
        if name in cols:
            raise ValidationError(
                f"{what}: `request_context` column `{name}` is also an entity key. Fix: send it once."
            )
        if not isinstance(values, list) or len(values) != n:
            raise ValidationError(
                f"{what}: `request_context` column `{name}` must be a list with one value per entity row ({n})."
            )
        cols[name] = values
    return cols
