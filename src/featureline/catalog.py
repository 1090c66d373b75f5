"""Definitions as held by one registry version, with lookups that explain misses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from featureline.definitions import (
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    Permission,
    parse_ref,
)
from featureline.errors import (
    FeaturelineError,
    NotFoundError,
    ValidationError,
    did_you_mean,
    unknown,
)


@dataclass(frozen=True)
class OdfvSpec:
    """An on-demand feature view as the registry holds it (the function is found at run time)."""

    name: str
    source_views: list[str]
    request_fields: list[Field]
    features: list[Field]
    mode: str
    code_hash: str
    version: int = 1

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OdfvSpec:
        views = [s["name"] for s in d["sources"] if s["kind"] == "view"]
        req = [
            Field.from_dict(f) for s in d["sources"] if s["kind"] == "request" for f in s["schema"]
        ]
        return cls(
            d["name"],
            views,
            req,
            [Field.from_dict(f) for f in d["schema"]],
            d.get("mode", "python"),
            d["code_hash"],
        )


@dataclass
class Catalog:
    version: int
    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, list[FeatureView]] = field(default_factory=dict)  # ascending versions
    services: dict[str, FeatureService] = field(default_factory=dict)
    odfvs: dict[str, OdfvSpec] = field(default_factory=dict)
    permissions: dict[str, Permission] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, version: int, snap: dict[str, Any]) -> Catalog:
        ents = {n: Entity.from_dict(d) for n, d in snap.get("entities", {}).items()}
        views = {
            n: [FeatureView.from_dict(d, ents) for d in vs]
            for n, vs in snap.get("views", {}).items()
        }
        svcs = {n: FeatureService.from_dict(d) for n, d in snap.get("services", {}).items()}
        odfvs = {n: OdfvSpec.from_dict(d) for n, d in (snap.get("odfvs") or {}).items()}
        perms = {n: Permission.from_dict(d) for n, d in (snap.get("permissions") or {}).items()}
        return cls(version, ents, views, svcs, odfvs, perms)

    def view(self, name: str, version: int | None = None) -> Any:
        """A FeatureView version, or an OdfvSpec for an on-demand view."""
        if name in self.odfvs and version in (None, 1):
            return self.odfvs[name]
        if name not in self.views:
            raise NotFoundError(
                unknown("feature view", name, [*self.views, *self.odfvs]) + self._when()
            )
        versions = self.views[name]
        if version is None:
            return versions[-1]
        for v in versions:
            if v.version == version:
                return v
        raise NotFoundError(
            f"Feature view `{name}` has no version {version}; it has "
            f"{', '.join('v' + str(v.version) for v in versions)}." + self._when()
        )

    def service(self, name: str) -> FeatureService:
        if name not in self.services:
            raise NotFoundError(unknown("feature service", name, self.services) + self._when())
        return self.services[name]

    def _when(self) -> str:
        return f" (registry version {self.version})"

    def resolve(self, features: Any) -> list[tuple[FeatureRef, FeatureView]]:
        """Feature refs / a FeatureService (object or name) -> [(ref, view)], all problems at once."""
        if isinstance(features, FeatureService):
            refs = features.refs()
        elif isinstance(features, str) and ":" not in features:
            refs = self.service(features).refs()
        elif isinstance(features, str):
            refs = [features]
        else:
            refs = list(features)
        if not refs:
            raise ValidationError(
                'No features requested. Fix: pass features=["view:feature", ...] or a FeatureService.'
            )
        out: list[tuple[FeatureRef, FeatureView]] = []
        problems: list[FeaturelineError] = []
        seen: set[str] = set()
        for raw in refs:
            try:
                ref = parse_ref(raw)
                view = self.view(ref.view, ref.version)
            except (ValidationError, NotFoundError) as e:
                problems.append(e)
                continue
            names = (
                view.feature_names
                if isinstance(view, FeatureView)
                else [f.name for f in view.features]  # an on-demand view
            )
            if ref.feature not in names:
                problems.append(
                    NotFoundError(
                        f"Unknown feature `{raw}`: view `{view.name}` v{view.version} has no feature "
                        f"`{ref.feature}`.{did_you_mean(ref.feature, names)} Features: {', '.join(names)}."
                    )
                )
                continue
            if str(ref) in seen:
                continue
            seen.add(str(ref))
            out.append((ref, view))
        if problems:
            kind = (
                NotFoundError
                if all(isinstance(p, NotFoundError) for p in problems)
                else ValidationError
            )
            if len(problems) == 1:
                raise kind(str(problems[0]))
            raise kind(
                f"{len(problems)} problems with the requested features:\n"
                + "\n".join(f"  - {p}" for p in problems)
            )
        return out
