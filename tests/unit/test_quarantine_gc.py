"""Orphan quarantine files (a crash between the file and its commit) are removed by
`featureline quarantine gc` once older than the grace period; confirmed files and young ones (a
write in flight in another process) stay."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

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
