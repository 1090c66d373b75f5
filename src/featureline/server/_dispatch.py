"""THE HTTP dispatcher: every request of the feature server, online reads included, passes here once.

In order: Host allow-list (421; DNS rebinding, see `_hosts`) → route (404 with did-you-mean, 405,
or a redirect to the path with/without its trailing slash) → `authenticate(call, route)` (the
principal: None with auth off; with `auth.enabled`, `featureline.auth.http_authenticator`: 401
without a valid credential, 403 for a route whose resource is not granted, and the caller the
read and write paths then check, set in its `context` variable while the handler runs; a bearer JWT
whose key needs a JWKS reload is not waited for on the event loop: the hook raises
`JwksReloadPending`, the request awaits that reload, and is authenticated again) → the route's handler → errors mapped to JSON
(a FeaturelineError with its `http_status`; anything else a logged 500 with a generic message) →
the response → metrics (by route template, method and status).

A handler is `async def handler(call: Call) -> Any`: it reads the body with `await call.json()`
(415 unless `application/json`, 413 over the size limit, 408 past the body deadline, see `_body`)
and returns a JSON-able value (200, `application/json`) or a `Reply` (any status, type, headers).
Routes are declared by concern in `featureline.server.routes`; a new endpoint is a `Route` there.

This is a plain function-call layer on raw ASGI, with no Request object and no middleware, so an
online read (tens of microseconds in process) pays a few microseconds for it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from featureline.auth import JwksReloadPending
from featureline.errors import FeaturelineError, MethodNotAllowed, NotFoundError, did_you_mean
from featureline.server._body import (
    CLOSE_STATUSES,
    NO_DEADLINE,
    BodyDeadlines,
    ClientGone,
    MisdirectedRequest,
    read_json_asgi,
)
from featureline.server._hosts import HostCheck
from featureline.server._metrics import Metrics

__all__ = ["Call", "Dispatcher", "Handler", "Reply", "Route", "anonymous", "dumps"]

log = logging.getLogger("featureline.server")

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


Headers = tuple[tuple[bytes, bytes], ...]
JSON_TYPE = b"application/json"
_JSON_HEADERS: Headers = ((b"content-type", JSON_TYPE),)
_CLOSE: Headers = (
    (b"connection", b"close"),
)  # answered before the body was read: close the connection


@dataclass(slots=True)
class Reply:
    """A response other than "200, this value as JSON"."""

    body: bytes
    status: int = 200
    content_type: bytes = JSON_TYPE
    headers: Headers = ()

    @classmethod
    def json(cls, content: Any, status: int = 200) -> Reply:
        return cls(dumps(content), status)


class Call:
    """One request as a handler sees it: raw ASGI scope, path parameters, the principal, the body."""

    __slots__ = ("_deadlines", "_limit", "path_params", "principal", "receive", "scope")

    def __init__(
        self,
        scope: Any,
        receive: Any,
        path_params: dict[str, str],
        limit: int,
        deadlines: BodyDeadlines,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self.principal: Any = None
        self._limit = limit
        self._deadlines = deadlines

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def header(self, name: bytes) -> str | None:
        """The first value of header `name` (lower case), or None."""
        for key, value in self.scope["headers"]:
            if key == name:
                return bytes(value).decode("latin-1")
        return None

    def json(self) -> Coroutine[Any, Any, Any]:
        """`await call.json()`: the parsed JSON body; 415 unless declared application/json, 413 over
        the limit, 408 late. (A plain method returning the reader's coroutine: one frame less a read.)"""
        scope = self.scope
        return read_json_asgi(
            scope, self.receive, self._limit, self._deadlines, f"{scope['method']} {scope['path']}"
        )


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    """`method path` served by `handler`; `path` may hold `{name}` segments (one path segment each)
    and is the `route` label of the metrics. `passes_caller`: the handler hands `call.principal`
    to every store path it calls itself (e.g. `FeatureStore._read_online`), so the dispatcher
    does not make it the context's current caller (a context variable set and reset per
    request); a handler calling any path that looks the caller up must leave it False."""

    path: str
    method: str
    handler: Handler
    passes_caller: bool = False


def anonymous(call: Call, route: str) -> Any:
    """The default `authenticate` hook: every request is the anonymous principal (None: open)."""
    return None


_WWW_AUTHENTICATE = ((b"www-authenticate", b'Bearer realm="featureline"'),)


_NO_PARAMS: dict[str, str] = {}
_PARAM = re.compile(r"\{(\w+)\}")


def _compile(path: str) -> re.Pattern[str]:
    """`/push/{view}` -> a pattern whose group `view` is one path segment."""
    out, pos = [], 0
    for m in _PARAM.finditer(path):
        out += [re.escape(path[pos : m.start()]), f"(?P<{m.group(1)}>[^/]+)"]
        pos = m.end()
    out.append(re.escape(path[pos:]))
    return re.compile("^" + "".join(out) + "$")


class _Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.exact: dict[str, dict[str, Route]] = {}
        self.templates: list[tuple[re.Pattern[str], dict[str, Route]]] = []
        by_path: dict[str, dict[str, Route]] = {}
        self.paths = by_path
        for r in routes:
            methods = by_path.setdefault(r.path, {})
            if r.method in methods:
                raise ValueError(f"Two routes for `{r.method} {r.path}`.")
            methods[r.method] = r
        for path, methods in by_path.items():
            if "GET" in methods and "HEAD" not in methods:
                methods["HEAD"] = methods["GET"]  # the server drops the body of a HEAD response
            if "{" in path:
                self.templates.append((_compile(path), methods))
            else:
                self.exact[path] = methods

    def methods(self, path: str) -> tuple[dict[str, Route] | None, dict[str, str]]:
        hit = self.exact.get(path)
        if hit is not None:
            return hit, {}
        for pattern, methods in self.templates:
            m = pattern.match(path)
            if m is not None:
                return methods, m.groupdict()
        return None, {}


class Dispatcher:
    """The ASGI callable for HTTP requests (see the module docstring)."""

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        metrics: Metrics,
        hosts: HostCheck,
        max_body_bytes: int,
        deadlines: BodyDeadlines = NO_DEADLINE,
        endpoints: Iterable[str] = (),
        authenticate: Callable[[Call, str], Any] = anonymous,
    ) -> None:
        self.router = _Router(routes)
        self._exact = self.router.exact
        self.metrics = metrics
        self.hosts = hosts
        self.max_body_bytes = max_body_bytes
        self.deadlines = deadlines
        self.endpoints = list(endpoints) or list(self.router.paths)
        self.authenticate = authenticate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        method = scope["method"]
        label = "<rejected host>"
        extra: Headers = ()
        try:
            bad_host = self.hosts.check(scope)
            if bad_host is not None:
                raise MisdirectedRequest(self.hosts.message(bad_host, scope))
            label = "<unmatched>"
            methods = self._exact.get(scope["path"])  # the common case, one dict lookup
            params: dict[str, str] = _NO_PARAMS
            if methods is None:
                methods, params = self.router.methods(scope["path"])
            if methods is None:
                result: Any = self._not_found(scope)
            else:
                route = methods.get(method)
                if route is None:
                    raise self._not_allowed(scope, methods)
                label = route.path
                call = Call(scope, receive, params, self.max_body_bytes, self.deadlines)
                # once per request: the permissions work's one home
                try:
                    principal = call.principal = self.authenticate(call, route.path)
                except JwksReloadPending as pending:  # the hook would wait for the IdP: not here
                    await pending.wait()  # the loop serves other requests meanwhile
                    principal = call.principal = self.authenticate(call, route.path)
                if principal is None or route.passes_caller:
                    result = await route.handler(call)
                else:  # the store's paths check the request's caller: it is current meanwhile
                    current = principal.context  # a ContextVar (no `with` object per request)
                    token = current.set(principal)
                    try:
                        result = await route.handler(call)
                    finally:
                        current.reset(token)
            if type(result) is Reply:
                status, payload, content_type, extra = (
                    result.status,
                    result.body,
                    result.content_type,
                    result.headers,
                )
            else:
                status, payload, content_type = 200, dumps(result), JSON_TYPE
        except ClientGone:
            return  # no one to answer
        except FeaturelineError as e:
            status, content_type = e.http_status, JSON_TYPE
            payload = dumps({"error": type(e).__name__, "message": e.message})
            extra = getattr(e, "headers", ())
            if status == 401:
                extra = (*extra, *_WWW_AUTHENTICATE)
        except Exception as e:
            log.exception("Unexpected error in %s %s", method, label)
            status, content_type = 500, JSON_TYPE
            payload = dumps(
                {
                    "error": "InternalError",
                    "message": f"{type(e).__name__}: {e}. This is a bug in Featureline; the server log has the traceback.",
                }
            )
        if status in CLOSE_STATUSES:
            extra = (*extra, *_CLOSE)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(payload)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        self.metrics.observe(label, method, status, started)

    def _not_found(self, scope: Any) -> Reply:
        """404 with did-you-mean, or a redirect when the path with/without its trailing slash exists."""
        path = scope["path"]
        if path != "/":
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            if self.router.methods(other)[0] is not None:
                query = scope.get("query_string") or b""
                location = other.encode() + (b"?" + query if query else b"")
                return Reply(b"", 307, b"text/plain; charset=utf-8", ((b"location", location),))
        plain = [p for p in self.endpoints if "{" not in p]
        raise NotFoundError(
            f"No endpoint at `{path}`.{did_you_mean(path, plain)} Endpoints: {', '.join(self.endpoints)}; see /docs."
        )

    def _not_allowed(self, scope: Any, methods: dict[str, Route]) -> MethodNotAllowed:
        allowed = ", ".join(sorted(methods))
        shown = ", ".join(m for m in sorted(methods) if m != "HEAD")
        return MethodNotAllowed(
            f"`{scope['method']}` is not allowed on `{scope['path']}`. Fix: use {shown}.", allowed
        )
