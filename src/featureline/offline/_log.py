"""The commit log of one feature view version: Parquet parts plus an append-only JSON-lines log.

A batch is visible only once its line is in the log. Parts are written to a temporary name,
fsynced and renamed before the line is appended (and fsynced), so a crash at any point leaves
either the whole batch or nothing visible. A torn last line is ignored by readers and cut off
by the next writer. Writers of one view serialise on a file lock; `ingested_at` is assigned
under that lock at commit time and strictly increases.

Every append is a compare-and-swap against the log as it is under the lock: a commit that
replaces others (a compaction) lands only if every commit it replaces is still live, else it
raises `CommitConflict` and leaves no trace; a commit with an idempotency key that is already
in the log is not appended again (the first commit answers).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import replace as with_fields
from pathlib import Path
from typing import Any, Protocol

from featureline._time import now_us
from featureline.errors import CommitConflict

_logger = logging.getLogger("featureline.offline")
LOG = "_log.jsonl"
LOCK = "_lock"
_HEAD = 96  # bytes of the log's first line that identify it
COMPACT_LOCK = "_compact.lock"
PARTS = "parts"


@dataclass(frozen=True)
class Part:
    file: str  # relative to the view directory
    rows: int
    compacted: bool = False  # a compacted part carries per-row __ingested_at


@dataclass(frozen=True)
class Commit:
    seq: int
    ingested_at_us: int
    parts: list[Part]
    rows: int
    meta: dict[str, Any] = field(default_factory=dict)
    replaces: list[int] = field(default_factory=list)  # commits a compaction supersedes

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ingested_at_us": self.ingested_at_us,
            "parts": [p.__dict__ for p in self.parts],
            "rows": self.rows,
            "meta": self.meta,
            "replaces": self.replaces,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Commit:
        return cls.from_dict(json.loads(line))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Commit:
        return cls(
            d["seq"],
            d["ingested_at_us"],
            [Part(**p) for p in d["parts"]],
            d["rows"],
            d.get("meta", {}),
            d.get("replaces", []),
        )


class TableLog(Protocol):
    """The table side of the offline store, one view version: what a second table format (an
    open one on object storage, e.g. Delta Lake) implements so the engine need not change.

    Every change is a compare-and-swap against the log as it is at commit time."""

    def commit(
        self,
        write_parts: Callable[[], list[Part]],
        meta: dict[str, Any] | None = None,
        replaces: list[int] | None = None,
        before_append: Callable[[], Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Commit:
        """Append one commit (parts become visible at once); the same idempotency key twice is one commit."""
        ...

    def replace(self, parts: list[Part], replaces: list[int], meta: dict[str, Any]) -> Commit:
        """Replace live commits by `parts`, only if every one is still live (else `CommitConflict`)."""
        ...

    def live_commits(self, as_of_us: int | None = None) -> list[Commit]:
        """The commits a reader at system time `as_of_us` (now when None) must read."""
        ...

    def find_key(self, key: str) -> Commit | None:
        """The commit written with idempotency key `key`, if any."""
        ...


KEYS_KEPT = 50_000
"""Idempotency keys a view version's log remembers (the newest): a write retried with its key
within the next 50,000 commits is that commit again. (A stream worker makes ~50 commits a
second, so ~17 minutes; a batch redelivered later than that is committed once more, and the tie
rule keeps each of its rows once, so no value changes.) Bounds the memory of a long-lived
writer, which before held every commit the log ever had."""

KEEP_REPLACED_SECONDS = 120.0
"""How long after a commit was replaced the log keeps its part files and replacement time in
memory, for vacuum. Beyond it vacuum judges a replaced file by its modification time, which the
replacement set (`_mark_replaced`): like an unreferenced file, it is removed once older than the
grace and than `ORPHAN_MIN_AGE_SECONDS`. (A stream's merges replace ~100 commits a second: held
for the hour of vacuum's grace, their files were ~0.5 KB a push of memory that grew for that
hour.)"""

CHECKPOINT_LINES = 50_000
"""A log with this many lines (and at least twice as many as live commits) is rewritten by the
commit that reaches it (`ViewLog._checkpoint`): its size, and the time a new process takes to
read it, stay bounded (a stream appends ~50 lines a second, ~25 MB per 50,000; bench_log.py
--checkpoint measures the rewrite and the first read before and after)."""
_CHECKPOINT = '{"checkpoint"'  # how a checkpoint's header line starts

_Slim = tuple[int, int, int, int | None]  # a replaced commit's key entry: seq, time, rows, ties


def _slim(c: Commit) -> _Slim:
    """What `find_key` needs of a replaced commit (its parts may be vacuumed): its seq, time,
    rows and in-batch ties, as a tuple (~0.1 KB; the commit object held ~1 KB)."""
    return (c.seq, c.ingested_at_us, c.rows, c.meta.get("shadowed_in_batch"))


def _unslim(key: str, s: _Slim) -> Commit:
    """The commit `find_key` returns for a slim entry: no parts, the key and in-batch ties."""
    meta: dict[str, Any] = {"idempotency_key": key}
    if s[3] is not None:
        meta["shadowed_in_batch"] = s[3]
    return Commit(s[0], s[1], [], s[2], meta)


def _mark_replaced(root: Path, replaced: list[Commit]) -> None:
    """Set the modification time of the replaced commits' part files to now: once the log has
    forgotten the replacement (`KEEP_REPLACED_SECONDS`), vacuum's grace counts from it."""
    for c in replaced:
        for p in c.parts:
            with contextlib.suppress(FileNotFoundError):
                os.utime(root / p.file)


