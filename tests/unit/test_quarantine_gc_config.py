"""The interval of the quarantine gc that `featureline serve` and `featureline stream` run is
`quarantine.gc_interval_seconds` in featureline.yaml (unset: quarantine.GC_INTERVAL_SECONDS)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import featureline as fl
from featureline.config import RepoConfig
from featureline.errors import ConfigError
from featureline.quality import quarantine
from tests.helpers import new_store, utc
from tests.unit.test_quality import _batch, _view
from tests.unit.test_quarantine_gc import _gone, _old_orphan


def _repo(tmp_path: Path, yaml: str) -> Path:
    root = tmp_path / "repo"
    fl.init_repo(root, project="t", with_data=False)
    with (root / "featureline.yaml").open("a") as f:
        f.write(yaml)
    return root


def test_the_gc_interval_is_read_from_featureline_yaml(tmp_path: Path) -> None:
    assert RepoConfig.load(_repo(tmp_path / "a", "")).quarantine_gc_seconds is None
    root = _repo(tmp_path / "b", "\nquarantine:\n  gc_interval_seconds: 600\n")
    assert RepoConfig.load(root).quarantine_gc_seconds == 600.0


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("quarantine: 60", "`quarantine` must be a mapping"),
        (
            "quarantine:\n  gc_interval_seconds: 0",
            "`quarantine.gc_interval_seconds` must be a positive number, got `0`",
        ),
        (
            "quarantine:\n  gc_interval_seconds: soon",
            "`quarantine.gc_interval_seconds` must be a positive number, got `'soon'`",
        ),
        (
            "quarantine:\n  gc_interval: 60",
            "unknown setting `quarantine.gc_interval`. Did you mean `gc_interval_seconds`?",
        ),
    ],
)
def test_a_bad_gc_interval_is_a_clear_config_error(tmp_path: Path, yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        RepoConfig.load(_repo(tmp_path, "\n" + yaml + "\n"))
    assert message in str(e.value)


def test_the_server_runs_gc_at_the_configured_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featureline.server import create_app
    from tests.integration.server_kit import ThreadServer

    monkeypatch.setattr(quarantine, "GC_INTERVAL_SECONDS", 3600.0)  # the default would not run
    store = new_store(tmp_path, *_view())
    with (store.repo_path / "featureline.yaml").open("a") as f:
        f.write("\nquarantine:\n  gc_interval_seconds: 0.2\n")
    store = fl.FeatureStore(store.repo_path)
    t = _batch([1, 2, 3], [utc(2025, 1, 1)] * 3, [5.0, -1.0, 20000.0], ["ams", "xyz", "ber"])
    r = store.ingest("payments", t)
    d = quarantine.folder(store.offline.root, "payments")
    (confirmed,) = d.glob("*.parquet")
    with ThreadServer(create_app(store)):
        assert _gone(_old_orphan(d, confirmed, f"deadbeef.c{r.commit + 7}.v1.parquet"))
        later = _old_orphan(d, confirmed, f"feed.c{r.commit + 9}.v1.parquet")
        assert _gone(later), "the server did not run gc again after gc_interval_seconds"
    shutil.rmtree(d, ignore_errors=True)
