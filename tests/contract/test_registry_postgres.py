"""The PostgreSQL registry passes the registry contract; projects sharing a database stay apart."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from featureline.errors import MissingExtraError, StorageError
from featureline.registry import RegistryStore, open_registry
from featureline.registry.postgres import TABLE, PostgresRegistry, redact
from featureline.testing.registry_contract import RegistryContract, make_snapshot

pytestmark = pytest.mark.integration


def _drop_project(url: str, project: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DELETE FROM {TABLE} WHERE project = %s", (project,))


@pytest.fixture
def project(postgres_url: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex}"
    yield name
    _drop_project(postgres_url, name)


class TestPostgresRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, postgres_url: str, project: str) -> Iterator[RegistryStore]:
        store = PostgresRegistry(postgres_url, project)
        yield store
        store.close()


def test_projects_sharing_a_database_are_separate(postgres_url: str, project: str) -> None:
    other = f"{project}-other"
    try:
        with (
            PostgresRegistry(postgres_url, project) as a,
            PostgresRegistry(postgres_url, other) as b,
        ):
            assert a.capabilities.shared
            a.append(make_snapshot(1), [])
            a.append(make_snapshot(2), [])
            assert b.latest() is None
            assert b.append(make_snapshot(3), []).version == 1
            assert [v.version for v in a.history()] == [1, 2]
            assert b.get(1).snapshot == make_snapshot(3)
    finally:
        _drop_project(postgres_url, other)


def test_open_registry_by_url(postgres_url: str, project: str, tmp_path: Path) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        reg = open_registry(url, project, tmp_path)
        try:
            assert isinstance(reg, PostgresRegistry)
            assert reg.project == project
            assert reg.latest() is None
        finally:
            reg.close()
    assert not list(tmp_path.iterdir())


def test_unreachable_server_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="Cannot connect") as info:
        PostgresRegistry("postgresql://nobody:secret@127.0.0.1:1/none", "p", connect_timeout=2)
    assert "secret" not in str(info.value)


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=r"featureline\[postgres\]"):
        PostgresRegistry("postgresql://u@h/db", "p")
