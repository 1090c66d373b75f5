"""The PostgreSQL metadata store passes the metadata contract; namespaces stay apart."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from featureline.errors import MissingExtraError, NotFoundError, StorageError
from featureline.pipelines.metadata import MetadataStore, open_metadata_store
from featureline.pipelines.metadata.postgres import PostgresMetadataStore, redact
from featureline.testing.metadata_contract import (
    MetadataStoreContract,
    ModelRegistryContract,
    make_ref,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(postgres_url: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex}"
    yield name
    with PostgresMetadataStore(postgres_url, name) as store:
        store.drop_namespace()


class TestPostgresMetadataStore(MetadataStoreContract, ModelRegistryContract):
    @pytest.fixture
    def store(self, postgres_url: str, namespace: str) -> Iterator[MetadataStore]:
        s = PostgresMetadataStore(postgres_url, namespace)
        yield s
        s.close()


def test_namespaces_sharing_a_database_are_separate(postgres_url: str, namespace: str) -> None:
    with (
        PostgresMetadataStore(postgres_url, namespace) as a,
        PostgresMetadataStore(postgres_url, namespace + "-other") as b,
    ):
        try:
            assert a.capabilities.shared
            run_id = a.create_run("p", {})
            a.start_step(run_id, "s", "shared-key", {})
            a.finish_step(run_id, "s", "succeeded", {"o": make_ref(1)}, None, None, None, 1)
            a.add_lineage("x", "1", "y", "2", "r")
            assert b.list_runs() == [] and b.lineage("y", "2") == []
            assert b.find_cached("shared-key") is None
            with pytest.raises(NotFoundError):
                b.get_run(run_id)
            b.drop_namespace()
            assert a.get_run(run_id)["steps"][0]["status"] == "succeeded"
        finally:
            b.drop_namespace()


def test_open_metadata_store_by_url(postgres_url: str, namespace: str, tmp_path: Path) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        store = open_metadata_store(url, tmp_path, namespace)
        try:
            assert isinstance(store, PostgresMetadataStore) and store.namespace == namespace
            assert store.list_runs() == []
        finally:
            store.close()
    assert not list(tmp_path.iterdir())


def test_unreachable_server_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="Cannot connect") as info:
        PostgresMetadataStore("postgresql://nobody:secret@127.0.0.1:1/none", "p", connect_timeout=2)
    assert "secret" not in str(info.value)


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=r"featureline\[postgres\]"):
        PostgresMetadataStore("postgresql://u@h/db", "p")
