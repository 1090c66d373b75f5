"""Atomic ingestion: a failure at any point leaves the whole batch or nothing visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import featureline as fl
from featureline.offline._log import ViewLog
from tests.helpers import driver_defs, new_store, rows, utc


def _n(store: fl.FeatureStore) -> int:
    return int(store.describe("driver_stats")["rows"])


def test_failure_before_commit_line_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, *driver_defs())
    store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.1]))

    def boom() -> None:
        raise OSError("disk full (simulated)")

    view = store.get_feature_view("driver_stats")
    with pytest.raises(OSError, match="simulated"):
        store.offline.ingest(
            view, rows([2, 3], [utc(2025, 1, 1)] * 2, [0.2, 0.3]), before_commit=boom
        )
    assert _n(store) == 1  # the written part is not visible
    r = store.ingest("driver_stats", rows([4], [utc(2025, 1, 1)], [0.4]))
    assert r.commit == 2 and _n(store) == 2


def test_torn_log_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.1]))
    log = store.offline.log("driver_stats", 1)
    with open(log.log_path, "a") as fh:
        fh.write('{"seq": 2, "ingested_at_us": 1, "par')  # a crash mid-append
    assert len(ViewLog(log.root).commits()) == 1
    r = store.ingest("driver_stats", rows([2], [utc(2025, 1, 1)], [0.2]))
    assert r.commit == 2
    assert [c.seq for c in ViewLog(log.root).commits()] == [1, 2]


def test_ingested_at_strictly_increases(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    times = [
        store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [0.1])).ingested_at
        for i in range(5)
    ]
    assert times == sorted(times) and len(set(times)) == 5


_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    import numpy as np, pyarrow as pa
    import featureline as fl
    store = fl.FeatureStore(sys.argv[1])
    n = 200_000
    t = pa.table({
        "driver_id": pa.array(np.arange(n) % 1000, pa.int64()),
        "event_timestamp": pa.array(np.full(n, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")),
        "rate": np.random.default_rng(0).random(n),
        "trips": pa.array(np.arange(n), pa.int64()),
    })
    print("ready", flush=True)
    while True:
        store.ingest("driver_stats", t)
    """
)


@pytest.mark.slow
def test_sigkill_mid_ingest_never_half_visible(tmp_path: Path) -> None:
    repo = new_store(tmp_path, *driver_defs()).repo_path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    singles = 0
    for delay in (0.3, 0.7, 1.1):
        with subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(repo)], stdout=subprocess.PIPE, env=env
        ) as p:
            assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
        with fl.FeatureStore(repo) as fresh:
            n = _n(fresh)
            assert (n - singles) % 200_000 == 0, f"half-visible batch: {n - singles} rows"
            fresh.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.1]))  # still takes writes
            singles += 1
            assert _n(fresh) == n + 1
    assert n - singles + 1 >= 200_000, "the writer never committed a batch: the test proved nothing"


def _commit(log: ViewLog, i: int, key: str | None = None) -> None:
    log.commit(lambda: [], meta={"n": i}, idempotency_key=key)


def test_the_log_is_parsed_incrementally_and_agrees_with_a_fresh_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featureline.offline import _log

    writer, reader = ViewLog(tmp_path / "v1"), ViewLog(tmp_path / "v1")
    for i in range(50):
        _commit(writer, i, key=f"k{i}" if i % 2 else None)
    assert len(reader.commits()) == len(reader.live_commits()) == 50
    parsed = []
    real = _log.Commit.from_json
    monkeypatch.setattr(_log.Commit, "from_json", lambda line: parsed.append(1) or real(line))
    _commit(writer, 50, key="k50")
    parsed.clear()  # (the writer read the line before its own)
    assert [c.meta["n"] for c in reader.live_commits()] == list(range(51))
    assert len(parsed) == 1  # the new line only (a full parse read all 51)
    assert reader.first().meta["n"] == 0 and reader.last().meta["n"] == 50
    assert reader.find_key("k50") is not None and reader.find_key("k7").meta["n"] == 7
    assert reader.find_key("k8") is None
    # a torn tail (a writer killed mid-line) is not read; the next commit cuts it and appends
    with open(writer.log_path, "a", encoding="utf-8") as fh:
        fh.write('{"seq": 99, "ingested_at_us"')
    assert len(reader.commits()) == len(reader.live_commits()) == 51
    _commit(writer, 51)
    fresh = ViewLog(tmp_path / "v1").commits()
    assert [c.seq for c in reader.commits()] == [c.seq for c in fresh] == list(range(1, 53))
    assert [c.seq for c in writer.commits()] == list(range(1, 53))


def test_a_log_replaced_by_another_file_is_read_again(tmp_path: Path) -> None:
    import shutil

    reader = ViewLog(tmp_path / "v1")
    for i in range(3):
        _commit(ViewLog(tmp_path / "v1"), i)
    assert len(reader.commits()) == 3
    shutil.rmtree(tmp_path / "v1")
    for i in range(5):
        _commit(ViewLog(tmp_path / "v1"), 10 + i)
    assert [c.meta["n"] for c in reader.commits()] == [10, 11, 12, 13, 14]
