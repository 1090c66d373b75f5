"""Concurrent `apply` from several processes (DESIGN §3 "Concurrency"): no lost updates.

Two spawned worker processes apply at once to one registry (SQLite file or PostgreSQL),
trial after trial. With `at_append=True` each worker's registry append waits at a barrier
until the other one got there too, so both have planned against the same version: the
interleaving that lost one apply's change before appending became a compare-and-swap.
Without it the two just race from a common start.
"""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import featureline as fl
from featureline.errors import ConflictError

TRIALS = 10
WORKERS = 2
TIMEOUT = 60.0


# ---- definitions the workers apply ----------------------------------------------------------


def _objects(change: str) -> tuple[list[Any], list[str]]:
    """The objects (and new_versions) of one named change; the base is driver + base_view."""
    driver = fl.Entity("driver", ["driver_id"])
    trips = {"v2_float": fl.Float64, "v2_string": fl.String}.get(change, fl.Int64)
    ttl_days = {"ttl_2": 2, "ttl_3": 3}.get(change, 1)
    base_view = fl.FeatureView(
        "base_view",
        [driver],
        [fl.Field("driver_id", fl.Int64), fl.Field("trips", trips)],
        ttl=timedelta(days=ttl_days),
    )
    objects: list[Any] = [driver, base_view]
    if change == "add_view_a":
        objects.append(
            fl.FeatureView(
                "view_a", [driver], [fl.Field("driver_id", fl.Int64), fl.Field("a", fl.Float64)]
            )
        )
    if change == "add_car_and_view_b":
        car = fl.Entity("car", ["car_id"])
        objects += [
            car,
            fl.FeatureView(
                "view_b", [car], [fl.Field("car_id", fl.Int64), fl.Field("b", fl.Int64)]
            ),
        ]
    return objects, (["base_view"] if change.startswith("v2_") else [])


def _worker(tasks: Any, results: Any, start: Any, at_append: Any) -> None:
    """A long-lived spawned process: run apply tasks until it gets None."""
    while True:
        task = tasks.get()
        if task is None:
            return
        repo, change, hooked = task
        store = None
        try:
            store = fl.FeatureStore(repo)
            objects, new_versions = _objects(change)
            if hooked:
                registry = store.registry
                real: Callable[..., Any] = registry.append
                waited = []

                def append(
                    *args: Any, _real: Any = real, _waited: list[bool] = waited, **kw: Any
                ) -> Any:
                    if not _waited:  # only the first attempt waits: both have planned by then
                        _waited.append(True)
                        at_append.wait(timeout=TIMEOUT)
                    return _real(*args, **kw)

                registry.append = append  # type: ignore[method-assign]
            start.wait(timeout=TIMEOUT)
            rv = store.apply(objects, new_versions=new_versions)
            results.put((change, "ok", None if rv is None else rv.version, ""))
        except ConflictError as e:
            results.put((change, "conflict", None, str(e)))
        except BaseException as e:  # report everything to the parent
            results.put((change, "error", None, f"{type(e).__name__}: {e}"))
        finally:
            if store is not None:
                store.close()


class Pool:
    """WORKERS spawned processes, started once per module (spawning costs about a second)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.start, self.at_append = ctx.Barrier(WORKERS), ctx.Barrier(WORKERS)
        self.results = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(WORKERS)]
        self.procs = [
            ctx.Process(
                target=_worker, args=(q, self.results, self.start, self.at_append), daemon=True
            )
            for q in self.tasks
        ]
        for p in self.procs:
            p.start()

    def run(
        self, repo: Path, changes: tuple[str, str], hooked: bool
    ) -> dict[str, tuple[str, int | None, str]]:
        for q, change in zip(self.tasks, changes, strict=True):
            q.put((str(repo), change, hooked))
        out: dict[str, tuple[str, int | None, str]] = {}
        try:
            for _ in changes:
                change, status, version, text = self.results.get(timeout=TIMEOUT)
                out[change] = (status, version, text)
        except queue.Empty:
            pytest.fail(f"only {len(out)} of {len(changes)} applies returned within {TIMEOUT} s")
        return out

    def close(self) -> None:
        for q in self.tasks:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    p = Pool()
    yield p
    p.close()


# ---- one repo per trial, on SQLite or PostgreSQL ---------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def new_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """Make a fresh repo (own project; own registry) holding version 1: driver + base_view."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    projects: list[str] = []

    def make() -> Path:
        project = f"t_apply_{uuid.uuid4().hex[:12]}"
        projects.append(project)
        repo = tmp_path / project
        fl.init_repo(repo, project=project, with_data=False)
        (repo / "definitions.py").unlink()
        if url is not None:
            cfg = repo / "featureline.yaml"
            cfg.write_text(
                cfg.read_text().replace("registry: data/registry.db", f"registry: {url}")
            )
        with fl.FeatureStore(repo) as store:
            objects, _ = _objects("base")
            rv = store.apply(objects)
            assert rv is not None and rv.version == 1
        return repo

    yield make
    if url is not None:
        import psycopg

        from featureline.registry.postgres import TABLE

        with psycopg.connect(url, autocommit=True) as con:
            con.execute(f"DELETE FROM {TABLE} WHERE project = ANY(%s)", (projects,))


def _history(repo: Path) -> list[fl.RegistryVersion] | list[Any]:
    with fl.FeatureStore(repo) as store:
        return store.history()


