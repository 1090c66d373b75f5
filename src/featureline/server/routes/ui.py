"""The web UI (issue 12): the page and its assets under /ui, and the JSON API behind every page
under /ui/api. Everything ships in the package (`featureline/server/ui/`), nothing from a CDN.

The routes go through the dispatcher like every other route (Host check, auth, errors as JSON,
metrics); the API reads through the FeatureStore façade (`_ui_data.UiData`; the object pages'
`_ui_pages.UiPages`) in the threadpool. `/ui/api/views/{name}` answers every catalog object's page
(`kind`: a feature view, entity, feature service or on-demand view) and a view's lineage graph
(`part=lineage`), so the UI adds no route the auth mapping (`featureline.auth.ROUTES`) lacks."""

from __future__ import annotations

from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool

from featureline.errors import ValidationError
from featureline.server._context import ServerContext
from featureline.server._dispatch import Call, Reply, Route
from featureline.server._ui_data import UiData, parse_time
from featureline.server._ui_pages import KINDS, UiPages

__all__ = ["ASSETS", "routes"]

ASSETS = {
    "/ui": ("index.html", b"text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", b"text/javascript; charset=utf-8"),
    "/ui/app.css": ("app.css", b"text/css; charset=utf-8"),
}
_NO_CACHE = ((b"cache-control", b"no-cache"),)
_MAX_QUERY = 200
_MAX_IDS = 1000  # `ids` of /ui/api/runs: up to 50 run ids


def _asset(name: str) -> bytes:
    return (resources.files("featureline.server") / "ui" / name).read_bytes()


def _query(call: Call, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query string's parameters (one value each), refusing unknown or repeated ones."""
    raw = bytes(call.scope.get("query_string") or b"").decode("latin-1")
    try:
        parsed = parse_qs(raw, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise ValidationError("The query string is not UTF-8.") from None
    out: dict[str, str] = {}
    for k, values in parsed.items():
        if k not in allowed:
            raise ValidationError(
                f"`{call.path}` takes no parameter `{k[:40]}`. Parameters: {', '.join(allowed) or 'none'}."
            )
        if len(values) > 1:
            raise ValidationError(f"`{k}` is given {len(values)} times; give it once.")
        if len(values[0]) > (_MAX_IDS if k == "ids" else _MAX_QUERY):
            raise ValidationError(f"`{k}` is too long.")
        out[k] = values[0]
    return out


def _positive(raw: str | None, what: str, default: int, top: int) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= top:
        raise ValidationError(f"`{what}` must be an integer from 1 to {top}, got `{raw[:40]}`.")
    return int(raw)


def routes(ctx: ServerContext) -> list[Route]:
    data = UiData(ctx.store)
    ctx.closers.append(data.close)  # the statistics' background thread stops with the server
    pages = UiPages(ctx.store)
    assets = {path: (_asset(name), ctype) for path, (name, ctype) in ASSETS.items()}

    def asset_handler(path: str) -> Any:
        body, ctype = assets[path]

        async def handler(call: Call) -> Reply:
            _query(call, ())
            return Reply(body, content_type=ctype, headers=_NO_CACHE)

        return handler

    async def search(call: Call) -> Any:
        q = _query(call, ("q",)).get("q", "")
        return await run_in_threadpool(data.search, q)

    def catalog_object(name: str, kind: str, part: str, version: int | None) -> Any:
        if part == "lineage":
            if kind != "feature_view":
                raise ValidationError("`part=lineage` is for feature views (`kind=feature_view`).")
            return pages.view_lineage(name, version)
        if version is not None:
            raise ValidationError("`version` goes with `part=lineage`.")
        if kind == "entity":
            return pages.entity(name)
        if kind == "feature_service":
            return pages.service(name)
        if kind == "on_demand_feature_view" or pages.is_odfv(name):
            return pages.odfv(name)
        out = data.view(name)  # the caller's describe grant is checked there first
        out.update(pages.view_extra(name))
        return out

    async def view(call: Call) -> Any:
        p = _query(call, ("kind", "part", "version"))
        kind, part = p.get("kind") or "feature_view", p.get("part") or "page"
        if kind not in KINDS:
            raise ValidationError(f"`kind` must be one of {', '.join(KINDS)}, got `{kind[:40]}`.")
        if part not in ("page", "lineage"):
            raise ValidationError(f"`part` must be page or lineage, got `{part[:40]}`.")
        raw = p.get("version")
        version = None if raw is None else _positive(raw, "version", 1, 2**31 - 1)
        name = call.path_params["name"]
        return await run_in_threadpool(catalog_object, name, kind, part, version)

    async def runs(call: Call) -> Any:
        p = _query(call, ("pipeline", "limit", "ids", "details"))
        limit = _positive(p.get("limit"), "limit", 100, 1000)
        ids = [i for i in p.get("ids", "").split(",") if i] or None
        details = p.get("details", "false")
        if details not in ("true", "false"):
            raise ValidationError(f"`details` must be true or false, got `{details[:40]}`.")
        return await run_in_threadpool(
            data.runs, p.get("pipeline") or None, limit, ids, details == "true"
        )

    async def run(call: Call) -> Any:
        _query(call, ())
        return await run_in_threadpool(data.run, call.path_params["id"])

    async def models(call: Call) -> Any:
        _query(call, ())
        return await run_in_threadpool(data.models)

    async def model(call: Call) -> Any:
        _query(call, ())
        return await run_in_threadpool(data.model, call.path_params["name"])

    async def lineage(call: Call) -> Any:
        p = _query(call, ("version",))
        version = p.get("version")
        v = None if version is None else _positive(version, "version", 1, 2**63 - 1)
        return await run_in_threadpool(data.lineage, call.path_params["model"], v)

    async def pit(call: Call) -> Any:
        p = _query(call, ("view", "key", "at", "as_of"))
        for need in ("view", "key"):
            if not p.get(need):
                raise ValidationError(
                    f"`{need}` is required. Fix: /ui/api/pit?view=driver_stats&key=1001&at=2025-01-01T12:00:00Z"
                )
        at, as_of = parse_time(p.get("at"), "at"), parse_time(p.get("as_of"), "as_of")
        return await run_in_threadpool(data.pit, p["view"], p["key"], at, as_of)

    return [
        *(Route(path, "GET", asset_handler(path)) for path in ASSETS),
        Route("/ui/api/search", "GET", search),
        Route("/ui/api/views/{name}", "GET", view),
        Route("/ui/api/runs", "GET", runs),
        Route("/ui/api/runs/{id}", "GET", run),
        Route("/ui/api/models", "GET", models),
        Route("/ui/api/models/{name}", "GET", model),
        Route("/ui/api/lineage/{model}", "GET", lineage),
        Route("/ui/api/pit", "GET", pit),
    ]
