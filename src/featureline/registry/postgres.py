"""A shared registry in PostgreSQL (psycopg 3). Several projects may share one database."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from featureline._postgres import PgConnection
from featureline._urls import redact
from featureline.errors import StorageError, ValidationError
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

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

TABLE = "featureline_registry_versions"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    project    TEXT        NOT NULL,
    version    INTEGER     NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    snapshot   JSON        NOT NULL,
    changes    JSON        NOT NULL,
    message    TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (project, version)
)
"""
_COLUMNS = "version, applied_at, snapshot, changes, message"
_SCHEMA_LOCK = 0x6665_6174_7265_6700  # "featreg": serialises CREATE TABLE across clients


def _lock_key(project: str) -> int:
    """A stable signed 64-bit advisory-lock key for a project."""
    digest = hashlib.sha256(f"featureline-registry:{project}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresRegistry:
    """Registry versions of one `project` in a PostgreSQL table shared by many projects.

    Writers serialise per project with a transaction-scoped advisory lock; the primary key
    `(project, version)` backs that up, and a conflicting write is retried.
    """

    capabilities = RegistryCapabilities(shared=True)

    def __init__(self, url: str, project: str, *, connect_timeout: int = 10) -> None:
        if not isinstance(project, str) or not project:
            raise ValidationError(
                f"PostgreSQL registry needs a non-empty project name, got `{project!r}`. "
                "Fix: set `project` in featureline.yaml."
            )
        self.url = url
        self.project = project
        self._pg = PgConnection(
            url,
            "the registry",
            "PostgresRegistry(url, project)",
            connect_timeout,
            ("UniqueViolation", "SerializationFailure", "DeadlockDetected"),
        )
        self._run(self._init_schema)

    def __repr__(self) -> str:
        return f"PostgresRegistry({redact(self.url)!r}, project={self.project!r})"

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.url, self.project))

    def __enter__(self) -> PostgresRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"`{redact(self.url)}` (project `{self.project}`)"

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `fn(connection)` under the connection's lock, retrying write conflicts."""
        return self._pg.run(fn, f"the registry at {self._where()}")

    def _init_schema(self, db: psycopg.Connection[Any]) -> None:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.execute(_SCHEMA)

    @staticmethod
    def _row(row: tuple[Any, ...]) -> RegistryVersion:
        version, applied_at, snapshot, changes, message = row
        return RegistryVersion(
            version=int(version),
            applied_at=applied_at.astimezone(UTC),
            snapshot=snapshot,
            changes=changes,
            message=message,
        )

    def _one(self, sql: str, params: tuple[Any, ...]) -> RegistryVersion | None:
        def run(db: psycopg.Connection[Any]) -> RegistryVersion | None:
            row = db.execute(sql, params).fetchone()
            return None if row is None else self._row(row)

        return self._run(run)

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

        def run(db: psycopg.Connection[Any]) -> RegistryVersion:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.project),))
                last = db.execute(
                    f"SELECT version, applied_at FROM {TABLE} WHERE project = %s "
                    "ORDER BY version DESC LIMIT 1",
                    (self.project,),
                ).fetchone()
                # The advisory lock serialises this project's writers, so the check and the
                # insert are one compare-and-swap; the primary key backs it up.
                check_expected(
                    expected_version, None if last is None else int(last[0]), self._where()
                )
                version = 1 if last is None else int(last[0]) + 1
                prev_us = None if last is None else to_micros(last[1])
                applied_at = from_micros(next_applied_at(prev_us, now_micros()))
                row = db.execute(
                    f"INSERT INTO {TABLE} (project, {_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s::json, %s::json, %s) "
                    f"RETURNING {_COLUMNS}",
                    (self.project, version, applied_at, snap_text, changes_text, message),
                ).fetchone()
            if row is None:  # RETURNING always yields the inserted row
                raise StorageError(
                    f"The registry at {self._where()} did not return version {version}."
                )
            return self._row(row)

        return self._run(run)

    def latest(self) -> RegistryVersion | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE project = %s ORDER BY version DESC LIMIT 1",
            (self.project,),
        )

    def head(self) -> RegistryHead | None:
        def run(db: psycopg.Connection[Any]) -> RegistryHead | None:
            row = db.execute(
                f"SELECT version, applied_at FROM {TABLE} WHERE project = %s "
                "ORDER BY version DESC LIMIT 1",
                (self.project,),
            ).fetchone()
            return None if row is None else (int(row[0]), to_micros(row[1]))

        return self._run(run)

    def get(self, version: int) -> RegistryVersion:
        check_version_arg(version)
        found = self._one(
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE project = %s AND version = %s",
            (self.project, version),
        )
        if found is None:
            last = self.latest()
            raise missing_version(version, None if last is None else last.version, self._where())
        return found

    def at(self, ts: datetime) -> RegistryVersion | None:
        when = require_aware(ts)
        return self._one(
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE project = %s AND applied_at <= %s "
            "ORDER BY version DESC LIMIT 1",
            (self.project, when),
        )

    def history(self) -> list[RegistryVersion]:
        def run(db: psycopg.Connection[Any]) -> list[RegistryVersion]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM {TABLE} WHERE project = %s ORDER BY version",
                (self.project,),
            ).fetchall()
            return [self._row(r) for r in rows]

        return self._run(run)

    def close(self) -> None:
        self._pg.close()


__all__ = ["PostgresRegistry"]
