"""Online reads: POST /features/online (native) and POST /get-online-features (Feast's shape).

The hot path: a read is an in-process lookup of tens of microseconds, so it runs inline on the
event loop (a thread hop would cost more than the read)."""

from __future__ import annotations

from typing import Any

from featureline.errors import ValidationError
from featureline.server._body import check_object, entities_arg, features_arg, get_bool
from featureline.server._context import ServerContext
from featureline.server._dispatch import Call, Route
from featureline.server._feast import READ_FIELDS, online_response

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
        resp = store.get_online_features(features, entities, full_feature_names=full)
        data = resp.to_dict()
        return {
            "features": {name: data[name] for name in resp.feature_names},
            "statuses": resp.statuses,
            "event_timestamps": resp.event_timestamps,
            "entities": resp.keys,
        }

    async def feast_online(call: Call) -> dict[str, Any]:
        what = "POST /get-online-features"
        body = check_object(await call.json(), READ_FIELDS, what)
        if body.get("request_context"):
            raise ValidationError(
                "Field `request_context` feeds Feast on-demand feature views, which Featureline does not have. "
                "Fix: drop `request_context` from the request."
            )
        features = features_arg(body, what)
        entities = entities_arg(body, max_entities, what)
        full = get_bool(body, "full_feature_names", False)
        resp = store.get_online_features(features, entities, full_feature_names=full)
        return online_response(resp)

    return [
        Route("/features/online", "POST", online),
        Route("/get-online-features", "POST", feast_online),
    ]
