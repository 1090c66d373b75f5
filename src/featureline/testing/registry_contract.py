"""The contract every RegistryStore backend passes.

Subclass `RegistryContract` in a test module and override the `registry` fixture so it yields
a fresh, empty store (and closes it afterwards)::

    class TestSqliteRegistry(RegistryContract):
        @pytest.fixture
        def registry(self, tmp_path):
            store = SqliteRegistry(tmp_path / "registry.db")
            yield store
            store.close()

A store must pickle to its construction arguments (`__reduce__`): the suite sends it to
worker processes and reopens it that way, as pipeline executors do.

`append(..., expected_version=n)` must be an atomic compare-and-swap (DESIGN §3 "Concurrency"):
it stores version n + 1 only while n is still the latest (None: while the registry is empty),
and otherwise stores nothing and raises `RegistryConflictError` (a `ConflictError`, HTTP 409).
The suite checks it from several processes at once.
"""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import queue
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from featureline.errors import ConflictError, NotFoundError, StorageError, ValidationError
from featureline.registry import RegistryCapabilities, RegistryStore, RegistryVersion

_US = timedelta(microseconds=1)
WORKERS = 4
PER_WORKER = 10


def make_snapshot(n: int, **extra: Any) -> dict[str, Any]:
    """A small but realistic snapshot, distinct for each `n`."""
    return {
        "project": "contract",
        "entities": {
            "driver": {
                "name": "driver",
                "join_keys": ["driver_id"],
                "description": "",
                "owner": "",
                "tags": {},
            }
        },
        "views": {
            "driver_stats": [
                {
                    "name": "driver_stats",
                    "version": 1,
                    "entities": ["driver"],
                    "schema": [{"name": "trips", "dtype": "Int64", "description": "", "tags": {}}],
                    "source": None,
                    "ttl_seconds": 86400.0 * n,
                    "owner": "ana@example.com",
                    "description": f"snapshot {n} — ünïcode ok",
                    "tags": {"n": str(n)},
                    "online": True,
                }
            ]
        },
        "services": {},
        **extra,
    }


def _change(n: int) -> list[dict[str, Any]]:
    return [
        {
            "kind": "view",
            "name": "driver_stats",
            "op": "update",
            "details": [f"ttl {n}"],
            "breaking": False,
        }
    ]


def _append_worker(
    store: RegistryStore, worker: int, count: int, barrier: Any, results: Any
) -> None:
    """Runs in a spawned process: append `count` versions as fast as possible."""
    try:
        barrier.wait(timeout=120)
        got = [
            store.append(make_snapshot(i, worker=worker), [], f"w{worker}-{i}").version
            for i in range(count)
        ]
        results.put((worker, got, None))
    except BaseException as e:  # report everything to the parent
        results.put((worker, [], f"{type(e).__name__}: {e}"))
    finally:
        store.close()


