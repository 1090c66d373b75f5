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
            f"Bad feature reference `{ref}`. Fix: write it as \"view:feature\" "
            f"(or \"view@v2:feature\" to pin a view version)."
        )
    view, feature = (p.strip() for p in ref.split(":"))
    version = None
    if "@" in view:
        view, _, v = view.partition("@")
        digits = v[1:] if v.lower().startswith("v") else v
        if not digits.isdigit():
            raise ValidationError(f"Bad view version `{v}` in `{ref}`. Fix: use \"view@v2:feature\".")
        version = int(digits)
    if not view or not feature:
        raise ValidationError(f"Bad feature reference `{ref}`. Fix: write it as \"view:feature\".")
    return FeatureRef(view, feature, version)
