"""The quarantine: rows a `quarantine` gate kept out of the offline store, with their reasons.

Layout: `data/quarantine/<view>/<batch>.parquet` next to the offline store, one file per
batch, written atomically (temporary file, fsync, rename). Each row holds the batch's columns
as given plus `__quarantine_id` (`<batch>:<row>`), `__violations` (the constraints it
violates), `__batch_id`, `__commit` (the offline commit of the batch's good rows; null when
none landed), `__view_version` and `__quarantined_at`.

The write path stores a batch's bad rows inside its offline commit (the log's `before_append`
hook, under the view's writer lock, before the commit line): an acknowledged write has its
quarantine on disk, and a write replayed by its idempotency key quarantines nothing twice.

`replay` re-checks quarantined rows (as stored, or fixed ones carrying their
`__quarantine_id`), lands the passing ones through the write path with one idempotency key
derived from them (a retried replay is one commit), and only then removes them from the
quarantine. Rows that still fail stay, unchanged: rows replayed = landed + still quarantined.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline.definitions import FeatureView
from featureline.errors import NotFoundError, ValidationError
from featureline.quality.constraints import evaluate
from featureline.quality.gate import REASONS, ROW, Gated

__all__ = [
    "COMMIT_META",
    "ID",
    "META",
    "ReplayResult",
    "Spool",
    "folder",
    "gc",
    "gc_in_background",
    "read",
    "remove",
    "replay",
    "store",
    "summary",
]

ID = "__quarantine_id"
BATCH = "__batch_id"
COMMIT = "__commit"
VERSION = "__view_version"
AT = "__quarantined_at"
META = (ID, REASONS, BATCH, COMMIT, VERSION, AT, ROW)
_LOCK = ".lock"
_log = logging.getLogger("featureline.quality")


def root(offline_root: Path) -> Path:
    """Where the quarantine lives: next to the offline store (`data/quarantine`)."""
    return Path(offline_root).parent / "quarantine"


def folder(offline_root: Path, view: str) -> Path:
    return root(offline_root) / view


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path) -> None:
    """Make the written temporary file `tmp` the file `path`, durably (fsync, rename, fsync)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_atomically(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    _publish(tmp, path)


@contextmanager
def _locked(d: Path) -> Iterator[None]:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / _LOCK, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def batch_name(idempotency_key: str | None) -> str:
    """A batch's quarantine name: from its idempotency key (a retry rewrites the same file)."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    return "k" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:31]


def _with_meta(
    bad: pa.Table | pa.RecordBatch, view: FeatureView, commit: int | None, batch: str, at_us: int
) -> pa.Table:
    """`bad` (the gate's bad rows: the batch's columns, REASONS and ROW) with the meta columns."""
    n = bad.num_rows
    rows = bad.column(ROW).to_numpy()
    ids = pa.array([f"{batch}:{int(r)}" for r in rows], pa.string())
    meta = {
        ID: ids,
        BATCH: pa.array([batch] * n, pa.string()),
        COMMIT: pa.array([commit] * n, pa.int64()),
        VERSION: pa.array([view.version] * n, pa.int64()),
        AT: pa.array(np.full(n, at_us, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC")),
    }
    table = bad if isinstance(bad, pa.Table) else pa.Table.from_batches([bad])
    for k, v in meta.items():
        table = table.append_column(k, v)
    return table


def _path(offline_root: Path, view: FeatureView, commit: int | None, batch: str) -> Path:
    d = folder(offline_root, view.name)
    d.mkdir(parents=True, exist_ok=True)
    stem = batch if commit is None else f"{batch}.c{commit}.v{view.version}"
    return d / f"{stem}.parquet"


def store(
    offline_root: Path,
    view: FeatureView,
    gated: Gated,
    commit: int | None,
    batch: str,
    at_us: int,
) -> int:
    """Store the gate's bad rows of one batch (atomically); returns how many."""
    bad = gated.bad
    if bad is None or bad.num_rows == 0:
        return 0
    table = _with_meta(bad, view, commit, batch, at_us)
    _write_atomically(_path(offline_root, view, commit, batch), table)
    return bad.num_rows


SPOOL_BATCH_ROWS = 65_536  # rows per read of a spool when it is stored (bounds the memory)


class Spool:
    """The bad rows of a batch too large to hold (a file ingested in chunks), kept on disk as
    they come: `add` appends one chunk's to a temporary Parquet file in the view's quarantine
    folder, `store` writes them as the batch's quarantine file (read back `SPOOL_BATCH_ROWS`
    at a time, the meta columns added; atomically), `discard` removes the spool. Memory: one
    chunk's bad rows at a time. A spool left by a killed process is a temporary file that `gc`
    removes once it is `ORPHAN_GRACE_SECONDS` old."""

    def __init__(self, offline_root: Path, view: FeatureView) -> None:
        self.offline_root = offline_root
        self.view = view
        d = folder(offline_root, view.name)
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / f".spool-{uuid.uuid4().hex}.tmp"
        self.rows = 0
        self._writer: Any = None
        self._schema: pa.Schema | None = None

    def add(self, bad: pa.Table) -> None:
        import pyarrow.parquet as pq

        if bad.num_rows == 0:
            return
        if self._writer is None:
            self._schema = bad.schema
            self._writer = pq.ParquetWriter(self.path, bad.schema, compression="zstd")
        elif bad.schema != self._schema:
            bad = bad.cast(self._schema)
        self._writer.write_table(bad)
        self.rows += bad.num_rows

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def first(self) -> pa.Table | None:
        """The first rows spooled (one read), e.g. to check the batch's schema."""
        import pyarrow.parquet as pq

        self._close()
        if not self.rows:
            return None
        for b in pq.ParquetFile(self.path).iter_batches(batch_size=1024):
            return pa.Table.from_batches([b])
        return None

    def store(self, commit: int | None, batch: str, at_us: int) -> int:
        """Store the spooled rows as `store` stores a batch's; returns how many."""
        import pyarrow.parquet as pq

        self._close()
        if not self.rows:
            return 0
        path = _path(self.offline_root, self.view, commit, batch)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        writer = None
        try:
            for b in pq.ParquetFile(self.path).iter_batches(batch_size=SPOOL_BATCH_ROWS):
                t = _with_meta(b, self.view, commit, batch, at_us)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, t.schema, compression="zstd")
                writer.write_table(t)
        finally:
            if writer is not None:
                writer.close()
        _publish(tmp, path)
        return self.rows

    def discard(self) -> None:
        self._close()
        self.path.unlink(missing_ok=True)


