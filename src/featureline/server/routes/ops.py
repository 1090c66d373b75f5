"""Operations: GET /health, /metrics (Prometheus), /openapi.json, /docs.

/health and /metrics read backends and the commit log, so they run in the threadpool and never
stall reads. /health is unauthenticated: it names backends by kind and repo-relative path, never
by absolute path or URL (the server log keeps the full report of a failed check)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from featureline.server._context import ServerContext
from featureline.server._dispatch import Call, Reply, Route
from featureline.server._metrics import CONTENT_TYPE
from featureline.server._openapi import LiveSpec

if TYPE_CHECKING:
    from featureline.feature_store import FeatureStore

__all__ = ["check_health", "routes"]

log = logging.getLogger("featureline.server")


def routes(ctx: ServerContext) -> list[Route]:
    store, metrics = ctx.store, ctx.metrics
    spec = LiveSpec(store, ctx.max_entities, ctx.max_body_bytes)  # names the registry's views
    metrics_type = CONTENT_TYPE.encode()

    async def health(call: Call) -> Reply:
        report = await run_in_threadpool(check_health, store)
        return Reply.json(report, 200 if report["ok"] else 503)

    async def metrics_endpoint(call: Call) -> Reply:
        return Reply(await run_in_threadpool(metrics.render), content_type=metrics_type)

    async def openapi(call: Call) -> Reply:
        return Reply(await run_in_threadpool(spec.json))

    async def docs_page(call: Call) -> Reply:
        return Reply(await run_in_threadpool(spec.html), content_type=b"text/html; charset=utf-8")

    return [
        Route("/health", "GET", health),
        Route("/metrics", "GET", metrics_endpoint),
        Route("/openapi.json", "GET", openapi),
        Route("/docs", "GET", docs_page),
    ]


def check_health(store: FeatureStore) -> dict[str, Any]:
    """Each backend's health, with no absolute path or URL in it (see `_redact`); never raises."""
    report = _raw_health(store)
    if not report["ok"]:
        log.warning("Health check failed: %s", report)  # the server log keeps the full details
    root = str(store.repo_path)
    return {
        "ok": report["ok"],
        "backends": {k: _redact(v, root) for k, v in report["backends"].items()},
    }


def _raw_health(store: FeatureStore) -> dict[str, Any]:
    backends: dict[str, dict[str, Any]] = {}
    try:
        latest = store.latest_version()
        detail = (
            f"version {latest.version}"
            if latest is not None
            else "reachable, no definitions yet (run featureline apply)"
        )
        backends["registry"] = {"ok": True, "detail": detail}
    except Exception as e:
        backends["registry"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"}
    backends["offline_store"] = _offline_health(Path(store.config.offline_path))
    try:
        online = dict(store.online_health())
        online["ok"] = bool(online.get("ok"))
        backends["online_store"] = online
    except Exception as e:
        backends["online_store"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"}
    return {"ok": all(b["ok"] for b in backends.values()), "backends": backends}


_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://[^\s`'\"]+")
_ABS_PATH = re.compile(r"(?<![\w.~-])(?:/[^\s`'\",;:()]+)+")


def _redact(value: Any, root: str) -> Any:
    """A health report with paths inside the repo made relative to it, and other absolute paths
    and URLs replaced by their kind: /health is unauthenticated, and a path or a database URL
    tells a caller about the machine."""
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
        return {
            "ok": ok,
            "path": str(path),
            "detail": "readable and writable"
            if ok
            else "not readable and writable by this process",
        }
    parent = next((p for p in path.parents if p.exists()), None)
    ok = parent is not None and parent.is_dir() and os.access(parent, os.W_OK)
    return {
        "ok": ok,
        "path": str(path),
        "detail": "not created yet (first ingest creates it)"
        if ok
        else f"missing, and `{parent}` is not writable",
    }
