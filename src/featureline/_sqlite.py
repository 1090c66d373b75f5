"""Small SQLite helpers shared by the SQLite backends (registry, online store, metadata)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry_busy(fn: Callable[[], T], timeout: float, to_error: Callable[[Exception], Exception]) -> T:
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
