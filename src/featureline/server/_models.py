"""Model endpoints: POST /models/{name}/predict, GET /models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from featureline.errors import ValidationError

if TYPE_CHECKING:
    from featureline.models import Predictor
    from featureline.server._body import BodyDeadlines

PREDICT_FIELDS = ("entities", "version")


class ModelRoutes:
    def __init__(
        self, predictor: Predictor, max_entities: int, max_body_bytes: int, respond: Any, deadlines: BodyDeadlines | None = None
    ) -> None:
        from featureline.server import _body

        self.predictor = predictor
        self.max_entities = max_entities
        self.max_body_bytes = max_body_bytes
        self.respond = respond
        self.deadlines = deadlines or _body.NO_DEADLINE

    async def predict(self, request: Request) -> Response:
        from featureline.server import _body

        name = request.path_params["name"]
        what = f"POST /models/{name}/predict"
        body = _body.check_object(await _body.read_json(request, self.max_body_bytes, self.deadlines), PREDICT_FIELDS, what)
        if "entities" not in body:
            raise ValidationError(f"{what}: field `entities` is missing. Fix: send {{\"entities\": {{\"driver_id\": [1001]}}}}.")
        entities = _body.entities_arg(body, self.max_entities, what)
        version = body.get("version")
        if version is not None and not isinstance(version, int | str):
            raise ValidationError(f"{what}: `version` must be a number or an alias, got `{version!r}`.")
        out = self.predictor.predict(name, entities, version)  # ~0.3 ms: cheaper inline than a thread hop
        return self.respond(out)

    async def list_models(self, request: Request) -> Response:
        rows = await run_in_threadpool(self.predictor.registry.versions)
        return self.respond({"models": [{**r, "created_at": r["created_at"].isoformat()} for r in rows]})


