"""Feature references: "view:feature", optionally pinned to a version: "view@v2:feature"."""

from __future__ import annotations

from dataclasses import dataclass

from featureline.errors import ValidationError


@dataclass(frozen=True)
class FeatureRef:
    view: str
    feature: str
    version: int | None = None

    def __str__(self) -> str:
        v = f"@v{self.version}" if self.version is not None else ""
        return f"{self.view}{v}:{self.feature}"


def parse_ref(ref: str) -> FeatureRef:
    """Parse "view:feature" or "view@v2:feature"."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValidationError(
            f'Bad feature reference `{ref}`. Fix: write it as "view:feature" '
            f'(or "view@v2:feature" to pin a view version).'
        )
    view, feature = (p.strip() for p in ref.split(":"))
    version = None
    if "@" in view:
        view, _, v = view.partition("@")
        digits = v[1:] if v.lower().startswith("v") else v
        if not digits.isdigit():
            raise ValidationError(f'Bad view version `{v}` in `{ref}`. Fix: use "view@v2:feature".')
        version = int(digits)
    if not view or not feature:
        raise ValidationError(f'Bad feature reference `{ref}`. Fix: write it as "view:feature".')
    return FeatureRef(view, feature, version)


def output_names(
    views_and_features: list[tuple[str, int, str]], full_feature_names: bool
) -> list[str]:
    """Output column names for (view, version, feature) triples, the same offline and online.

    `feature`, or `view__feature` with full names; when one request reads several versions
    of a view, their columns are `view@vN__feature` so that they cannot clash.
    """
    if not full_feature_names:
        return [f for _, _, f in views_and_features]
    versions: dict[str, set[int]] = {}
    for v, n, _ in views_and_features:
        versions.setdefault(v, set()).add(n)
    return [
        f"{v}@v{n}__{f}" if len(versions[v]) > 1 else f"{v}__{f}" for v, n, f in views_and_features
    ]
