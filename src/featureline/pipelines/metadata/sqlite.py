"""The default metadata store: one SQLite file in WAL mode, safe for several local processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from featureline._sqlite import open_file, retry_busy, use_wal
from featureline.errors import StorageError, ValidationError
from featureline.pipelines.metadata._model_records import MODELS_SCHEMA
from featureline.pipelines.metadata._sql import SqlMetadataStore
from featureline.pipelines.metadata._store import (
    SCHEMA,
    MetadataCapabilities,
    from_micros,
    to_micros,
)

T = TypeVar("T")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


class SqliteMetadataStore(SqlMetadataStore):
    """Pipeline metadata in a SQLite file; timestamps are stored as integer microseconds.

    Writers serialise with `BEGIN IMMEDIATE`; a waiting writer blocks for up to `timeout`
    seconds (SQLite's busy timeout, plus retries for the locks it does not wait out) instead of
    failing with "database is locked". Readers never block writers (WAL).
    """

    capabilities = MetadataCapabilities(shared=False)

    def __init__(self, path: str | Path, namespace: str = "default", timeout: float = 30.0) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValidationError(
                f"Metadata namespace must be a non-empty string, got `{namespace!r}`. "
                "Fix: pass the project name."
            )
        self.path = Path(path).expanduser()
        self.namespace = namespace
        self.timeout = timeout
        self._lock = threading.RLock()
        conn = open_file(
            self.path,
            timeout,
            "the metadata store",
            "point the metadata location to a writable file path.",
        )
        self._db: sqlite3.Connection | None = conn
        self._retry_busy(self._init_schema)

    def __repr__(self) -> str:
        return f"SqliteMetadataStore({str(self.path)!r}, namespace={self.namespace!r})"

    def __reduce__(self) -> tuple[type, tuple[str, str, float]]:
        return (type(self), (str(self.path), self.namespace, self.timeout))

    def __enter__(self) -> SqliteMetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- backend hooks ----------------------------------------------------------------------

    def _where(self) -> str:
        return f"the metadata store `{self.path}`"

    def _to_db(self, ts: datetime) -> int:
        return to_micros(ts)

    def _from_db(self, value: Any) -> datetime:
        return from_micros(int(value))

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError(
                f"The metadata store at `{self.path}` is closed. Fix: open it again with "
                f"`SqliteMetadataStore({str(self.path)!r})`."
            )
        return self._db

    def _retry_busy(self, fn: Callable[[], T]) -> T:
        return retry_busy(fn, self.timeout, self._storage_error)

    def _storage_error(self, e: Exception) -> StorageError:
        return StorageError(
            f"The metadata store at `{self.path}` failed: {e}. Fix: check that the file is a "
            "Featureline metadata store, is writable, and is not on a network filesystem "
            "(use PostgreSQL for metadata shared between machines)."
        )

    def _transaction(self, begin: str, fn: Callable[[Any], T]) -> T:
        def run() -> T:
            with self._lock:
                db = self._conn()
                db.execute(begin)
                try:
                    result = fn(db)
                    db.execute("COMMIT")
                except BaseException:
                    _rollback(db)
                    raise
                return result

        return self._retry_busy(run)

    def _write(self, fn: Callable[[Any], T]) -> T:
        # A FeaturelineError raised by `fn` (NotFoundError, ValidationError) rolls the
        # transaction back and reaches the caller unchanged.
        return self._transaction("BEGIN IMMEDIATE", fn)

    def _read(self, fn: Callable[[Any], T]) -> T:
        return self._transaction("BEGIN", fn)  # one snapshot for all the reads in `fn`

    def _init_schema(self) -> None:
        with self._lock:
            db = self._conn()
            use_wal(db, self.timeout)
        self._write(self._create_tables)

    @staticmethod
    def _create_tables(db: sqlite3.Connection) -> None:
        for stmt in (SCHEMA + MODELS_SCHEMA).replace("{ts}", "INTEGER").split(";"):
            if stmt.strip():
                db.execute(stmt)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


__all__ = ["SqliteMetadataStore"]
