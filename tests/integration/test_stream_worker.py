"""The stream worker against the real brokers (issue 10 item 4, "Bad input and faults"):
events published to Redis Streams / NATS JetStream end up online (latest values and
aggregation tiles) and in training sets exactly as a reference computed from the events says;
bad events are dead-lettered with their reasons and never block the stream; a batch replayed
after a crash is one commit; a worker SIGKILLed at random points and restarted, and a broker
restarted mid-stream, change no final value."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import featureline as fl
from featureline.stream import Broker, Lag, StreamWorker, open_broker
from tests.helpers import TS

pytestmark = pytest.mark.integration

USER = fl.Entity("user", ["user_id"])


def _view(broker: str, stream: str) -> fl.FeatureView:
    return fl.FeatureView(
        "tx",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("amount", fl.Float64), fl.Field("tag", fl.String)],
        tile=timedelta(minutes=1),
        aggregations=[
            fl.Aggregation("amount", "sum", timedelta(hours=1)),
            fl.Aggregation("amount", "count", timedelta(hours=1)),
        ],
        stream_source=fl.StreamSource(
            broker, stream, field_map={"uid": "user_id"}, timestamp_field="ts"
        ),
    )


FEATURES = ["tx:amount", "tx:tag", "tx:amount_sum_1h", "tx:amount_count_1h"]


def _store(tmp: Path, broker: str, stream: str, url: str, **settings: Any) -> fl.FeatureStore:
    root = tmp / "repo"
    fl.init_repo(root, project="s" + uuid.uuid4().hex[:8], with_data=False)
    (root / "definitions.py").unlink()
    extra = "".join(f", {k}: {v}" for k, v in settings.items())
    with (root / "featureline.yaml").open("a") as f:
        f.write(f"\nstreams:\n  {broker}: {{url: '{url}'{extra}}}\n")
    store = fl.FeatureStore(root)
    store.apply([USER, _view(broker, stream)])
    return store


def _events(n: int, keys: int, seed: int) -> list[dict[str, Any]]:
    """`n` events over `keys` users within the last 30 minutes, one per (user, time)."""
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(minutes=30)
    out = []
    for i in range(n):
        t = base + timedelta(microseconds=i * 1000 + rng.randrange(1000))
        out.append(
            {
                "uid": rng.randrange(keys),
                "ts": t.isoformat(),
                "amount": round(rng.uniform(-100, 100), 3),
                "tag": rng.choice(["a", "b", "c"]),
                "extra": "ignored",
            }
        )
    return out


def _payloads(events: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def _reference(events: list[dict[str, Any]]) -> dict[int, tuple[float, str, float, int]]:
    """Per user: (latest amount, latest tag, sum and count over the last hour)."""
    import math

    by_key: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        by_key.setdefault(e["uid"], []).append(e)
    out = {}
    for k, evs in by_key.items():
        last = max(evs, key=lambda e: datetime.fromisoformat(e["ts"]))
        amounts = [e["amount"] for e in evs]
        out[k] = (last["amount"], last["tag"], math.fsum(amounts), len(amounts))
    return out


def _check(store: fl.FeatureStore, events: list[dict[str, Any]]) -> None:
    """Online values and a training set at now both equal the reference."""
    import math

    ref = _reference(events)
    keys = sorted(ref)
    online = store.get_online_features(FEATURES, [{"user_id": k} for k in keys]).to_dict()
    now = datetime.now(UTC)
    ts = (
        store.get_training_set(
            pa.table(
                {
                    "user_id": pa.array(keys, pa.int64()),
                    "event_timestamp": pa.array([now] * len(keys), TS),
                }
            ),
            FEATURES,
        )
        .to_arrow()
        .to_pydict()
    )
    for got in (online, ts):
        for i, k in enumerate(keys):
            amount, tag, s, c = ref[k]
            assert got["amount"][i] == amount, k
            assert got["tag"][i] == tag, k
            assert got["amount_count_1h"][i] == c, k
            assert math.isclose(got["amount_sum_1h"][i], s, rel_tol=1e-9, abs_tol=1e-9), k


BAD = [
    (b'{"ts": "2026-01-01T00:00:00Z", "amount": 1.0}', "key field `uid` is missing"),
    (b'{"uid": 1, "ts": "2026-01-01T00:00:00", "amount": 1.0}', "naive"),
    (b'{"uid": 1, "ts": "yesterday", "amount": 1.0}', "not an ISO 8601 time"),
    (b'{"uid": 1, "ts": "2026-01-01T00:00:00Z", "amount": "12"}', "declares Float64"),
    (b'{"uid": "one", "ts": "2026-01-01T00:00:00Z"}', "declares Int64"),
    (b'{"uid": 1, "ts": "2999-01-01T00:00:00Z"}', "max_future_seconds"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "not an object"),
    (b'{"uid": 1, "pad": "' + b"x" * 70_000 + b'"}', "max_message_bytes"),
]


@pytest.fixture(params=["redis", "nats"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker_url(broker_kind: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{broker_kind}_url"))


@pytest.fixture
def stream_name(broker_kind: str, broker_url: str) -> Iterator[str]:
    name = f"fltest.w{uuid.uuid4().hex[:12]}"
    yield name
    if broker_kind == "redis":
        import redis

        r = redis.Redis.from_url(broker_url)
        r.delete(name, f"{name}:dead")
        r.close()
    else:
        from featureline.stream.jetstream import _stream_name
        from tests.contract.test_broker_nats import _delete_streams

        _delete_streams(broker_url, [_stream_name(name), _stream_name(f"deadletter.{name}")])


def _publisher(store: fl.FeatureStore, consumer: str = "publisher") -> Broker:
    lane_src = store.get_feature_view("tx").stream_source
    assert lane_src is not None
    cfg = store.config.streams[lane_src.broker]
    return open_broker(
        lane_src.broker,
        cfg.url,
        lane_src.stream,
        lane_src.group_for("tx"),
        consumer,
        lane_src.dead_letter_stream,
        redeliver_after=cfg.redeliver_after_seconds,
    )


def test_events_land_online_and_offline_and_bad_ones_are_dead_lettered(
    tmp_path: Path, broker_kind: str, broker_url: str, stream_name: str
) -> None:
    store = _store(tmp_path, broker_kind, stream_name, broker_url)
    pub = _publisher(store)
    events = _events(600, 40, seed=1)
    payloads = _payloads(events)
    mixed = payloads[:300] + [p for p, _ in BAD] + payloads[300:]
    pub.publish(mixed)
    worker = StreamWorker(store, consumer="w1", batch_size=250)
    (stats,) = worker.run(once=True, max_seconds=60)
    assert (stats.written, stats.dead_letters, stats.errors) == (600, len(BAD), 0)
    assert stats.lag is not None and stats.lag.total == 0
    _check(store, events)
    dead = pub.dead_letters()
    assert len(dead) == len(BAD)
    for d, (payload, reason) in zip(dead, BAD, strict=True):
        assert reason in d.reason, (d.reason, reason)
        assert d.size == len(payload)
    # the same events again (a producer's retry: new message ids) change nothing
    pub.publish(payloads[:200])
    (stats,) = worker.run(once=True, max_seconds=60)
    assert (stats.written, stats.lag) == (800, Lag(0, 0))
    _check(store, events)
    worker.close()
    pub.close()
    _check_metrics(store.repo_path, written=800, dead=len(BAD))


def _check_metrics(repo: Path, written: int, dead: int) -> None:
    """The server's /metrics exports what the worker last published."""
    import httpx

    from featureline.server import create_app
    from tests.integration.server_kit import ThreadServer

    with ThreadServer(create_app(repo)) as url:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    labels = '{consumer="w1",view="tx"}'
    assert f"featureline_stream_written_total{labels} {float(written)}" in text
    assert f"featureline_stream_dead_letters_total{labels} {float(dead)}" in text
    assert f"featureline_stream_quarantined_total{labels} 0.0" in text  # no gate rule broken
    assert 'featureline_stream_lag{consumer="w1",kind="waiting",view="tx"} 0.0' in text
    assert "featureline_stream_publish_to_servable_seconds{" in text


