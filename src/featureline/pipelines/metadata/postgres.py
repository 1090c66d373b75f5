"""Pipeline metadata in PostgreSQL (psycopg 3). Namespaces share tables through a column."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from featureline._urls import import_extra, redact
from featureline.errors import StorageError, ValidationError
from featureline.pipelines.metadata._models import MODELS_SCHEMA
from featureline.pipelines.metadata._sql import SqlMetadataStore
from featureline.pipelines.metadata._store import SCHEMA, TABLES, MetadataCapabilities

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

_SCHEMA_LOCK = 0x6665_6174_6D65_7461  # "featmeta": serialises CREATE TABLE across clients
_RETRIES = 20





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
        self._pg = import_extra("psycopg", "postgres")
        self.url = url
        self.namespace = namespace
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._closed = False
        self._db: psycopg.Connection[Any] | None = None
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

    def _conn(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StorageError(
                f"The metadata store `{redact(self.url)}` is closed. Fix: open it again with "
                "`PostgresMetadataStore(url, namespace)`."
            )
        if self._db is None or self._db.closed or self._db.broken:
            try:
                self._db = self._pg.connect(
                    self.url, autocommit=True, connect_timeout=self.connect_timeout
                )
            except self._pg.Error as e:
                raise StorageError(
                    f"Cannot connect to the metadata store at `{redact(self.url)}`: {e}. "
                    "Fix: check the URL (postgresql://user@host:port/db) and that the server "
                    "is running."
                ) from e
        return self._db

    def _transaction(self, fn: Callable[[Any], T]) -> T:
        errors = self._pg.errors
        retryable = (errors.SerializationFailure, errors.DeadlockDetected)
        delay = 0.005
        for attempt in range(1, _RETRIES + 1):
            with self._lock:
                db = self._conn()
                try:
                    with db.transaction():
                        return fn(db)
                except retryable as e:
                    if attempt == _RETRIES:
                        raise self._storage_error(e) from e
                except self._pg.Error as e:
                    raise self._storage_error(e) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _storage_error(self, e: Exception) -> StorageError:
        return StorageError(
            f"{self._where()[0].upper()}{self._where()[1:]} failed: {e}. "
            "Fix: check the server and that the user may create and write tables."
        )

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
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None


__all__ = ["PostgresMetadataStore", "redact"]
