"""Freshness (DESIGN §3): event-to-servable latency and staleness per view, and objectives.

Every online write records, per view version, how long its rows took from their event time to
being readable online (`record`, called right after the online store acknowledged the write; a
row dated ahead is servable exactly at its event time, latency 0). Records are appended as one
JSON line per write to `<data>/freshness/<view>.jsonl` (appends of a few hundred bytes are
atomic, so several processes may record at once; the file rotates at `MAX_BYTES`, one older
segment kept). `summary` merges them into a histogram with fixed buckets; the newest event time
written online gives the staleness (now - newest servable event) that a view's `freshness`
objective is checked against: reads mark values of a view that misses it `STALE`.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

BUCKETS: tuple[float, ...] = (
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
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
    math.inf,
)
"""Upper bounds (seconds) of the latency histogram; the last one catches everything."""
MAX_BYTES = 1 << 20
_EDGES = np.array(BUCKETS[:-1])


def log_dir(offline_root: Path) -> Path:
    """Where the freshness records live: next to the offline store (`data/freshness`)."""
    return Path(offline_root).parent / "freshness"


def view_key(name: str, version: int) -> str:
    return f"{name}__v{version}"


def _path(folder: Path, view: str) -> Path:
    return folder / f"{view}.jsonl"


def record(
    folder: Path, view: str, event_us: np.ndarray, ahead: int = 0, servable_us: int | None = None
) -> None:
    """Append the latencies of rows that became servable at `servable_us` (default: now), and
    of `ahead` rows staged to be served exactly at their event time (latency 0)."""
    if len(event_us) == 0 and not ahead:
        return
    now = time.time_ns() // 1000 if servable_us is None else int(servable_us)
    ev = np.asarray(event_us, dtype=np.int64)
    lat = np.maximum(now - ev, 0) / 1e6
    counts = np.bincount(np.searchsorted(_EDGES, lat, "left"), minlength=len(BUCKETS))
    counts[0] += ahead
    line = json.dumps(
        {
            "t": now,
            "n": len(ev) + ahead,
            "sum": float(lat.sum()),
            "max_event_us": int(ev.max()) if len(ev) else None,
            "counts": [int(c) for c in counts],
        },
        separators=(",", ":"),
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = _path(folder, view)
    try:
        if path.stat().st_size > MAX_BYTES:
            _rotate(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _rotate(path: Path) -> None:
    """Keep one older segment; one process rotates at a time (a lock file), the others append."""
    lock = path.with_suffix(".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if path.exists() and path.stat().st_size > MAX_BYTES:
            os.replace(path, path.with_suffix(".jsonl.1"))
    finally:
        os.close(fd)


def summary(folder: Path, view: str, now_us: int | None = None) -> dict[str, Any]:
    """The merged histogram of a view's records (both segments): count, sum, per-bucket counts
    (not cumulative), p50/p99 (the upper bound of the bucket holding them), the newest event
    written online and the staleness (now - that event)."""
    now = time.time_ns() // 1000 if now_us is None else int(now_us)
    counts = [0] * len(BUCKETS)
    n, total, newest = 0, 0.0, None
    for p in (_path(folder, view).with_suffix(".jsonl.1"), _path(folder, view)):
        try:
            text = p.read_text()
        except FileNotFoundError:
            continue
        for raw in text.splitlines():
            try:
                r = json.loads(raw)
            except ValueError:
                continue  # a torn last line of a killed writer
            n += int(r["n"])
            total += float(r["sum"])
            counts = [a + int(b) for a, b in zip(counts, r["counts"], strict=True)]
            if r.get("max_event_us") is not None:
                newest = max(newest or r["max_event_us"], r["max_event_us"])
    return {
        "count": n,
        "sum_seconds": total,
        "buckets": dict(zip(BUCKETS, counts, strict=True)),
        "p50_seconds": _quantile(counts, n, 0.5),
        "p99_seconds": _quantile(counts, n, 0.99),
        "newest_event_us": newest,
        "staleness_seconds": (now - newest) / 1e6 if newest is not None else None,
    }


def _quantile(counts: list[int], n: int, q: float) -> float | None:
    if not n:
        return None
    seen = 0
    for bound, c in zip(BUCKETS, counts, strict=True):
        seen += c
        if seen >= q * n:
            return bound
    return math.inf


class StalenessCache:
    """Per view, the newest servable event time, re-read at most every `seconds` (read path)."""

    def __init__(self, folder: Path, seconds: float = 1.0) -> None:
        self.folder, self.seconds = folder, seconds
        self._seen: dict[str, tuple[float, int | None]] = {}

    def newest_event_us(self, view: str) -> int | None:
        now = time.monotonic()
        hit = self._seen.get(view)
        if hit is None or now - hit[0] > self.seconds:
            hit = (now, _newest(self.folder, view))
            self._seen[view] = hit
        return hit[1]


def _newest(folder: Path, view: str) -> int | None:
    """The newest event written online, from the tail of the current segment (cheap)."""
    for p in (_path(folder, view), _path(folder, view).with_suffix(".jsonl.1")):
        try:
            with open(p, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 65536))
                tail = f.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            continue
        best = None
        for raw in tail:
            try:
                ev = json.loads(raw)["max_event_us"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(ev, int):
                best = ev if best is None else max(best, ev)
        if best is not None:
            return best
    return None


__all__ = ["BUCKETS", "StalenessCache", "log_dir", "record", "summary", "view_key"]