@dataclass(frozen=True)
class _Parsed:
    """What a read of the log found: its stat key and first bytes (to tell a grown log from a
    new one), the bytes read, and what is derived from the lines, in bounded memory: the first
    and last commits, the live ones, the newest `KEYS_KEPT` idempotency keys, the part files
    and replacement times of commits replaced in the last `KEEP_REPLACED_SECONDS`, and the
    quarantine batch each commit that stored one names. Not every commit: a stream appends
    ~50 a second, forever."""

    stat: tuple[int, int, int]
    head: bytes
    read: int
    first: Commit | None
    last: Commit | None
    keys: OrderedDict[str, Commit | _Slim | _Pending]  # the newest KEYS_KEPT; added to in place
    live: tuple[Commit, ...]
    files: dict[str, int]  # part file -> the commit that wrote it (live or recently replaced)
    replaced_at: dict[int, int]  # seq -> when the commit replacing it landed (recently)
    quarantine: dict[int, str]  # seq -> the quarantine batch its commit stored
    expiry: deque[tuple[int, int, tuple[str, ...]]]  # (replaced at, seq, files), oldest first
    lines: int = 0  # commit lines in the file (a checkpoint rewrites it: `ViewLog.checkpoint`)

    def extended(
        self,
        new: list[Commit],
        stat: tuple[int, int, int],
        head: bytes,
        read: int,
        header: dict[str, Any] | None = None,
    ) -> _Parsed:
        """This, with the commits `new` appended. What a reader on another thread may hold is
        not changed where it matters: the live commits are a new tuple; the maps are added to
        in place (a key found early names a commit the file holds) and pruned by age or count.
        Live commits are updated by the new ones alone (a merge replaces only live commits:
        `commit` checks it)."""
        grown = bool(self.read)
        keys = self.keys if grown else OrderedDict()
        files = self.files if grown else {}
        replaced_at = self.replaced_at if grown else {}
        quarantine = self.quarantine if grown else {}
        expiry = self.expiry if grown else deque()
        live = {c.seq: c for c in self.live}  # in commit order; a merge pops what it replaces
        first = self.first if grown else None
        if header is not None:  # a checkpointed file: what it keeps of the commits it dropped
            first = Commit.from_dict(header["first"]) if header.get("first") else None
            for k, slim in header["keys"]:
                keys[k] = (
                    _slim(Commit.from_dict(slim)) if isinstance(slim, dict) else _Pending(slim)
                )
            for seq, at, gone_files in header["replaced"]:
                replaced_at[seq] = at
                expiry.append((at, seq, tuple(gone_files)))
                for f in gone_files:
                    files[f] = seq
            quarantine.update({int(q): b for q, b in header["quarantine"].items()})
        for c in new:
            k = c.meta.get("idempotency_key")
            if k is not None:
                held = keys.get(k)
                if held is None:
                    keys[k] = c
                    if len(keys) > KEYS_KEPT:
                        keys.popitem(last=False)
                elif isinstance(held, _Pending) and held.seq == c.seq:
                    keys[k] = c  # the live commit a checkpoint's header named, in its place
            q = c.meta.get("quarantine")
            if q is not None:
                quarantine[c.seq] = q
            for p in c.parts:
                files.setdefault(p.file, c.seq)
            for r in c.replaces:
                x = live.pop(r, None)
                if x is not None:
                    replaced_at.setdefault(x.seq, c.ingested_at_us)
                    expiry.append((c.ingested_at_us, x.seq, tuple(p.file for p in x.parts)))
                    xk = x.meta.get("idempotency_key")
                    if xk is not None and keys.get(xk) is x:
                        keys[xk] = _slim(x)  # its parts and schema facts are not needed now
            live[c.seq] = c
        if new:
            cutoff = new[-1].ingested_at_us - int(KEEP_REPLACED_SECONDS * 1_000_000)
            while expiry and expiry[0][0] < cutoff:
                _, seq, gone_files = expiry.popleft()
                replaced_at.pop(seq, None)
                for f in gone_files:
                    if files.get(f) == seq:
                        del files[f]
        first = first if first is not None else (new[0] if new else None)
        last = new[-1] if new else self.last
        return _Parsed(
            stat,
            head[:read],
            read,
            first,
            last,
            keys,
            tuple(live.values()),
            files,
            replaced_at,
            quarantine,
            expiry,
            (self.lines if grown else 0) + len(new),
        )


