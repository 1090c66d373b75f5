"""A big merge flushes its file as it writes it (`offline._trickle`), so the write-back of
hundreds of MB never lands at once in the journal commit of a push's small fsync."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from featureline.offline import _trickle
from featureline.offline import store as offline_store


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    synced: list[int] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(_trickle.os, "fdatasync", spy)
    return synced


def test_a_file_is_flushed_each_time_it_grew_by_the_flush_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = _count_syncs(monkeypatch)
    path = tmp_path / "big.tmp"
    with _trickle.trickle(path, flush_bytes=1 << 16), open(path, "wb") as fh:
        for _ in range(8):
            fh.write(b"x" * (1 << 16))
            fh.flush()
            time.sleep(0.05)  # > POLL_SECONDS: the flusher sees each step
    assert len(synced) >= 6, synced  # once per 64 KiB written (8 steps)
    assert all(b - a >= 1 << 16 for a, b in itertools.pairwise(synced)), synced
    assert path.stat().st_size == 8 << 16


def test_the_flusher_never_fails_the_block(tmp_path: Path) -> None:
    """No file ever created, or one removed while it is watched: the block's result stands."""
    with _trickle.trickle(tmp_path / "never.tmp", flush_bytes=1):
        time.sleep(0.03)
    path = tmp_path / "gone.tmp"
    with _trickle.trickle(path, flush_bytes=1):
        path.write_bytes(b"abc")
        time.sleep(0.03)
        path.unlink()
        time.sleep(0.03)


def test_a_merge_of_many_rows_flushes_as_it_writes_a_small_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import driver_defs, new_store, rows, utc

    watched: list[str] = []
    real = offline_store.trickle

    @contextlib.contextmanager
    def spy(path: Path, flush_bytes: int | None = None):  # type: ignore[no-untyped-def]
        watched.append(path.name)
        with real(path, flush_bytes):
            yield

    monkeypatch.setattr(offline_store, "trickle", spy)
    monkeypatch.setattr(offline_store, "TRICKLE_ROWS", 10)
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    view = store.get_feature_view("driver_stats")
    for i in range(3):
        store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [float(i)]))
    store.offline.compact(view)  # 3 rows: below TRICKLE_ROWS
    assert watched == []
    for i in range(12):
        store.ingest("driver_stats", rows([100 + i], [utc(2025, 1, 2)], [float(i)]))
    (merged,) = [store.offline.compact(view)]  # 15 rows
    assert merged is not None and watched[-1] == merged.parts[0].file.split("/")[-1] + ".tmp"
    assert store.describe("driver_stats")["rows"] == 15