def _assert_linear(history: list[Any], trial: int) -> None:
    """Versions 1..n; each records exactly the changes from its predecessor (nothing silently
    lost); every (view, version number) was stored with one schema only."""
    from featureline.registry import diff_snapshots

    assert [rv.version for rv in history] == list(range(1, len(history) + 1)), f"trial {trial}"
    for prev, cur in itertools.pairwise(history):
        recorded = sorted((c["kind"], c["name"], c["op"]) for c in cur.changes)
        actual = sorted(
            (c["kind"], c["name"], c["op"]) for c in diff_snapshots(prev.snapshot, cur.snapshot)
        )
        assert recorded == actual, (
            f"trial {trial}: version {cur.version} records {recorded} but changed {actual}"
        )
    schemas = _schemas_by_view_version(history)
    assert all(len(s) == 1 for s in schemas.values()), f"trial {trial}: {schemas}"


def _schemas_by_view_version(history: list[Any]) -> dict[tuple[str, int], set[str]]:
    """Every (view, version number) in the history, with each distinct schema it was stored with."""
    out: dict[tuple[str, int], set[str]] = {}
    for rv in history:
        for name, entries in rv.snapshot["views"].items():
            for entry in entries:
                schema = repr([(f["name"], f["dtype"]) for f in entry["schema"]])
                out.setdefault((name, entry["version"]), set()).add(schema)
    return out


# ---- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("hooked", [True, False], ids=["planned-together", "free-race"])
def test_concurrent_applies_of_disjoint_changes_keep_both(
    pool: Pool, new_repo: Callable[[], Path], hooked: bool, request: pytest.FixtureRequest
) -> None:
    rebased = 0
    for trial in range(TRIALS):
        repo = new_repo()
        got = pool.run(repo, ("add_view_a", "add_car_and_view_b"), hooked)
        assert {s for s, _, _ in got.values()} == {"ok"}, f"trial {trial}: {got}"
        assert sorted(v for _, v, _ in got.values()) == [2, 3], f"trial {trial}: {got}"
        history = _history(repo)
        _assert_linear(history, trial)
        latest = history[-1].snapshot
        if sorted(latest["views"]) == ["base_view", "view_a", "view_b"]:
            assert sorted(latest["entities"]) == ["car", "driver"], f"trial {trial}"
            assert latest["views"]["base_view"] == history[0].snapshot["views"]["base_view"]
            rebased += 1
        else:
            # Only possible when one apply planned after the other finished: declaring the
            # whole repo then removes the other's objects, and version 3 records that removal.
            assert not hooked, (
                f"trial {trial}: both planned against version 1, yet {latest['views']}"
            )
            assert any(c["op"] == "remove" for c in history[-1].changes), f"trial {trial}"
    print(
        f"\n[{request.node.callspec.id}] disjoint applies: {TRIALS} trials, {rebased} kept both changes"
    )


@pytest.mark.parametrize("hooked", [True, False], ids=["planned-together", "free-race"])
def test_concurrent_new_versions_of_one_view_never_fork_v2(
    pool: Pool, new_repo: Callable[[], Path], hooked: bool, request: pytest.FixtureRequest
) -> None:
    conflicts = 0
    for trial in range(TRIALS):
        repo = new_repo()
        got = pool.run(repo, ("v2_float", "v2_string"), hooked)
        statuses = sorted(s for s, _, _ in got.values())
        history = _history(repo)
        _assert_linear(history, trial)  # every view version number means one schema
        if statuses == ["conflict", "ok"]:
            conflicts += 1
            (loser,) = [c for c, (s, _, _) in got.items() if s == "conflict"]
            text = got[loser][2]
            assert "base_view" in text and "featureline plan" in text, text
            assert [rv.version for rv in history] == [1, 2]  # nothing of the loser was stored
            assert [e["version"] for e in history[-1].snapshot["views"]["base_view"]] == [1, 2]
        else:  # one applied after the other had finished: v2 then v3, both readable
            assert not hooked, f"trial {trial}: both planned against v1, yet {got}"
            assert statuses == ["ok", "ok"], f"trial {trial}: {got}"
            assert [e["version"] for e in history[-1].snapshot["views"]["base_view"]] == [1, 2, 3]
    if hooked:
        assert conflicts == TRIALS
    print(
        f"\n[{request.node.callspec.id}] new-version applies: {TRIALS} trials, {conflicts} conflicts"
    )


def test_concurrent_in_place_updates_of_one_view_conflict(
    pool: Pool, new_repo: Callable[[], Path], request: pytest.FixtureRequest
) -> None:
    for trial in range(TRIALS // 2):
        repo = new_repo()
        got = pool.run(repo, ("ttl_2", "ttl_3"), True)
        assert sorted(s for s, _, _ in got.values()) == ["conflict", "ok"], f"trial {trial}: {got}"
        (winner,) = [c for c, (s, _, _) in got.items() if s == "ok"]
        history = _history(repo)
        _assert_linear(history, trial)
        assert [rv.version for rv in history] == [1, 2]
        ttl = history[-1].snapshot["views"]["base_view"][-1]["ttl_seconds"]
        assert ttl == {"ttl_2": 2, "ttl_3": 3}[winner] * 86400
    print(
        f"\n[{request.node.callspec.id}] in-place updates: {TRIALS // 2} trials, {TRIALS // 2} conflicts"
    )
