"""The authorizer of one store: credentials -> principal, (principal, action, resource) -> allowed,
decisions cached per (principal, read plan), and the audit log.

`FeatureStore` builds one when `auth.enabled` (or the audit log) is configured; the read and
write paths then receive a `Caller` (the principal bound to the authorizer) instead of None,
and call `check_read` / `check_write` in their `check_principal` hooks. With auth off they
receive None and check nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import featureline.auth._tokens as _tokens
from featureline.auth._audit import AuditLog
from featureline.auth._jwt import JwtVerifier, looks_like_jwt
from featureline.auth._policy import Decision, decide
from featureline.auth._principal import ANONYMOUS, CURRENT, Principal
from featureline.auth._tokens import (
    PREFIX,
    TokenStore,
    _bounded,
    _expired,
    open_token_store,
)
from featureline.config import AuthSettings
from featureline.definitions import Permission, is_pii
from featureline.errors import PermissionDeniedError, UnauthenticatedError

if TYPE_CHECKING:
    from featureline.catalog import Catalog
    from featureline.definitions import FeatureService, FeatureView

T = TypeVar("T")
# the hot paths' names, bound once (a module global lookup, not an attribute lookup)
_monotonic, _time = time.monotonic, time.time
_RECHECK, _TTL = _tokens.RECHECK_SECONDS, _tokens.CACHE_TTL_SECONDS
_READS_PER_CALLER = 256  # a caller's copies of its allowed read decisions (then cleared)

__all__ = ["DATA_ROUTES", "ROUTES", "Authorizer", "Caller", "http_authenticator", "route_resource"]

# Route templates of the feature server -> what a request needs before its handler runs:
# (action, resource type, resource name; `{name}` is the path parameter), or None when the read
# and write paths check the views the body names (the request then needs one of the actions of
# DATA_ROUTES granted on some feature view first, so that a principal granted nothing learns
# nothing from validation errors). A route missing here is refused (fail closed).
ROUTES: dict[str, tuple[str, str, str] | None] = {
    "/features/online": None,
    "/get-online-features": None,
    "/push/{view}": None,
    "/push": None,
    "/write-to-online-store": None,
    "/materialize": None,
    "/materialize-incremental": None,
    "/models": ("describe", "model", "*"),
    "/models/{name}/predict": ("read_online", "model", "{name}"),
    "/health": ("describe", "endpoint", "/health"),
    "/metrics": ("describe", "endpoint", "/metrics"),
    "/openapi.json": ("describe", "endpoint", "/openapi.json"),
    "/docs": ("describe", "endpoint", "/docs"),
    # the web UI: the endpoint grant; its data reads are checked by the store's paths
    **{p: ("describe", "endpoint", "/ui") for p in ("/ui", "/ui/app.js", "/ui/app.css")},
    **{
        p: ("describe", "endpoint", "/ui")
        for p in (
            "/ui/api/search",
            "/ui/api/views/{name}",
            "/ui/api/runs",
            "/ui/api/runs/{id}",
            "/ui/api/models",
            "/ui/api/models/{name}",
            "/ui/api/lineage/{model}",
            "/ui/api/pit",
        )
    },
}

DATA_ROUTES: dict[str, tuple[str, ...]] = {
    "/features/online": ("read_online",),
    "/get-online-features": ("read_online",),
    "/push/{view}": ("write_online",),
    "/push": ("write_online", "write_offline"),
    "/write-to-online-store": ("write_online",),
    "/materialize": ("write_online",),
    "/materialize-incremental": ("write_online",),
}

# what a grant must be on for a data route's first check: reads may be granted through a
# feature service (`feature_service:NAME`) instead of each of its views
_READ_KINDS = ("feature_view", "feature_service")
DATA_KINDS: dict[str, tuple[str, ...]] = {
    route: _READ_KINDS if set(actions) <= {"read_online", "read_offline"} else ("feature_view",)
    for route, actions in DATA_ROUTES.items()
}

_KIND = {
    "entity": "entity",
    "view": "feature_view",
    "service": "feature_service",
    "on-demand view": "on_demand_feature_view",
    "permission": "permission",
}


def route_resource(route: str, params: dict[str, str]) -> tuple[str, str, str] | None:
    need = ROUTES[route]
    if need is None:
        return None
    action, kind, name = need
    if name.startswith("{"):
        name = params.get(name.strip("{}"), "")
    return action, kind, name


def _features(view: FeatureView, names: Iterable[str]) -> tuple[str, ...]:
    """The pii fields among `names` of `view`."""
    tagged = {f.name for f in view.features if is_pii(f.tags)}
    return tuple(n for n in names if n in tagged)


def _allowed_read(
    a: Any, p: Any, live: bool, action: str, views: Any, service: Any, d: Any
) -> None:
    """What an allowed read still checks: the principal alive (`a.alive(p)`, its token hit
    inlined, see `Authorizer.alive`; with `live`, checked alive by this request's hook, only
    its expiry) and the sampled audit of the read (`audit.sample_read()`, its common case
    inlined). Raises as `a.alive` does."""
    if live:
        expires_at = p.expires_at
        if expires_at is not None and expires_at <= _time():
            a.alive(p)
    else:
        token = p.token_id
        tokens = a.tokens
        live_hit = None if token is None else tokens._live.get(token)
        if live_hit is None:
            a.alive(p)
        else:
            now = _monotonic()
            if (
                now - tokens._checked >= _RECHECK
                or now - live_hit[1] >= _TTL
                or (live_hit[0] is not None and live_hit[0] <= _time())
            ):
                a.alive(p)
    audit = a.audit
    if audit is not None:
        if audit._skip > 1:
            audit._skip -= 1
        elif audit.sample_read():
            a._audit_read(p, action, views, service, d)


class Caller:
    """A principal bound to the authorizer: what the read and write paths are handed."""

    __slots__ = ("_plans", "_reads", "authorizer", "principal")
    # the HTTP dispatcher sets it to the request's caller while the handler runs (`active`)
    context: ClassVar[ContextVar[Any]] = CURRENT

    def __init__(self, principal: Principal, authorizer: Authorizer) -> None:
        self.principal = principal
        self.authorizer = authorizer
        # the reads this caller was allowed: cache key -> (action, catalog version, feature
        # service name, decision); a copy of the authorizer's decisions (a lookup by one key)
        self._reads: dict[Any, tuple[str, Any, str | None, Decision]] = {}
        # the same, by the read plan's check (`featureline.read.ReadCheck`, by identity)
        self._plans: dict[Any, Decision] = {}

    @property
    def name(self) -> str:
        return self.principal.name

    def check(self, action: str, kind: str, name: str, tags: dict[str, str] | None = None) -> None:
        self.authorizer.check(self.principal, action, kind, name, tags or {})

    def check_read(
        self,
        action: str,
        views: Sequence[FeatureView],
        features: Callable[[], list[tuple[FeatureView, Sequence[str]]]] | None = None,
        cache_key: Any = None,
        current: Any = None,
        service: FeatureService | None = None,
        live: bool = False,
    ) -> Decision:
        """`service`: the feature service the read names, if any (a grant of `action` on it
        covers the views it reads; see `Authorizer.check_read`). `live`: this caller is the one
        the HTTP hook (`http_authenticator`) returned for the request being served, which
        checked its credential neither revoked nor expired (`Authorizer.alive`) as the request
        came in: not checked for revocation again within the request (a revoke is refused from
        the next request on), only for expiry (refused the moment it expires)."""
        a, p = self.authorizer, self.principal
        if cache_key is not None and current is not None:  # the hot path: a decision held
            held = self._reads.get(cache_key)
            d: Decision | None
            if (
                held is not None
                and held[1] == current
                and held[0] == action
                and held[2] == (None if service is None else service.name)
            ):
                d = held[3]  # allowed, under this catalog
            else:
                name = None if service is None else service.name
                d = a._decisions.get((p.key, action, current, cache_key, name))
                if d is not None and d.allowed:
                    reads = self._reads
                    if len(reads) >= _READS_PER_CALLER:
                        reads.clear()
                    reads[cache_key] = (action, current, name, d)
            if d is not None and d.allowed:
                _allowed_read(a, p, live, action, views, service, d)
                return d
        return a.check_read(p, action, views, features, cache_key, current, service)

    def check_plan(self, check: Any, live: bool = False) -> None:
        """`check_read` of an online read plan's check (`featureline.read.ReadCheck`: its action,
        views, pii pairs, cache key, catalog version and service), its allowed decision kept by
        the check itself (one lookup by identity); `live` as for `check_read`."""
        d = self._plans.get(check)
        if d is None:  # decided (or found) under this catalog; a denial raises, and is not kept
            d = self.check_read(
                check.action,
                check.views,
                check.features,
                check.cache_key,
                check.version,
                check.service,
                live,
            )
            plans = self._plans
            # bounded, and none kept from an older catalog (it would keep that catalog alive)
            if len(plans) >= _READS_PER_CALLER or (
                plans and next(iter(plans)).catalog is not check.catalog
            ):
                plans.clear()
            plans[check] = d
            return
        if live:  # `_allowed_read`'s common case inlined: checked alive by the hook just now,
            # not expired, and no audit sample due (a decrement)
            expires_at = self.principal.expires_at
            audit = self.authorizer.audit
            if (expires_at is None or expires_at > _time()) and (audit is None or audit._skip > 1):
                if audit is not None:
                    audit._skip -= 1
                return
        _allowed_read(
            self.authorizer, self.principal, live, check.action, check.views, check.service, d
        )

    def check_write(self, action: str, view: FeatureView) -> None:
        a = self.authorizer
        a.check(self.principal, action, "feature_view", view.name, view.tags, always_audit=True)

    def outcome(self, action: str, resource: str, fn: Callable[[], T]) -> T:
        """Run `fn` (an allowed apply or write) and audit its result: `ok` with the commit or
        version it made, or `error` with the message (a denial is audited where it is decided)."""
        audit = self.authorizer.audit
        if audit is None:
            return fn()
        try:
            result = fn()
        except PermissionDeniedError:
            raise
        except Exception as e:
            audit.record(self.principal, action, resource, "error", f"{type(e).__name__}: {e}")
            raise
        detail = {
            k: getattr(result, k)
            for k in ("commit", "rows", "version", "replayed", "quarantined")
            if getattr(result, k, None) is not None
        }
        if isinstance(result, list):
            detail["views"] = len(result)
        audit.record(self.principal, action, resource, "ok", **detail)
        return result

    def active(self) -> _Active:
        """`with caller.active():` within the block, the store's paths act as this caller (the
        request's principal; concurrent requests each have their own context)."""
        return _Active(self)


