"""Flush a large file to disk as it is written, so its write-back never stalls other writers.

A merge writes one Parquet file of up to `MERGE_MAX_ROWS` rows (hundreds of MB) and fsyncs it
at the end. On ext4 (`data=ordered`), the fsync of any small file commits the journal, and the
commit waits for the dirty data of every file in it: a stream push's three small fsyncs then
waited for most of the merge's file, 0.4-2 s at a time (the soak's p99 spikes at each big merge;
a probe writing 300 MB while fsyncing 20 KB files every 10 ms: max 396-528 ms). `trickle(path)`
runs a thread that `fdatasync`s the file whenever `FLUSH_BYTES` more of it were written, so at
most that much of it is ever dirty (the same probe: max 52-115 ms), at no cost to the final
fsync, which then has little left to write.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

FLUSH_BYTES = 4 << 20  # dirty bytes of the file written at most before they are flushed; 0: off
POLL_SECONDS = 0.01


@contextlib.contextmanager
def trickle(path: Path, flush_bytes: int | None = None) -> Iterator[None]:
    """While the block runs, `fdatasync` `path` (once it exists) each time it grew by
    `flush_bytes` (default `FLUSH_BYTES`) since the last flush. Never fails the block: a file
    that cannot be opened or synced is left to the writer's own fsync."""
    every = FLUSH_BYTES if flush_bytes is None else flush_bytes
    if every <= 0:
        yield
        return
    done = threading.Event()
    thread = threading.Thread(
        target=_flush_loop, args=(path, every, done), name="featureline-trickle", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _flush_loop(path: Path, every: int, done: threading.Event) -> None:
    fd = -1
    flushed = 0
    try:
        while not done.wait(POLL_SECONDS):
            if fd < 0:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    continue  # not created yet
            size = os.fstat(fd).st_size
            if size - flushed >= every:
                os.fdatasync(fd)
                flushed = size
    except OSError:
        return  # the writer's fsync covers whatever is left
    finally:
        if fd >= 0:
            os.close(fd)
