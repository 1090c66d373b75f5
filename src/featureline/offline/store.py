"""The bitemporal offline store: the table (Parquet parts + a commit log per view version,
`_log.py`) and an `OfflineEngine` that computes over its live parts (`engines/`, DuckDB today)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featureline._time import from_us, to_us
from featureline.definitions import FeatureView
from featureline.offline import _merge_policy
from featureline.offline._housekeeper import Housekeeper
from featureline.offline._log import (
    PARTS,
    Commit,
    CommitConflict,
    Part,
    ViewLog,
    write_atomically,
)
from featureline.offline._pit import JoinSpec, PartRef
from featureline.offline._trickle import trickle
from featureline.offline.batch import EVENT_TS, SHADOWED_UNTIL, batch_stats, prepare_batch
from featureline.offline.engines._base import OfflineEngine
from featureline.offline.engines.duckdb import DuckDBEngine

_log = logging.getLogger("featureline.offline")


@dataclass(frozen=True)
class IngestResult:
    view: str
    version: int
    rows: int
    commit: int
    ingested_at: datetime
    shadowed_in_batch: int
    replayed: bool = False  # the idempotency key was seen before: this is the earlier commit
    ignored_columns: tuple[
        str, ...
    ] = ()  # columns of the batch the view does not declare (not stored)
    non_finite: dict[str, int] = field(default_factory=dict)  # NaN / Inf values stored, per feature
    # the ingestion gate (featureline.quality): rows kept in quarantine instead of landing (rows
    # in = rows + quarantined), and per violated constraint its count (under `warn` they landed)
    quarantined: int = 0
    violations: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"commit {self.commit}" if self.commit else "no commit"
        text = f"{self.rows:,} rows into {self.view} v{self.version} ({where}, ingested at {self.ingested_at.isoformat()})"
        if self.quarantined:
            text += f"; {self.quarantined:,} row(s) quarantined (`featureline quarantine show {self.view}`)"
        if self.violations:
            text += "; constraint violations: " + ", ".join(
                f"{k} {v:,}" for k, v in self.violations.items()
            )
        if self.ignored_columns:
            text += f"; ignored column(s) not in the view: {', '.join(self.ignored_columns)}"
        if self.non_finite:
            text += "; NaN/Inf values stored: " + ", ".join(
                f"{k} {v:,}" for k, v in self.non_finite.items()
            )
        return text


@dataclass(frozen=True)
class VacuumResult:
    files_removed: int
    bytes_freed: int

    def __str__(self) -> str:
        return f"removed {self.files_removed} file(s), {self.bytes_freed:,} bytes"


us_to_dt = from_us  # the shared time kernel (_time.py), under the names this module always had
dt_to_us = to_us


def _first_ingested(c: Commit) -> int:
    return (
        int(c.meta.get("first_ingested_us", c.ingested_at_us)) if c.replaces else c.ingested_at_us
    )


LOOKUP_FREE_ROWS = 1_000_000  # an ingest looks its pairs up among this many stored rows at any size
LOOKUP_PER_ROW = 4  # and among this many per row of the batch (else: no `supersedes` figure)
SUPERSEDES = "supersedes"  # commit-log meta: rows a commit made superseded (see superseded_rows)


def near_commits(
    live: list[Commit], lo: int, hi: int, only: set[int] | None = None
) -> list[Commit]:
    """The commits of `live` (of `only`, when given) whose rows may have event times in
    [lo, hi] µs (a commit without its event range may)."""
    return [
        c
        for c in live
        if (only is None or c.seq in only)
        and not (
            c.meta.get("min_event_us") is not None
            and c.meta.get("max_event_us") is not None
            and (int(c.meta["max_event_us"]) < lo or int(c.meta["min_event_us"]) > hi)
        )
    ]


def within_lookup(near: list[Commit], rows: int) -> bool:
    """Whether an ingest of `rows` rows looks its pairs up among the rows of `near`."""
    return sum(c.rows for c in near) <= max(LOOKUP_FREE_ROWS, LOOKUP_PER_ROW * rows)


def _stored_pairs(
    engine: OfflineEngine, pairs: pa.Table, parts: list[PartRef], keys: list[str], lo: int, hi: int
) -> pa.Table | None:
    """The distinct (keys, event time as µs `__us`) of `pairs` (keys, `__event_ts`) that some row
    of `parts` holds (event times in [lo, hi] µs); None for an engine other than DuckDB."""
    if not isinstance(engine, DuckDBEngine):
        return None
    from featureline._sql import lit, q

    names = [*(q(k) for k in keys), "__us"]
    if not parts or not pairs.num_rows:
        return _no_pairs(keys)
    cols = ", ".join([*(q(k) for k in keys), EVENT_TS])
    src = "read_parquet([" + ", ".join(lit(p.path) for p in parts) + "], union_by_name = true)"
    con = engine.connection()
    try:
        con.register("__pairs", pairs)
        # the batch's pairs are the hash table; stored rows probe it, the few found are
        # kept once per pair (a pair may be stored several times)
        return con.sql(
            f"SELECT DISTINCT {', '.join(names[:-1])}, epoch_us({EVENT_TS}) AS __us FROM (SELECT "
            f"{cols} FROM {src} WHERE {EVENT_TS} BETWEEN make_timestamptz({int(lo)}::BIGINT) AND "
            f"make_timestamptz({int(hi)}::BIGINT)) SEMI JOIN __pairs USING ({cols})"
        ).to_arrow_table()
    finally:
        con.unregister("__pairs")
        con.close()


def _no_pairs(keys: list[str]) -> pa.Table:
    return pa.table({n: pa.array([], pa.int64()) for n in [*keys, "__us"]})


def _union_rows(a: pa.Table, b: pa.Table) -> int:
    """Rows of `a` and `b` (distinct each, same columns) counted once."""
    if not b.num_rows:
        return a.num_rows
    both = pa.concat_tables([a, b.cast(a.schema)])
    return both.group_by(both.column_names).aggregate([]).num_rows


def _refs(log: ViewLog, c: Commit) -> list[PartRef]:
    """The parts of commit `c` as the engine reads them."""
    return [
        PartRef(str(log.root / p.file), c.ingested_at_us, p.compacted, c.seq, _columns(c))
        for p in c.parts
    ]


def _marked_rows(path: Path) -> int:
    """The rows of a part whose `__shadowed_until` is set (they lose a tie), from its footer."""
    import pyarrow.parquet as pq

    md = pq.read_metadata(path)
    names = [md.schema.column(j).name for j in range(md.num_columns)]
    j = names.index(SHADOWED_UNTIL)
    nulls = 0
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(j).statistics
        if st is None or not st.has_null_count:
            col = pq.read_table(path, columns=[SHADOWED_UNTIL]).column(0)
            return int(len(col) - col.null_count)
        nulls += st.null_count
    return int(md.num_rows - nulls)


def _min_opt(values: Any) -> int | None:
    vs = [v for v in values if v is not None]
    return min(vs) if vs else None


def _max_opt(values: Any) -> int | None:
    vs = [v for v in values if v is not None]
    return max(vs) if vs else None


def _columns(c: Commit) -> tuple[str, ...] | None:
    cols = c.meta.get("columns")
    return tuple(cols) if cols is not None else None


VACUUM_GRACE_SECONDS = 3600.0  # superseded parts stay this long for readers in flight
ORPHAN_MIN_AGE_SECONDS = (
    600.0  # unreferenced files younger than this may belong to a writer in flight
)
COMPACT_AFTER = 8  # fan-in: commits of one size tier that trigger a merge of that tier
COMPACT_ROWS = 1_000_000  # a commit up to this size takes part in automatic merges
MERGE_MAX_ROWS = 8_000_000  # rows one automatic merge writes at most
TRICKLE_ROWS = 200_000  # a merge of this many rows flushes its file as it writes it (_trickle)
_MERGE_ROUNDS = 8  # merges one housekeeping run makes at most (a merge can fill the next tier)
# an automatic merge vacuums the view at most this often: vacuum lists every file of the parts
# folder, which keeps every part of the last VACUUM_GRACE_SECONDS (a stream writes ~16 a second),
# so vacuuming after each of a stream's ~8 merges a second took GIL time from the worker that
# grew with the run (35,000 events/s soak: 4.6 ms a vacuum at first, 30 ms after 3 minutes, 6.1 s
# of each 30); a file's grace is an hour, removing it a minute later costs nothing
AUTO_VACUUM_EVERY_SECONDS = 60.0
_WRITERS = max(1, min(4, os.cpu_count() or 1))
_ROWS_PER_WRITER = 1_000_000


def _to_merge(live: list[Commit], max_rows: int | None = None) -> list[Commit]:
    """The commits the next automatic merge combines (one full size tier), or []."""
    limit = COMPACT_ROWS if max_rows is None else max_rows
    return _merge_policy.pick(live, COMPACT_AFTER, limit, MERGE_MAX_ROWS)


class OfflineStore:
    """Offline store rooted at a folder: `<root>/<view>/v<version>/{_log.jsonl, parts/}`."""

    def __init__(
        self, root: Path, engine: OfflineEngine | None = None, threads: int | None = None
    ) -> None:
        self.root = Path(root)
        self.engine: OfflineEngine = engine if engine is not None else DuckDBEngine(threads=threads)
        self._logs: dict[tuple[str, int], ViewLog] = {}
        self._housekeeper: Housekeeper | None = None
        self._merge_engine: OfflineEngine | None = None  # the housekeeper's
        # (view, version): (live commits, their superseded rows) last counted (superseded_rows)
        self._superseded: dict[tuple[str, int], tuple[frozenset[tuple[int, int]], int]] = {}
        self._vacuumed_at: dict[tuple[str, int], float] = {}  # (view, version): monotonic time

    # -- storage -----------------------------------------------------------------------------
    def log(self, view: str, version: int) -> ViewLog:
        key = (view, version)
        if key not in self._logs:
            self._logs[key] = ViewLog(self.root / view / f"v{version}")
        return self._logs[key]

    def key_types(self, view: str, version: int) -> dict[str, str]:
        first = self.log(view, version).first()
        return dict(first.meta.get("key_types", {})) if first else {}

    def ingest(
        self,
        view: FeatureView,
        table: pa.Table,
        before_commit: Any = None,
        idempotency_key: str | None = None,
    ) -> IngestResult:
        """Append one batch atomically; returns when it is visible to readers."""
        return self.ingest_stored(view, table, before_commit, idempotency_key)[0]

    def ingest_stored(
        self,
        view: FeatureView,
        table: pa.Table,
        before_commit: Any = None,
        idempotency_key: str | None = None,
        max_future_seconds: float | None = None,
        housekeeping: bool = True,
    ) -> tuple[IngestResult, pa.Table]:
        """`ingest`, also returning the batch as stored (for the online apply of a push).

        `housekeeping=False` leaves `after_commit` to the caller (a push runs it once the batch
        is servable online, so merging small commits never delays a value)."""
        import pyarrow.parquet as pq

        log = self.log(view.name, view.version)
        stored, key_types = prepare_batch(
            view,
            table,
            self.key_types(view.name, view.version),
            max_future_seconds=max_future_seconds,
        )
        stats = batch_stats(stored, view)

        dict_cols = [
            f.name
            for f in stored.schema
            if pa.types.is_large_string(f.type) or pa.types.is_string(f.type)
        ]
        n_parts = max(1, min(_WRITERS, stored.num_rows // _ROWS_PER_WRITER))
        size = -(-stored.num_rows // n_parts)

        def write_one(i: int) -> Part:
            rel, path = log.new_part_path()
            chunk = stored.slice(i * size, size)
            write_atomically(
                path,
                lambda tmp: pq.write_table(
                    chunk, tmp, compression="lz4", row_group_size=1 << 20, use_dictionary=dict_cols
                ),
            )
            return Part(rel, chunk.num_rows)

        def write_parts() -> list[Part]:
            if n_parts == 1:
                return [write_one(0)]
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_parts) as ex:  # pyarrow releases the GIL while encoding
                return list(ex.map(write_one, range(n_parts)))

        batch_id = uuid.uuid4().hex
        meta = {
            "key_types": key_types,
            "columns": [f.name for f in view.features],
            "batch_id": batch_id,
            **stats,
        }

        # the lookup of the batch's pairs among the stored rows, before the writer lock; under
        # it, only the commits landed since are looked at
        replay = idempotency_key is not None and log.find_key(idempotency_key) is not None
        early = None if replay else self._pairs_stored(view, log, stored, log.live_commits(), None)

        def before_append() -> Any:
            extra = before_commit() if before_commit is not None else None
            figures = self._supersedes_figure(view, log, stored, early)
            return {**figures, **extra} if isinstance(extra, dict) else figures

        c = log.commit(
            write_parts, meta=meta, before_append=before_append, idempotency_key=idempotency_key
        )
        replayed = c.meta.get("batch_id") != batch_id
        if housekeeping and not replayed:
            self.after_commit(view)
        shadowed = int(c.meta.get("shadowed_in_batch", 0))
        return IngestResult(
            view.name, view.version, c.rows, c.seq, us_to_dt(c.ingested_at_us), shadowed, replayed
        ), stored

    def _pairs_stored(
        self,
        view: FeatureView,
        log: ViewLog,
        stored: pa.Table,
        live: list[Commit],
        only: set[int] | None,
    ) -> tuple[frozenset[int], pa.Table] | None:
        """(the `live` commits' seqs, the distinct (keys, event time) of the batch `stored` that
        their rows hold — of the commits `only`, when given); None when not looked up: a small
        batch (a push) onto more stored rows of its event times than an ingest looks up
        (`LOOKUP_FREE_ROWS`, `LOOKUP_PER_ROW`), another engine, or a failure."""
        try:
            mm = pc.min_max(stored.column(EVENT_TS))
            lo, hi = mm["min"].value, mm["max"].value
            near = near_commits(live, lo, hi, only)
            if not within_lookup(near, stored.num_rows):
                return None
            if not near:  # no live row shares an event time with the batch
                return frozenset(c.seq for c in live), _no_pairs(view.join_keys)
            pairs = stored.select([*view.join_keys, EVENT_TS, SHADOWED_UNTIL])
            pairs = pairs.filter(pc.is_null(pairs.column(SHADOWED_UNTIL))).select(
                [*view.join_keys, EVENT_TS]
            )
            parts = [r for c in near for r in _refs(log, c)]
            found = _stored_pairs(self.engine, pairs, parts, view.join_keys, lo, hi)
            return None if found is None else (frozenset(c.seq for c in live), found)
        except Exception as e:  # a figure the stats can do without: never fail the write
            _log.warning("superseded-rows lookup of %s failed: %s", view.name, e)
            return None

    def _supersedes_figure(
        self,
        view: FeatureView,
        log: ViewLog,
        stored: pa.Table,
        early: tuple[frozenset[int], pa.Table] | None,
    ) -> dict[str, int]:
        """`{SUPERSEDES: n}`: the rows this batch makes superseded when it lands on the live
        commits — its own in-batch ties plus one per (keys, event time) of the batch that a
        live row holds already —, so that the live rows' superseded count is the sum over the
        live commits (`superseded_rows`), without a scan; {} (the stats scan instead) when it
        was not looked up. Called under the writer lock (the live commits cannot change), with
        `early`, the lookup made before it: only commits landed since are looked at now (a
        merge of earlier commits moved rows already looked at)."""
        if early is None:
            return {}
        own = int(stored.num_rows - stored.column(SHADOWED_UNTIL).null_count)  # in-batch ties
        seen, found = early
        live = log.live_commits()
        new = [c for c in live if c.seq not in seen]
        since = {c.seq for c in new if not c.replaces}  # a merge of seen commits: rows seen
        if any(set(c.replaces) - seen for c in new):
            since, found = set(), None  # a merge of a commit landed meanwhile: look at all
        if since or found is None:
            more = self._pairs_stored(view, log, stored, live, since or None)
            if more is None:
                return {}
            found = more[1] if found is None else found
            if since:
                return {SUPERSEDES: own + _union_rows(found, more[1])}
        return {SUPERSEDES: own + found.num_rows}

    def superseded_rows(self, view: FeatureView, parts: list[PartRef] | None = None) -> int | None:
        """The live rows of a view version that lose to another row with the same keys and event
        time (rows - distinct (keys, event time)), from the figures recorded in the commit log
        (`SUPERSEDES`); None when a live commit has none (written before they were recorded, or
        by another writer): then only a scan tells. With `parts` (read before), None too unless
        they are the live commits' parts (a commit landed in between).

        Unless this process counted them before (a page's scan, `note_superseded`, or a call
        here): then the commits since without a figure have their pairs looked up among the
        counted rows (a push's few rows), and a merge of counted commits alone carries their
        count over (no lookup: its rows are theirs); a merge holding rows not counted yet, None."""
        commits = self.commits(view.name, view.version)
        if parts is not None and {p.commit for p in parts} != {c.seq for c in commits if c.parts}:
            return None
        key = (view.name, view.version)
        figures = [int(c.meta[SUPERSEDES]) for c in commits if c.meta.get(SUPERSEDES) is not None]
        if len(figures) == len(commits):
            total = sum(figures)
            self._superseded[key] = (frozenset((c.seq, c.ingested_at_us) for c in commits), total)
            return total
        # commits without a figure appended since a count this process knows: each one's pairs
        # looked up among the rows before it (a push's few rows; a scan of every row otherwise)
        known = self._superseded.get(key)
        if known is None or not isinstance(self.engine, DuckDBEngine):
            return None
        stamps, total = known  # (seq, ingested time): a log made again has other times
        counted = dict(stamps)
        if not counted or any(
            c.seq in counted and counted[c.seq] != c.ingested_at_us for c in commits
        ):
            return None
        last = max(counted)
        # a merge of counted commits alone holds their rows and no other: a merge keeps every
        # row (tie losers too, each with its own times) and only moves them, so the rows and
        # their distinct (keys, event time) pairs, hence the count, stay what they were
        carried = {
            c.seq
            for c in commits
            if c.seq > last and c.replaces and set(c.replaces) <= counted.keys()
        }
        gone = {seq for seq in counted if seq not in {c.seq for c in commits}}
        if gone != {s for c in commits if c.seq in carried for s in c.replaces}:
            return None  # a counted commit went elsewhere (a merge with uncounted rows too)
        seqs = counted.keys() | carried
        newer = [c for c in commits if c.seq not in seqs]
        if any(c.replaces or c.seq < last for c in newer):
            return None  # a merge of uncounted rows (or a commit from before) among them
        import pyarrow.parquet as pq

        log = self.log(view.name, view.version)
        before = [r for c in commits if c.seq in seqs for r in _refs(log, c)]
        for c in newer:
            n = c.meta.get(SUPERSEDES)
            if n is None and c.parts:
                mine = [str(log.root / p.file) for p in c.parts]
                batch = pa.concat_tables(
                    [
                        pq.read_table(f, columns=[*view.join_keys, EVENT_TS, SHADOWED_UNTIL])
                        for f in mine
                    ]
                )
                marks = batch.column(SHADOWED_UNTIL)
                lo, hi = pc.min_max(batch.column(EVENT_TS)).values()
                pairs = batch.filter(pc.is_null(marks)).select([*view.join_keys, EVENT_TS])
                found = _stored_pairs(
                    self.engine, pairs, before, view.join_keys, lo.value, hi.value
                )
                if found is None:
                    return None
                n = int(batch.num_rows - marks.null_count) + found.num_rows
            total += int(n or 0)
            before += _refs(log, c)
        self._superseded[key] = (frozenset((c.seq, c.ingested_at_us) for c in commits), total)
        return total

    def note_superseded(self, view: FeatureView, parts: list[PartRef], rows: int) -> None:
        """Remember that the rows of `parts` (all of some live commits') hold `rows` superseded
        rows (a scan's count), so that `superseded_rows` after commits without a figure looks up
        only theirs."""
        stamps = frozenset((p.commit, p.ingested_at_us) for p in parts)
        self._superseded[(view.name, view.version)] = (stamps, int(rows))

    def after_commit(self, view: FeatureView) -> None:
        """Housekeeping after a commit: merge many small commits. Never fails the write.

        Runs here, or on the background thread once `housekeep_in_background` was called."""
        log = self.log(view.name, view.version)
        if not _to_merge(
            log.live_commits()
        ):  # a full size tier (pushes): merge it, reads stay fast
            return
        if self._housekeeper is not None:
            self._housekeeper.request(view)
        else:
            self._merge_small(view)

    def housekeep_in_background(self) -> Housekeeper:
        """Run `after_commit`'s merges on a background thread from now on (for writers that stay
        up: the stream worker, the server); `close` stops it. Idempotent."""
        if self._housekeeper is None:
            self._housekeeper = Housekeeper(self._merge_in_background)
        return self._housekeeper

    def _merge_in_background(self, view: FeatureView) -> None:
        """`_merge_small` on the housekeeper's thread, with a one-thread engine of its own
        (made there, so its work runs at the thread's lower priority: `_housekeeper`)."""
        if self._merge_engine is None:
            self._merge_engine = (
                DuckDBEngine(threads=1) if isinstance(self.engine, DuckDBEngine) else self.engine
            )
        self._merge_small(view, self._merge_engine)

    def _merge_small(self, view: FeatureView, engine: OfflineEngine | None = None) -> None:
        """Merge full size tiers of `view` (up to `_MERGE_ROUNDS`), then vacuum it, at most
        every `AUTO_VACUUM_EVERY_SECONDS`."""
        try:
            merged = 0
            while merged < _MERGE_ROUNDS:
                if self.compact(view, max_rows=COMPACT_ROWS, wait=False, engine=engine) is None:
                    break
                merged += 1
                if not _to_merge(self.log(view.name, view.version).live_commits()):
                    break
            key = (view.name, view.version)
            now = time.monotonic()
            if merged and now - self._vacuumed_at.get(key, -math.inf) >= AUTO_VACUUM_EVERY_SECONDS:
                self._vacuumed_at[key] = now
                self.vacuum(view)
        except (
            Exception
        ) as e:  # the batch is committed: a failed merge is retried by the next write
            _log.warning(
                "automatic compaction of %s v%d failed (the write itself succeeded): %s",
                view.name,
                view.version,
                e,
            )

    def compact(
        self,
        view: FeatureView,
        max_rows: int | None = None,
        wait: bool = True,
        engine: OfflineEngine | None = None,
    ) -> Commit | None:
        """Merge live commits of a view version into one part, keeping full history.

        Each row keeps its own ingested time, and gets the system time from which a later tie
        beats it (`__shadowed_until`), so as-of reads at any time stay exact while reads see
        fewer parts (one: the fast path). Without `max_rows` every live commit is merged (a full
        compaction); with it, an automatic merge: one size tier of the commits up to that size
        (`_merge_policy`), so a large merged commit is not rewritten by every small merge. Returns None when there is nothing to merge, when
        another compactor holds the view (`wait=False`) or when a concurrent compaction
        replaced a chosen commit first (compare-and-swap: the loser leaves no trace).
        """
        log = self.log(view.name, view.version)
        with log.compaction_slot(wait) as mine:
            if not mine:
                return None
            try:
                return self._compact(log, view, max_rows, engine or self.engine)
            except CommitConflict:
                return None

    def _compact(
        self, log: ViewLog, view: FeatureView, max_rows: int | None, engine: OfflineEngine
    ) -> Commit | None:
        # chosen under the compaction slot; `replace` re-checks them under the log lock
        live = log.live_commits() if max_rows is None else _to_merge(log.live_commits(), max_rows)
        if len(live) < 2:
            return None
        chosen = {c.seq for c in live}
        parts = [p for p in self.parts(view.name, view.version) if p.commit in chosen]
        # the merge runs outside the log lock (writers go on); the commit re-checks `live`
        log.root.joinpath(PARTS).mkdir(parents=True, exist_ok=True)
        rel, path = log.new_part_path()
        rows = sum(c.rows for c in live)

        def write(tmp: Path) -> None:
            # a big merge's write-back must not stall the writers' fsyncs meanwhile (_trickle)
            with trickle(tmp) if rows >= TRICKLE_ROWS else contextlib.nullcontext():
                engine.merge_parts(view, parts, tmp)

        write_atomically(path, write)
        part = Part(rel, rows, compacted=True)
        first = min(_first_ingested(c) for c in live)
        meta = {
            "key_types": self.key_types(view.name, view.version),
            "compaction": True,
            "columns": [f.name for f in view.features],
            "first_ingested_us": first,
            "min_event_us": _min_opt(c.meta.get("min_event_us") for c in live),
            "max_event_us": _max_opt(c.meta.get("max_event_us") for c in live),
        }
        # the merged rows are the replaced commits' rows, all kept: so are their superseded ones
        figures = [int(c.meta[SUPERSEDES]) for c in live if c.meta.get(SUPERSEDES) is not None]
        if len(figures) == len(live):
            meta[SUPERSEDES] = sum(figures)
        elif max_rows is None:  # every live row merged: its rows that lose a tie are marked
            with contextlib.suppress(Exception):  # without the figure, the stats scan
                meta[SUPERSEDES] = _marked_rows(path)
        try:
            return log.replace([part], [c.seq for c in live], meta)
        except CommitConflict:
            path.unlink(missing_ok=True)
            raise

    def vacuum(
        self, view: FeatureView, grace_seconds: float = VACUUM_GRACE_SECONDS
    ) -> VacuumResult:
        """Delete files no live commit references and no reader in flight can still open.

        A superseded part is kept until `grace_seconds` after the commit that replaced it
        (readers that listed it before may still be reading it); every `as_of` answer stays
        exact without it, because the compacted part that replaced it keeps each row's
        ingested time. Files no commit references (left by killed writers or by a compaction
        that lost its compare-and-swap) are removed once older than `grace_seconds`, and never
        younger than `ORPHAN_MIN_AGE_SECONDS` (a writer may be about to commit them). So is a
        part whose replacement the log no longer holds in memory (`KEEP_REPLACED_SECONDS`):
        the replacement set its modification time, so the grace counts from it all the same.
        """
        import shutil
        import time

        log = self.log(view.name, view.version)
        parts_dir = log.root / PARTS
        if not parts_dir.exists():
            return VacuumResult(0, 0)
        now_s = time.time()
        cutoff_us = int((now_s - grace_seconds) * 1_000_000)
        removed = freed = 0
        # Not under the writer lock, and without a walk of the log (it grows by ~50 commits a
        # second under a stream; holding the lock for that walk stalled every push behind it):
        # a replaced commit never becomes live again, and a commit made after this snapshot
        # wrote a part file younger than the orphan age, so no file it names is removed.
        with log.compaction_slot(wait=True):
            live_files, wrote, replaced_at = log.file_fates()
            orphan_cutoff = now_s - max(grace_seconds, ORPHAN_MIN_AGE_SECONDS)
            for entry in parts_dir.iterdir():
                rel = f"{PARTS}/{entry.name}"
                if rel in live_files:
                    continue
                seq = wrote.get(rel)
                if seq is not None:
                    at = replaced_at.get(seq)
                    if at is None or at > cutoff_us:
                        continue  # live (committed after the snapshot), or read in flight
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if seq is None and st.st_mtime > orphan_cutoff:
                    continue  # a writer in flight may still commit it
                if entry.is_dir():
                    size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    size = st.st_size
                    entry.unlink(missing_ok=True)
                removed += 1
                freed += size
        return VacuumResult(removed, freed)

    def parts(self, view: str, version: int, as_of_us: int | None = None) -> list[PartRef]:
        log = self.log(view, version)
        return [r for c in log.live_commits(as_of_us) for r in _refs(log, c)]

    def commits(self, view: str, version: int, as_of_us: int | None = None) -> list[Commit]:
        return self.log(view, version).live_commits(as_of_us)

    # -- queries (the engine computes; the log says which parts) ----------------------------------
    def join(self, entities: pa.Table, spec: JoinSpec) -> pa.Table:
        """Run the point-in-time join of `entities(__rid, keys, __ts)` for one view version."""
        return self.engine.point_in_time_join(entities, spec)

    def latest_rows(
        self, view: FeatureView, as_of_us: int | None = None, limit: int | None = None
    ) -> pa.Table:
        """The tie-winning rows of a view version (what a training set can return), newest first."""
        spec = JoinSpec(
            self.parts(view.name, view.version, as_of_us),
            view.join_keys,
            [(f.name, f.name) for f in view.features],
            as_of_us=as_of_us,
        )
        return self.engine.latest_rows(spec, limit)

    def window_events(
        self,
        view: FeatureView,
        keys: pa.Table | None = None,
        start_us: int | None = None,
        as_of_us: int | None = None,
    ) -> tuple[pa.Table, int | None]:
        """The view's events (tie winners) from `start_us` on, for `keys` (None: all), visible
        at `as_of_us`; and the ingested time of the newest commit they include (a snapshot)."""
        log = self.log(view.name, view.version)
        commits = log.live_commits(as_of_us)
        snapshot = max((c.ingested_at_us for c in commits), default=None)
        # only commits with an event from start_us on: the rows of one (keys, event time) tie
        # share its event time, so a commit all older than the window neither holds a row of
        # it nor shadows one; and each part is filtered before the tie winners are chosen
        near = [
            c
            for c in commits
            if start_us is None
            or c.meta.get("max_event_us") is None
            or int(c.meta["max_event_us"]) >= start_us
        ]
        spec = JoinSpec(
            [r for c in near for r in _refs(log, c)],
            view.join_keys,
            [(f.name, f.name) for f in view.features],
            as_of_us=as_of_us,
            min_event_us=start_us,
        )
        return self.engine.window_events(spec, keys, start_us), snapshot

    def profile(self, view: FeatureView) -> dict[str, Any]:
        """Row counts, time range and per-feature statistics over all stored rows."""
        parts = self.parts(view.name, view.version)
        if isinstance(self.engine, DuckDBEngine):
            known = self.superseded_rows(view, parts)
            out = self.engine.profile(view, parts, superseded_rows=known)
            if known is None and parts:  # the scan's count: a start for the next commits'
                self.note_superseded(view, parts, out["superseded_rows"])
        else:
            out = self.engine.profile(view, parts)
        return {
            "rows": 0,
            "commits": len(self.commits(view.name, view.version)),
            "features": {},
            **out,
        }

    def holds(self, view: FeatureView, pairs: pa.Table) -> Any:
        """Which rows of `pairs` (the view's join keys and `ts`, UTC) have a stored row with the
        same keys and event time (any version of it: corrected rows included); a NumPy bool
        array. For `Check.unique(scope="view")`. Reads only the keys and event times of the
        stored rows whose keys and times are among the batch's (a filtered Parquet scan)."""
        import numpy as np
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        from featureline._sql import EVENT_TS

        out = np.zeros(pairs.num_rows, dtype=bool)
        parts = self.parts(view.name, view.version)
        if not parts or not pairs.num_rows:
            return out
        keys = view.join_keys
        cond = ds.field(EVENT_TS).isin(pc.unique(pairs.column("ts")))
        for k in keys:
            cond = cond & ds.field(k).isin(pc.unique(pairs.column(k)))
        found = ds.dataset([p.path for p in parts], format="parquet").to_table(
            columns=[*keys, EVENT_TS], filter=cond
        )
        if not found.num_rows:
            return out
        found = found.rename_columns([*keys, "ts"]).group_by([*keys, "ts"]).aggregate([])
        probe = pairs.select([*keys, "ts"]).append_column(
            "__pos", pa.array(np.arange(pairs.num_rows, dtype=np.int64))
        )
        hit = probe.join(found, keys=[*keys, "ts"], join_type="left semi")
        out[hit.column("__pos").to_numpy()] = True
        return out

    def close(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.stop()
            self._housekeeper = None
        if self._merge_engine is not None and self._merge_engine is not self.engine:
            self._merge_engine.close()
        self._merge_engine = None
        self.engine.close()
