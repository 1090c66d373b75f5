"""Bearer JWTs from an OIDC identity provider, verified against its JWKS.

The signature (a key of the configured JWKS, by `kid`), the issuer, the audience and the expiry
are all checked, always (`exp`, `iss` and `aud` are required claims); unsigned and shared-secret
algorithms are refused by the configuration. Roles come from `roles_claim` (a dotted path; a
list, or a space-separated string). Needs the `auth` extra (PyJWT with cryptography).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from featureline.auth._principal import Principal
from featureline.config import OidcSettings
from featureline.errors import ConfigError, MissingExtraError, UnauthenticatedError

__all__ = ["JwtVerifier", "looks_like_jwt"]


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


class JwtVerifier:
    def __init__(self, settings: OidcSettings, repo_path: Path) -> None:
        self.settings = settings
        self._url = settings.jwks if "://" in settings.jwks else None
        path = Path(settings.jwks)
        self._path = None if self._url else (path if path.is_absolute() else repo_path / path)
        self._keys: dict[str | None, Any] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._cache: dict[str, Principal] = {}

    def _load(self) -> None:
        jwt = _jwt()
        try:
            if self._path is not None:
                doc = json.loads(self._path.read_text())
            else:
                import urllib.request

                with urllib.request.urlopen(self._url or "", timeout=5) as r:
                    doc = json.loads(r.read())
            keys = jwt.PyJWKSet.from_dict(doc).keys
        except (OSError, ValueError, jwt.exceptions.PyJWKSetError) as e:
            raise ConfigError(
                f"Cannot load the JWKS `{self.settings.jwks}` (auth.oidc.jwks): {e}. "
                "Fix: point it at the identity provider's JSON Web Key Set (a file or an https URL)."
            ) from e
        self._keys = {k.key_id: k for k in keys}
        self._loaded_at = time.monotonic()

    def _key(self, kid: str | None) -> Any:
        with self._lock:
            if not self._keys or (
                kid not in self._keys and time.monotonic() - self._loaded_at > 10
            ):
                self._load()  # first use, or a key rotated in
            if kid in self._keys:
                return self._keys[kid]
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
        raise UnauthenticatedError(
            f"The bearer JWT is signed with key `{kid}`, which is not in the configured JWKS."
        )

    def verify(self, token: str) -> Principal:
        hit = self._cache.get(token)
        if hit is not None and hit.expires_at is not None and hit.expires_at > time.time():
            return hit
        jwt = _jwt()
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header.get("kid"))
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
        principal = Principal(name, _roles(claims, s.roles_claim), "jwt", expires_at)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = principal
        return principal


def _roles(claims: dict[str, Any], path: str) -> tuple[str, ...]:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str | int))
    return ()
