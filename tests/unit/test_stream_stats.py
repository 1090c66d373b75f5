"""The stream worker's latency counters (issue 10): exact quantiles on request, and a bounded
subsample for the figures published every second (a selection over every kept sample stalled
the worker's thread for milliseconds each time)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from featureline.stream import StreamStats
from featureline.stream import worker as worker_module


def _stats(batches: int, size: int, seed: int = 3) -> tuple[StreamStats, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = StreamStats("v", "redis", "s", "g", "c")
    parts = [rng.gamma(2.0, 0.01, size) for _ in range(batches)]
    for p in parts:
        s.observe_latency(p)
    return s, np.concatenate(parts)


def test_exact_quantiles_over_every_kept_sample() -> None:
    s, lat = _stats(200, 500)
    q = s.latency_quantiles((0.5, 0.99, 1.0), samples=None)
    assert q == {x: float(np.quantile(lat, x)) for x in (0.5, 0.99, 1.0)}


def test_the_published_quantiles_select_among_a_bounded_subsample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s, lat = _stats(400, 500)  # 200,000 kept samples
    sizes: list[int] = []
    quantile = np.quantile

    def counting(a: Any, *args: Any, **kw: Any) -> Any:
        sizes.append(len(a))
        return quantile(a, *args, **kw)

    monkeypatch.setattr(worker_module.np, "quantile", counting)
    snap = s.snapshot()
    assert sizes and max(sizes) <= worker_module.SUMMARY_SAMPLES
    exact = {x: float(quantile(lat, x)) for x in (0.5, 0.99)}
    assert snap["latency_p50_seconds"] == pytest.approx(exact[0.5], rel=0.02)
    assert snap["latency_p99_seconds"] == pytest.approx(exact[0.99], rel=0.05)


def test_few_samples_are_all_taken() -> None:
    s, lat = _stats(3, 7)
    assert s.latency_quantiles((1.0,)) == {1.0: float(lat.max())}