COMMIT_META = "quarantine"
"""Key of the commit meta naming the quarantine batch stored with the commit."""
_LOGS: dict[Path, Any] = {}  # offline stores by root (logs parsed incrementally), bounded


def _confirmed(offline_root: Path, view: str, f: Path) -> bool:
    """A file `<batch>.c<seq>.v<version>` counts once commit `seq` of the view version is in the
    log and names `<batch>` (the file is written just before the commit line, under the
    writer lock); a file without a commit (every row of the batch quarantined) is the write."""
    parts = f.name[: -len(".parquet")].split(".")
    if len(parts) != 3:
        return True
    from featureline.offline.store import OfflineStore

    try:
        seq, version = int(parts[1][1:]), int(parts[2][1:])
    except ValueError:
        return True
    store = _LOGS.get(offline_root)
    if store is None:
        if len(_LOGS) >= 64:
            _LOGS.clear()
        store = _LOGS[offline_root] = OfflineStore(offline_root)  # its engine is never opened
    return store.log(view, version).quarantine_batch(seq) == parts[0]


def _files(offline_root: Path, view: str) -> list[Path]:
    """The view's quarantine files that count (see `_confirmed`), oldest name first."""
    d = folder(offline_root, view)
    if not d.is_dir():
        return []
    return [f for f in sorted(d.glob("*.parquet")) if _confirmed(offline_root, view, f)]


ORPHAN_GRACE_SECONDS = 3600.0
"""`gc` removes an unconfirmed file only once it is this old: a write in flight in another
process (its file written, its commit line not yet) is far younger than that."""