class _Crash(BaseException):
    """A worker dying between its push and its ack."""


def test_a_batch_replayed_after_a_crash_is_one_commit(tmp_path: Path, redis_url: str) -> None:
    stream = f"fltest:r{uuid.uuid4().hex[:12]}"
    store = _store(tmp_path, "redis", stream, redis_url)
    pub = _publisher(store)
    events = _events(300, 10, seed=2)
    pub.publish(_payloads(events))

    def crashing(*args: Any, **kw: Any) -> Broker:
        b = open_broker(*args, **kw)

        def ack(messages: Any) -> None:
            raise _Crash

        b.ack = ack  # type: ignore[method-assign]
        return b

    w = StreamWorker(store, consumer="same", batch_size=1000, broker_factory=crashing)
    with pytest.raises(_Crash):
        w.run(once=True)
    commits = len(store.commits("tx"))
    assert commits == 1
    w2 = StreamWorker(store, consumer="same", batch_size=1000)  # restarted: its pending first
    (stats,) = w2.run(once=True, max_seconds=30)
    assert (stats.replayed, stats.written) == (1, 300)
    assert len(store.commits("tx")) == commits  # the replay was the same commit
    _check(store, events)
    w2.close()
    pub.close()
    import redis

    redis.Redis.from_url(redis_url).delete(stream, f"{stream}:dead")


