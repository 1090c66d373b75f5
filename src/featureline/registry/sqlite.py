"""The default registry: one SQLite file in WAL mode, safe for several local processes."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from featureline._sqlite import open_file, retry_busy, use_wal
from featureline.errors import StorageError
from featureline.registry._store import (
    UNCHECKED,
    ExpectedVersion,
    RegistryCapabilities,
    RegistryHead,
    RegistryVersion,
    check_append_args,
    check_expected,
    check_expected_arg,
    check_version_arg,
    dump_json,
    from_micros,
    missing_version,
    next_applied_at,
    now_micros,
    require_aware,
    to_micros,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_versions (
    version       INTEGER PRIMARY KEY,
    applied_at_us INTEGER NOT NULL,
    snapshot      TEXT    NOT NULL,
    changes       TEXT    NOT NULL,
    message       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS registry_versions_applied_at ON registry_versions (applied_at_us);
"""
_COLUMNS = "version, applied_at_us, snapshot, changes, message"


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


class SqliteRegistry:
    """Registry versions in a SQLite file. `path` may be relative to the working directory.

    Writers serialise with `BEGIN IMMEDIATE`; waiting writers block for up to `timeout`
    seconds (SQLite's busy timeout) instead of failing with "database is locked".
    """

    capabilities = RegistryCapabilities(shared=False)

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self.timeout = timeout
        self._lock = threading.RLock()
        conn = open_file(
            self.path,
            timeout,
            "the registry",
            "point `registry` in featureline.yaml to a writable file path.",
        )
        self._db: sqlite3.Connection | None = conn
        self._retry_busy(self._init_schema)

    def __repr__(self) -> str:
        return f"SqliteRegistry({str(self.path)!r})"

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (str(self.path),))

    def __enter__(self) -> SqliteRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError(
                f"The registry at `{self.path}` is closed. Fix: open it again with "
                f"`SqliteRegistry({str(self.path)!r})`."
            )
        return self._db

    def _retry_busy(self, fn: Callable[[], T]) -> T:
        return retry_busy(fn, self.timeout, self._storage_error)

    def _storage_error(self, e: Exception) -> StorageError:
        return StorageError(
            f"The registry at `{self.path}` failed: {e}. Fix: check that the file is a "
            "Featureline registry, is writable, and is not on a network filesystem "
            "(use PostgreSQL for a shared registry)."
        )

    def _init_schema(self) -> None:
        with self._lock:
            db = self._conn()
            use_wal(db, self.timeout)
            db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise

    @staticmethod
    def _row(row: tuple[Any, ...]) -> RegistryVersion:
        version, us, snapshot, changes, message = row
        return RegistryVersion(
            version=int(version),
            applied_at=from_micros(int(us)),
            snapshot=json.loads(snapshot),
            changes=json.loads(changes),
            message=message,
        )

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> RegistryVersion | None:
        def run() -> RegistryVersion | None:
            with self._lock:
                row = self._conn().execute(sql, params).fetchone()
            return None if row is None else self._row(row)

        return self._retry_busy(run)

    # ---- RegistryStore ----------------------------------------------------------------------

    def append(
        self,
        snapshot: dict[str, Any],
        changes: list[dict[str, Any]],
        message: str = "",
        *,
        expected_version: ExpectedVersion = UNCHECKED,
    ) -> RegistryVersion:
        check_append_args(snapshot, changes, message)
        check_expected_arg(expected_version)
        snap_text = dump_json(snapshot, "snapshot")
        changes_text = dump_json(changes, "changes")

        def run() -> RegistryVersion:
            with self._lock:
                db = self._conn()
                db.execute("BEGIN IMMEDIATE")
                try:
                    last = db.execute(
                        "SELECT version, applied_at_us FROM registry_versions "
                        "ORDER BY version DESC LIMIT 1"
                    ).fetchone()
                    # Under BEGIN IMMEDIATE no other writer can append between this read and
                    # the insert: the check and the write are one compare-and-swap.
                    check_expected(
                        expected_version, None if last is None else int(last[0]), f"`{self.path}`"
                    )
                    version = 1 if last is None else int(last[0]) + 1
                    us = next_applied_at(None if last is None else int(last[1]), now_micros())
                    db.execute(
                        f"INSERT INTO registry_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                        (version, us, snap_text, changes_text, message),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    _rollback(db)
                    raise
            return RegistryVersion(
                version, from_micros(us), json.loads(snap_text), json.loads(changes_text), message
            )

        return self._retry_busy(run)

    def latest(self) -> RegistryVersion | None:
        return self._one(f"SELECT {_COLUMNS} FROM registry_versions ORDER BY version DESC LIMIT 1")

    def head(self) -> RegistryHead | None:
        def run() -> RegistryHead | None:
            with self._lock:
                row = (
                    self._conn()
                    .execute(
                        "SELECT version, applied_at_us FROM registry_versions "
                        "ORDER BY version DESC LIMIT 1"
                    )
                    .fetchone()
                )
            return None if row is None else (int(row[0]), int(row[1]))

        return self._retry_busy(run)

    def get(self, version: int) -> RegistryVersion:
        check_version_arg(version)
        found = self._one(f"SELECT {_COLUMNS} FROM registry_versions WHERE version = ?", (version,))
        if found is None:
            last = self._one(
                f"SELECT {_COLUMNS} FROM registry_versions ORDER BY version DESC LIMIT 1"
            )
            raise missing_version(version, None if last is None else last.version, f"`{self.path}`")
        return found

    def at(self, ts: datetime) -> RegistryVersion | None:
        us = to_micros(require_aware(ts))
        return self._one(
            f"SELECT {_COLUMNS} FROM registry_versions WHERE applied_at_us <= ? "
            "ORDER BY version DESC LIMIT 1",
            (us,),
        )

    def history(self) -> list[RegistryVersion]:
        def run() -> list[RegistryVersion]:
            with self._lock:
                rows = (
                    self._conn()
                    .execute(f"SELECT {_COLUMNS} FROM registry_versions ORDER BY version")
                    .fetchall()
                )
            return [self._row(r) for r in rows]

        return self._retry_busy(run)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


__all__ = ["SqliteRegistry"]