def _cas_worker(store: RegistryStore, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Runs in a spawned process: `count` read-modify-write updates, each a compare-and-swap.

    Each update reads the latest snapshot, adds this worker's mark to its `log` and appends
    it on the version it read; on a conflict it reads again and retries.
    """
    conflicts = 0
    try:
        barrier.wait(timeout=120)
        for i in range(count):
            while True:
                latest = store.latest()
                assert latest is not None  # the parent seeds version 1
                snapshot = {**latest.snapshot, "log": [*latest.snapshot["log"], f"w{worker}-{i}"]}
                try:
                    store.append(snapshot, [], f"w{worker}-{i}", expected_version=latest.version)
                    break
                except ConflictError:
                    conflicts += 1
        results.put((worker, conflicts, None))
    except BaseException as e:  # report everything to the parent
        results.put((worker, conflicts, f"{type(e).__name__}: {e}"))
    finally:
        store.close()


def _run_workers(target: Any, registry: RegistryStore) -> list[tuple[int, Any, str | None]]:
    """Start WORKERS spawned processes running `target(store, w, PER_WORKER, barrier, results)`."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(registry, w, PER_WORKER, barrier, results))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    outcomes: list[tuple[int, Any, str | None]] = []
    try:
        for _ in procs:
            outcomes.append(results.get(timeout=180))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {WORKERS} workers reported within 180 s")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()
        results.join_thread()
    return outcomes


class RegistryContract:
    """Base class of registry backend tests. Override the `registry` fixture."""

    @pytest.fixture
    def registry(self) -> Iterator[RegistryStore]:
        raise NotImplementedError("override the `registry` fixture to yield a fresh, empty store")

    # ---- basics ---------------------------------------------------------------------------

    def test_is_a_registry_store(self, registry: RegistryStore) -> None:
        assert isinstance(registry, RegistryStore)
        assert isinstance(registry.capabilities, RegistryCapabilities)
        assert isinstance(registry.capabilities.shared, bool)

    def test_empty_registry(self, registry: RegistryStore) -> None:
        assert registry.latest() is None
        assert registry.history() == []
        assert registry.at(datetime.now(UTC)) is None
        with pytest.raises(NotFoundError, match="empty"):
            registry.get(1)

    def test_append_get_latest_round_trip(self, registry: RegistryStore) -> None:
        before = datetime.now(UTC) - timedelta(seconds=5)
        v1 = registry.append(make_snapshot(1), _change(1), "first")
        v2 = registry.append(make_snapshot(2), _change(2))
        after = datetime.now(UTC) + timedelta(seconds=5)
        assert (v1.version, v2.version) == (1, 2)
        for v, n in ((v1, 1), (v2, 2)):
            assert isinstance(v, RegistryVersion)
            assert v.applied_at.tzinfo is not None and v.applied_at.utcoffset() == timedelta(0)
            assert before <= v.applied_at <= after
            assert v.snapshot == make_snapshot(n)
            assert v.changes == _change(n)
        assert v1.message == "first" and v2.message == ""
        assert v1.applied_at < v2.applied_at
        assert registry.get(1) == v1
        assert registry.get(2) == v2
        assert registry.latest() == v2

    def test_returned_snapshots_are_independent(self, registry: RegistryStore) -> None:
        v1 = registry.append(make_snapshot(1), [])
        v1.snapshot["views"].clear()
        registry.get(1).snapshot["entities"].clear()
        assert registry.get(1).snapshot == make_snapshot(1)

    def test_applied_at_strictly_increases_when_clock_stalls_or_goes_back(
        self, registry: RegistryStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        frozen = time.time_ns()
        monkeypatch.setattr(time, "time_ns", lambda: frozen)
        stamps = [registry.append(make_snapshot(i), []).applied_at for i in range(3)]
        monkeypatch.setattr(time, "time_ns", lambda: frozen - 3_600 * 10**9)
        stamps.append(registry.append(make_snapshot(9), []).applied_at)
        assert all(a < b for a, b in itertools.pairwise(stamps))
        assert [v.applied_at for v in registry.history()] == stamps

    def test_many_fast_appends_keep_order(self, registry: RegistryStore) -> None:
        versions = [registry.append(make_snapshot(i), []) for i in range(25)]
        assert [v.version for v in versions] == list(range(1, 26))
        stamps = [v.applied_at for v in versions]
        assert all(a < b for a, b in itertools.pairwise(stamps))

    # ---- time travel ----------------------------------------------------------------------

    def test_at(self, registry: RegistryStore) -> None:
        v1 = registry.append(make_snapshot(1), [])
        v2 = registry.append(make_snapshot(2), [])
        v3 = registry.append(make_snapshot(3), [])
        assert registry.at(v1.applied_at - _US) is None
        assert registry.at(v1.applied_at) == v1
        assert registry.at(v2.applied_at - _US) == v1
        assert registry.at(v2.applied_at) == v2
        assert registry.at(v3.applied_at) == v3
        assert registry.at(v3.applied_at + timedelta(days=365)) == v3
        plus5 = timezone(timedelta(hours=5))
        assert registry.at(v2.applied_at.astimezone(plus5)) == v2
        assert registry.at(datetime(2000, 1, 1, tzinfo=UTC)) is None

    def test_at_rejects_naive_datetimes(self, registry: RegistryStore) -> None:
        registry.append(make_snapshot(1), [])
        with pytest.raises(ValidationError, match="timezone"):
            registry.at(datetime.now())
        with pytest.raises(ValidationError):
            registry.at("2024-01-01")  # type: ignore[arg-type]

    # ---- errors -----------------------------------------------------------------------------

    def test_get_missing_version_names_the_valid_range(self, registry: RegistryStore) -> None:
        registry.append(make_snapshot(1), [])
        registry.append(make_snapshot(2), [])
        for missing in (0, 3, 99, -1):
            with pytest.raises(NotFoundError, match=r"1\.\.2") as info:
                registry.get(missing)
            assert f"`{missing}`" in str(info.value)
        with pytest.raises(ValidationError):
            registry.get("1")  # type: ignore[arg-type]

    def test_unserialisable_snapshot_is_refused_and_not_stored(
        self, registry: RegistryStore
    ) -> None:
        with pytest.raises(ValidationError, match="JSON"):
            registry.append({"project": "p", "when": datetime.now(UTC)}, [])
        assert registry.latest() is None
        assert registry.append(make_snapshot(1), []).version == 1

    def test_closed_store_raises_storage_error(self, registry: RegistryStore) -> None:
        registry.append(make_snapshot(1), [])
        registry.close()
        registry.close()  # idempotent
        with pytest.raises(StorageError, match="closed"):
            registry.latest()
        with pytest.raises(StorageError, match="closed"):
            registry.head()

    def test_head_marks_the_latest_version(self, registry: RegistryStore) -> None:
        """`head()`: (latest version, its applied_at in µs) without the snapshot; None when empty;
        it moves with every append, also one made through another handle (another process)."""
        from featureline._time import to_us

        assert registry.head() is None
        for i in range(1, 4):
            v = registry.append(make_snapshot(i), _change(i))
            assert registry.head() == (v.version, to_us(v.applied_at))
            latest = registry.latest()
            assert latest is not None and registry.head() == (
                latest.version,
                to_us(latest.applied_at),
            )
        other: RegistryStore = pickle.loads(pickle.dumps(registry))
        try:
            before = registry.head()
            v = other.append(make_snapshot(9), [])
            assert registry.head() == (v.version, to_us(v.applied_at)) != before
        finally:
            other.close()

    # ---- history, durability, concurrency ---------------------------------------------------

    def test_history_is_ascending(self, registry: RegistryStore) -> None:
        appended = [registry.append(make_snapshot(i), _change(i), f"m{i}") for i in range(5)]
        assert registry.history() == appended

    def test_data_survives_close_and_reopen(self, registry: RegistryStore) -> None:
        appended = [registry.append(make_snapshot(i), _change(i), f"m{i}") for i in range(3)]
        blob = pickle.dumps(registry)
        registry.close()
        reopened: RegistryStore = pickle.loads(blob)
        try:
            assert reopened.history() == appended
            assert reopened.append(make_snapshot(9), []).version == 4
        finally:
            reopened.close()

    def test_concurrent_processes_never_lose_or_duplicate_versions(
        self, registry: RegistryStore
    ) -> None:
        outcomes = _run_workers(_append_worker, registry)
        errors = [err for _, _, err in outcomes if err]
        assert errors == []
        for _, got, _ in outcomes:
            assert got == sorted(got) and len(got) == PER_WORKER
        total = WORKERS * PER_WORKER
        assert sorted(v for _, got, _ in outcomes for v in got) == list(range(1, total + 1))
        history = registry.history()
        assert [v.version for v in history] == list(range(1, total + 1))
        assert all(a.applied_at < b.applied_at for a, b in itertools.pairwise(history))
        assert sorted(v.message for v in history) == sorted(
            f"w{w}-{i}" for w in range(WORKERS) for i in range(PER_WORKER)
        )

    # ---- compare-and-swap on the expected version -------------------------------------------

    def test_append_on_the_expected_version(self, registry: RegistryStore) -> None:
        v1 = registry.append(make_snapshot(1), _change(1), "first", expected_version=None)
        v2 = registry.append(make_snapshot(2), _change(2), expected_version=1)
        v3 = registry.append(make_snapshot(3), [], expected_version=v2.version)
        assert [v.version for v in (v1, v2, v3)] == [1, 2, 3]
        assert registry.history() == [v1, v2, v3]

    def test_append_with_a_stale_expected_version_conflicts_and_stores_nothing(
        self, registry: RegistryStore
    ) -> None:
        registry.append(make_snapshot(1), _change(1), expected_version=None)
        registry.append(make_snapshot(2), _change(2), expected_version=1)
        before = registry.history()
        for stale in (None, 1, 3, 99):
            with pytest.raises(ConflictError) as info:
                registry.append(make_snapshot(9), _change(9), "stale", expected_version=stale)
            err = info.value
            assert err.http_status == 409
            text = str(err)
            assert "version 2" in text and "featureline plan" in text
            assert ("empty" in text) if stale is None else (f"version {stale}" in text)
            assert pickle.loads(pickle.dumps(err)).message == err.message
        assert registry.history() == before
        assert registry.latest() == before[-1]
        assert registry.append(make_snapshot(3), [], expected_version=2).version == 3

    def test_expected_version_on_an_empty_registry(self, registry: RegistryStore) -> None:
        with pytest.raises(ConflictError, match="empty"):
            registry.append(make_snapshot(1), [], expected_version=1)
        assert registry.history() == []
        assert registry.append(make_snapshot(1), [], expected_version=None).version == 1

    def test_bad_expected_version_is_a_validation_error(self, registry: RegistryStore) -> None:
        for bad in (0, -1, True, "1", 1.0):
            with pytest.raises(ValidationError, match="expected_version"):
                registry.append(make_snapshot(1), [], expected_version=bad)  # type: ignore[arg-type]
        assert registry.history() == []

    def test_concurrent_compare_and_swap_updates_lose_nothing(
        self, registry: RegistryStore
    ) -> None:
        registry.append(make_snapshot(0, log=[]), [], "seed", expected_version=None)
        outcomes = _run_workers(_cas_worker, registry)
        assert [err for _, _, err in outcomes if err] == []
        total = WORKERS * PER_WORKER
        history = registry.history()
        assert [v.version for v in history] == list(range(1, total + 2))
        # Linear history: every version extends the log of the one before by exactly one mark.
        for prev, cur in itertools.pairwise(history):
            assert cur.snapshot["log"][:-1] == prev.snapshot["log"]
        final = history[-1].snapshot["log"]
        assert sorted(final) == sorted(
            f"w{w}-{i}" for w in range(WORKERS) for i in range(PER_WORKER)
        )
        conflicts = sum(n for _, n, _ in outcomes)
        print(f"\n[{type(registry).__name__}] {total} CAS updates, {conflicts} conflicts retried")


__all__ = ["RegistryContract", "make_snapshot"]
