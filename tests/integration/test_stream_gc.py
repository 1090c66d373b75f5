"""The stream worker keeps the cyclic collector's full collections short (issue 10, p99): what
the process imports after start-up (the write path imports lazily, on the first batch) is
frozen too, so a gen-2 collection mid-stream scans only what the loop made."""

from __future__ import annotations

import gc
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from featureline.stream import StreamWorker
from tests.integration.stream_kit import fresh_stream, publish, tx_store


@pytest.fixture
def stream(redis_url: str) -> Iterator[str]:
    yield from fresh_stream(redis_url, "gc")


def _tracked(obj: object) -> bool:
    """Whether the cyclic collector still scans `obj` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def test_modules_imported_while_streaming_are_frozen_after_the_batch(
    tmp_path: Path, stream: str, redis_url: str
) -> None:
    store = tx_store(tmp_path, stream, redis_url, "g")
    worker = StreamWorker(store, consumer="gc", batch_size=100, publish_stats=False)
    name = f"_fl_lazy_{uuid.uuid4().hex[:8]}"
    try:
        publish(redis_url, stream, 50)
        (stats,) = worker.run(once=True)
        assert stats.written == 50
        # a module the write path imports lazily, in the middle of the stream
        module = types.ModuleType(name)
        exec("def f():\n    return 1\n", module.__dict__)
        sys.modules[name] = module
        assert _tracked(module.f)
        publish(redis_url, stream, 50)
        worker.run(once=True)
        assert stats.written == 100
        assert not _tracked(module.f)  # frozen after the batch, with the module
        # no new import: a batch does not collect (nor freeze) again
        fresh: list[object] = []
        modules = len(sys.modules)
        publish(redis_url, stream, 50)
        worker.run(once=True)
        assert stats.written == 150
        if len(sys.modules) == modules:  # (unless a lazy import happened meanwhile)
            assert _tracked(fresh)
    finally:
        sys.modules.pop(name, None)
        worker.close()
        store.close()
