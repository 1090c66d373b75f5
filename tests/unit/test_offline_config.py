"""`offline_store:` selects the offline engine; an unknown type or key lists the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

import featureline as fl
from featureline.errors import ConfigError
from featureline.offline.engines.duckdb import DuckDBEngine


def _repo(tmp_path: Path, offline: str) -> Path:
    repo = tmp_path / "repo"
    fl.init_repo(repo, project="cfg", with_data=False)
    cfg = repo / "featureline.yaml"
    cfg.write_text(cfg.read_text() + f"\noffline_store: {offline}\n")
    return repo


def test_duckdb_engine_is_selected_with_its_settings(tmp_path: Path) -> None:
    store = fl.FeatureStore(
        _repo(tmp_path, "{type: duckdb, path: data/off, threads: 1, memory_limit: 1GB}")
    )
    assert isinstance(store.offline.engine, DuckDBEngine)
    assert store.offline.root == tmp_path / "repo" / "data" / "off"
    assert store.offline.engine.connection().execute(
        "SELECT current_setting('threads')"
    ).fetchone() == (1,)


@pytest.mark.parametrize(
    ("offline", "message"),
    [
        ("{type: spark}", r"`offline_store.type: spark` is not an offline engine.*Valid: duckdb"),
        (
            "{type: duckdb, treads: 2}",
            r"unknown setting `offline_store.treads`.*Did you mean `threads`.*Valid: memory_limit, path, threads, type",
        ),
        ("{threads: -1}", r"`offline_store.threads` must be a positive integer"),
        ("[duckdb]", r"`offline_store` must be a mapping"),
    ],
)
def test_bad_offline_settings_are_refused(tmp_path: Path, offline: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fl.FeatureStore(_repo(tmp_path, offline))
