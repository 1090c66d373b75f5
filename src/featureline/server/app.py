"""The HTTP app: online reads and push (native and Feast-compatible), model endpoints, health,
metrics, OpenAPI.

`create_app(repo_path_or_store)` returns the app; `featureline serve` runs it under uvicorn.
Every HTTP request goes through one dispatcher (`_dispatch.Dispatcher`): Host allow-list (421;
DNS rebinding, see `_hosts`) → route → `authenticate` → handler → errors as JSON → metrics. A POST
body must be declared `application/json` (415; a cross-site "simple" POST cannot be) and arrive
within `body_timeout` seconds (408); the header deadline is the HTTP protocol's (`protocol.py`, which
`featureline serve` runs). The routes live in `routes/`, one module per concern. Online reads run
inline on the event loop (an in-process lookup of tens of microseconds, less than a thread hop);
pushes, health checks and metric scrapes run in the threadpool so they never stall reads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from featureline.errors import FeaturelineError, ValidationError
from featureline.quality import quarantine
from featureline.server._body import BodyDeadlines
from featureline.server._context import ServerContext
from featureline.server._dispatch import Dispatcher, anonymous
from featureline.server._hosts import HostCheck
from featureline.server._metrics import Metrics
from featureline.server._openapi import build_spec
from featureline.server.routes import feast_ops, features, models, ops, push, ui

if TYPE_CHECKING:
    from featureline.feature_store import FeatureStore

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ENTITIES",
    "ROUTE_MODULES",
    "FeatureServer",
    "app_from_env",
    "create_app",
]

log = logging.getLogger("featureline.server")

DEFAULT_MAX_ENTITIES = 1000
DEFAULT_MAX_BODY_BYTES = 1_000_000
ENV_MAX_ENTITIES = "FEATURELINE_SERVE_MAX_ENTITIES"
ENV_MAX_BODY_BYTES = "FEATURELINE_SERVE_MAX_BODY_BYTES"
ENV_BODY_TIMEOUT = "FEATURELINE_SERVE_BODY_TIMEOUT"
ENV_ALLOWED_HOSTS = "FEATURELINE_SERVE_ALLOWED_HOSTS"  # comma-separated

ROUTE_MODULES = (features, push, feast_ops, models, ops, ui)  # each: routes(ctx) -> list[Route]


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
    from featureline.models import Predictor

    if max_entities < 1 or max_body_bytes < 1:
        raise ValidationError(
            f"max_entities ({max_entities}) and max_body_bytes ({max_body_bytes}) must be positive."
        )
    owns = isinstance(store, str | os.PathLike)
    fs: FeatureStore = FeatureStore(store) if isinstance(store, str | os.PathLike) else store
    settings = fs.config.server
    hosts = HostCheck((*settings.allowed_hosts, *(allowed_hosts or ())))
    deadlines = BodyDeadlines(body_timeout or settings.body_timeout)
    spec = build_spec(max_entities, max_body_bytes)
    ctx = ServerContext(
        store=fs,
        predictor=Predictor(
            fs, fs.models, fs.repo_path / "data" / "predictions", retention=settings.prediction_log
        ),
        metrics=Metrics(fs.freshness, lambda: _stream_stats(fs)),
        max_entities=max_entities,
        max_body_bytes=max_body_bytes,
        spec=spec,
        owns_store=owns,
    )
    authenticate: Any = anonymous
    if fs.authorizer is not None and fs.authorizer.enabled:
        from featureline.auth import http_authenticator

        authenticate = http_authenticator(fs.authorizer)
    dispatcher = Dispatcher(
        [r for module in ROUTE_MODULES for r in module.routes(ctx)],
        metrics=ctx.metrics,
        hosts=hosts,
        max_body_bytes=max_body_bytes,
        deadlines=deadlines,
        endpoints=spec["paths"],
        authenticate=authenticate,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:  # load the catalog once so the first request does not pay for it
            fs.list_feature_views()
        except FeaturelineError as e:
            log.warning("Serving a repo that is not ready yet: %s", e)
        # a server stays up: merging the small commits of pushes runs off the request path
        fs.offline.housekeep_in_background()
        # and removes orphan quarantine files (interrupted writes) now and every hour (or every
        # `quarantine.gc_interval_seconds`)
        gc = quarantine.gc_in_background(fs.offline.root, fs.config.quarantine_gc_seconds)
        try:
            yield
        finally:
            gc.set()
            # what the routes started (the UI statistics' thread), stopped before the store
            # closes under it; each may wait a bounded time, off the event loop
            for close in ctx.closers:
                try:
                    await run_in_threadpool(close)
                except Exception as e:  # the shutdown goes on
                    log.warning("Stopping %r at shutdown failed: %s", close, e)
            if owns:
                fs.close()

    return FeatureServer(dispatcher, ctx, lifespan=lifespan)


class FeatureServer(Starlette):
    """The ASGI app: HTTP requests go to the dispatcher; Starlette runs the lifespan (startup, shutdown)."""

    def __init__(self, dispatcher: Dispatcher, service: ServerContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dispatcher = dispatcher
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.dispatcher(scope, receive, send)
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


def _stream_stats(fs: Any) -> list[dict[str, Any]]:
    """What the repo's stream workers last published (for /metrics)."""
    from featureline.stream import read_stream_stats

    return read_stream_stats(fs.repo_path)
