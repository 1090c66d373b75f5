"""The ingestion gate on the stream worker's writes (issue 11 item 2, on Redis Streams): under a
quarantine gate, events that violate a constraint are quarantined and the rest land; under a
strict gate, the worker dead-letters exactly the violating events with the gate's reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import featureline as fl
from featureline.stream import StreamWorker, open_broker
from tests.integration.stream_kit import stream_repo

pytestmark = pytest.mark.integration

USER = fl.Entity("user", ["user_id"])


def _store(tmp: Path, url: str, stream: str, gate: str) -> fl.FeatureStore:
    store = fl.FeatureStore(stream_repo(tmp, url, "q"))
    view = fl.FeatureView(
        "tx",
        [USER],
        [
            fl.Field("user_id", fl.Int64),
            fl.Field("amount", fl.Float64, constraints=[fl.Check.min(0)]),
        ],
        gate=gate,
        ttl=timedelta(days=1),
        stream_source=fl.StreamSource(
            "redis", stream, field_map={"uid": "user_id"}, timestamp_field="ts"
        ),
    )
    store.apply([USER, view])
    return store


@pytest.mark.parametrize("gate", ["quarantine", "strict"])
def test_stream_events_pass_the_gate(tmp_path: Path, redis_url: str, gate: str) -> None:
    stream = f"fltest:q{uuid.uuid4().hex[:12]}"
    store = _store(tmp_path, redis_url, stream, gate)
    src = store.get_feature_view("tx").stream_source
    assert src is not None
    pub = open_broker(
        "redis", redis_url, stream, src.group_for("tx"), "pub", src.dead_letter_stream
    )
    base = datetime.now(UTC) - timedelta(minutes=5)
    amounts = [1.0, -1.0, 2.0, -2.0, 3.0]
    pub.publish(
        [
            json.dumps(
                {"uid": i, "ts": (base + timedelta(seconds=i)).isoformat(), "amount": a}
            ).encode()
            for i, a in enumerate(amounts)
        ]
    )
    w = StreamWorker(store, consumer="w", batch_size=100)
    (stats,) = w.run(once=True, max_seconds=30)
    w.close()
    # events in = landed + quarantined + dead-lettered, and the counters say which
    assert (stats.written, stats.quarantined, stats.dead_letters) == (
        (5, 2, 0) if gate == "quarantine" else (3, 0, 2)
    )
    assert stats.snapshot()["quarantined"] == stats.quarantined
    online = store.get_online_features(["tx:amount"], {"user_id": list(range(5))}).to_dict()
    assert online["amount"] == [1.0, None, 2.0, None, 3.0]
    held = store.quarantined_rows("tx")
    dead = pub.dead_letters()
    if gate == "quarantine":
        assert held is not None and sorted(held.column("user_id").to_pylist()) == [1, 3]
        assert dead == []
    else:
        assert held is None
        assert len(dead) == 2 and all("amount.min" in d.reason for d in dead)
    pub.close()
    import redis

    redis.Redis.from_url(redis_url).delete(stream, f"{stream}:dead")
