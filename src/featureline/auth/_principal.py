"""Who is calling: a `Principal` (a name and roles, and how it was proven), and the request's one."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANONYMOUS", "Principal"]


@dataclass(frozen=True)
class Principal:
    """A caller: `name`, `roles`, and `via` (`token:<id>`, `jwt`, `sdk`, `anonymous`).

    `FeatureStore(repo, principal=Principal("batch-job", roles=("writer",)))` runs as this
    principal in process (code that can open the repo is trusted to say who it is); over HTTP,
    principals come only from a verified credential."""

    name: str
    roles: tuple[str, ...] = ()
    via: str = "sdk"
    expires_at: float | None = None  # seconds since the epoch (a token's or a JWT's expiry)
    key: str = field(init=False, repr=False, compare=False)  # decisions are cached by it
    # the API token it was proven by (`via` `token:<id>`), checked for revocation on each use
    token_id: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roles = (self.roles,) if isinstance(self.roles, str) else tuple(self.roles)
        object.__setattr__(self, "roles", tuple(sorted(set(roles))))
        # a str: its hash is computed once (a tuple's is computed on every lookup)
        object.__setattr__(self, "key", "\x1f".join((self.name, *self.roles)))
        token = self.via.removeprefix("token:") if self.via.startswith("token:") else None
        object.__setattr__(self, "token_id", token)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "roles": list(self.roles), "via": self.via}


ANONYMOUS = Principal("anonymous", (), "anonymous")

# The caller of the HTTP request being served (set by the dispatcher around the handler): the
# SDK paths the handler calls see it instead of the store's own principal.
CURRENT: ContextVar[Any] = ContextVar("featureline_caller", default=None)
