"""Principals, credentials, permissions and the audit log (issue 11, items 3-5).

    _principal   Principal (name, roles, how proven); the request's caller (a context variable)
    _tokens      API tokens: shown once, stored hashed next to the registry (auth.db beside a
                 SQLite registry, or the registry's PostgreSQL database), expiry, revocation
    _jwt         OIDC bearer JWTs verified against a JWKS (signature, issuer, audience, expiry)
    _policy      deny unless a Permission grants it; pii fields only with pii=True; explained
    _authorizer  the store's authorizer: authenticate, decide (cached per principal and plan), audit
    _audit       append-only JSONL audit segments with rotation; queried by `featureline audit`

Off by default (`auth: {enabled: true}` in featureline.yaml turns it on); then the read and write
paths and every HTTP route refuse what no permission grants.
"""

from featureline.auth._audit import AuditLog
from featureline.auth._authorizer import (
    DATA_ROUTES,
    ROUTES,
    Authorizer,
    Caller,
    http_authenticator,
    route_resource,
)
from featureline.auth._jwt import JwksReloadPending, JwtPrincipal, JwtVerifier
from featureline.auth._policy import Decision, decide
from featureline.auth._principal import ANONYMOUS, Principal
from featureline.auth._tokens import (
    PostgresTokenStore,
    SqliteTokenStore,
    TokenInfo,
    TokenStore,
    open_token_store,
    parse_duration,
)

__all__ = [
    "ANONYMOUS",
    "DATA_ROUTES",
    "ROUTES",
    "AuditLog",
    "Authorizer",
    "Caller",
    "Decision",
    "JwksReloadPending",
    "JwtPrincipal",
    "JwtVerifier",
    "PostgresTokenStore",
    "Principal",
    "SqliteTokenStore",
    "TokenInfo",
    "TokenStore",
    "decide",
    "http_authenticator",
    "open_token_store",
    "parse_duration",
    "route_resource",
]
