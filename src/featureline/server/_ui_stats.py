"""A view's statistics for the web UI (issue 12): the offline engine's profile, cached, and
merged incrementally after appends.

The profile (percentiles, histograms and rows by event time, from the parts' Parquet footers, one
scan, and on large views a declared row-group sample; the superseded rows from the figures each
commit records in the view's log, a scan only for commits without them) is cached per view
version and live commit. After a computation the view's mergeable statistics
(`profile_merge.ProfileState`: counts, sums, min/max, rows per hour, HLL and KLL sketches,
histograms) are kept too (built at once up to `STATE_SYNC_ROWS` rows, else on a background
thread, which `ViewStats.close` stops: the server's shutdown, before it closes the store); when
the next commits only appended rows (merges of kept or new commits move rows, they
add none), the page profiles the new rows alone and merges them in (`_incremental`), else it
computes everything again."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featureline._sql import INGESTED_AT

if TYPE_CHECKING:
    from featureline.definitions import FeatureView
    from featureline.feature_store import FeatureStore
    from featureline.offline.profile_merge import ProfileState
    from featureline.offline.store import Commit, PartRef

BINS = 20
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
STATS_ENTRIES = 32  # view versions whose statistics (and mergeable state) stay cached, LRU
STATE_SYNC_ROWS = 1_000_000  # up to this many rows the mergeable state is built at once
CLOSE_WAIT_SECONDS = 10.0  # `ViewStats.close` waits this long for a build to stop
_log = logging.getLogger(__name__)


def live_stamp(store: FeatureStore, fv: FeatureView) -> tuple[int, int]:
    """What a cached result of the view version's rows is valid for: its live commits."""
    commits = store.offline.commits(fv.name, fv.version)
    return (len(commits), commits[-1].seq if commits else 0)


def _stats_key(fv: FeatureView) -> tuple[Any, ...]:
    """A view version's statistics key: its name, version and definition (keys, features and
    their types), so that a registry made again with other definitions reuses nothing."""
    feats = tuple((f.name, str(f.dtype)) for f in fv.features)
    return (fv.name, fv.version, tuple(fv.join_keys), feats)


def _stats_body(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "rows": info.get("rows", 0),
        "commits": info.get("commits", 0),
        "first_event": info.get("first_event"),
        "last_event": info.get("last_event"),
        "superseded_rows": info.get("superseded_rows", 0),
        "features": {n: dict(s) for n, s in info.get("features", {}).items()},
        "rows_by_time": info.get("rows_by_time") or {"unit": "day", "buckets": []},
        "approximate": info.get("approximate")
        or {"distinct": "HyperLogLog estimate (approx_count_distinct)"},
    }


@dataclass(frozen=True)
class _Kept:
    """A view version's mergeable statistics and the live commits they are of."""

    commits: dict[int, tuple[int, int]]  # seq: (ingested time µs, rows)
    state: ProfileState
    superseded: int | None = None  # their superseded rows, when known

    @classmethod
    def of(cls, commits: list[Commit], state: ProfileState, superseded: int | None = None) -> _Kept:
        return cls({c.seq: (c.ingested_at_us, c.rows) for c in commits}, state, superseded)

    @property
    def last_seq(self) -> int:
        return max(self.commits, default=0)

    @property
    def last_us(self) -> int:
        """The newest ingested time of the kept rows: a later commit's rows are ingested after
        (the log's times strictly increase), in a merged part too (each row keeps its own)."""
        return max((t for t, _ in self.commits.values()), default=0)

    def delta(self, live: list[Commit]) -> tuple[set[int], set[int]] | None:
        """(new commits whose rows are all new, merges holding new rows among kept ones: only
        their rows ingested after `last_us` are new) when `live` is the kept commits plus
        appended ones, some merged (with kept ones or not); None otherwise."""
        now = {c.seq: c for c in live}
        for seq, (at, _) in self.commits.items():
            if seq in now and now[seq].ingested_at_us != at:
                return None  # another log (the view made again)
        last = self.last_seq
        plain: set[int] = set()
        merged: set[int] = set()
        covered: set[int] = set()
        for c in live:
            if c.seq in self.commits:
                continue
            if c.seq < last:
                return None  # a commit the kept state never saw, from before it
            if not c.replaces:
                plain.add(c.seq)
                continue
            old = {s for s in c.replaces if s in self.commits}
            if any(s not in self.commits and s < last for s in c.replaces):
                return None
            covered |= old
            if len(old) < len(c.replaces):  # it merged commits newer than the state too
                merged.add(c.seq)
        if covered != set(self.commits) - set(now):
            return None  # a kept commit went other than into a live merge
        return plain, merged


