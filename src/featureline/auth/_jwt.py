"""Bearer JWTs from an OIDC identity provider, verified against its JWKS.

The signature (a key of the configured JWKS, by `kid`), the issuer, the audience and the expiry
are all checked, always (`exp`, `iss` and `aud` are required claims); unsigned and shared-secret
algorithms are refused by the configuration. Roles come from `roles_claim` (a dotted path; a
list, or a space-separated string). Needs the `auth` extra (PyJWT with cryptography).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureline.auth._principal import Principal
from featureline.config import OidcSettings
from featureline.errors import (
    ConfigError,
    JwksReloadPending,
    MissingExtraError,
    UnauthenticatedError,
)

__all__ = ["JwksReloadPending", "JwtPrincipal", "JwtVerifier", "looks_like_jwt"]

log = logging.getLogger("featureline.auth")


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def _jwt() -> Any:
    try:
        import jwt
    except ImportError as e:  # pragma: no cover - the dev extra has it
        raise MissingExtraError(
            "Verifying OIDC bearer tokens needs PyJWT. Fix: pip install 'featureline[auth]'."
        ) from e
    return jwt


# The JWKS is reloaded at least every JWKS_TTL_SECONDS, when a token names a `kid` it does not
# hold (at most once per UNKNOWN_KID_RELOAD_SECONDS), and, for a file, when its mtime changes
# (statted at most every FILE_RECHECK_SECONDS). A URL's TTL reload runs on a background thread
# while requests keep verifying with the keys held (stale-while-revalidate). An unknown `kid` (and
# a URL's first load) reloads on a background thread too, without the lock: tokens signed with
# keys held verify meanwhile; the unknown kids that arrive while it runs share it. A caller that
# may block (the SDK) waits for it (at most the 5 s fetch timeout, plus 1 s); the HTTP hook, on
# the event loop, must not: there `verify(..., wait=False)` raises JwksReloadPending, and the
# dispatcher awaits the reload without blocking the loop, then authenticates the request again
# (401 "retry" if the identity provider is slower than that). A reload drops
# what was verified with a key no longer published: cached verifications, and principals held
# since (`check`, from `alive`). A reload that fails keeps the keys held (the IdP down or a file
# mid-rewrite locks nobody out).
JWKS_TTL_SECONDS = 300.0
UNKNOWN_KID_RELOAD_SECONDS = 10.0
FILE_RECHECK_SECONDS = 0.1
_FETCH_TIMEOUT = 5.0  # seconds a JWKS URL may take to answer


@dataclass(frozen=True)
class JwtPrincipal(Principal):
    """A principal proven by a JWT: also the key (`kid`, fingerprint) it was signed with."""

    signed_by: tuple[str | None, str] = field(default=(None, ""), compare=False, repr=False)


def _fingerprint(key: Any) -> str:
    data = getattr(key, "_jwk_data", None)
    if isinstance(data, dict):
        return json.dumps(data, sort_keys=True, default=str)
    return repr(key.key)  # pragma: no cover - PyJWT keeps the JWK it was built from


class JwtVerifier:
    def __init__(self, settings: OidcSettings, repo_path: Path) -> None:
        self.settings = settings
        self._url = settings.jwks if "://" in settings.jwks else None
        path = Path(settings.jwks)
        self._path = None if self._url else (path if path.is_absolute() else repo_path / path)
        self._keys: dict[str | None, Any] = {}
        self._trusted: frozenset[tuple[str | None, str]] = frozenset()
        self._loaded_at = 0.0
        self._unknown_at = -UNKNOWN_KID_RELOAD_SECONDS
        self._statted_at = 0.0
        self._stat: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, JwtPrincipal] = {}
        self._revalidating = False
        self._reloading: Future[None] | None = None  # the unknown-kid reload under way

    def _file_stat(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat() if self._path is not None else None
        except OSError:
            return None
        return None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino)

    def _fetch(self) -> list[Any]:
        """The keys the JWKS publishes now (no lock needed: reads the file or the URL)."""
        jwt = _jwt()
        if self._path is not None:
            doc = json.loads(self._path.read_text())
        else:
            import urllib.request

            with urllib.request.urlopen(self._url or "", timeout=_FETCH_TIMEOUT) as r:
                doc = json.loads(r.read())
        return list(jwt.PyJWKSet.from_dict(doc).keys)

    def _install(self, keys: list[Any], stat: tuple[int, int, int] | None, now: float) -> None:
        """Hold `keys` (under the lock): drop what was verified with a key no longer published."""
        self._keys = {k.key_id: k for k in keys}
        self._trusted = frozenset((k.key_id, _fingerprint(k)) for k in keys)
        self._loaded_at = self._statted_at = now
        self._stat = stat
        trusted = self._trusted
        self._cache = {t: p for t, p in self._cache.items() if p.signed_by in trusted}

    def _load(self) -> None:
        """Read the JWKS (under the lock); a failure raises ConfigError unless keys are held."""
        jwt = _jwt()
        now = time.monotonic()
        stat = self._file_stat()
        try:
            keys = self._fetch()
        except (OSError, ValueError, jwt.exceptions.PyJWKSetError) as e:
            if self._keys:  # keep what was held; tried again after the TTL or the next change
                self._loaded_at = now
                return
            raise _unloadable(self.settings.jwks, e) from e
        self._install(keys, stat, now)

    def _revalidate(self) -> None:
        """The background refresh of a URL JWKS past its TTL: fetched without the lock (requests
        keep verifying with the keys held), installed under it unless a reload landed meanwhile;
        a failure keeps the keys held (tried again after the TTL)."""
        try:
            started = time.monotonic()
            try:
                keys: list[Any] | None = self._fetch()
            except Exception:  # the IdP down or answering garbage: keep what is held
                log.warning("Cannot reload the JWKS `%s`; keeping the keys held", self._url)
                keys = None
            with self._lock:
                if self._loaded_at <= started:  # else an unknown-kid reload landed since
                    if keys is None:
                        self._loaded_at = time.monotonic()
                    else:
                        self._install(keys, None, time.monotonic())
        finally:
            self._revalidating = False

    def _refresh(self, wait: bool = True) -> None:
        """Reload the JWKS if its TTL has passed or its file changed (cheap when neither). A URL
        JWKS with keys held is reloaded on a background thread (stale-while-revalidate): the
        request that notices the TTL does not wait for the identity provider. A URL JWKS with no
        keys held yet is loaded on a background thread as well (`_reload`; `wait` as there)."""
        now = time.monotonic()
        if now - self._loaded_at > JWKS_TTL_SECONDS:
            if self._url is not None and not self._keys:
                self._reload(None, wait)
                return
            if self._url is not None:
                with self._lock:
                    if self._revalidating or time.monotonic() - self._loaded_at <= JWKS_TTL_SECONDS:
                        return
                    self._revalidating = True
                threading.Thread(
                    target=self._revalidate, name="featureline-jwks-refresh", daemon=True
                ).start()
                return
            with self._lock:
                if time.monotonic() - self._loaded_at > JWKS_TTL_SECONDS:
                    self._load()
        elif self._path is not None and now - self._statted_at > FILE_RECHECK_SECONDS:
            with self._lock:
                self._statted_at = now
                if self._file_stat() != self._stat:
                    self._load()

    def check(self, principal: Principal) -> None:
        """401 if `principal` was proven by a JWT signed with a key no longer in the JWKS."""
        if not isinstance(principal, JwtPrincipal):
            return
        with contextlib.suppress(JwksReloadPending):  # no keys held (a first load): refused below
            self._refresh(wait=False)
        if principal.signed_by not in self._trusted:
            raise _rotated_out(principal.signed_by[0])

    def _key(self, kid: str | None, wait: bool) -> Any:
        """The key `kid` names. A known one without a lock (`_install` replaces the dict whole),
        so a reload for an unknown kid, which waits for the identity provider, holds up no
        token signed with a key already held (`wait` as for `_reload`)."""
        if kid is not None and not isinstance(kid, str):
            raise _rotated_out(kid)  # a header naming no key (a number, a list: not a kid)
        key = _held(self._keys, kid)
        if key is None:
            if not self._keys and self._path is not None:
                with self._lock:
                    if not self._keys:
                        self._load()  # a file's first use: nothing to verify with meanwhile
            else:  # a key rotated in? (at a bounded rate once keys are held)
                self._reload(kid, wait)
            key = _held(self._keys, kid)
        if key is None:
            raise _rotated_out(kid)
        return key

    def _reload(self, kid: str | None, wait: bool) -> None:
        """Reload the JWKS on a background thread for a `kid` it does not hold (or a URL's first
        load), at most once per UNKNOWN_KID_RELOAD_SECONDS while keys are held; the unknown kids
        that arrive while it runs share it instead of asking the identity provider again. With
        `wait`, until it lands (at most the fetch timeout plus 1 s; a JWKS that cannot be loaded
        at all raises its ConfigError); else JwksReloadPending, for the caller to await."""
        with self._lock:
            running = self._reloading
            if running is None:
                if self._keys:
                    now = time.monotonic()
                    if now - self._unknown_at <= UNKNOWN_KID_RELOAD_SECONDS:
                        return  # reloaded a moment ago: the kid is not published
                    self._unknown_at = now
                self._reloading = running = Future()
                running.set_running_or_notify_cancel()  # no waiter can cancel it
                threading.Thread(
                    target=self._reload_in_background,
                    args=(running,),
                    name="featureline-jwks-reload",
                    daemon=True,
                ).start()
        if not wait:
            raise JwksReloadPending(kid, running, _FETCH_TIMEOUT + 1.0)
        try:
            running.result(_FETCH_TIMEOUT + 1.0)  # its keys, once it lands
        except TimeoutError:
            return  # the identity provider is slower than that: refused with the keys held

    def _reload_in_background(self, done: Future[None]) -> None:
        """The body of `_reload`: fetched without the lock, installed under it unless a newer
        reload landed meanwhile; a failure keeps the keys held (the IdP down or a file
        mid-rewrite), or, with none held, is the reload's ConfigError."""
        error: BaseException | None = None
        try:
            jwt = _jwt()
            started = time.monotonic()
            stat = self._file_stat()
            failure: Exception | None = None
            try:
                keys = self._fetch()
            except (OSError, ValueError, jwt.exceptions.PyJWKSetError) as e:
                failure = e
            with self._lock:
                if failure is not None:
                    if not self._keys:
                        raise _unloadable(self.settings.jwks, failure) from failure
                    self._loaded_at = time.monotonic()
                elif self._loaded_at <= started:  # else a newer reload landed meanwhile
                    self._install(keys, stat, time.monotonic())
        except BaseException as e:  # handed to the waiters (nobody else would see it)
            error = e
        finally:
            with self._lock:
                self._reloading = None
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    def verify(self, token: str, wait: bool = True) -> Principal:
        """The principal `token` proves; 401 otherwise. `wait=False` (the HTTP hook, on the event
        loop): a token whose key needs a JWKS reload raises JwksReloadPending instead of waiting
        for the identity provider."""
        self._refresh(wait)
        hit = self._cache.get(token)
        if (
            hit is not None
            and hit.expires_at is not None
            and hit.expires_at > time.time()
            and hit.signed_by in self._trusted
        ):
            return hit
        jwt = _jwt()
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header.get("kid"), wait)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(s.algorithms),
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.exceptions.ExpiredSignatureError as e:
            raise UnauthenticatedError("The bearer JWT has expired. Fix: get a new token.") from e
        except jwt.exceptions.InvalidAudienceError as e:
            raise UnauthenticatedError(
                f"The bearer JWT is not for this server: its audience is not `{s.audience}`."
            ) from e
        except jwt.exceptions.InvalidIssuerError as e:
            raise UnauthenticatedError(
                f"The bearer JWT was not issued by `{s.issuer}` (auth.oidc.issuer)."
            ) from e
        except jwt.exceptions.PyJWTError as e:
            raise UnauthenticatedError(f"The bearer JWT is not valid: {e}.") from e
        name = claims.get(s.principal_claim)
        if not isinstance(name, str) or not name:
            raise UnauthenticatedError(
                f"The bearer JWT has no `{s.principal_claim}` claim (auth.oidc.principal_claim)."
            )
        # refused from `exp` plus the leeway on (also when cached, and once held by a store)
        expires_at = float(claims["exp"]) + s.leeway_seconds
        signed_by = (key.key_id, _fingerprint(key))
        principal = JwtPrincipal(name, _roles(claims, s.roles_claim), "jwt", expires_at, signed_by)
        with self._lock:
            if signed_by not in self._trusted:  # rotated out while it was being verified
                raise _rotated_out(key.key_id)
            if len(self._cache) > 10_000:
                self._cache = {}
            self._cache[token] = principal
        return principal


def _held(keys: dict[str | None, Any], kid: str | None) -> Any:
    """The key `kid` names among `keys` (no `kid`: the only key), else None."""
    key = keys.get(kid)
    if key is None and kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    return key


def _unloadable(jwks: str, e: BaseException) -> ConfigError:
    return ConfigError(
        f"Cannot load the JWKS `{jwks}` (auth.oidc.jwks): {e}. "
        "Fix: point it at the identity provider's JSON Web Key Set (a file or an https URL)."
    )


def _rotated_out(kid: str | None) -> UnauthenticatedError:
    return UnauthenticatedError(
        f"The bearer JWT is signed with key `{kid}`, which is not in the configured JWKS "
        "(unknown, or rotated out by the identity provider). Fix: get a new token."
    )


def _roles(claims: dict[str, Any], path: str) -> tuple[str, ...]:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str | int))
    return ()
