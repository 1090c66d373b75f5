"""Prometheus metrics of one app: its own CollectorRegistry (two apps in a process never clash)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# sub-millisecond buckets: an in-process online read takes tens of microseconds
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

log = logging.getLogger("featureline.server")


class FreshnessCollector(Collector):
    """Per-view row counts and freshness, read from `store.freshness()` at scrape time."""

    def __init__(self, freshness: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self._freshness = freshness

    def collect(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "featureline_view_rows", "Rows stored for a feature view.", labels=["view"]
        )
        stale = GaugeMetricFamily(
            "featureline_view_staleness_seconds",
            "Now minus the newest event time of a feature view.",
            labels=["view"],
        )
        last_event = GaugeMetricFamily(
            "featureline_view_last_event_timestamp_seconds",
            "Newest event time of a feature view (Unix seconds).",
            labels=["view"],
        )
        last_ingest = GaugeMetricFamily(
            "featureline_view_last_ingested_timestamp_seconds",
            "Latest ingestion time of a feature view (Unix seconds).",
            labels=["view"],
        )
        up = GaugeMetricFamily(
            "featureline_freshness_up", "1 when the store's freshness could be read at this scrape."
        )
        latency = HistogramMetricFamily(
            "featureline_event_to_servable_seconds",
            "Event time to readable online, per row written online (every process's writes).",
            labels=["view"],
        )
        servable = GaugeMetricFamily(
            "featureline_view_servable_staleness_seconds",
            "Now minus the newest event time readable online.",
            labels=["view"],
        )
        objective = GaugeMetricFamily(
            "featureline_view_freshness_objective_seconds",
            "The view's freshness objective.",
            labels=["view"],
        )
        ok = GaugeMetricFamily(
            "featureline_view_freshness_ok",
            "1 when the newest servable event is within the objective, else 0.",
            labels=["view"],
        )
        quarantined = GaugeMetricFamily(
            "featureline_view_quarantined_rows",
            "Rows of a feature view held in quarantine by its constraints (featureline quarantine list).",
            labels=["view"],
        )
        try:
            info = self._freshness()
        except Exception:  # a scrape must never fail because one backend does
            log.exception("store.freshness() failed during a metrics scrape")
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        for view, f in sorted(info.items()):
            rows.add_metric([view], float(f.get("rows") or 0))
            if f.get("staleness_seconds") is not None:
                stale.add_metric([view], float(f["staleness_seconds"]))
            if f.get("last_event") is not None:
                last_event.add_metric([view], f["last_event"].timestamp())
            if f.get("last_ingested") is not None:
                last_ingest.add_metric([view], f["last_ingested"].timestamp())
            lat = f.get("latency") or {}
            if lat.get("count"):
                cum, buckets = 0, []
                for bound, c in lat["buckets"].items():
                    cum += c
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cum))
                latency.add_metric([view], buckets, lat["sum_seconds"])
            if f.get("servable_staleness_seconds") is not None:
                servable.add_metric([view], float(f["servable_staleness_seconds"]))
            if f.get("objective_seconds") is not None:
                objective.add_metric([view], float(f["objective_seconds"]))
            if f.get("ok") is not None:
                ok.add_metric([view], 1.0 if f["ok"] else 0.0)
            quarantined.add_metric([view], float(f.get("quarantined") or 0))
        yield from (up, rows, stale, last_event, last_ingest, latency, servable, objective, ok)
        yield quarantined


class StreamCollector(Collector):
    """The counters stream workers last published (`featureline.stream.read_stream_stats`),
    per view and consumer, read at scrape time."""

    _COUNTERS = (
        ("written", "Events a stream worker pushed and acknowledged."),
        ("quarantined", "Of the events written, those the view's ingestion gate quarantined."),
        ("dead_letters", "Events a stream worker moved to the dead-letter stream."),
        ("errors", "Failed stream-worker steps (retried)."),
        ("replayed", "Batches that were already committed (redelivered): one commit each."),
    )

    def __init__(self, stats: Callable[[], list[dict[str, Any]]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        labels = ["view", "consumer"]
        families = {
            k: CounterMetricFamily(f"featureline_stream_{k}", text, labels=labels)
            for k, text in self._COUNTERS
        }
        lag = GaugeMetricFamily(
            "featureline_stream_lag",
            "Messages of the group not yet delivered (waiting) or not yet acknowledged (pending).",
            labels=[*labels, "kind"],
        )
        latency = GaugeMetricFamily(
            "featureline_stream_publish_to_servable_seconds",
            "Publish time to readable online, over a worker's recent events.",
            labels=[*labels, "quantile"],
        )
        age = GaugeMetricFamily(
            "featureline_stream_stats_age_seconds",
            "Seconds since a stream worker last published its counters (a dead one grows).",
            labels=labels,
        )
        try:
            stats = self._stats()
        except Exception:  # a scrape must never fail because one source does
            log.exception("reading stream worker stats failed during a metrics scrape")
            return
        now = time.time()
        for s in stats:
            key = [str(s.get("view")), str(s.get("consumer"))]
            for k, fam in families.items():
                fam.add_metric(key, float(s.get(k) or 0))
            for kind in ("waiting", "pending"):
                if s.get(f"lag_{kind}") is not None:
                    lag.add_metric([*key, kind], float(s[f"lag_{kind}"]))
            for q in ("50", "99"):
                v = s.get(f"latency_p{q}_seconds")
                if v is not None:
                    latency.add_metric([*key, f"0.{q}"], float(v))
            age.add_metric(key, max(0.0, now - float(s.get("updated_at") or now)))
        yield from (*families.values(), lag, latency, age)


class Metrics:
    """Request counter by route/method/status and a latency histogram by route."""

    def __init__(
        self,
        freshness: Callable[[], dict[str, dict[str, Any]]],
        stream_stats: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "featureline_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "featureline_http_request_duration_seconds",
            "Time from reading a request to its response, by route.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(FreshnessCollector(freshness))
        if stream_stats is not None:
            self.registry.register(StreamCollector(stream_stats))
        # resolved children, so the hot path is one dict lookup and no label validation
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self._requests.labels(route, method, str(status))
        counter.inc()
        hist = self._histograms.get(route)
        if hist is None:
            hist = self._histograms[route] = self._latency.labels(route)
        hist.observe(elapsed)

    def render(self) -> bytes:
        return generate_latest(self.registry)
