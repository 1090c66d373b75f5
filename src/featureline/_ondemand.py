"""Running on-demand feature views: one code path for training sets and online reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from featureline.catalog import Catalog, OdfvSpec
from featureline.definitions import FeatureRef, FeatureView, find_live
from featureline.errors import ValidationError

Resolved = list[tuple[FeatureRef, Any]]


def split(
    resolved: Resolved,
) -> tuple[list[tuple[FeatureRef, FeatureView]], list[tuple[FeatureRef, OdfvSpec]]]:
    plain = [(r, v) for r, v in resolved if not isinstance(v, OdfvSpec)]
    od = [(r, v) for r, v in resolved if isinstance(v, OdfvSpec)]
    return plain, od


def hidden_inputs(
    cat: Catalog, od: list[tuple[FeatureRef, OdfvSpec]]
) -> list[tuple[FeatureRef, FeatureView]]:
    """Every feature of every source view of the requested on-demand views."""
    out: dict[str, tuple[FeatureRef, FeatureView]] = {}
    for _, spec in od:
        for name in spec.source_views:
            view = cat.view(name)
            for f in view.features:
                ref = FeatureRef(view.name, f.name)
                out.setdefault(str(ref), (ref, view))
    return list(out.values())


def compute(
    cat: Catalog,
    od: list[tuple[FeatureRef, OdfvSpec]],
    hidden: dict[str, list[Any]],
    request: dict[str, list[Any]],
    n: int,
    load_repo: Callable[[], object],
    full_feature_names: bool,
) -> dict[str, tuple[list[Any], Any]]:
    """Output name -> (values, dtype) for the requested on-demand features.

    `hidden` holds source features named `view__feature`; `request` the entity frame / rows.
    """
    wanted: dict[str, list[str]] = {}
    for ref, spec in od:
        wanted.setdefault(spec.name, []).append(ref.feature)
    out: dict[str, tuple[list[Any], Any]] = {}
    for name, feats in wanted.items():
        spec = cat.odfvs[name]
        fn = find_live(name, spec.code_hash, load_repo)
        inputs: dict[str, list[Any]] = {}
        for vname in spec.source_views:
            for f in cat.view(vname).features:
                inputs[f.name] = hidden[f"{vname}__{f.name}"]
        missing = [f.name for f in spec.request_fields if f.name not in request]
        if missing:
            raise ValidationError(
                f"On-demand feature view `{name}` needs request field(s) {', '.join(f'`{m}`' for m in missing)}. "
                f"Fix: add them to the entity frame (training) or to each entity row (online)."
            )
        for f in spec.request_fields:
            inputs[f.name] = list(request[f.name])
        result = fn.run(inputs, n)
        types = {f.name: f.dtype for f in spec.features}
        for f in feats:
            out[f"{name}__{f}" if full_feature_names else f] = (result[f], types[f])
    return out
