"""One PostgreSQL connection as the backends use it: opened lazily, reopened when broken,
guarded by a lock, and calls retried with backoff on write conflicts (psycopg 3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from featureline._urls import import_extra, redact
from featureline.errors import StorageError

T = TypeVar("T")
RETRIES = 20


class PgConnection:
    """`what` names the store in messages ("the registry"); `reopen` is the fix when closed;
    `retry_on` are psycopg error class names retried (conflicts, deadlocks)."""

    def __init__(
        self,
        url: str,
        what: str,
        reopen: str,
        connect_timeout: int = 10,
        retry_on: tuple[str, ...] = ("SerializationFailure", "DeadlockDetected"),
    ) -> None:
        self.pg = import_extra("psycopg", "postgres")
        self.url = url
        self.what = what
        self.reopen = reopen
        self.connect_timeout = connect_timeout
        self.retryable = tuple(getattr(self.pg.errors, name) for name in retry_on)
        self.lock = threading.RLock()
        self.closed = False
        self._db: Any = None

    def connection(self) -> Any:
        if self.closed:
            raise StorageError(
                f"{self.what.capitalize()} at `{redact(self.url)}` is closed. Fix: open it again with `{self.reopen}`."
            )
        if self._db is None or self._db.closed or self._db.broken:
            try:
                self._db = self.pg.connect(
                    self.url, autocommit=True, connect_timeout=self.connect_timeout
                )
            except self.pg.Error as e:
                raise StorageError(
                    f"Cannot connect to {self.what} at `{redact(self.url)}`: {e}. Fix: check the URL "
                    "(postgresql://user@host:port/db) and that the server is running."
                ) from e
        return self._db

    def run(self, fn: Callable[[Any], T], where: str, transaction: bool = False) -> T:
        """`fn(connection)` under the lock (in a transaction if asked), retrying conflicts."""
        delay = 0.005
        for attempt in range(1, RETRIES + 1):
            with self.lock:
                db = self.connection()
                try:
                    if not transaction:
                        return fn(db)
                    with db.transaction():
                        return fn(db)
                except self.retryable as e:
                    if attempt == RETRIES:
                        raise self.error(e, where) from e
                except self.pg.Error as e:
                    raise self.error(e, where) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def error(e: Exception, where: str) -> StorageError:
        return StorageError(
            f"{where[0].upper()}{where[1:]} failed: {e}. Fix: check the server and that the user may create and write tables."
        )

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self._db is not None:
                self._db.close()
                self._db = None
