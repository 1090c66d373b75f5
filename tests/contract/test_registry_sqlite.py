"""The SQLite registry passes the registry contract, plus SQLite specifics and `open_registry`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from featureline.errors import ConfigError, StorageError
from featureline.registry import RegistryStore, open_registry
from featureline.registry.sqlite import SqliteRegistry
from featureline.testing.registry_contract import RegistryContract, make_snapshot


class TestSqliteRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, tmp_path: Path) -> Iterator[RegistryStore]:
        store = SqliteRegistry(tmp_path / "nested" / "dir" / "registry.db")
        yield store
        store.close()


def test_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "registry.db"
    with SqliteRegistry(path) as reg:
        assert not reg.capabilities.shared
        v = reg.append(make_snapshot(1), [], "hello")
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = con.execute(
            "SELECT version, applied_at_us, typeof(snapshot), message FROM registry_versions"
        ).fetchone()
    finally:
        con.close()
    assert row[0] == 1 and row[2] == "text" and row[3] == "hello"
    assert isinstance(row[1], int)
    assert row[1] == (v.applied_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_unopenable_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="registry"):
        SqliteRegistry(blocker / "registry.db")


def test_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "registry.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"registry\.db"):
        SqliteRegistry(bogus)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("registry.db", "base/registry.db"),
        ("data/registry.db", "base/data/registry.db"),
        ("sqlite:///data/r.db", "base/data/r.db"),
    ],
)
def test_open_registry_relative_paths(tmp_path: Path, location: str, expected: str) -> None:
    reg = open_registry(location, "p", tmp_path / "base")
    try:
        assert isinstance(reg, SqliteRegistry)
        assert reg.path == tmp_path / expected
        assert reg.path.exists()
    finally:
        reg.close()


def test_open_registry_absolute_paths(tmp_path: Path) -> None:
    for location in (str(tmp_path / "abs.db"), f"sqlite:///{tmp_path / 'abs2.db'}"):
        reg = open_registry(location, "p", tmp_path / "elsewhere")
        try:
            assert isinstance(reg, SqliteRegistry)
            assert reg.path.is_absolute() and reg.path.parent == tmp_path
        finally:
            reg.close()


@pytest.mark.parametrize("location", ["mysql://u@h/db", "s3://bucket/registry.db", "sqlite://", ""])
def test_open_registry_rejects_unknown_forms(tmp_path: Path, location: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_registry(location, "p", tmp_path)
    assert "sqlite:///" in str(info.value)
