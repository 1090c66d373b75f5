"""What the auth tests share: RSA keys and a JWKS file the test generates, JWT minting, a repo with auth on."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://idp.test"
AUDIENCE = "featureline"
KID = "test-key-1"


class Keys:
    """A signing key in the JWKS, and an impostor key with the same `kid` (a wrong signature)."""

    def __init__(self) -> None:
        self.good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.bad = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.good.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(
        self, *, sub: str = "jane", roles: Any = ("reader",), key: Any = None, **claims: Any
    ) -> str:
        body = standard_claims(sub, roles)
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.good, algorithm="RS256", headers={"kid": KID})


def standard_claims(sub: str = "jane", roles: Any = ("reader",)) -> dict[str, Any]:
    """The claims of a valid token: the test issuer and audience, issued now, 10 minutes left."""
    now = int(time.time())
    return {
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "roles": list(roles),
    }


def auth_yaml(jwks: Path | None = None, extra: str = "", public: str = "[/health]") -> str:
    oidc = ""
    if jwks is not None:
        oidc = (
            f"  oidc:\n    jwks: {jwks}\n    issuer: {ISSUER}\n    audience: {AUDIENCE}\n"
            "    roles_claim: roles\n"
        )
    return f"\nauth:\n  enabled: true\n  public_paths: {public}\n{oidc}{extra}"


def expire_token(repo: Path, token: str) -> None:
    """Make an API token expired (its row's expiry in the past)."""
    token_id = token.split("_", 2)[1]
    with sqlite3.connect(repo / "data" / "auth.db") as db:
        db.execute(
            "UPDATE api_tokens SET expires_at = ? WHERE id = ?", (time.time() - 60, token_id)
        )
