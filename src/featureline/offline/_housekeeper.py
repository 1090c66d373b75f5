"""Background housekeeping for writers that stay up (the stream worker, the server).

Merging a view's small commits (pushes leave one per batch) keeps reads fast, but it takes tens
of milliseconds, and run inline it sits between one push and the next: the event-to-servable
latency of every event behind it grows by as much. A `Housekeeper` runs it on its own thread
instead. Requests for one view collapse into one; a merge is optional work, so stopping drops
the pending ones (the next write asks again) and waits only for the merge in flight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from featureline.definitions import FeatureView

_log = logging.getLogger("featureline.offline")


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
        self._thread.join(timeout)

    def _loop(self) -> None:
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
