"""Small SQLite helpers shared by the SQLite backends (registry, online store, metadata)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from featureline.errors import StorageError

T = TypeVar("T")


def retry_busy(
    fn: Callable[[], T], timeout: float, to_error: Callable[[Exception], Exception]
) -> T:
    """Run `fn`, retrying while SQLite reports a lock its busy handler did not wait out.

    (Switching to WAL and some lock upgrades return SQLITE_BUSY without waiting.) Other SQLite
    errors, and a lock that outlasts `timeout`, are raised as `to_error(e)`.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            text = str(e).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise to_error(e) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        except sqlite3.Error as e:
            raise to_error(e) from e


def open_file(path: Path, timeout: float, what: str, fix: str) -> sqlite3.Connection:
    """An autocommit connection to a SQLite file (parent folders created), shared by threads."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as e:
        raise StorageError(f"Cannot open {what} at `{path}`: {e}. Fix: {fix}") from e


def use_wal(db: sqlite3.Connection, timeout: float) -> None:
    """WAL mode (many readers, one writer), a busy timeout and NORMAL sync: durable on crash."""
    db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":  # another connection holds a lock: retried as busy
        raise sqlite3.OperationalError(f"database is locked (journal_mode is {mode})")
    db.execute("PRAGMA synchronous = NORMAL")
