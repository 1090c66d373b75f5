"""Model endpoints: POST /models/{name}/predict, GET /models."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from featureline.errors import ValidationError
from featureline.server._body import check_object, entities_arg
from featureline.server._context import ServerContext
from featureline.server._dispatch import Call, Route

__all__ = ["PREDICT_FIELDS", "routes"]

PREDICT_FIELDS = ("entities", "proba", "version")


def routes(ctx: ServerContext) -> list[Route]:
    predictor, max_entities = ctx.predictor, ctx.max_entities

    async def predict(call: Call) -> dict[str, Any]:
        name = call.path_params["name"]
        what = f"POST /models/{name}/predict"
        body = check_object(await call.json(), PREDICT_FIELDS, what)
        if "entities" not in body:
            raise ValidationError(
                f'{what}: field `entities` is missing. Fix: send {{"entities": {{"driver_id": [1001]}}}}.'
            )
        entities = entities_arg(body, max_entities, what)
        version = body.get("version")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int | str)
        ):
            raise ValidationError(
                f"{what}: `version` must be a number or an alias, got `{version!r}`."
            )
        proba = body.get("proba")
        if proba is not None and not isinstance(proba, bool):
            raise ValidationError(f"{what}: `proba` must be true or false, got `{proba!r}`.")
        return predictor.predict(
            name, entities, version, proba
        )  # ~0.3 ms: inline beats a thread hop

    async def list_models(call: Call) -> dict[str, Any]:
        rows = await run_in_threadpool(predictor.registry.versions)
        return {"models": [{**r, "created_at": r["created_at"].isoformat()} for r in rows]}

    return [Route("/models/{name}/predict", "POST", predict), Route("/models", "GET", list_models)]
