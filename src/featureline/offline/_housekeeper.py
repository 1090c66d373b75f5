"""Background housekeeping for writers that stay up (the stream worker, the server).

Merging a view's small commits (pushes leave one per batch) keeps reads fast, but it takes tens
of milliseconds, and run inline it sits between one push and the next: the event-to-servable
latency of every event behind it grows by as much. A `Housekeeper` runs it on its own thread
instead. Requests for one view collapse into one; a merge is optional work, so stopping drops
the pending ones (the next write asks again) and waits only for the merge in flight.

The thread runs at a lower CPU priority (`NICE`, Linux: a thread has its own nice value), and
the store gives it an engine of its own with one thread: a merge of a large size tier (up to
8 commits of a million rows) then takes the core the writer leaves idle instead of competing
with the writer for both (the 10-minute soak's lag spiked in its last minute that way).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable

from featureline.definitions import FeatureView

_log = logging.getLogger("featureline.offline")

NICE = 10  # added to the thread's nice value (lower priority); 0 keeps the process's


def lower_priority(nice: int = NICE) -> bool:
    """Lower the CPU priority of the calling thread (threads started by it inherit it). False
    where a thread's priority cannot be set on its own (not Linux) or it is not allowed."""
    if not nice or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except (OSError, AttributeError):
        return False
    return True


class Housekeeper:
    """One daemon thread running `work(view)` for the views asked for, one at a time."""

    def __init__(self, work: Callable[[FeatureView], None]) -> None:
        self._work = work
        self._pending: dict[tuple[str, int], FeatureView] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self.runs = 0  # merges attempted (for tests and metrics)
        self._thread = threading.Thread(
            target=self._loop, name="featureline-housekeeper", daemon=True
        )
        self._thread.start()
        # a process that exits without closing its store: let the merge in flight finish first
        # (a daemon thread stopped inside DuckDB aborts the process: "terminate called ...")
        atexit.register(self.stop)

    def request(self, view: FeatureView) -> None:
        """Ask for housekeeping of `view`; returns at once."""
        with self._cond:
            if self._stopping:
                return
            self._pending[(view.name, view.version)] = view
            self._cond.notify()

    def idle(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is pending or running (for tests and orderly shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Drop pending requests, let the merge in flight finish, end the thread."""
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        atexit.unregister(self.stop)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        if os.uname().sysname == "Linux":  # elsewhere the call would lower the whole process
            lower_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                _, view = self._pending.popitem()
                self._busy = True
            try:
                self._work(view)
            except Exception as e:  # never kill the thread: the next request retries
                _log.warning("housekeeping of %s v%d failed: %s", view.name, view.version, e)
            finally:
                with self._cond:
                    self._busy = False
                    self.runs += 1
                    self._cond.notify_all()
