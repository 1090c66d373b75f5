"""Permission and Resource: who (roles) may do what (actions) to which definitions (resources).

Plain objects, no I/O; evaluated by `featureline.auth` once `auth: {enabled: true}` is set.
Everything no permission grants is denied. A resource is chosen by type, a name pattern
(fnmatch: `driver_*`) and tags (all must match; the value `*` only asks for the tag). Fields
tagged `pii` are readable only through a permission with `pii=True`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from featureline.errors import DefinitionError, did_you_mean

__all__ = ["ACTIONS", "RESOURCE_TYPES", "Permission", "Resource", "is_pii"]

ACTIONS = (
    "describe",
    "apply",
    "read_online",
    "read_offline",
    "write_online",
    "write_offline",
    "admin",  # every action on the resources chosen (and changing permissions)
)
RESOURCE_TYPES = (
    "feature_view",
    "on_demand_feature_view",
    "feature_service",
    "entity",
    "permission",
    "model",
    "endpoint",  # /metrics, /docs, /openapi.json, /health (describe)
    "*",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_PATTERN = re.compile(r"^[A-Za-z0-9_.*?/\-\[\]]{1,200}$")


def is_pii(tags: dict[str, str]) -> bool:
    """A field tagged `pii` (any value but false/no/0)."""
    value = tags.get("pii")
    return value is not None and value.strip().lower() not in ("false", "no", "0")


@dataclass(frozen=True)
class Resource:
    """Resources of `type` whose name matches `name` (a glob) and which carry every tag of `tags`."""

    type: str = "*"
    name: str = "*"
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", {str(k): str(v) for k, v in (self.tags or {}).items()})

    @classmethod
    def parse(cls, spec: Resource | str | dict[str, Any]) -> Resource:
        """`Resource`, `"feature_view"`, `"feature_view:driver_*"` or `{"type": ..., "name": ...}`."""
        if isinstance(spec, Resource):
            return spec
        if isinstance(spec, dict):
            return cls(spec.get("type", "*"), spec.get("name", "*"), spec.get("tags") or {})
        if isinstance(spec, str):
            kind, _, name = spec.partition(":")
            return cls(kind or "*", name or "*")
        raise DefinitionError(
            f"A permission resource must be a Resource or a string like `feature_view:driver_*`, got `{spec!r}`."
        )

    def matches(self, kind: str, name: str, tags: dict[str, str]) -> bool:
        if self.type != "*" and self.type != kind:
            return False
        if not fnmatch.fnmatchcase(name, self.name):
            return False
        return all(k in tags and (v == "*" or tags[k] == v) for k, v in self.tags.items())

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "tags": dict(self.tags)}

    def __str__(self) -> str:
        tags = "".join(f" [{k}={v}]" for k, v in self.tags.items())
        return f"{self.type}:{self.name}{tags}"


@dataclass(frozen=True)
class Permission:
    """Grant `actions` on `resources` to principals holding any of `roles`.

    `Permission("readers", actions=["describe", "read_online"], resources="feature_view:driver_*",
    roles=["ml"])`. `pii=True` also grants the fields tagged `pii` of those resources."""

    name: str
    actions: list[str] = field(default_factory=list)
    resources: Any = "*"
    roles: list[str] = field(default_factory=list)
    pii: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            problems.append(
                f"permission name `{self.name}` must be letters, digits, `_`, `.` or `-` (starting with a letter)."
            )
        actions = [self.actions] if isinstance(self.actions, str) else list(self.actions or [])
        if not actions:
            problems.append(
                f"permission `{self.name}` grants no action. Valid: {', '.join(ACTIONS)}."
            )
        for a in actions:
            if a not in ACTIONS:
                problems.append(
                    f"permission `{self.name}`: `{a}` is not an action.{did_you_mean(str(a), ACTIONS)} "
                    f"Valid: {', '.join(ACTIONS)}."
                )
        raw = self.resources
        specs = raw if isinstance(raw, list | tuple) else [raw]
        resources: list[Resource] = []
        for spec in specs:
            try:
                r = Resource.parse(spec)
            except DefinitionError as e:
                problems.append(f"permission `{self.name}`: {e.message}")
                continue
            if r.type not in RESOURCE_TYPES:
                problems.append(
                    f"permission `{self.name}`: `{r.type}` is not a resource type.{did_you_mean(r.type, RESOURCE_TYPES)} "
                    f"Valid: {', '.join(RESOURCE_TYPES)}."
                )
            if not _PATTERN.match(r.name):
                problems.append(
                    f"permission `{self.name}`: resource name pattern `{r.name}` may hold only letters, digits, "
                    "`_ . - /` and the glob characters `* ? [ ]`."
                )
            resources.append(r)
        if not resources:
            problems.append(
                f'permission `{self.name}` names no resource. Fix: e.g. resources="feature_view:*".'
            )
        roles = [self.roles] if isinstance(self.roles, str) else list(self.roles or [])
        if not roles or not all(isinstance(r, str) and r.strip() for r in roles):
            problems.append(
                f'permission `{self.name}` needs roles (non-empty names), e.g. roles=["ml"], got `{self.roles!r}`.'
            )
        if not isinstance(self.pii, bool):
            problems.append(f"permission `{self.name}`: `pii` must be True or False.")
        if problems:
            raise DefinitionError.from_problems(problems, f"permission `{self.name}`")
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "resources", resources)
        object.__setattr__(self, "roles", [r.strip() for r in roles])

    def grants(self, action: str) -> bool:
        return action in self.actions or "admin" in self.actions

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "actions": list(self.actions),
            "resources": [r.to_dict() for r in self.resources],
            "roles": list(self.roles),
            "pii": self.pii,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Permission:
        return cls(
            d["name"],
            list(d.get("actions", [])),
            [Resource.parse(r) for r in d.get("resources", [])],
            list(d.get("roles", [])),
            bool(d.get("pii", False)),
            d.get("description", ""),
        )
