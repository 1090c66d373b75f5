"""The SQLite metadata store passes the metadata contract, plus SQLite specifics."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from featureline.errors import ConfigError, NotFoundError, StorageError
from featureline.pipelines.metadata import MetadataStore, open_metadata_store
from featureline.pipelines.metadata.sqlite import SqliteMetadataStore
from featureline.testing.metadata_contract import (
    MetadataStoreContract,
    ModelRegistryContract,
    make_ref,
)


class TestSqliteMetadataStore(MetadataStoreContract, ModelRegistryContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[MetadataStore]:
        s = SqliteMetadataStore(tmp_path / "nested" / "metadata.db")
        yield s
        s.close()


def test_file_is_wal_and_stores_utc_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    with SqliteMetadataStore(path) as store:
        assert not store.capabilities.shared
        run_id = store.create_run("p", {})
        created = store.get_run(run_id)["created_at"]
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        (us,) = con.execute("SELECT created_at FROM featureline_meta_runs").fetchone()
    finally:
        con.close()
    assert isinstance(us, int) and us == int(created.timestamp() * 1_000_000)


def test_namespaces_in_one_file_are_separate(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    with SqliteMetadataStore(path, "a") as a, SqliteMetadataStore(path, "b") as b:
        run_id = a.create_run("p", {})
        a.start_step(run_id, "s", "shared-key", {})
        a.finish_step(run_id, "s", "succeeded", {"o": make_ref(1)}, None, None, None, 1)
        a.add_lineage("x", "1", "y", "2", "r")
        assert b.list_runs() == [] and b.lineage("y", "2") == []
        assert a.find_cached("shared-key") == {"o": make_ref(1)}
        assert b.find_cached("shared-key") is None
        with pytest.raises(NotFoundError, match="does not exist"):
            b.get_run(run_id)


def test_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "metadata.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"metadata\.db"):
        SqliteMetadataStore(bogus)


@pytest.mark.parametrize(
    ("location", "expected"),
    [("metadata.db", "base/metadata.db"), ("sqlite:///data/m.db", "base/data/m.db")],
)
def test_open_metadata_store_relative_paths(tmp_path: Path, location: str, expected: str) -> None:
    store = open_metadata_store(location, tmp_path / "base", "proj")
    try:
        assert isinstance(store, SqliteMetadataStore)
        assert store.path == tmp_path / expected and store.namespace == "proj"
    finally:
        store.close()


def test_open_metadata_store_absolute_path(tmp_path: Path) -> None:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'abs.db'}", tmp_path / "other", "p")
    try:
        assert isinstance(store, SqliteMetadataStore) and store.path == tmp_path / "abs.db"
    finally:
        store.close()


@pytest.mark.parametrize("location", ["mysql://u@h/db", "sqlite://", "  "])
def test_open_metadata_store_rejects_unknown_forms(tmp_path: Path, location: str) -> None:
    with pytest.raises(ConfigError, match="sqlite:///"):
        open_metadata_store(location, tmp_path, "p")
