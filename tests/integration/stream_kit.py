"""What the stream worker's integration tests share: a repo reading Redis streams (with a view
`tx` fed by one), a fresh stream name removed after the test, and a publisher."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import featureline as fl

USER = fl.Entity("user", ["user_id"])


def stream_repo(tmp: Path, url: str, project: str = "s") -> Path:
    """An empty repo under `tmp` (no definitions, no data) whose `redis` stream is at `url`."""
    root = tmp / "repo"
    fl.init_repo(root, project=project + uuid.uuid4().hex[:8], with_data=False)
    (root / "definitions.py").unlink()
    with (root / "featureline.yaml").open("a") as f:
        f.write(f"\nstreams:\n  redis: {{url: '{url}'}}\n")
    return root


def tx_store(tmp: Path, stream: str, url: str, project: str = "s") -> fl.FeatureStore:
    """A repo under `tmp` with view `tx` (user_id, amount) fed by the Redis stream `stream`."""
    store = fl.FeatureStore(stream_repo(tmp, url, project))
    view = fl.FeatureView(
        "tx",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("amount", fl.Float64)],
        stream_source=fl.StreamSource("redis", stream, timestamp_field="ts"),
    )
    store.apply([USER, view])
    return store


def fresh_stream(redis_url: str, prefix: str) -> Iterator[str]:
    """A stream name no other test uses; the stream and its dead letters deleted afterwards."""
    name = f"fltest.{prefix}{uuid.uuid4().hex[:12]}"
    yield name
    import redis

    r = redis.Redis.from_url(redis_url)
    r.delete(name, f"{name}:dead")
    r.close()


def publish(url: str, stream: str, n: int) -> None:
    """`n` events of users 0..n-1, timed now, on the Redis stream `stream`."""
    from featureline.stream import open_broker

    pub = open_broker("redis", url, stream, "featureline_tx", "pub", f"{stream}:dead")
    now = datetime.now(UTC).isoformat()
    pub.publish([json.dumps({"user_id": i, "ts": now, "amount": 1.0}).encode() for i in range(n)])
    pub.close()
