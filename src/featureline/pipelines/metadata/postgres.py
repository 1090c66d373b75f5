"""Pipeline metadata in PostgreSQL (psycopg 3). Namespaces share tables through a column."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from featureline._postgres import PgConnection
from featureline._urls import redact
from featureline.errors import ValidationError
from featureline.pipelines.metadata._model_records import MODELS_SCHEMA
from featureline.pipelines.metadata._sql import SqlMetadataStore
from featureline.pipelines.metadata._store import SCHEMA, TABLES, MetadataCapabilities

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

_SCHEMA_LOCK = 0x6665_6174_6D65_7461  # "featmeta": serialises CREATE TABLE across clients


class PostgresMetadataStore(SqlMetadataStore):
    """Pipeline metadata of one `namespace` in PostgreSQL tables shared by many namespaces.

    Each call is one transaction; deadlocks and serialization failures are retried.
    """

    capabilities = MetadataCapabilities(shared=True)
    placeholder = "%s"

    def __init__(self, url: str, namespace: str, *, connect_timeout: int = 10) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValidationError(
                f"Metadata namespace must be a non-empty string, got `{namespace!r}`. "
                "Fix: pass the project name."
            )
        self.url = url
        self.namespace = namespace
        self._pg = PgConnection(
            url, "the metadata store", "PostgresMetadataStore(url, namespace)", connect_timeout
        )
        self._write(self._create_tables)

    def __repr__(self) -> str:
        return f"PostgresMetadataStore({redact(self.url)!r}, namespace={self.namespace!r})"

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.url, self.namespace))

    def __enter__(self) -> PostgresMetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- backend hooks ----------------------------------------------------------------------

    def _where(self) -> str:
        return f"the metadata store `{redact(self.url)}` (namespace `{self.namespace}`)"

    def _to_db(self, ts: datetime) -> datetime:
        return ts

    def _from_db(self, value: Any) -> datetime:
        return value.astimezone(UTC)

    def _transaction(self, fn: Callable[[Any], T]) -> T:
        return self._pg.run(fn, self._where(), transaction=True)

    def _write(self, fn: Callable[[Any], T]) -> T:
        return self._transaction(fn)

    def _read(self, fn: Callable[[Any], T]) -> T:
        return self._transaction(fn)

    @staticmethod
    def _create_tables(db: psycopg.Connection[Any]) -> None:
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        for stmt in (SCHEMA + MODELS_SCHEMA).replace("{ts}", "TIMESTAMPTZ").split(";"):
            if stmt.strip():
                db.execute(stmt)

    def drop_namespace(self) -> None:
        """Delete every row of this namespace (for tests and project removal)."""

        def run(db: Any) -> None:
            for table in TABLES:
                db.execute(f"DELETE FROM {table} WHERE namespace = %s", (self.namespace,))

        self._write(run)

    def close(self) -> None:
        self._pg.close()


__all__ = ["PostgresMetadataStore", "redact"]
