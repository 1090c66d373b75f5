"""The stream worker: broker messages -> the write path, at least once, counted once.

For each view with a stream source (or the ones named), in a loop:

1. read a batch (what the broker has, up to `batch_size`, waiting up to `poll` seconds);
2. parse and check each message on its own (`_parse`): a refused one — not JSON, a missing
   key, a naive or unparsable time, a wrong type, an oversized payload, an event time too far
   ahead, or delivered more than `max_deliveries` times — goes to the dead-letter stream with
   its reason (and is acknowledged there), counted, and never holds the others back;
3. `store.push(view, rows, idempotency_key=...)` with a key derived from the broker, the
   stream and the message ids, so a replay of the same batch is the same commit
   (`replayed: true`); should the write path still refuse the batch, it is split in halves
   until the refused messages are found and dead-lettered (deterministically, so a replay
   finds the same halves);
4. acknowledge, only after the push returned: a worker killed anywhere (SIGKILL included)
   leaves its batch unacknowledged, and the broker redelivers it. A redelivered event is the
   same (key, event time, created time) row, which the tie rule counts once, so final values
   never change (`tests/integration/test_stream_worker.py` kills a real worker many times).

A failed step (the broker or a store unreachable, restarted) is retried from where it stopped
with exponential backoff, reconnecting to the broker; the batch in hand is kept, so its push
is retried with the same key (which also completes an online apply a `PartialWriteError`
left undone).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featureline.errors import FeaturelineError, ValidationError, did_you_mean
from featureline.stream._broker import Broker, Lag, Message
from featureline.stream._open import open_broker
from featureline.stream._parse import MessageParser

if TYPE_CHECKING:
    import pyarrow as pa

    from featureline.definitions import FeatureView, StreamSource
    from featureline.feature_store import FeatureStore

LATENCY_SAMPLES = 200_000  # the publish -> servable latencies kept for quantiles (newest)
SUMMARY_SAMPLES = 20_000  # of which the quantiles published each second take at most this many
STATS_DIR = ("data", "stream")  # under the repo: <view>/<consumer>.json, for /metrics


def stats_dir(repo_path: Path) -> Path:
    return repo_path.joinpath(*STATS_DIR)


def read_stream_stats(repo_path: Path) -> list[dict[str, Any]]:
    """The counters every worker of the repo last published (`StreamStats.snapshot()` plus
    `updated_at`, Unix seconds), one per view and consumer; unreadable files are skipped."""
    import json

    out = []
    for f in sorted(stats_dir(repo_path).glob("*/*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):  # being replaced, or left half-written by a crash
            continue
    return out


@dataclass
class StreamStats:
    """Counters of one view's stream (what `featureline stream` prints and a server exports)."""

    view: str
    broker: str
    stream: str
    group: str
    consumer: str
    read: int = 0  # messages delivered to this worker (redeliveries included)
    written: int = 0  # events pushed (rows of acknowledged batches), quarantined ones included
    quarantined: int = 0  # of those, rows the view's gate kept in quarantine (not landed)
    dead_letters: int = 0
    batches: int = 0
    replayed: int = 0  # batches already committed (a redelivered batch): one commit
    redelivered: int = 0  # messages delivered more than once
    errors: int = 0  # failed steps, retried
    reconnects: int = 0
    lag: Lag | None = None
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)
    # seconds spent reading, checking (parse), pushing and acknowledging (incl. dead letters)
    seconds: dict[str, float] = field(
        default_factory=lambda: {"read": 0.0, "parse": 0.0, "push": 0.0, "ack": 0.0}
    )
    _lat: list[np.ndarray] = field(default_factory=list, repr=False)
    _lat_n: int = field(default=0, repr=False)

    def observe_latency(self, seconds: np.ndarray) -> None:
        """Record publish -> servable latencies (seconds), keeping the newest samples."""
        self._lat.append(seconds)
        self._lat_n += len(seconds)
        while self._lat_n - len(self._lat[0]) >= LATENCY_SAMPLES:
            self._lat_n -= len(self._lat.pop(0))

    def latency_quantiles(
        self, qs: Sequence[float] = (0.5, 0.99), *, samples: int | None = SUMMARY_SAMPLES
    ) -> dict[float, float] | None:
        """Quantiles of the kept publish -> servable latencies (seconds): over every one with
        `samples=None`, else over an even subsample of at most `samples` of them. The counters
        published each second (`snapshot`, /metrics) and `featureline stream`'s progress lines
        take the subsample: the selection over the 200,000 kept samples took 3-22 ms of the
        worker's thread each time, a stall that the next batch's events waited out."""
        if not self._lat:
            return None
        lat = np.concatenate(self._lat)
        if samples is not None and len(lat) > samples:
            lat = lat[:: -(-len(lat) // max(1, samples))]
        return dict(zip(qs, map(float, np.quantile(lat, list(qs))), strict=True))

    def reset_latency(self) -> None:
        self._lat, self._lat_n = [], 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of the counters."""
        q = self.latency_quantiles()
        return {
            "view": self.view,
            "broker": self.broker,
            "stream": self.stream,
            "group": self.group,
            "consumer": self.consumer,
            "read": self.read,
            "written": self.written,
            "quarantined": self.quarantined,
            "dead_letters": self.dead_letters,
            "batches": self.batches,
            "replayed": self.replayed,
            "redelivered": self.redelivered,
            "errors": self.errors,
            "reconnects": self.reconnects,
            "lag_waiting": self.lag.waiting if self.lag else None,
            "lag_pending": self.lag.pending if self.lag else None,
            "last_error": self.last_error,
            "latency_p50_seconds": q[0.5] if q else None,
            "latency_p99_seconds": q[0.99] if q else None,
            "uptime_seconds": time.monotonic() - self.started,
            "seconds": dict(self.seconds),
        }


@dataclass
class _Batch:
    """A batch in hand, kept across retries: what is left to do with it."""

    messages: list[Message]
    dead: list[tuple[Message, str]]
    good: list[Message]
    table: pa.Table | None
    pushed: bool = False
    servable_us: int | None = None  # when its push returned (Unix microseconds): readable online


class _Lane:
    """One view's stream: its source, parser, broker connection, counters and batch in hand."""

    def __init__(self, worker: StreamWorker, view: FeatureView) -> None:
        src = view.stream_source
        assert src is not None
        self.view = view
        self.src: StreamSource = src
        cfg = worker.store.config
        self.settings = cfg.streams[src.broker]
        self.parser = MessageParser(view, src, cfg.max_future_seconds)
        self.group = src.group_for(view.name)
        self.stats = StreamStats(view.name, src.broker, src.stream, self.group, worker.consumer)
        self.broker: Broker | None = None
        self.batch: _Batch | None = None
        self.backoff = 0.0
        self.next_try = 0.0
        self.idle = False  # the last read found nothing

    def connect(self, factory: Callable[..., Broker]) -> Broker:
        if self.broker is None:
            self.broker = factory(
                self.src.broker,
                self.settings.url,
                self.src.stream,
                self.group,
                self.stats.consumer,
                self.src.dead_letter_stream,
                redeliver_after=self.settings.redeliver_after_seconds,
            )
        return self.broker

    def drop_broker(self) -> None:
        if self.broker is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing to close
                self.broker.close()
            self.broker = None


_frozen_modules = -1  # len(sys.modules) at the last freeze (-1: never frozen)


def _freeze_startup_objects() -> None:
    """Move what the process holds after start-up (modules, definitions, connections) out of
    the cyclic collector's reach: a full collection then scans only what the loop made
    (measured: gen-2 pauses of up to 66 ms, 395 ms in 10 s of a 20k events/s stream, became
    the tail of event-to-servable latency).

    Called at the start of `run` and after every written batch; it collects and freezes again
    only when modules were imported since the last time. The write path imports lazily: 362
    modules (dateutil, numpy.random, msgpack, ...) during the first batch, DuckDB at the first
    superseded-rows lookup or merge, so a freeze at start-up alone left ~32,000 objects to every
    full collection (gen-2 pauses of 12-56 ms over a 10 s run at 20k events/s; 0.5-3 ms once
    frozen after them)."""
    global _frozen_modules
    if len(sys.modules) != _frozen_modules:
        import gc

        gc.collect()
        gc.freeze()
        _frozen_modules = len(sys.modules)


def batch_key(kind: str, stream: str, messages: Sequence[Message]) -> str:
    """The idempotency key of a batch: the broker, the stream and the ids of its messages."""
    h = hashlib.sha256(f"{kind}\0{stream}\0".encode())
    h.update(",".join(m.id for m in messages).encode())
    return f"stream:{kind}:{h.hexdigest()[:40]}:{messages[0].id}+{len(messages)}"


class StreamWorker:
    """Consumes the stream sources of `views` (default: every view that has one) of `store`.

    `consumer` names this worker in its groups (default `<host>-<pid>`); `batch_size` bounds a
    batch; `poll` is how long a read waits for the first message. `broker_factory` makes broker
    connections (default `open_broker`, from `streams:` in featureline.yaml). With
    `publish_stats`, the counters are written every `progress_every` seconds to
    `data/stream/<view>/<consumer>.json` in the repo, where a server's /metrics reads them."""

    def __init__(
        self,
        store: FeatureStore,
        views: Sequence[str] | None = None,
        *,
        consumer: str | None = None,
        batch_size: int = 10_000,
        poll: float = 0.1,
        max_backoff: float = 5.0,
        broker_factory: Callable[..., Broker] = open_broker,
        publish_stats: bool = True,
    ) -> None:
        self.store = store
        self.publish = publish_stats
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = int(batch_size)
        self.poll = float(poll)
        self.max_backoff = float(max_backoff)
        self._factory = broker_factory
        self.lanes = [_Lane(self, v) for v in self._views(views)]
        # a worker stays up: merging the small commits its pushes leave runs off the push path,
        # and orphan quarantine files (a write killed mid-way) are removed now and every hour
        store.offline.housekeep_in_background()
        from featureline.quality import quarantine

        self._gc = quarantine.gc_in_background(
            store.offline.root, store.config.quarantine_gc_seconds
        )

    def _views(self, names: Sequence[str] | None) -> list[FeatureView]:
        all_views = self.store.list_feature_views()
        streamed = {v.name: v for v in all_views if v.stream_source is not None}
        if not names:
            if not streamed:
                raise ValidationError(
                    "No feature view has a stream source, so there is nothing to stream. Fix: "
                    'give a view stream_source=StreamSource("redis", "<stream>") and apply.'
                )
            return list(streamed.values())
        out = []
        known = {v.name for v in all_views}
        for n in names:
            if n not in known:
                raise ValidationError(
                    f"Unknown feature view `{n}`.{did_you_mean(n, known)} Views with a stream "
                    f"source: {', '.join(streamed) or 'none'}."
                )
            if n not in streamed:
                raise ValidationError(
                    f"Feature view `{n}` has no stream source. Fix: give it stream_source="
                    'StreamSource("redis", "<stream>") and apply, or name a view that has one: '
                    f"{', '.join(streamed) or 'none'}."
                )
            out.append(streamed[n])
        return out

    @property
    def stats(self) -> list[StreamStats]:
        return [lane.stats for lane in self.lanes]

    # -- the loop ------------------------------------------------------------------------------
    def run(
        self,
        *,
        once: bool = False,
        max_seconds: float | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[list[StreamStats]], Any] | None = None,
        progress_every: float = 1.0,
    ) -> list[StreamStats]:
        """Consume until `stop` is set, `max_seconds` passed, or (`once`) every stream is
        drained: a read found nothing and no batch is in hand."""
        _freeze_startup_objects()
        t0 = time.monotonic()
        next_progress = t0 + progress_every
        for lane in self.lanes:
            lane.idle = False  # drained means: a read in this run found nothing
        while True:
            now = time.monotonic()
            if stop is not None and stop.is_set():
                break
            if max_seconds is not None and now - t0 >= max_seconds:
                break
            if once and all(lane.idle and lane.batch is None for lane in self.lanes):
                break
            ready = [lane for lane in self.lanes if lane.next_try <= now]
            if not ready:
                time.sleep(min(0.05, min(lane.next_try for lane in self.lanes) - now))
            for lane in ready:
                self.step(lane)
            if time.monotonic() >= next_progress:
                self.refresh_lag()
                self.publish_stats()
                if progress is not None:
                    progress(self.stats)
                next_progress = time.monotonic() + progress_every
        self.refresh_lag()
        self.publish_stats()
        if progress is not None:
            progress(self.stats)
        return self.stats

    def publish_stats(self) -> None:
        """Write each lane's counters where a server's /metrics reads them (atomically)."""
        import json

        if not self.publish:
            return
        for lane in self.lanes:
            d = stats_dir(self.store.repo_path) / lane.view.name
            try:
                d.mkdir(parents=True, exist_ok=True)
                f = d / f"{lane.stats.consumer}.json"
                tmp = f.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({**lane.stats.snapshot(), "updated_at": time.time()}))
                os.replace(tmp, f)
            except OSError:  # a read-only repo: the counters stay in-process
                self.publish = False

    def refresh_lag(self) -> None:
        for lane in self.lanes:
            if lane.broker is not None:
                try:
                    lane.stats.lag = lane.broker.lag()
                except FeaturelineError:
                    lane.stats.lag = None

    def step(self, lane: _Lane) -> int:
        """One batch of one lane: read (unless one is in hand), dead-letter, push, ack. Returns
        the events written; a failure is counted, and the lane backs off and retries."""
        try:
            n = self._step(lane)
        except Exception as e:  # the broker or a store failed: keep the batch, retry later
            lane.stats.errors += 1
            lane.stats.last_error = f"{type(e).__name__}: {e}"
            lane.backoff = min(self.max_backoff, max(0.1, lane.backoff * 2))
            lane.next_try = time.monotonic() + lane.backoff
            if lane.broker is not None and not isinstance(e, ValidationError):
                lane.drop_broker()  # reconnect on the next try
                lane.stats.reconnects += 1
            return 0
        lane.backoff = 0.0
        return n

    def _step(self, lane: _Lane) -> int:
        broker = lane.connect(self._factory)
        spent = lane.stats.seconds
        t = time.perf_counter()
        if lane.batch is None:
            messages = broker.read(self.batch_size, self.poll)
            lane.idle = not messages
            t1 = time.perf_counter()
            spent["read"] += t1 - t
            if not messages:
                return 0
            lane.stats.read += len(messages)
            lane.stats.redelivered += sum(1 for m in messages if m.deliveries > 1)
            lane.batch = self._prepare(lane, messages)
            t = time.perf_counter()
            spent["parse"] += t - t1
        b = lane.batch
        if b.dead:
            broker.dead_letter(b.dead)  # acknowledges them too
            lane.stats.dead_letters += len(b.dead)
            b.dead = []
        if not b.pushed and b.good:
            t1 = time.perf_counter()
            spent["ack"] += t1 - t
            refused = self._push(lane, b.good, b.table)
            t = time.perf_counter()
            spent["push"] += t - t1
            if refused:  # the write path refused some: they are dead letters now
                broker.dead_letter(refused)
                lane.stats.dead_letters += len(refused)
                gone = {m.id for m, _ in refused}
                b.good = [m for m in b.good if m.id not in gone]
            b.pushed = True
            b.servable_us = time.time_ns() // 1000
        broker.ack(b.good)
        spent["ack"] += time.perf_counter() - t
        written = len(b.good)
        lane.stats.written += written
        lane.stats.batches += 1
        # publish -> servable: the events were readable online once the push returned, before
        # the acknowledgement (which only tells the broker not to deliver them again)
        servable_us = b.servable_us if b.servable_us is not None else time.time_ns() // 1000
        published = np.array(
            [m.published_us for m in b.good if m.published_us is not None], dtype=np.int64
        )
        if len(published):
            lane.stats.observe_latency((servable_us - published) / 1e6)
        lane.batch = None
        _freeze_startup_objects()  # again once the batch's lazy imports are done (rarely)
        return written

    def _prepare(self, lane: _Lane, messages: list[Message]) -> _Batch:
        limit = lane.settings.max_deliveries
        dead: list[tuple[Message, str]] = []
        fresh: list[Message] = []
        for m in messages:
            if m.deliveries > limit:
                dead.append(
                    (
                        m,
                        f"delivered {m.deliveries} times without being acknowledged (over "
                        f"streams.{lane.src.broker}.max_deliveries = {limit}): a worker died on "
                        "it each time. Fix: inspect the payload; replay it once fixed.",
                    )
                )
            else:
                fresh.append(m)
        table, good, bad = lane.parser.parse(fresh)
        return _Batch(messages, dead + bad, good, table)

    def _push(
        self, lane: _Lane, messages: list[Message], table: pa.Table | None
    ) -> list[tuple[Message, str]]:
        """Push the rows of `messages`; the messages the write path refused, with its reason
        (found by halving the batch: deterministic, so a replay makes the same commits)."""
        if table is None or not messages:
            return []
        key = batch_key(lane.src.broker, lane.src.stream, messages)
        try:
            result = self.store.push(lane.view, table, idempotency_key=key)
        except ValidationError as e:
            if len(messages) == 1:
                return [(messages[0], f"refused by the write path: {e}")]
            mid = len(messages) // 2
            return self._push(lane, messages[:mid], table.slice(0, mid)) + self._push(
                lane, messages[mid:], table.slice(mid)
            )
        if result.replayed:
            lane.stats.replayed += 1
        else:  # a replayed batch's quarantined rows were counted when it was first written
            lane.stats.quarantined += result.quarantined
        return []

    def close(self) -> None:
        self._gc.set()
        for lane in self.lanes:
            lane.drop_broker()


__all__ = ["StreamStats", "StreamWorker", "batch_key", "read_stream_stats"]