def gc(offline_root: Path, grace_seconds: float = ORPHAN_GRACE_SECONDS) -> list[Path]:
    """Remove orphan quarantine files: `<batch>.c<seq>.v<version>` files whose commit never
    landed (a crash between the file and the commit line; readers ignore them) and temporary
    files of interrupted writes, both only when older than `grace_seconds`. Returns them."""
    import time

    base = root(offline_root)
    if not base.is_dir():
        return []
    cutoff = time.time() - grace_seconds
    removed: list[Path] = []
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        with _locked(d):
            for f in sorted(d.iterdir()):
                tmp = f.name.startswith(".") and f.name.endswith(".tmp")
                if not tmp and not (f.suffix == ".parquet" and f.name.count(".") == 3):
                    continue
                try:
                    if f.stat().st_mtime >= cutoff:
                        continue  # young: possibly a write in flight elsewhere
                except FileNotFoundError:
                    continue
                if not tmp and _confirmed(offline_root, d.name, f):
                    continue
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed


GC_INTERVAL_SECONDS = 3600.0
"""How often a long-running process (`featureline serve`) runs `gc` (`gc_in_background`)."""


def gc_in_background(offline_root: Path, interval: float | None = None) -> threading.Event:
    """Run `gc` now and then every `interval` seconds (default GC_INTERVAL_SECONDS, read at each
    round) on a daemon thread, until the returned event is set. An error is logged, never
    raised: the next round tries again."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                removed = gc(offline_root)
                if removed:
                    _log.info("Quarantine gc removed %d orphan file(s)", len(removed))
            except Exception as e:  # a server stays up; the next round tries again
                _log.warning("Quarantine gc failed (retried in the next round): %s", e)
            stop.wait(GC_INTERVAL_SECONDS if interval is None else interval)

    threading.Thread(target=loop, name="featureline-quarantine-gc", daemon=True).start()
    return stop


def read(offline_root: Path, view: str) -> pa.Table | None:
    """Every quarantined row of `view`, oldest batch first (None when there are none)."""
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in _files(offline_root, view)]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    out = pa.concat_tables(tables, promote_options="permissive")
    return out.sort_by([(AT, "ascending"), (ID, "ascending")])


def summary(offline_root: Path) -> dict[str, dict[str, Any]]:
    """Per view with quarantined rows: rows, batches, oldest/newest time, count per constraint."""
    import pyarrow.parquet as pq

    out: dict[str, dict[str, Any]] = {}
    r = root(offline_root)
    if not r.is_dir():
        return out
    for d in sorted(p for p in r.iterdir() if p.is_dir()):
        files = _files(offline_root, d.name)
        if not files:
            continue
        t = pa.concat_tables(
            [pq.read_table(f, columns=[REASONS, AT]) for f in files], promote_options="permissive"
        )
        if not t.num_rows:
            continue
        reasons = pc.value_counts(pc.list_flatten(t.column(REASONS))).to_pylist()
        out[d.name] = {
            "rows": t.num_rows,
            "batches": sum(1 for f in files if pq.ParquetFile(f).metadata.num_rows),
            "oldest": pc.min(t.column(AT)).as_py(),
            "newest": pc.max(t.column(AT)).as_py(),
            "constraints": {x["values"]: int(x["counts"]) for x in reasons},
        }
    return out


def count(offline_root: Path, view: str | None = None) -> dict[str, int]:
    """Quarantined rows per view, from the file footers only (cheap: for /metrics). With `view`:
    that view's alone (the other views' files are not read; {} when it has no quarantine)."""
    import pyarrow.parquet as pq

    r = root(offline_root)
    if not r.is_dir():
        return {}
    if view is None:
        dirs = sorted(p for p in r.iterdir() if p.is_dir())
    else:
        dirs = [d for d in [folder(offline_root, view)] if d.is_dir()]
    out: dict[str, int] = {}
    for d in dirs:
        n = 0
        for f in _files(offline_root, d.name):
            try:
                n += pq.ParquetFile(f).metadata.num_rows
            except (OSError, pa.ArrowInvalid):
                continue
        out[d.name] = n
    return out


def remove(offline_root: Path, view: str, ids: set[str]) -> int:
    """Remove the rows with these ids from the quarantine (each file rewritten atomically)."""
    import pyarrow.parquet as pq

    removed = 0
    d = folder(offline_root, view)
    with _locked(d):
        for f in _files(offline_root, view):
            t = pq.read_table(f)
            gone = pc.is_in(t.column(ID), value_set=pa.array(sorted(ids), pa.string()))
            n = int(pc.sum(gone).as_py() or 0)
            if not n:
                continue
            removed += n
            if n == t.num_rows:
                f.unlink()
                _fsync_dir(d)
            else:
                _write_atomically(f, t.filter(pc.invert(gone)))
    return removed


@dataclass(frozen=True)
class ReplayResult:
    """A replay: `replayed` rows = `landed` + `still_quarantined` (the ones still failing)."""

    view: str
    replayed: int
    landed: int
    still_quarantined: int
    commit: int | None = None
    violations: dict[str, int] = field(default_factory=dict)  # of the rows still failing

    def __str__(self) -> str:
        text = f"{self.landed:,} of {self.replayed:,} quarantined row(s) of {self.view} landed"
        if self.commit:
            text += f" (commit {self.commit})"
        if self.still_quarantined:
            text += f"; {self.still_quarantined:,} still fail and stay in quarantine: " + ", ".join(
                f"{k} {v:,}" for k, v in self.violations.items()
            )
        return text


def replay(
    offline_root: Path,
    view: FeatureView,
    fixed: pa.Table | None,
    land: Callable[[pa.Table, str], Any],
) -> ReplayResult:
    """Re-check and land quarantined rows of `view` (module docstring).

    `fixed`: rows with a `__quarantine_id` column naming the quarantined row each replaces
    (e.g. the output of `featureline quarantine show VIEW --out FILE`, edited); None replays the
    rows as stored (after a constraint was relaxed). `land(rows, idempotency_key)` writes rows
    through the write path and returns its result."""
    entries = read(offline_root, view.name)
    if entries is None:
        raise NotFoundError(
            f"Feature view `{view.name}` has no quarantined rows. Fix: see `featureline quarantine list`."
        )
    if fixed is None:
        rows = entries
    else:
        if ID not in fixed.column_names:
            raise ValidationError(
                f"The fixed rows for `{view.name}` have no `{ID}` column, so they cannot be matched "
                f"to quarantined rows. Fix: start from `featureline quarantine show {view.name} --out FILE`."
            )
        known = set(entries.column(ID).to_pylist())
        ids = fixed.column(ID).to_pylist()
        unknown = sorted({str(i) for i in ids if i not in known})
        if unknown:
            raise ValidationError(
                f"{len(unknown)} fixed row(s) name no quarantined row of `{view.name}` (already "
                f"replayed?): {', '.join(f'`{u}`' for u in unknown[:5])}. Fix: export again with "
                f"`featureline quarantine show {view.name} --out FILE`."
            )
        if len(set(ids)) != len(ids):
            raise ValidationError(
                f"The fixed rows for `{view.name}` name a quarantined row twice. Fix: keep one row per `{ID}`."
            )
        rows = fixed
    ids_col = rows.column(ID)
    data = rows.drop_columns([c for c in META if c in rows.column_names])
    v = evaluate(view, data)
    bad = v.any
    good = pa.array(~bad)
    landed_ids = pc.filter(ids_col, good).to_pylist()
    commit = None
    if landed_ids:
        passing = data.filter(good)
        digest = hashlib.sha256()
        for i in sorted(landed_ids):
            digest.update(str(i).encode() + b"\0")
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, passing.schema) as w:
            w.write_table(passing)
        digest.update(sink.getvalue().to_pybytes())
        key = f"quarantine-replay:{view.name}:v{view.version}:{digest.hexdigest()}"
        result = land(passing, key)
        commit = getattr(result, "commit", None) or None
        remove(offline_root, view.name, {str(i) for i in landed_ids})
    return ReplayResult(
        view.name, rows.num_rows, len(landed_ids), int(bad.sum()), commit, v.counts()
    )