_WORKER = textwrap.dedent(
    """
    import sys
    import featureline as fl
    from featureline.stream import StreamWorker
    store = fl.FeatureStore(sys.argv[1])
    w = StreamWorker(store, consumer=sys.argv[2], batch_size=int(sys.argv[3]))
    print("started", flush=True)
    w.run(once=sys.argv[4] == "once", max_seconds=float(sys.argv[5]))
    print("done", flush=True)
    """
)


def _spawn(
    repo: Path, consumer: str, batch: int, once: bool, max_seconds: float = 60
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [str(repo), consumer, str(batch), "once" if once else "forever", str(max_seconds)]
    return subprocess.Popen([sys.executable, "-c", _WORKER, *args], stdout=subprocess.PIPE, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_a_worker_sigkilled_at_random_points_changes_no_final_value(
    tmp_path: Path, broker: str, request: pytest.FixtureRequest
) -> None:
    kills = int(os.environ.get("FEATURELINE_STREAM_KILLS", "8"))
    url = request.getfixturevalue(f"{broker}_url")
    tag = uuid.uuid4().hex[:12]
    stream = f"fltest:k{tag}" if broker == "redis" else f"fltest.k{tag}"
    store = _store(tmp_path, broker, stream, url, redeliver_after_seconds=0.3)
    pub = _publisher(store)
    events = _events(2_000 * kills, 300, seed=3)
    payloads = _payloads(events)
    rng = random.Random(7)
    chunk = -(-len(payloads) // kills)
    published = 0

    def acked() -> int:  # published, less unread and unacknowledged (the broker's own counts)
        lag = pub.lag()
        assert lag.total is not None, lag
        return published - lag.total

    killed = progressed = 0
    for i in range(kills):
        part = payloads[i * chunk : (i + 1) * chunk]
        pub.publish(part)  # events keep arriving
        published += len(part)
        # a new consumer name each time: the dead one's batch is delivered again to the next
        with _spawn(store.repo_path, f"w{i}", rng.choice([100, 300, 1000]), once=False) as p:
            assert p.stdout is not None and p.stdout.readline().strip() == b"started"
            seen = acked()
            deadline = time.monotonic() + 10  # let it finish a batch, then kill it anywhere
            while acked() == seen and time.monotonic() < deadline:
                time.sleep(0.005)
            progressed += acked() > seen
            time.sleep(rng.uniform(0, 0.3))
            p.send_signal(signal.SIGKILL)
            p.wait()
            killed += p.returncode == -signal.SIGKILL
    assert killed == kills
    assert progressed == kills, "some workers were killed before they acknowledged a batch"
    time.sleep(0.4)  # past redeliver_after: the last one's unacknowledged batch is due again
    # the last one drains what is left (with 50 kills on a loaded machine, minutes of events)
    with _spawn(store.repo_path, "final", 1000, once=True, max_seconds=600) as p:
        out, _ = p.communicate(timeout=660)
    assert p.returncode == 0 and b"done" in out
    lag = pub.lag()
    assert (lag.pending, lag.waiting) == (0, 0)
    assert not pub.dead_letters(), "no event may be dead-lettered by the kills"
    _check(store, events)
    pub.close()
    if broker == "redis":
        import redis

        r = redis.Redis.from_url(url)
        r.delete(stream, f"{stream}:dead")
        r.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server(port: int, data: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    assert exe is not None
    p = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError("redis-server did not start")


def test_the_worker_reconnects_when_the_broker_restarts(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is needed to restart a private Redis (CI=true)")
        pytest.skip("redis-server is needed to restart a private Redis")
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = _redis_server(port, data)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        store = _store(tmp_path, "redis", "restart", url)
        pub = _publisher(store)
        events = _events(4000, 50, seed=4)
        payloads = _payloads(events)
        pub.publish(payloads[:2000])
        pub.close()
        w = StreamWorker(store, consumer="w", batch_size=300, max_backoff=0.5)
        stop = threading.Event()
        th = threading.Thread(target=lambda: w.run(stop=stop))
        th.start()
        deadline = time.monotonic() + 20
        while w.stats[0].written == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.send_signal(signal.SIGTERM)  # a restart: Redis saves its append-only file
        server.wait(10)
        time.sleep(0.5)
        server = _redis_server(port, data)
        pub = _publisher(store)
        pub.publish(payloads[2000:])
        deadline = time.monotonic() + 30
        while w.stats[0].written < 4000 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        th.join(10)
        (stats,) = w.stats
        assert stats.reconnects >= 1 and stats.errors >= 1
        assert stats.written >= 4000
        _check(store, events)
        w.close()
        pub.close()
    finally:
        server.terminate()
        server.wait(10)


def test_rows_the_write_path_refuses_are_found_by_halving_and_dead_lettered(
    tmp_path: Path, redis_url: str
) -> None:
    stream = f"fltest:h{uuid.uuid4().hex[:12]}"
    store = _store(tmp_path, "redis", stream, redis_url)
    pub = _publisher(store)
    events = _events(100, 5, seed=5)
    payloads = _payloads(events)
    ahead = json.dumps({"uid": 1, "ts": "2999-01-01T00:00:00+00:00", "amount": 1.0}).encode()
    pub.publish([*payloads[:37], ahead, *payloads[37:]])
    w = StreamWorker(store, consumer="w", batch_size=1000)
    w.lanes[0].parser.max_future_us = None  # let the write path be the one that refuses it
    (stats,) = w.run(once=True, max_seconds=30)
    assert (stats.written, stats.dead_letters) == (100, 1)
    (dead,) = pub.dead_letters()
    assert (
        dead.reason.startswith("refused by the write path") and "max_future_seconds" in dead.reason
    )
    _check(store, events)
    w.close()
    pub.close()
    import redis

    redis.Redis.from_url(redis_url).delete(stream, f"{stream}:dead")


def _nats_server(port: int, data: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("nats-server")
    assert exe is not None
    p = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.2)  # JetStream comes up just after the port
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError("nats-server did not start")


def test_the_worker_reconnects_when_nats_restarts(tmp_path: Path) -> None:
    if shutil.which("nats-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("nats-server is needed to restart a private NATS (CI=true)")
        pytest.skip("nats-server is needed to restart a private NATS")
    port = _free_port()
    data = tmp_path / "nats"
    server = _nats_server(port, data)
    url = f"nats://127.0.0.1:{port}"
    try:
        store = _store(tmp_path, "nats", "restart.tx", url)
        pub = _publisher(store)
        events = _events(3000, 50, seed=6)
        payloads = _payloads(events)
        pub.publish(payloads[:1500])
        pub.close()
        w = StreamWorker(store, consumer="w", batch_size=300, max_backoff=0.5)
        stop = threading.Event()
        th = threading.Thread(target=lambda: w.run(stop=stop))
        th.start()
        deadline = time.monotonic() + 20
        while w.stats[0].written == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        time.sleep(0.5)
        server = _nats_server(port, data)
        pub = _publisher(store)
        pub.publish(payloads[1500:])
        # `written` counts redeliveries too (a batch pushed before the restart whose ack was
        # lost is pushed again), so it can reach 3,000 before the last events are read:
        # wait for the values instead
        deadline = time.monotonic() + 30
        while True:
            try:
                _check(store, events)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        stop.set()
        th.join(10)
        (stats,) = w.stats
        assert stats.written >= 3000, stats
        _check(store, events)
        w.close()
        pub.close()
    finally:
        server.terminate()
        server.wait(10)


def test_a_worker_removes_old_orphan_quarantine_files(tmp_path: Path, redis_url: str) -> None:
    """Before: only `featureline quarantine gc` (and a server) removed them; a worker that
    stays up for weeks left every interrupted quarantine write behind."""
    from featureline.quality import quarantine

    store = _store(tmp_path, "redis", f"fltest:q{uuid.uuid4().hex[:12]}", redis_url)
    d = quarantine.folder(store.offline.root, "tx")
    d.mkdir(parents=True, exist_ok=True)
    orphan = d / "deadbeef.c7.v1.parquet"  # its commit never landed
    orphan.write_bytes(b"PAR1")
    past = time.time() - quarantine.ORPHAN_GRACE_SECONDS - 60
    os.utime(orphan, (past, past))
    w = StreamWorker(store, consumer="gc")
    try:
        end = time.monotonic() + 10
        while orphan.exists() and time.monotonic() < end:
            time.sleep(0.02)
        assert not orphan.exists()
    finally:
        w.close()
        store.close()
