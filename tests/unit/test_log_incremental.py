"""The view log's live commits and idempotency keys are kept up to date incrementally.

Before: every `live_commits()` walked the whole log (a set of every replaced seq, then every
commit), and every read of a grown log copied the idempotency keys of every commit: a push cost
grew with the length of the log, which a stream worker appends to ~50 times a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureline.offline import _log
from featureline.offline._log import Part, ViewLog

# an op: (0, key or None) appends a commit; (1, how many) merges that many live commits
_ops = st.lists(
    st.one_of(
        st.tuples(st.just(0), st.one_of(st.none(), st.sampled_from("abc"))),
        st.tuples(st.just(1), st.integers(2, 4)),
    ),
    max_size=30,
)


def _reference(
    history: list[_log.Commit],
) -> tuple[list[int], dict[str, int], dict[int, str]]:
    """Live commits, the newest KEYS_KEPT keys and quarantine batches, from every commit made."""
    replaced = {s for c in history for s in c.replaces}
    newest: dict[str, int] = {}  # the newest KEYS_KEPT keys, each naming its first commit
    for c in history:
        k = c.meta.get("idempotency_key")
        if k is not None and k not in newest:
            newest[k] = c.seq
            if len(newest) > _log.KEYS_KEPT:
                del newest[next(iter(newest))]
    held = {c.seq: c.meta["quarantine"] for c in history if "quarantine" in c.meta}
    return [c.seq for c in history if c.seq not in replaced], newest, held


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_ops, st.sampled_from([3, 5, 10**9]), st.sampled_from([7200.0, 0.0]))
def test_incremental_reads_equal_a_fresh_parse(
    tmp_path_factory: object,
    monkeypatch: pytest.MonkeyPatch,
    ops: list,
    checkpoint_lines: int,
    keep_replaced: float,
) -> None:
    """Whether the log was rewritten by checkpoints (every 3 or 5 lines, or never) or not, a
    writer reading it incrementally, a reader that cached it before each rewrite and a fresh
    parse all agree with a reference built from every commit ever made."""
    monkeypatch.setattr(_log, "KEYS_KEPT", 2)  # the newest two keys are remembered
    monkeypatch.setattr(_log, "CHECKPOINT_LINES", checkpoint_lines)
    monkeypatch.setattr(_log, "KEEP_REPLACED_SECONDS", keep_replaced)
    root = tmp_path_factory.mktemp("log")  # type: ignore[attr-defined]
    log, follower = ViewLog(root), ViewLog(root)
    history: list[_log.Commit] = []
    for i, (op, arg) in enumerate(ops):
        if op == 0:
            meta = {"quarantine": f"q{i}"} if i % 3 == 0 else {}
            c = log.commit(
                lambda i=i: [Part(f"parts/x{i}.parquet", 1)], meta=meta, idempotency_key=arg
            )
        else:
            live = log.live_commits()
            if len(live) < arg:
                continue
            c = log.replace([Part(f"parts/m{i}.parquet", arg)], [c.seq for c in live[:arg]], {})
        if not history or c.seq > history[-1].seq:
            history.append(c)
        want_live, want_keys, want_held = _reference(history)
        fresh = ViewLog(root)
        for reader in (log, follower, fresh):
            assert [c.seq for c in reader.live_commits()] == want_live
            for k in "abc":
                found = reader.find_key(k)
                assert (found.seq if found is not None else None) == want_keys.get(k)
            for c in history:
                assert reader.quarantine_batch(c.seq) == want_held.get(c.seq)
            assert reader.first() == history[0]
            assert reader.last() == history[-1]
            assert reader.file_fates() == log.file_fates()
    if checkpoint_lines < 10**9 and len(history) > checkpoint_lines * 2:
        assert len(ViewLog(root).commits()) < len(history)  # it was rewritten


def test_a_checkpoint_bounds_the_file_and_keeps_every_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the log only grew (a stream's ~50 lines a second, forever), and every new process
    read all of it. Now a commit that brings it to CHECKPOINT_LINES rewrites it."""
    monkeypatch.setattr(_log, "CHECKPOINT_LINES", 100, raising=False)
    log = ViewLog(tmp_path)
    for i in range(1000):
        log.commit(lambda i=i: [Part(f"parts/p{i}.parquet", 1)], meta={}, idempotency_key=f"k{i}")
        live = log.live_commits()
        if len(live) >= 8:
            log.replace([Part(f"parts/m{i}.parquet", 8)], [c.seq for c in live], {})
    lines = log.log_path.read_text().count("\n")
    assert lines <= 101, lines  # (was: 1,142)
    fresh = ViewLog(tmp_path)
    assert fresh.find_key("k0") is not None and fresh.find_key("k999") is not None
    assert [c.seq for c in fresh.live_commits()] == [c.seq for c in log.live_commits()]
    assert fresh.last().seq == 1142 and fresh.first().seq == 1


def test_a_long_lived_writer_holds_a_bounded_part_of_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the parsed log held every commit it ever had (a stream worker appends ~50 a
    second: ~2 KB of memory each, forever). Now: the live ones, the newest keys (without their
    parts once replaced) and the recently replaced commits' files."""
    import gc

    monkeypatch.setattr(_log, "KEYS_KEPT", 10, raising=False)
    monkeypatch.setattr(_log, "KEEP_REPLACED_SECONDS", 0.0, raising=False)
    gc.collect()
    before = sum(isinstance(o, _log.Commit) for o in gc.get_objects())
    log = ViewLog(tmp_path)
    for i in range(400):
        log.commit(lambda i=i: [Part(f"parts/p{i}.parquet", 1)], meta={}, idempotency_key=f"k{i}")
        live = log.live_commits()
        if len(live) >= 8:
            log.replace([Part(f"parts/m{i}.parquet", 8)], [c.seq for c in live], {})
    log.live_commits()
    gc.collect()
    held = sum(isinstance(o, _log.Commit) for o in gc.get_objects()) - before
    assert held < 40, held  # (was: every one of the ~460 commits)
    assert log.find_key("k399") is not None and log.find_key("k0") is None
    _, wrote, replaced_at = log.file_fates()
    assert len(wrote) < 20 and len(replaced_at) < 20  # (was: one per commit)