class _Active:
    __slots__ = ("caller", "token")

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.token: Any = None

    def __enter__(self) -> Caller:
        self.token = CURRENT.set(self.caller)
        return self.caller

    def __exit__(self, *exc: object) -> None:
        CURRENT.reset(self.token)


class Authorizer:
    def __init__(
        self,
        settings: AuthSettings,
        repo_path: Path,
        catalog: Callable[[], Catalog | None],
        registry: str = "data/registry.db",
        project: str = "",
    ) -> None:
        """`registry` (the registry's location) decides where tokens live: its PostgreSQL
        database, or `auth.db` next to a SQLite registry file."""
        self.settings = settings
        self.enabled = settings.enabled
        self.repo_path = repo_path
        self.tokens: TokenStore = open_token_store(registry, project, repo_path)
        self.jwt = JwtVerifier(settings.oidc, repo_path) if settings.oidc else None
        self.audit = (
            AuditLog(repo_path / "data" / "audit", settings.audit)
            if settings.audit.enabled
            else None
        )
        self._catalog = catalog
        self._perms: tuple[Any, Any, list[Permission]] = (None, None, [])  # catalog, version, list
        self._decisions: dict[Any, Decision] = {}
        self._lock = threading.Lock()
        self.default: Caller = Caller(ANONYMOUS, self)

    # -- credentials ---------------------------------------------------------------------------
    def authenticate(self, credential: str | None, wait: bool = True) -> Principal:
        """The principal of a bearer credential (an API token or an OIDC JWT); 401 otherwise.
        `wait=False` (the HTTP hook, on the event loop): a JWT whose key needs a JWKS reload
        raises `JwksReloadPending` (to await) instead of waiting for the identity provider."""
        if credential is None or not credential.strip():
            raise UnauthenticatedError(
                "This needs a credential. Fix: send `Authorization: Bearer <token>` (an API token from "
                "`featureline token create`, or a JWT from the identity provider)."
            )
        token = credential.strip()
        if token.startswith(PREFIX):
            return self.tokens.verify(token)
        if looks_like_jwt(token):
            if self.jwt is None:
                raise UnauthenticatedError(
                    "A JWT was sent but this server verifies no JWTs (no `auth.oidc` in featureline.yaml)."
                )
            return self.jwt.verify(token, wait)
        raise UnauthenticatedError("The bearer credential is neither an API token nor a JWT.")

    def alive(self, principal: Principal) -> None:
        """401 if the credential `principal` was proven by has expired or been revoked since (a
        principal held for a while: the store's own, or one cached by the HTTP hook). A clock
        read and a set lookup; a token store query once per generation (see `_tokens`)."""
        token = principal.token_id
        if token is None:
            expires_at = principal.expires_at
        else:  # `tokens.expiry(token)`, its hit inlined (the hot path: once a request)
            tokens = self.tokens
            held = tokens._live.get(token)
            now = _monotonic()
            if held is not None and now - tokens._checked < _RECHECK and now - held[1] < _TTL:
                expires_at = held[0]
            else:
                expires_at = tokens.expiry(token)
        if token is None and principal.via == "jwt" and self.jwt is not None:
            self.jwt.check(principal)  # its signing key rotated out of the JWKS since: 401
        if expires_at is not None and expires_at <= time.time():
            if token is not None:
                raise _expired(token)
            raise UnauthenticatedError(
                f"The credential of principal `{principal.name}` ({principal.via}) has expired. "
                "Fix: get a new one."
            )

    def caller(self, principal: Principal) -> Caller:
        return Caller(principal, self)

    def current(self) -> Caller:
        """The caller of the HTTP request being served, else the store's own."""
        c = CURRENT.get()
        return c if c is not None and c.authorizer is self else self.default

    # -- decisions -----------------------------------------------------------------------------
    def permissions(self) -> tuple[Any, list[Permission]]:
        """(The version of the current catalog, its permissions): the list is built once per
        catalog (do not change it)."""
        cat = self._catalog()
        if cat is None:
            return None, []
        held = self._perms
        if held[0] is not cat:
            held = self._perms = (cat, cat.version, list(cat.permissions.values()))
        return held[1], held[2]

    def decide(
        self,
        principal: Principal,
        action: str,
        kind: str,
        name: str,
        tags: dict[str, str],
        pii_fields: tuple[str, ...] = (),
        explain: bool = False,
    ) -> Decision:
        if not self.enabled:
            return Decision(True, "auth is not enabled (auth.enabled in featureline.yaml).")
        _, perms = self.permissions()
        return decide(
            principal,
            action,
            kind,
            name,
            tags,
            perms,
            self.settings.admin_roles,
            pii_fields,
            explain,
        )

    def check(
        self,
        principal: Principal,
        action: str,
        kind: str,
        name: str,
        tags: dict[str, str],
        *,
        always_audit: bool = True,
    ) -> None:
        self.alive(principal)
        self._check(principal, action, kind, name, tags, always_audit)

    def _check(
        self,
        principal: Principal,
        action: str,
        kind: str,
        name: str,
        tags: dict[str, str],
        always_audit: bool,
    ) -> None:
        version, _ = self.permissions() if self.enabled else (None, [])
        key = (principal.key, action, kind, name, version, tuple(sorted(tags.items())))
        d = self._decisions.get(key)
        if d is None:
            d = self.decide(principal, action, kind, name, tags)
            self._remember(key, d)
        self._audit(principal, action, f"{kind}:{name}", d, always_audit)
        if not d.allowed:
            raise PermissionDeniedError(_denied(d))

    def check_read(
        self,
        principal: Principal,
        action: str,
        views: Sequence[FeatureView],
        features: Callable[[], list[tuple[FeatureView, Sequence[str]]]] | None,
        cache_key: Any,
        current: Any = None,
        service: FeatureService | None = None,
    ) -> Decision:
        """Every view read (and its pii fields read) must be granted — or, for a read of feature
        service `service`, the service itself (`feature_service:NAME`: its grant covers the views
        the service reads, pii fields only with pii=True); cached per (principal, plan).
        `current`: the version of the current catalog if the caller holds it (the permissions'
        version; looked up otherwise)."""
        self.alive(principal)
        key = None
        if cache_key is not None:
            if current is None:
                current = self.permissions()[0] if self.enabled else None
            key = (
                principal.key,
                action,
                current,
                cache_key,
                None if service is None else service.name,
            )
        d = self._decisions.get(key) if key is not None else None
        if d is None:
            d = self._decide_read(principal, action, views, features, service)
            if key is not None:
                self._remember(key, d)
        audit = self.audit
        if audit is not None and (not d.allowed or audit.sample_read()):
            self._audit_read(principal, action, views, service, d)
        if not d.allowed:
            raise PermissionDeniedError(_denied(d))
        return d

    def _audit_read(
        self,
        principal: Principal,
        action: str,
        views: Sequence[FeatureView],
        service: FeatureService | None,
        d: Decision,
    ) -> None:
        names = ",".join(dict.fromkeys(v.name for v in views))
        if service is not None:
            names = f"{names} (feature_service:{service.name})"
        self._audit(principal, action, f"feature_view:{names}", d, True)

    def check_any(
        self, principal: Principal, actions: tuple[str, ...], kind: str | tuple[str, ...]
    ) -> None:
        """403 unless some permission grants one of `actions` on some resource of type `kind`
        (or of one of the types `kind`)."""
        self.alive(principal)
        self._any(principal, actions, kind)

    def _any(
        self, principal: Principal, actions: tuple[str, ...], kind: str | tuple[str, ...]
    ) -> None:
        if not self.enabled:
            return
        version, perms = self.permissions()
        key = ("any", principal.key, actions, kind, version)
        d = self._decisions.get(key)
        if d is None:
            roles = set(principal.roles)
            kinds = {kind, "*"} if isinstance(kind, str) else {*kind, "*"}
            ok = bool(roles & set(self.settings.admin_roles)) or any(
                roles & set(p.roles)
                and any(p.grants(a) for a in actions)
                and any(r.type in kinds for r in p.resources)
                for p in perms
            )
            if not isinstance(kind, str):
                kind = " or ".join(kind)
            names = " or ".join(f"`{a}`" for a in actions)
            d = Decision(
                ok,
                f"principal `{principal.name}` may {names} some {kind}"
                if ok
                else f"principal `{principal.name}` ({', '.join(principal.roles) or 'no roles'}) may not "
                f"{names} any {kind}: no permission grants it (everything not granted is denied).",
            )
            self._remember(key, d)
        if not d.allowed:
            self._audit(principal, "/".join(actions), f"{kind}:*", d, False)
            raise PermissionDeniedError(_denied(d))

    def _decide_read(
        self,
        principal: Principal,
        action: str,
        views: Sequence[FeatureView],
        features: Callable[[], list[tuple[FeatureView, Sequence[str]]]] | None,
        service: FeatureService | None = None,
    ) -> Decision:
        pii: dict[tuple[str, int], set[str]] = {}
        for view, names in features() if features is not None else []:
            pii.setdefault((view.name, view.version), set()).update(_features(view, names))
        through: Decision | None = None
        if service is not None:  # a grant on the service covers what it reads
            through = self._through_service(principal, action, service, pii)
            if through.allowed:
                return through
        last: Decision | None = None
        for v in dict.fromkeys(views):
            tagged = tuple(sorted(pii.get((v.name, v.version), ())))
            last = self.decide(principal, action, "feature_view", v.name, v.tags, tagged)
            if not last.allowed:
                if through is not None:  # say why the service's grant did not cover it either
                    return Decision(
                        False,
                        f"{last.reason} Nor through the feature service: {through.reason}",
                        last.matched,
                        last.notes + through.notes,
                    )
                return last
        return last or Decision(True, "nothing to read")

    def _through_service(
        self,
        principal: Principal,
        action: str,
        service: FeatureService,
        pii: dict[tuple[str, int], set[str]],
    ) -> Decision:
        """The decision on `action` for feature service `service` as registered: its tags are the
        registry's, and a service object naming features the registered one does not have is
        granted nothing through it (a service is not a way around the grants of its views)."""
        cat = self._catalog()
        registered = cat.services.get(service.name) if cat is not None else None
        if registered is None:
            return Decision(False, f"feature service `{service.name}` is not registered.")
        extra = sorted(set(service.refs()) - set(registered.refs()))
        if extra:
            return Decision(
                False,
                f"feature service `{service.name}` as read names features the registered one "
                f"does not ({', '.join(f'`{r}`' for r in extra[:5])}).",
            )
        tagged = tuple(sorted({f"{v}:{f}" for (v, _), fs in pii.items() for f in fs}))
        return self.decide(
            principal, action, "feature_service", registered.name, registered.tags, tagged
        )

    def _remember(self, key: Any, d: Decision) -> None:
        with self._lock:
            if len(self._decisions) > 50_000:
                self._decisions.clear()
            self._decisions[key] = d

    def _audit(
        self, principal: Principal, action: str, resource: str, d: Decision, write: bool
    ) -> None:
        if self.audit is not None and (write or not d.allowed):
            self.audit.record(
                principal,
                action,
                resource,
                "allowed" if d.allowed else "denied",
                "" if d.allowed else d.reason,
            )

    def check_apply(
        self,
        principal: Principal,
        changes: list[dict[str, Any]],
        snapshot: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> None:
        """`apply` needs `apply` on every object it changes (`admin` for permissions)."""
        sections = {
            "entity": "entities",
            "view": "views",
            "service": "services",
            "on-demand view": "odfvs",
            "permission": "permissions",
        }
        for c in changes:
            kind = _KIND.get(c["kind"], c["kind"])
            section = sections.get(c["kind"], "")
            action = "admin" if kind == "permission" else "apply"
            # as it was and as it will be: retagging an object cannot move it into one's grant
            for snap in (old, snapshot):
                obj = ((snap or {}).get(section) or {}).get(c["name"])
                if isinstance(obj, list):
                    obj = obj[-1] if obj else None
                if isinstance(obj, dict):
                    self.check(principal, action, kind, c["name"], dict(obj.get("tags") or {}))

    def close(self) -> None:
        self.tokens.close()
        if self.audit is not None:
            self.audit.close()


def _denied(d: Decision) -> str:
    return (
        f"{d.reason} Fix: ask an admin for a Permission granting it to one of your roles "
        "(`featureline permissions check` explains the decision)."
    )


_MISSING = ("", "", "")


class _Held:
    """A credential verified by the HTTP hook: its caller, and the routes it was granted, each
    with the catalog the grant was decided under (a grant holds while that catalog is current)."""

    __slots__ = ("caller", "granted", "principal")

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.principal = caller.principal
        self.granted: dict[str, Any] = {}


def http_authenticator(authorizer: Authorizer) -> Callable[[Any, str], Caller]:
    """The dispatcher's `authenticate(call, route)` hook with auth enabled: the request's caller.

    Public paths (auth.public_paths) answer as the anonymous principal; any other route needs a
    valid bearer credential (401) and, for routes that name their resource, a permission (403);
    data routes are checked by the read and write paths.

    The callers of the last CACHE_SIZE credentials are kept by the exact `Authorization` value
    (a credential verified once is not hashed, parsed or looked up again); each use still checks
    that it has neither expired nor been revoked (`Authorizer.alive`), so a revoke through this
    process is refused from the next request on, one elsewhere within RECHECK_SECONDS (the store's
    read check of the same request, handed this caller with `live`, checks its expiry only: a
    request let in completes; an expiry is refused the moment it passes). The route
    check a credential passed is kept with it, for as long as the catalog it was decided under is
    the current one (the permissions' version: a changed permission is decided anew as soon as
    the store sees the new catalog); a route whose resource is a path parameter is decided on
    each request (from the decision cache), and a denial always is (and audited)."""
    public = frozenset(authorizer.settings.public_paths)
    anonymous = Caller(ANONYMOUS, authorizer)
    callers: dict[bytes, _Held] = {}  # by the raw Authorization value
    lock = threading.Lock()
    alive, check, check_any = authorizer.alive, authorizer._check, authorizer._any
    tokens, catalog = authorizer.tokens, authorizer._catalog
    # routes whose check does not depend on the request (not on a path parameter): kept per caller
    fixed = frozenset(r for r, need in ROUTES.items() if need is None or "{" not in need[2])

    def verified(header: bytes | None) -> _Held:
        credential = None
        if header is not None:
            scheme, _, value = header.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer":
                raise UnauthenticatedError("The Authorization header must be `Bearer <token>`.")
            credential = value
        # never waits for the identity provider here, on the event loop: a JWT whose key needs
        # a JWKS reload raises JwksReloadPending, which the dispatcher awaits, then asks again
        held = _Held(Caller(authorizer.authenticate(credential, wait=False), authorizer))
        if header is not None:
            with lock:
                _bounded(callers, header, held)
        return held

    def refuse(header: bytes, principal: Principal) -> None:
        """`alive(principal)`; a credential that no longer is is forgotten (401)."""
        try:
            alive(principal)
        except UnauthenticatedError:
            with lock:
                callers.pop(header, None)
            raise

    def authenticate(call: Any, route: str) -> Caller:
        if route in public:
            return anonymous
        header = None
        for key, value in call.scope["headers"]:
            if key == b"authorization":
                header = value if type(value) is bytes else bytes(value)
                break
        if header is None or (held := callers.get(header)) is None:
            held = verified(header)
        else:  # expired or revoked since it was cached: 401 (`alive`, its token hit inlined)
            principal = held.principal
            token = principal.token_id
            live = None if token is None else tokens._live.get(token)
            if live is None:
                refuse(header, principal)
            else:
                now = _monotonic()
                if (
                    now - tokens._checked >= _RECHECK
                    or now - live[1] >= _TTL
                    or (live[0] is not None and live[0] <= _time())
                ):
                    refuse(header, principal)
        cat = catalog()
        if cat is not None and held.granted.get(route) is cat:
            return held.caller  # granted under the current catalog
        principal = held.principal
        need = ROUTES.get(route, _MISSING)
        if need is _MISSING:
            raise PermissionDeniedError(
                f"Route `{route}` has no permission mapping (featureline.auth ROUTES), so it is refused "
                "while auth is enabled. This is a bug in Featureline."
            )
        if need is not None:
            action, kind, name = route_resource(route, call.path_params) or _MISSING
            check(principal, action, kind, name, {}, False)
        else:  # the paths check the views the body names; first, any grant at all
            check_any(principal, DATA_ROUTES[route], DATA_KINDS[route])
        if cat is not None and route in fixed:
            held.granted[route] = cat
        return held.caller

    return authenticate
