"""Orphan quarantine files (a crash between the file and its commit) are removed by
`featureline quarantine gc` once older than the grace period; confirmed files and young ones (a
write in flight in another process) stay."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from featureline.cli import cli
from featureline.quality import quarantine
from tests.helpers import new_store, utc
from tests.unit.test_quality import _batch, _view


def test_gc_removes_old_orphans_only(tmp_path: Path) -> None:
    store = new_store(tmp_path, *_view())
    t = _batch([1, 2, 3], [utc(2025, 1, 1)] * 3, [5.0, -1.0, 20000.0], ["ams", "xyz", "ber"])
    r = store.ingest("payments", t)
    d = quarantine.folder(store.offline.root, "payments")
    (confirmed,) = d.glob("*.parquet")
    old_orphan = d / f"deadbeef.c{r.commit + 7}.v1.parquet"  # its commit never landed
    young_orphan = d / f"cafe.c{r.commit + 8}.v1.parquet"  # a write in flight elsewhere
    old_tmp = d / ".x.parquet.0123.tmp"  # an interrupted atomic write
    for f in (old_orphan, young_orphan, old_tmp):
        shutil.copy(confirmed, f)
    hour_ago = time.time() - quarantine.ORPHAN_GRACE_SECONDS - 60
    for f in (confirmed, old_orphan, old_tmp):
        os.utime(f, (hour_ago, hour_ago))
    rows_before = store.quarantine()["payments"]["rows"]
    result = CliRunner().invoke(cli, ["--repo", str(store.repo_path), "quarantine", "gc"])
    assert result.exit_code == 0, result.output
    assert "Removed 2 orphan" in result.output
    assert sorted(p.name for p in d.iterdir() if p.name != ".lock") == sorted(
        [confirmed.name, young_orphan.name]
    )
    assert store.quarantine()["payments"]["rows"] == rows_before
    assert quarantine.gc(store.offline.root, grace_seconds=0) == [young_orphan]


def _old_orphan(d: Path, like: Path, name: str) -> Path:
    f = d / name
    shutil.copy(like, f)
    past = time.time() - quarantine.ORPHAN_GRACE_SECONDS - 60
    os.utime(f, (past, past))
    return f


def _gone(f: Path, within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while f.exists():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_the_server_runs_gc_at_start_and_then_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featureline.server import create_app
    from tests.integration.server_kit import ThreadServer

    monkeypatch.setattr(quarantine, "GC_INTERVAL_SECONDS", 0.2)
    store = new_store(tmp_path, *_view())
    t = _batch([1, 2, 3], [utc(2025, 1, 1)] * 3, [5.0, -1.0, 20000.0], ["ams", "xyz", "ber"])
    r = store.ingest("payments", t)
    d = quarantine.folder(store.offline.root, "payments")
    (confirmed,) = d.glob("*.parquet")
    at_start = _old_orphan(d, confirmed, f"deadbeef.c{r.commit + 7}.v1.parquet")
    young = d / f"cafe.c{r.commit + 8}.v1.parquet"
    shutil.copy(confirmed, young)
    with ThreadServer(create_app(store)):
        assert _gone(at_start), "the server did not run gc at start"
        later = _old_orphan(d, confirmed, f"feed.c{r.commit + 9}.v1.parquet")
        assert _gone(later), "the server did not run gc again after GC_INTERVAL_SECONDS"
        assert confirmed.exists() and young.exists()


def test_a_failing_gc_is_logged_and_the_server_stays_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    from featureline.server import create_app
    from tests.integration.server_kit import ThreadServer

    def broken(offline_root: Path, grace_seconds: float = 0) -> list[Path]:
        raise OSError("disk on fire")

    monkeypatch.setattr(quarantine, "gc", broken)
    store = new_store(tmp_path, *_view())
    with (
        caplog.at_level("WARNING", logger="featureline.quality"),
        ThreadServer(create_app(store)) as url,
    ):
        end = time.monotonic() + 5
        while "disk on fire" not in caplog.text:
            assert time.monotonic() < end, "the gc failure was not logged"
            time.sleep(0.02)
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
