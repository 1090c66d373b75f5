"""Permission evaluation: deny unless a permission grants the action; explain every decision."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from featureline.auth._principal import Principal
from featureline.definitions import Permission

__all__ = ["Decision", "decide"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    matched: tuple[str, ...] = ()  # permissions that grant it
    notes: tuple[str, ...] = field(default=(), compare=False)  # why each other one did not


def _who(p: Principal) -> str:
    roles = ", ".join(f"`{r}`" for r in p.roles) or "no roles"
    return f"principal `{p.name}` ({roles})"


def decide(
    principal: Principal,
    action: str,
    kind: str,
    name: str,
    tags: dict[str, str],
    permissions: Iterable[Permission],
    admin_roles: tuple[str, ...],
    pii_fields: tuple[str, ...] = (),
    explain: bool = False,
) -> Decision:
    """Whether `principal` may `action` the resource `kind` `name` (with `tags`) and read its
    `pii_fields`. Everything not granted is denied; `admin_roles` are granted every action, but
    pii fields only through a permission with `pii=True`."""
    roles = set(principal.roles)
    what = f"`{action}` on {kind} `{name}`"
    matched: list[Permission] = []
    notes: list[str] = []
    for p in permissions:
        why = None
        if not roles & set(p.roles):
            why = f"roles {p.roles} not held"
        elif not p.grants(action):
            why = f"grants {p.actions}, not `{action}`"
        elif not any(r.matches(kind, name, tags) for r in p.resources):
            why = f"resources {[str(r) for r in p.resources]} do not match"
        if why is None:
            matched.append(p)
        elif explain:
            notes.append(f"permission `{p.name}`: {why}")
    admin = sorted(roles & set(admin_roles))
    if not matched and not admin:
        reason = f"{_who(principal)} may not {what}: no permission grants it"
        return Decision(False, reason + " (everything not granted is denied).", (), tuple(notes))
    via = [p.name for p in matched]
    granted_by = (
        f"permission {', '.join(f'`{n}`' for n in via)}"
        if via
        else f"admin role `{admin[0]}` (auth.admin_roles)"
    )
    if pii_fields and not any(p.pii for p in matched):
        fields = ", ".join(f"`{f}`" for f in pii_fields)
        return Decision(
            False,
            f"{_who(principal)} may {what} ({granted_by}), but not read its fields tagged pii "
            f"({fields}): no matching permission has pii=True.",
            tuple(via),
            tuple(notes),
        )
    extra = " and its pii fields" if pii_fields else ""
    return Decision(
        True,
        f"{_who(principal)} may {what}{extra}: granted by {granted_by}.",
        tuple(via),
        tuple(notes),
    )