def _three_parts(tmp_path: Path) -> tuple[Any, Any, ViewLog, list[Path]]:
    """A store whose `driver_stats` holds 3 one-row commits: (store, view, log, their files)."""
    from datetime import timedelta

    from tests.helpers import driver_defs, new_store, rows, utc

    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    view = store.get_feature_view("driver_stats")
    for i in range(3):
        store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [float(i)]))
    log = store.offline.log("driver_stats", 1)
    return store, view, log, [log.root / p.file for c in log.live_commits() for p in c.parts]


def test_vacuum_removes_a_part_replaced_long_ago_and_keeps_a_recent_one(tmp_path: Path) -> None:
    """A part file whose replacement the log no longer remembers (replaced more than
    KEEP_REPLACED_SECONDS ago) is an old unreferenced file to vacuum: removed. One replaced
    within the grace stays for readers in flight."""
    import os
    import time

    store, view, log, old = _three_parts(tmp_path)
    store.offline.compact(view)
    assert all(f.exists() for f in old)
    assert store.offline.vacuum(view).files_removed == 0  # replaced just now: kept (grace)
    long_ago = time.time() - 3 * _log.KEEP_REPLACED_SECONDS
    for f in old:
        os.utime(f, (long_ago, long_ago))
    log._cache = None  # as a process that starts now would parse it ...
    import featureline.offline._log as mod

    mod_keep = mod.KEEP_REPLACED_SECONDS
    try:
        mod.KEEP_REPLACED_SECONDS = 0.0  # ... had the replacement been long ago
        assert store.offline.vacuum(view, grace_seconds=0).files_removed == len(old)
    finally:
        mod.KEEP_REPLACED_SECONDS = mod_keep
    assert not any(f.exists() for f in old)
    assert [r["driver_id"] for r in store.offline.latest_rows(view).to_pylist()] != []


def test_vacuum_neither_takes_the_writer_lock_nor_walks_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: vacuum (after every automatic merge) walked every commit of the log three times
    under the writer lock, so each push behind it waited for a walk that grew with the log."""
    from datetime import timedelta

    from featureline.offline import store as offline_store
    from tests.helpers import driver_defs, new_store, rows, utc

    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    for i in range(offline_store.COMPACT_AFTER * 2):
        store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [float(i)]))
    log = store.offline.log("driver_stats", 1)
    locked, walked = [], []
    real_locked = ViewLog.locked

    def spy_locked(self: ViewLog) -> object:
        locked.append(1)
        return real_locked(self)

    monkeypatch.setattr(ViewLog, "locked", spy_locked)
    monkeypatch.setattr(ViewLog, "commits", lambda self: walked.append(1) or [])
    result = store.vacuum("driver_stats", grace_seconds=0)
    assert not locked and not walked
    assert result[0].files_removed >= offline_store.COMPACT_AFTER  # the merged-away parts went
    monkeypatch.undo()
    assert int(store.describe("driver_stats")["rows"]) == offline_store.COMPACT_AFTER * 2
    assert len(log.live_commits()) <= 2
    store.close()


def test_a_part_replaced_long_after_it_was_written_keeps_its_grace_once_the_log_forgets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the log held every replacement of the last 2 h in memory (a stream's merges
    replace ~100 commits a second), and a replacement it had forgotten left vacuum only the
    file's write time. A part written 2 h ago and replaced now was then removed at once,
    under a reader that listed it a moment ago. Now the replacement stamps the file's time."""
    import os
    import time

    from tests.helpers import rows, utc

    monkeypatch.setattr(_log, "KEEP_REPLACED_SECONDS", 0.0)  # the log forgets at once
    store, view, log, old = _three_parts(tmp_path)
    written = time.time() - 7200
    for f in old:
        os.utime(f, (written, written))
    store.offline.compact(view)
    time.sleep(0.01)
    store.ingest("driver_stats", rows([3], [utc(2025, 1, 1)], [3.0]))  # a commit after it ...
    log._cache = None  # ... and a process that starts now: the replacement is forgotten
    assert not log.file_fates()[2]
    assert store.offline.vacuum(view, grace_seconds=3600).files_removed == 0
    assert all(f.exists() for f in old)
    replaced = time.time() - 3700  # an hour and more after the replacement ...
    for f in old:
        os.utime(f, (replaced, replaced))
    assert store.offline.vacuum(view, grace_seconds=3600).files_removed == len(old)  # ... gone
    assert sorted(r["driver_id"] for r in store.offline.latest_rows(view).to_pylist()) == [
        0,
        1,
        2,
        3,
    ]


def test_a_vacuum_grace_longer_than_the_log_remembers_is_honoured(tmp_path: Path) -> None:
    """A grace of 3 h was refused (the log forgot replacements after 2 h); now it is kept."""
    from datetime import timedelta

    from tests.helpers import driver_defs, new_store, rows, utc

    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    for i in range(3):
        store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [float(i)]))
    store.compact("driver_stats")
    (result,) = store.vacuum("driver_stats", grace_seconds=3 * 3600)
    assert result.files_removed == 0