@dataclass(frozen=True)
class _Pending:
    """A key a checkpoint's header names for a live commit, whose own line follows."""

    seq: int
    meta: dict[str, Any] = field(default_factory=dict)


_EMPTY = _Parsed((0, 0, 0), b"", 0, None, None, OrderedDict(), (), {}, {}, {}, deque())


class ViewLog:
    """Commits of one view version, stored under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: _Parsed | None = None

    @property
    def log_path(self) -> Path:
        return self.root / LOG

    def _parsed(self) -> _Parsed:
        """The log, parsed incrementally: it only grows (a torn tail is cut back to the last
        whole line, which was never read), so only the lines appended since are parsed, and
        what is derived from it (idempotency keys, live commits) is updated by them alone: a
        push costs the same whatever the length of the log (a stream appends ~50 a second)."""
        try:
            st = self.log_path.stat()
        except FileNotFoundError:
            return _EMPTY
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cache = self._cache
        if cache is not None and cache.stat == key:
            return cache
        with open(self.log_path, "rb") as fh:
            head = fh.read(_HEAD)
            # the same file grown (a log removed and made again can reuse the inode number; its
            # first line, holding the first commit's time, tells them apart)
            grown = cache is not None and st.st_size >= cache.read and head.startswith(cache.head)
            fh.seek(cache.read if grown and cache is not None else 0)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # the text after the last newline is torn or being written
        lines = [x for x in data[:end].decode("utf-8").split("\n") if x.strip()]
        header = None
        if not grown and lines and lines[0].startswith(_CHECKPOINT):
            header = json.loads(lines.pop(0))
        new = [Commit.from_json(x) for x in lines]
        base = cache if grown and cache is not None else _EMPTY
        parsed = base.extended(new, key, head, base.read + end, header)
        self._cache = parsed
        return parsed

    def commits(self) -> list[Commit]:
        """Every commit in the log, oldest first (a torn last line is ignored): a full read of
        the file, for inspection and tests (`live_commits`, `first`, `last` and `find_key` are
        what reads and writes use: they cost the same whatever the length of the log)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        lines = data[:end].decode("utf-8").split("\n")
        return [Commit.from_json(x) for x in lines if x.strip() and not x.startswith(_CHECKPOINT)]

    def first(self) -> Commit | None:
        """The first commit (its meta holds the key types every later batch must match)."""
        return self._parsed().first

    def last(self) -> Commit | None:
        """The newest commit."""
        return self._parsed().last

    def quarantine_batch(self, seq: int) -> str | None:
        """The quarantine batch commit `seq` stored with it, if any."""
        return self._parsed().quarantine.get(seq)

    def live_commits(self, as_of_us: int | None = None) -> list[Commit]:
        """The commits a reader at system time `as_of_us` (now when None) must read.

        Always the commits live *now* (superseded ones may have been vacuumed): a compacted
        part keeps each row's ingested time, so rows ingested after `as_of_us` are filtered
        out row by row; a plain commit is read only if it was ingested by then.
        """
        live = list(self._parsed().live)
        if as_of_us is not None:
            live = [c for c in live if _first_ingested_us(c) <= as_of_us]
        return live

    def file_fates(self) -> tuple[set[str], dict[str, int], dict[int, int]]:
        """For vacuum, without a walk of the log: the part files of live commits, the commit
        that wrote each part file, and when each replaced commit was replaced."""
        p = self._parsed()
        return {f.file for c in p.live for f in c.parts}, p.files, p.replaced_at

    def find_key(self, key: str) -> Commit | None:
        """The commit written with idempotency key `key`, if any, among the newest `KEYS_KEPT`
        (replaced ones included, without their parts)."""
        c = self._parsed().keys.get(key)
        if isinstance(c, tuple):
            return _unslim(key, c)
        return c if isinstance(c, Commit) else None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The view's writer lock (commits serialise on it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def new_part_path(self) -> tuple[str, Path]:
        rel = f"{PARTS}/part-{uuid.uuid4().hex}.parquet"
        return rel, self.root / rel

    @contextmanager
    def compaction_slot(self, wait: bool) -> Iterator[bool]:
        """One compactor per view at a time; with `wait=False` yields False when it is taken."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / COMPACT_LOCK, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def commit(
        self,
        write_parts: Callable[[], list[Part]],
        meta: dict[str, Any] | None = None,
        replaces: list[int] | None = None,
        before_append: Callable[[], Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Commit:
        """Write parts (under the lock), then make them visible with one log line.

        Raises `CommitConflict` (after removing what `write_parts` wrote) when a commit in
        `replaces` is no longer live. With `idempotency_key` already in the log, nothing is
        written and the earlier commit is returned.
        """
        with self.locked():
            (self.root / PARTS).mkdir(parents=True, exist_ok=True)
            self._repair_torn_tail()
            if idempotency_key is not None:
                earlier = self.find_key(idempotency_key)
                if earlier is not None:
                    return earlier
            prev = self.last()
            parts = write_parts()
            if replaces:
                live = {c.seq: c for c in self.live_commits()}
                stale = sorted(s for s in replaces if s not in live)
                if stale:
                    for p in parts:
                        (self.root / p.file).unlink(missing_ok=True)
                    raise CommitConflict(f"commits {stale} of {self.root} were replaced meanwhile")
                _mark_replaced(self.root, [live[s] for s in replaces])
            if idempotency_key is not None:
                meta = {**(meta or {}), "idempotency_key": idempotency_key}
            last_us = prev.ingested_at_us if prev else 0
            seq = prev.seq + 1 if prev else 1
            c = Commit(
                seq,
                max(now_us(), last_us + 1),
                parts,
                sum(p.rows for p in parts),
                meta or {},
                replaces or [],
            )
            if before_append is not None:  # may name facts to keep in the commit's meta
                extra = before_append()
                if isinstance(extra, dict) and extra:
                    c = with_fields(c, meta={**c.meta, **extra})
            created = prev is None and not self.log_path.exists()
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(c.to_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if created:  # a new name in the folder (an append to the log is not one)
                _fsync_dir(self.root)
            try:  # after the commit point: a failed rewrite leaves the log as it was, and says so
                read = self._parsed()
                if read.lines >= CHECKPOINT_LINES and read.lines >= 2 * len(read.live):
                    self._checkpoint(read)
            except Exception as e:
                _logger.warning(
                    "checkpoint of %s failed (retried by the next commit): %s", self.log_path, e
                )
            return c

    def _checkpoint(self, p: _Parsed) -> None:
        """Rewrite the log (under the writer lock) as one header line, holding what must outlive
        the commits it drops, then the live commits' lines: the first commit (its key types),
        the newest idempotency keys (slim; a live commit's named by its seq, whose line
        follows), the part files and replacement times of the recently replaced commits (for
        vacuum) and every commit's quarantine batch. A fresh parse of it gives what an
        incremental one had (`tests/unit/test_log_incremental.py`). Written to a temporary
        file, fsynced, renamed over the log: a reader has the old file or the new one; its
        cache is keyed by the file's inode and first bytes (the header's id), so it re-reads."""
        live = {c.seq for c in p.live}
        keys: list[list[Any]] = []
        for k, c in p.keys.items():
            if isinstance(c, tuple):
                keys.append([k, _unslim(k, c).to_dict()])
            elif isinstance(c, _Pending) or c.seq in live:
                keys.append([k, c.seq])
            else:
                keys.append([k, _unslim(k, _slim(c)).to_dict()])
        header = {
            "checkpoint": uuid.uuid4().hex,  # first: the bytes that tell this file from others
            "at_us": now_us(),
            "first": p.first.to_dict() if p.first is not None else None,
            "keys": keys,
            "replaced": [[seq, at, list(fs)] for at, seq, fs in p.expiry],
            "quarantine": {str(q): b for q, b in p.quarantine.items()},
        }
        body = "".join(c.to_json() + "\n" for c in p.live)

        def write(tmp: Path) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(header, separators=(",", ":")) + "\n" + body)

        write_atomically(self.log_path, write)
        self._cache = None

    def replace(self, parts: list[Part], replaces: list[int], meta: dict[str, Any]) -> Commit:
        """Commit `parts` in place of the commits `replaces`, if all are still live (compaction)."""
        return self.commit(lambda: parts, meta=meta, replaces=replaces)

    def _repair_torn_tail(self) -> None:
        try:
            with open(self.log_path, "rb+") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return
                fh.seek(size - 1)
                if fh.read(1) == b"\n":
                    return  # whole lines only (the usual case): nothing more to read
                fh.seek(0)
                data = fh.read()
                if data and not data.endswith(b"\n"):
                    fh.truncate(data.rfind(b"\n") + 1)
                    fh.flush()
                    os.fsync(fh.fileno())
        except FileNotFoundError:
            return


def _first_ingested_us(c: Commit) -> int:
    """The earliest ingested time of a row in `c` (a compaction holds older rows)."""
    if c.replaces:
        first = c.meta.get("first_ingested_us")
        return int(first) if first is not None else -(2**63)
    return c.ingested_at_us


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file (`<name>.tmp`), fsync it, then rename into place."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _conforms(log: ViewLog) -> TableLog:
    return log  # mypy proves ViewLog implements the table boundary
