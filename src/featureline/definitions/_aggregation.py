"""Sliding-window aggregation features (DESIGN §3): `Aggregation(column, function, window)`.

A view with aggregations stores its rows as events; each aggregation is a feature whose value
at time `t` is `function` over the view's events (one per key and event time, by the tie
rule) with `start(t) <= event_ts <= t`, where `start(t) = ceil((t - window) / tile) * tile`
(`tile` is the view's tile size; 0 means exact, `start(t) = t - window`; no window means the
key's whole history). Training sets and online reads compute it with the same kernel
(`featureline.aggregation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

US = 1_000_000


def _label(window: timedelta | None) -> str:
    if window is None:
        return "lifetime"
    us = window // timedelta(microseconds=1)
    for unit, size in (("d", 86_400 * US), ("h", 3_600 * US), ("m", 60 * US), ("s", US)):
        if us and us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


@dataclass(frozen=True)
class Aggregation:
    """`function` of `column` over a trailing `window` (None: the whole history) per key.

    `name` defaults to `<column>_<function>_<window>`, e.g. `amount_sum_1h`. `params` holds
    function options: `q` (0-1) for `approx_percentile`, `lg_k` for `approx_count_distinct`.
    """

    column: str
    function: str
    window: timedelta | None = None
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"{self.column}_{self.function}_{_label(self.window)}")
        object.__setattr__(self, "params", dict(self.params or {}))

    @property
    def window_us(self) -> int | None:
        if not isinstance(self.window, timedelta):
            return None
        return self.window // timedelta(microseconds=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "column": self.column,
            "function": self.function,
            "window_us": self.window_us,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Aggregation:
        w = d.get("window_us")
        return cls(
            d["column"],
            d["function"],
            timedelta(microseconds=w) if w is not None else None,
            d["name"],
            dict(d.get("params") or {}),
        )


__all__ = ["Aggregation"]
