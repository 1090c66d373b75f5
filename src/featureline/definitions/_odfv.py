"""On-demand feature views: Python functions over request data and other features, run by the
same code for training sets and online reads (so the two cannot drift apart)."""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from featureline.definitions._objects import FeatureView, Field
from featureline.errors import NotFoundError, UserCodeError, ValidationError

MODES = ("python", "pandas")
_LIVE: dict[tuple[str, str], OnDemandFeatureView] = {}  # (name, code hash) -> object, this process


@dataclass(frozen=True)
class RequestSource:
    """Values sent with the request (online) or present in the entity frame (training)."""

    name: str
    schema: list[Field] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "request", "name": self.name, "schema": [f.to_dict() for f in self.schema]}


@dataclass(frozen=True, eq=False)
class OnDemandFeatureView:
    """Features computed by `udf` from source views' features and request fields."""

    name: str
    sources: list[FeatureView | RequestSource]
    schema: list[Field]
    udf: Callable[[Any], Any]
    mode: str = "python"
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _LIVE[(self.name, self.code_hash)] = self

    @property
    def features(self) -> list[Field]:
        return list(self.schema)

    @property
    def code(self) -> str:
        try:
            return textwrap.dedent(inspect.getsource(self.udf))
        except (OSError, TypeError):
            return getattr(self.udf, "__qualname__", repr(self.udf))

    @property
    def code_hash(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()[:16]

    @property
    def source_views(self) -> list[str]:
        return [s.name for s in self.sources if isinstance(s, FeatureView)]

    @property
    def request_fields(self) -> list[Field]:
        return [f for s in self.sources if isinstance(s, RequestSource) for f in s.schema]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sources": [
                {"kind": "view", "name": s.name} if isinstance(s, FeatureView) else s.to_dict()
                for s in self.sources
            ],
            "schema": [f.to_dict() for f in self.schema],
            "mode": self.mode,
            "code_hash": self.code_hash,
            "code": self.code,
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }

    def run(self, inputs: dict[str, list[Any]], n: int) -> dict[str, list[Any]]:
        """Call the function on a batch of `n` rows, inside an error boundary naming this view."""
        try:
            if self.mode == "pandas":
                import pandas as pd

                out = self.udf(pd.DataFrame(inputs))
                # pandas marks missing values NaN/NaT: hand back None, as the python mode does
                result = (
                    {
                        c: out[c].astype(object).where(out[c].notna(), None).tolist()
                        for c in out.columns
                    }
                    if hasattr(out, "columns")
                    else out
                )
            else:
                result = self.udf(dict(inputs))
        except Exception as e:
            where = traceback.extract_tb(e.__traceback__)[-1]
            raise UserCodeError(
                f"On-demand feature view `{self.name}` raised {type(e).__name__}: {e} "
                f"(at {where.filename}:{where.lineno}). Fix the function `{getattr(self.udf, '__name__', '?')}`."
            ) from e
        if not isinstance(result, dict):
            raise ValidationError(
                f"On-demand feature view `{self.name}` returned `{type(result).__name__}`; expected a dict of "
                f"columns {[f.name for f in self.schema]} (mode={self.mode!r})."
            )
        problems = []
        for f in self.schema:
            col = result.get(f.name)
            if col is None:
                problems.append(f"output `{f.name}` is missing (got {sorted(result)})")
            elif len(col) != n:
                problems.append(f"output `{f.name}` has {len(col)} values for {n} rows")
        if problems:
            raise ValidationError(
                f"On-demand feature view `{self.name}`: "
                + "; ".join(problems)
                + ". Fix: return one value per input row for every declared output."
            )
        return {f.name: list(result[f.name]) for f in self.schema}


def on_demand_feature_view(
    *,
    sources: list[FeatureView | RequestSource],
    schema: list[Field],
    mode: str = "python",
    name: str | None = None,
    description: str = "",
    owner: str = "",
    tags: dict[str, str] | None = None,
) -> Callable[[Callable[[Any], Any]], OnDemandFeatureView]:
    """Decorator: `@on_demand_feature_view(sources=[view, request], schema=[Field(...)])`.

    The function receives the columns of a batch — a dict of lists (mode "python") or a pandas
    DataFrame (mode "pandas") holding every feature of the source views and every request
    field — and returns the declared outputs in the same form.
    """
    if mode not in MODES:
        raise ValidationError(
            f"Unknown mode `{mode}` for an on-demand feature view. Valid: {', '.join(MODES)}."
        )

    def wrap(fn: Callable[[Any], Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(
            name or fn.__name__,
            list(sources),
            list(schema),
            fn,
            mode,
            description,
            owner,
            dict(tags or {}),
        )

    return wrap


def find_live(name: str, code_hash: str, load_repo: Callable[[], object]) -> OnDemandFeatureView:
    """The function object behind a registered on-demand view, checked against its code hash."""
    found = _LIVE.get((name, code_hash))
    if found is None:
        load_repo()  # importing the repo's modules registers its on-demand views
        found = _LIVE.get((name, code_hash))
    if found is None:
        others = [h for (n, h) in _LIVE if n == name]
        why = (
            f"its code changed since it was applied (registered {code_hash}, repo has {', '.join(others)})"
            if others
            else "it is not defined in the repo's modules"
        )
        raise NotFoundError(
            f"On-demand feature view `{name}` cannot run: {why}. Fix: run `featureline apply`."
        )
    return found
