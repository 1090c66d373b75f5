"""The stream worker keeps the cyclic collector's full collections short (issue 10, p99): what
the process imports after start-up (the write path imports lazily, on the first batch) is
frozen too, so a gen-2 collection mid-stream scans only what the loop made."""

from __future__ import annotations

import gc
import json
import sys
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import featureline as fl
from featureline.stream import StreamWorker, open_broker

USER = fl.Entity("user", ["user_id"])


def _store(tmp: Path, stream: str, url: str) -> fl.FeatureStore:
    root = tmp / "repo"
    fl.init_repo(root, project="g" + uuid.uuid4().hex[:8], with_data=False)
    (root / "definitions.py").unlink()
    with (root / "featureline.yaml").open("a") as f:
        f.write(f"\nstreams:\n  redis: {{url: '{url}'}}\n")
    store = fl.FeatureStore(root)
    view = fl.FeatureView(
        "tx",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("amount", fl.Float64)],
        stream_source=fl.StreamSource("redis", stream, timestamp_field="ts"),
    )
    store.apply([USER, view])
    return store


@pytest.fixture
def stream(redis_url: str) -> Iterator[str]:
    name = f"fltest.gc{uuid.uuid4().hex[:12]}"
    yield name
    import redis

    r = redis.Redis.from_url(redis_url)
    r.delete(name, f"{name}:dead")
    r.close()


def _publish(url: str, stream: str, n: int) -> None:
    pub = open_broker("redis", url, stream, "featureline_tx", "pub", f"{stream}:dead")
    now = datetime.now(UTC).isoformat()
    pub.publish([json.dumps({"user_id": i, "ts": now, "amount": 1.0}).encode() for i in range(n)])
    pub.close()


def _tracked(obj: object) -> bool:
    """Whether the cyclic collector still scans `obj` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def test_modules_imported_while_streaming_are_frozen_after_the_batch(
    tmp_path: Path, stream: str, redis_url: str
) -> None:
    store = _store(tmp_path, stream, redis_url)
    worker = StreamWorker(store, consumer="gc", batch_size=100, publish_stats=False)
    name = f"_fl_lazy_{uuid.uuid4().hex[:8]}"
    try:
        _publish(redis_url, stream, 50)
        (stats,) = worker.run(once=True)
        assert stats.written == 50
        # a module the write path imports lazily, in the middle of the stream
        module = types.ModuleType(name)
        exec("def f():\n    return 1\n", module.__dict__)
        sys.modules[name] = module
        assert _tracked(module.f)
        _publish(redis_url, stream, 50)
        worker.run(once=True)
        assert stats.written == 100
        assert not _tracked(module.f)  # frozen after the batch, with the module
        # no new import: a batch does not collect (nor freeze) again
        fresh: list[object] = []
        modules = len(sys.modules)
        _publish(redis_url, stream, 50)
        worker.run(once=True)
        assert stats.written == 150
        if len(sys.modules) == modules:  # (unless a lazy import happened meanwhile)
            assert _tracked(fresh)
    finally:
        sys.modules.pop(name, None)
        worker.close()
        store.close()
