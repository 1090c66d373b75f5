"""The HTTP app: online reads and push (native and Feast-compatible), health, metrics, OpenAPI.

`create_app(repo_path_or_store)` returns a Starlette app; `featureline serve` runs it under
uvicorn. Online reads run inline on the event loop, on a raw-ASGI hot path: a read is an
in-process lookup of tens of microseconds, less than a thread hop. Pushes (a Parquet commit),
health checks and metric scrapes (which read the commit log) run in the threadpool so they never
stall reads; the store's backends are thread-safe.

Every request, the hot path included, passes two guards first: its Host must be on the allow-list
(421 otherwise; DNS rebinding, see `_hosts`), and a POST body must be declared `application/json`
(415 otherwise; a cross-site "simple" POST cannot be). A body must arrive within `body_timeout`
seconds (408); the header deadline is the HTTP protocol's (`_protocol`, which `featureline serve`
runs). /health names backends by kind and repo-relative path, never by absolute path or URL.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from featureline.errors import FeaturelineError, ValidationError, did_you_mean
from featureline.server import _body, _feast
from featureline.server._hosts import HostCheck
from featureline.server._metrics import CONTENT_TYPE, Metrics
from featureline.server._openapi import build_spec, render_docs

if TYPE_CHECKING:
    from featureline.feature_store import FeatureStore

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_ENTITIES", "FeatureServer", "app_from_env", "create_app"]

log = logging.getLogger("featureline.server")

DEFAULT_MAX_ENTITIES = 1000
DEFAULT_MAX_BODY_BYTES = 1_000_000
ENV_MAX_ENTITIES = "FEATURELINE_SERVE_MAX_ENTITIES"
ENV_MAX_BODY_BYTES = "FEATURELINE_SERVE_MAX_BODY_BYTES"
ENV_BODY_TIMEOUT = "FEATURELINE_SERVE_BODY_TIMEOUT"
ENV_ALLOWED_HOSTS = "FEATURELINE_SERVE_ALLOWED_HOSTS"  # comma-separated

NATIVE_READ_FIELDS = ("entities", "feature_service", "features", "full_feature_names")
NATIVE_PUSH_FIELDS = ("columns", "rows")

try:
    import orjson

    _OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTS)

except ImportError:  # pragma: no cover - exercised only without orjson
    import json
    from datetime import date

    def _default(o: Any) -> Any:
        if isinstance(o, date):
            return o.isoformat()
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(f"{type(o).__name__} is not JSON serializable")

    def dumps(content: Any) -> bytes:
        return json.dumps(content, default=_default, separators=(",", ":")).encode()



IDEMPOTENCY_HEADER = "idempotency-key"


def _idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header: the same key twice is one commit (the second answers with the first)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > 200:
        raise ValidationError("Header `Idempotency-Key` must be a non-empty string of at most 200 characters. Fix: send e.g. a UUID.")
    return key.strip()

class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


_NULL = b"null"
_JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),)
_CLOSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (*_JSON_HEADERS, (b"connection", b"close"))  # body left unread
Handler = Callable[[Request], Awaitable[Response]]


def _internal(e: Exception) -> str:
    return f"{type(e).__name__}: {e}. This is a bug in Featureline; the server log has the traceback."


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    headers = {"connection": "close"} if status in _body.CLOSE_STATUSES else None  # the rest of the body is not read
    return JSONResponse({"error": kind, "message": message}, status_code=status, headers=headers)


class _Service:
    """The handlers of one app, bound to one store and its limits."""

    def __init__(
        self, store: FeatureStore, owns_store: bool, max_entities: int, max_body_bytes: int,
        body_timeout: float | None = None, allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.owns_store = owns_store
        self.max_entities = max_entities
        self.max_body_bytes = max_body_bytes
        self.deadlines = _body.BodyDeadlines(body_timeout)
        self.hosts = HostCheck(allowed_hosts)
        self.metrics = Metrics(self._freshness)
        self.spec = build_spec(max_entities, max_body_bytes)
        self.spec_bytes = dumps(self.spec)
        self.docs_html = render_docs(self.spec)

    def _freshness(self) -> dict[str, dict[str, Any]]:
        return self.store.freshness()

    # -- plumbing --------------------------------------------------------------------------------
    def endpoint(self, route: str, fn: Handler) -> Handler:
        """Wrap a handler: featureline errors -> JSON with their status; anything else -> 500; metrics."""
        observe = self.metrics.observe

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await fn(request)
            except FeaturelineError as e:
                response = error_response(e.http_status, type(e).__name__, e.message)
            except Exception as e:
                log.exception("Unexpected error in %s %s", request.method, route)
                response = error_response(500, "InternalError", _internal(e))
            observe(route, request.method, response.status_code, started)
            return response

        return handle

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own 404 (no such route) and 405 (wrong method), as JSON."""
        started = time.perf_counter()
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            paths = [p for p in self.spec["paths"] if "{" not in p]
            message = f"No endpoint at `{request.url.path}`.{did_you_mean(request.url.path, paths)} Endpoints: {', '.join(self.spec['paths'])}; see /docs."
            kind = "NotFoundError"
        elif status == 405:
            allowed = ", ".join(m.upper() for m in self.spec["paths"].get(request.url.path, {})) or "another method"
            message = f"`{request.method}` is not allowed on `{request.url.path}`. Fix: use {allowed}."
            kind = "MethodNotAllowed"
        else:
            message, kind = str(getattr(exc, "detail", exc)), "HTTPError"
        response = error_response(status, kind, message)
        if status == 405 and isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)
        self.metrics.observe("<unmatched>", request.method, status, started)
        return response

    # -- reads (the hot path: raw ASGI, see FeatureServer.__call__) -------------------------------
    def online(self, body: Any) -> dict[str, Any]:
        what = "POST /features/online"
        body = _body.check_object(body, NATIVE_READ_FIELDS, what)
        features = _body.features_arg(body, what)
        entities = _body.entities_arg(body, self.max_entities, what)
        full = _body.get_bool(body, "full_feature_names", False)
        resp = self.store.get_online_features(features, entities, full_feature_names=full)
        data = resp.to_dict()
        return {
            "features": {name: data[name] for name in resp.feature_names},
            "statuses": resp.statuses,
            "event_timestamps": resp.event_timestamps,
            "entities": resp.keys,
        }

    def feast_online(self, body: Any) -> dict[str, Any]:
        what = "POST /get-online-features"
        body = _body.check_object(body, _feast.READ_FIELDS, what)
        if body.get("request_context"):
            raise ValidationError(
                "Field `request_context` feeds Feast on-demand feature views, which Featureline does not have. "
                "Fix: drop `request_context` from the request."
            )
        features = _body.features_arg(body, what)
        entities = _body.entities_arg(body, self.max_entities, what)
        full = _body.get_bool(body, "full_feature_names", False)
        resp = self.store.get_online_features(features, entities, full_feature_names=full)
        return _feast.online_response(resp)

    def json_route(self, fn: Callable[[Any], Any]) -> Handler:
        """`fn(parsed body)` as a Starlette handler (the same logic the raw ASGI hot path runs)."""
        async def handle(request: Request) -> Response:
            return JSONResponse(fn(await _body.read_json(request, self.max_body_bytes, self.deadlines)))

        return handle

    async def fast(self, route: str, fn: Callable[[Any], Any], scope: Any, receive: Any, send: Any) -> None:
        """Serve one POST on raw ASGI: no Request, no middleware, one dict per message."""
        started = time.perf_counter()
        headers = _JSON_HEADERS
        try:
            payload = dumps(fn(await _body.read_json_asgi(scope, receive, self.max_body_bytes, self.deadlines, f"POST {route}")))
            status = 200
        except _body.ClientGone:
            return
        except FeaturelineError as e:
            status = e.http_status
            payload = dumps({"error": type(e).__name__, "message": e.message})
            if status in _body.CLOSE_STATUSES:
                headers = _CLOSE_HEADERS
        except Exception as e:
            log.exception("Unexpected error in POST %s", route)
            status, payload = 500, dumps({"error": "InternalError", "message": _internal(e)})
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        self.metrics.observe(route, "POST", status, started)

    async def misdirected(self, scope: Any, send: Any, host: str) -> None:
        """421 for a Host that is not on the allow-list (before routing: every route, the hot path too)."""
        started = time.perf_counter()
        payload = dumps({"error": "MisdirectedRequest", "message": self.hosts.message(host, scope)})
        await send({"type": "http.response.start", "status": 421, "headers": [*_CLOSE_HEADERS, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        self.metrics.observe("<rejected host>", scope["method"], 421, started)

    # -- writes ----------------------------------------------------------------------------------
    async def push(self, request: Request) -> Response:
        view = request.path_params["view"]
        what = f"POST /push/{view}"
        body = _body.check_object(await _body.read_json(request, self.max_body_bytes, self.deadlines), NATIVE_PUSH_FIELDS, what)
        if ("rows" in body) == ("columns" in body):
            raise ValidationError(
                f"Give exactly one of `rows` or `columns` in the body of {what}. Fix: send "
                "{\"rows\": [{\"col\": value, ...}]} or {\"columns\": {\"col\": [values]}}."
            )
        fv = self.store.get_feature_view(view)  # the version written (`view@v2`) types the columns
        table = _body.push_rows(fv, body["rows"], what) if "rows" in body else _body.push_columns(fv, body["columns"], what)
        result = await run_in_threadpool(self.store.push, view, table, _idempotency_key(request))
        return JSONResponse({
            "view": result.view,
            "version": result.version,
            "rows": result.rows,
            "commit": result.commit,
            "ingested_at": result.ingested_at,
            "replayed": result.replayed,
        })

    async def feast_push(self, request: Request) -> Response:
        what = "POST /push"
        body = _body.check_object(await _body.read_json(request, self.max_body_bytes, self.deadlines), _feast.PUSH_FIELDS, what)
        name = body.get("push_source_name")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"Field `push_source_name` (the feature view to push to) must be a non-empty string, got {_body.json_type(name)}.")
        to = body.get("to", "online")
        if to not in _feast.PUSH_MODES:
            raise ValidationError(
                f"`{to}` is not a push mode.{did_you_mean(str(to), _feast.PUSH_MODES)} Valid: "
                + ", ".join(f"`{m}`" for m in _feast.PUSH_MODES) + "."
            )
        for flag in ("allow_registry_cache", "transform_on_write"):
            _body.get_bool(body, flag, True)
        if "df" not in body:
            raise ValidationError(f"The body of {what} has no `df`. Fix: add \"df\": {{\"column\": [values]}}.")
        fv = self.store.get_feature_view(name)
        table = _body.push_columns(fv, body["df"], f"{what} (`df`)", naive_is_utc=True, broadcast=True)
        # Feast's `online` also lands offline here: the offline store is the record online reads are checked against
        target = "offline" if to == "offline" else "online_and_offline"
        await run_in_threadpool(self.store.push, name, table, _idempotency_key(request), target)
        return Response(_NULL, media_type="application/json")

    # -- operations ------------------------------------------------------------------------------
    def check_health(self) -> dict[str, Any]:
        """Each backend's health, with no absolute path or URL in it (see `_redact`); never raises."""
        report = self._raw_health()
        if not report["ok"]:
            log.warning("Health check failed: %s", report)  # the server log keeps the full details
        root = str(self.store.repo_path)
        return {"ok": report["ok"], "backends": {k: _redact(v, root) for k, v in report["backends"].items()}}

    def _raw_health(self) -> dict[str, Any]:
        backends: dict[str, dict[str, Any]] = {}
        try:
            latest = self.store.registry.latest()
            detail = f"version {latest.version}" if latest is not None else "reachable, no definitions yet (run featureline apply)"
            backends["registry"] = {"ok": True, "detail": detail}
        except Exception as e:
            backends["registry"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"}
        backends["offline_store"] = _offline_health(Path(self.store.config.offline_path))
        try:
            online = dict(self.store.online.health())
            online["ok"] = bool(online.get("ok"))
            backends["online_store"] = online
        except Exception as e:
            backends["online_store"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"}
        return {"ok": all(b["ok"] for b in backends.values()), "backends": backends}

    async def health(self, request: Request) -> Response:
        report = await run_in_threadpool(self.check_health)
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(await run_in_threadpool(self.metrics.render), media_type=CONTENT_TYPE)

    async def openapi(self, request: Request) -> Response:
        return Response(self.spec_bytes, media_type="application/json")

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(self.docs_html)

    def warm_up(self) -> None:
        """Load the catalog once so the first request does not pay for it."""
        try:
            self.store.list_feature_views()
        except FeaturelineError as e:
            log.warning("Serving a repo that is not ready yet: %s", e)

    def close(self) -> None:
        if self.owns_store:
            self.store.close()


_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://[^\s`'\"]+")
_ABS_PATH = re.compile(r"(?<![\w.~-])(?:/[^\s`'\",;:()]+)+")


def _redact(value: Any, root: str) -> Any:
    """A health report with paths inside the repo made relative to it, and other absolute paths
    and URLs replaced by their kind: /health is unauthenticated, and a path or a database URL
    tells a caller about the machine. The server log keeps the full report of a failed check."""
    if isinstance(value, dict):
        return {k: _redact(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, root) for v in value]
    if not isinstance(value, str):
        return value
    text = value.replace(root + os.sep, "").replace(root, ".")
    text = _URL.sub(lambda m: f"<{m.group(1).lower()} URL>", text)
    return _ABS_PATH.sub("<path outside the repo>", text)


def _offline_health(path: Path) -> dict[str, Any]:
    if path.is_dir():
        ok = os.access(path, os.R_OK | os.W_OK | os.X_OK)
        return {"ok": ok, "path": str(path), "detail": "readable and writable" if ok else "not readable and writable by this process"}
    parent = next((p for p in path.parents if p.exists()), None)
    ok = parent is not None and parent.is_dir() and os.access(parent, os.W_OK)
    return {"ok": ok, "path": str(path), "detail": "not created yet (first ingest creates it)" if ok else f"missing, and `{parent}` is not writable"}



def create_app(
    store: FeatureStore | str | os.PathLike[str],
    *,
    max_entities: int = DEFAULT_MAX_ENTITIES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout: float | None = None,
    allowed_hosts: list[str] | tuple[str, ...] | None = None,
) -> FeatureServer:
    """The feature server app for a FeatureStore or a repo path (then the app opens and closes the store).

    `body_timeout` (seconds) defaults to `server.body_timeout` in the repo's featureline.yaml;
    `allowed_hosts` are added to the defaults and `server.allowed_hosts` (`["*"]`: no Host check)."""
    from featureline.feature_store import FeatureStore

    if max_entities < 1 or max_body_bytes < 1:
        raise ValidationError(f"max_entities ({max_entities}) and max_body_bytes ({max_body_bytes}) must be positive.")
    owns = isinstance(store, str | os.PathLike)
    fs: FeatureStore = FeatureStore(store) if isinstance(store, str | os.PathLike) else store
    settings = fs.config.server
    hosts = (*settings.allowed_hosts, *(allowed_hosts or ()))
    svc = _Service(fs, owns, max_entities, max_body_bytes, body_timeout or settings.body_timeout, hosts)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc.warm_up()
        try:
            yield
        finally:
            svc.close()

    from featureline.models import Predictor
    from featureline.server._models import ModelRoutes

    predictor = Predictor(fs, fs.models, fs.repo_path / "data" / "predictions", retention=settings.prediction_log)
    models = ModelRoutes(predictor, max_entities, max_body_bytes, JSONResponse, svc.deadlines)
    ep = svc.endpoint
    routes = [
        Route("/models/{name}/predict", ep("/models/{name}/predict", models.predict), methods=["POST"]),
        Route("/models", ep("/models", models.list_models), methods=["GET"]),
        Route("/features/online", ep("/features/online", svc.json_route(svc.online)), methods=["POST"]),
        Route("/get-online-features", ep("/get-online-features", svc.json_route(svc.feast_online)), methods=["POST"]),
        Route("/push/{view}", ep("/push/{view}", svc.push), methods=["POST"]),
        Route("/push", ep("/push", svc.feast_push), methods=["POST"]),
        Route("/health", ep("/health", svc.health), methods=["GET"]),
        Route("/metrics", ep("/metrics", svc.metrics_endpoint), methods=["GET"]),
        Route("/openapi.json", ep("/openapi.json", svc.openapi), methods=["GET"]),
        Route("/docs", ep("/docs", svc.docs), methods=["GET"]),
    ]
    app = FeatureServer(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: svc.http_error})
    app.fast_routes = {
        "/features/online": ("/features/online", svc.online),
        "/get-online-features": ("/get-online-features", svc.feast_online),
    }
    app.service = svc
    return app


class FeatureServer(Starlette):
    """Starlette, plus a hot path: POST to an online-read route skips routing and middleware."""

    fast_routes: dict[str, tuple[str, Callable[[Any], Any]]]
    service: _Service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            bad_host = self.service.hosts.check(scope)
            if bad_host is not None:
                await self.service.misdirected(scope, send, bad_host)
                return
            if scope["method"] == "POST":
                hit = self.fast_routes.get(scope["path"])
                if hit is not None:
                    await self.service.fast(hit[0], hit[1], scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def app_from_env() -> FeatureServer:
    """App factory for `uvicorn --factory` (and `featureline serve --workers N`): reads FEATURELINE_REPO,
    limits, the body timeout and extra allowed hosts (unset: featureline.yaml's `server:`)."""
    def limit(name: str, default: int) -> int:
        raw = os.environ.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit():
            raise ValidationError(f"{name}=`{raw}` is not a positive integer.")
        return int(raw)

    def seconds(name: str) -> float | None:
        raw = os.environ.get(name, "")
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if not value > 0:
            raise ValidationError(f"{name}=`{raw}` is not a positive number of seconds.")
        return value

    hosts = os.environ.get(ENV_ALLOWED_HOSTS, "")
    return create_app(
        os.environ.get("FEATURELINE_REPO", "."),
        max_entities=limit(ENV_MAX_ENTITIES, DEFAULT_MAX_ENTITIES),
        max_body_bytes=limit(ENV_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES),
        body_timeout=seconds(ENV_BODY_TIMEOUT),
        allowed_hosts=[h for h in hosts.split(",") if h.strip()] or None,
    )