class ViewStats:
    """The statistics of view versions over one store, cached (thread-safe)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        # (view, version, its definition's fingerprint): (stamp, statistics), least recent first
        self._stats: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
        self._stats_gates: dict[tuple[Any, ...], threading.Lock] = {}
        self._states: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()  # mergeable, LRU
        self._state_jobs: dict[tuple[Any, ...], Future[None]] = {}
        self._state_pool: ThreadPoolExecutor | None = None
        self._closed = threading.Event()  # set by `close`: no build starts, a running one stops

    def stats_for(self, fv: FeatureView) -> dict[str, Any]:
        """Row counts, per-feature statistics with percentiles and a histogram per numeric feature,
        and the row counts by event time: the offline engine's profile, cached per view version
        until its next commit (a compaction, too, makes a new stamp); after commits that only
        appended rows, the kept state merged with the new rows' (`_incremental`). One
        computation per view version at a time: a request arriving meanwhile waits for it
        instead of scanning too. The key holds the definition's fingerprint and the kept state
        its commits' ingested times: a view made again never reuses another's figures."""
        key, stamp = _stats_key(fv), live_stamp(self.store, fv)
        with self._lock:
            hit = self._stats.get(key)
            gate = self._stats_gates.setdefault(key, threading.Lock())
        if hit is not None and hit[0] == stamp:
            return dict(hit[1])
        with gate:
            with self._lock:
                hit = self._stats.get(key)
            if hit is not None and hit[0] == stamp:
                return dict(hit[1])
            out = self._incremental(fv, key)
            if out is None:
                out = self._compute_stats(fv)
                self._keep_state(fv, key, out["rows"])
            with self._lock:
                self._stats[key] = (stamp, out)
                self._stats.move_to_end(key)
                while len(self._stats) > STATS_ENTRIES:
                    old, _ = self._stats.popitem(last=False)
                    self._stats_gates.pop(old, None)
                    self._states.pop(old, None)
        return dict(out)

    def _live(self, fv: FeatureView) -> tuple[list[Commit], list[PartRef]] | None:
        """The live commits and their parts, read together (None: a commit landed between)."""
        offline = self.store.offline
        commits = offline.commits(fv.name, fv.version)
        parts = offline.parts(fv.name, fv.version)
        if {p.commit for p in parts} != {c.seq for c in commits if c.parts}:
            return None
        return commits, parts

    def _keep_state(self, fv: FeatureView, key: tuple[Any, ...], rows: int) -> None:
        """Build the mergeable state of the live rows: at once up to `STATE_SYNC_ROWS` rows, else
        on the background thread (one build at a time per view version; meanwhile pages compute
        in full, as before)."""
        from featureline.offline.engines.duckdb import DuckDBEngine

        if not isinstance(self.store.offline.engine, DuckDBEngine) or self._closed.is_set():
            return
        if rows <= STATE_SYNC_ROWS:
            self._build_state(fv, key)
            return
        with self._lock:
            if self._closed.is_set():  # checked again under the lock `close` takes
                return
            job = self._state_jobs.get(key)
            if job is not None and not job.done():
                return
            if self._state_pool is None:
                self._state_pool = ThreadPoolExecutor(1, thread_name_prefix="ui-stats-state")
            self._state_jobs[key] = self._state_pool.submit(self._build_state, fv, key)

    def _build_state(self, fv: FeatureView, key: tuple[Any, ...]) -> None:
        """Build and keep the state; after `close` it stops at its next scan, quietly."""
        try:
            live = self._live(fv)
            if live is None:
                return
            commits, parts = live
            offline = self.store.offline
            engine: Any = offline.engine
            state = engine.profile_state(fv, parts, BINS, stop=self._closed)
            if self._closed.is_set():
                raise CancelledError
            # the count the full computation noted (None: the next pages look it up)
            superseded = offline.superseded_rows(fv, parts)
            self._put_state(key, _Kept.of(commits, state, superseded))
        except Exception as e:  # the next pages compute in full
            if self._closed.is_set():  # stopped by the shutdown (or failed on its closed store)
                _log.debug("statistics state of %s v%d stopped: %r", fv.name, fv.version, e)
            else:
                _log.warning("statistics state of %s v%d failed: %s", fv.name, fv.version, e)

    def _put_state(self, key: tuple[Any, ...], kept: _Kept) -> None:
        with self._lock:
            now = self._states.get(key)
            if now is None or now.last_seq <= kept.last_seq:
                self._states[key] = kept
                self._states.move_to_end(key)
            while len(self._states) > STATS_ENTRIES:
                self._states.popitem(last=False)

    def wait_stats_states(self) -> None:
        """Wait for the mergeable states being built on the background thread (benchmarks)."""
        with self._lock:
            jobs = list(self._state_jobs.values())
        wait(jobs)

    def close(self, timeout: float = CLOSE_WAIT_SECONDS) -> None:
        """Stop the background builds (the server's shutdown, before the store is closed): no
        build starts from now on, the queued ones are cancelled, and a running one stops at its
        next scan (`profile_state`'s `stop`); waits up to `timeout` seconds for it and for the
        thread to end. The statistics pages still answer (computed in full). Idempotent."""
        with self._lock:
            self._closed.set()
            pool, self._state_pool = self._state_pool, None
            jobs = list(self._state_jobs.values())
        if pool is None:
            return
        pool.shutdown(wait=False, cancel_futures=True)
        _, running = wait(jobs, timeout)
        if running:  # the thread ends once its scan does; its failure is not warned of
            _log.warning(
                "a view's statistics state was still being built %.0f s after the shutdown",
                timeout,
            )
            return
        pool.shutdown(wait=True)  # its thread is idle: it ends at once

    def _incremental(self, fv: FeatureView, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The statistics from the kept state and the rows committed since, or None when they
        cannot be merged: no state kept (or another log's: other ingested times), a kept commit
        gone other than into a merge of kept and new commits, or a row count that does not add
        up. The superseded rows: the commit log's figures (`OfflineStore.superseded_rows`), else
        (new commits without one, merged meanwhile) the kept count plus the new rows less their
        pairs no kept row holds (`new_pairs`: the kept rows probed over the new event times),
        noted for the store's next lookups."""
        from featureline.offline import profile_merge as pm

        with self._lock:
            kept = self._states.get(key)
        live = self._live(fv) if kept is not None else None
        if kept is None or live is None:
            return None
        commits, parts = live
        delta = kept.delta(commits)
        if delta is None:
            return None
        plain, merged = delta
        offline = self.store.offline

        def parts_of(seqs: set[int]) -> list[PartRef]:
            return [p for p in parts if p.commit in seqs]

        engine: Any = offline.engine
        superseded = offline.superseded_rows(fv, parts)
        if superseded is None:  # new commits without a figure, merged: the new rows' pairs
            if kept.superseded is None:
                return None
            last = kept.last_us
            fresh = [(parts_of(plain), "TRUE"), (parts_of(merged), f"{INGESTED_AT} > {last}")]
            stored = [
                ([p for p in parts if p.commit not in plain | merged], "TRUE"),
                (parts_of(merged), f"{INGESTED_AT} <= {last}"),
            ]
            n, distinct = engine.new_pairs(fv, stored, fresh)
            superseded = kept.superseded + n - distinct
            offline.note_superseded(fv, parts, superseded)  # later commits look up theirs alone
        edges = {n: f.edges for n, f in kept.state.features.items() if f.edges is not None}
        state, rebin = kept.state, set()
        for refs, newer in ((plain, None), (merged, kept.last_us)):
            chosen = parts_of(refs)
            if chosen:
                got = engine.profile_state(fv, chosen, BINS, edges, newer)
                state, more = pm.merge(state, got)
                rebin |= more
        if state.rows != sum(c.rows for c in commits):
            return None  # rows went (or came) other than by appends: compute again
        if rebin:
            fs = state.features
            want = {n: pm.bin_edges(fs[n].lo, fs[n].hi, BINS) for n in rebin}
            ok = {n: e for n, e in want.items() if e is not None}
            counts = engine.profile_bins(fv, parts, ok)
            state = pm.with_bins(state, {n: (ok[n], c) for n, c in counts.items()})
        self._put_state(key, _Kept.of(commits, state, superseded))
        prof = pm.finalize(state, superseded, QUANTILES)
        return _stats_body({"commits": len(commits), **prof})

    def _compute_stats(self, fv: FeatureView) -> dict[str, Any]:
        from featureline.offline.engines.duckdb import DuckDBEngine

        offline = self.store.offline
        engine = offline.engine
        if isinstance(engine, DuckDBEngine):  # the caller's describe grant is checked before
            parts = offline.parts(fv.name, fv.version)
            # from the commit log's figures (no keys' scan), else None: a scan
            known = offline.superseded_rows(fv, parts)
            info = {
                "commits": len(offline.commits(fv.name, fv.version)),
                **engine.profile(
                    fv, parts, bins=BINS, quantiles=QUANTILES, by_time=True, superseded_rows=known
                ),
            }
            if known is None and parts:  # the scan's count: the next commits look up theirs
                offline.note_superseded(fv, parts, info["superseded_rows"])
        else:  # another engine: describe's statistics, without histograms and percentiles
            info = self.store.describe(fv)
        return _stats_body(info)
