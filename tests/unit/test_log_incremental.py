"""The view log's live commits and idempotency keys are kept up to date incrementally.

Before: every `live_commits()` walked the whole log (a set of every replaced seq, then every
commit), and every read of a grown log copied the idempotency keys of every commit: a push cost
grew with the length of the log, which a stream worker appends to ~50 times a second."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureline.offline._log import Part, ViewLog

# an op: (0, key or None) appends a commit; (1, how many) merges that many live commits
_ops = st.lists(
    st.one_of(
        st.tuples(st.just(0), st.one_of(st.none(), st.sampled_from("abc"))),
        st.tuples(st.just(1), st.integers(2, 4)),
    ),
    max_size=30,
)


def _reference(log_path: Path) -> tuple[list[int], dict[str, int]]:
    fresh = ViewLog(log_path)  # parses the whole file at once
    commits = fresh.commits()
    replaced = {s for c in commits for s in c.replaces}
    keys: dict[str, int] = {}
    for c in commits:
        k = c.meta.get("idempotency_key")
        if k is not None:
            keys.setdefault(k, c.seq)
    return [c.seq for c in commits if c.seq not in replaced], keys


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(_ops)
def test_incremental_reads_equal_a_fresh_parse(tmp_path_factory: object, ops: list) -> None:
    root = tmp_path_factory.mktemp("log")  # type: ignore[attr-defined]
    log = ViewLog(root)
    for op, arg in ops:
        if op == 0:
            log.commit(lambda: [Part("parts/x.parquet", 1)], meta={}, idempotency_key=arg)
        else:
            live = log.live_commits()
            if len(live) >= arg:
                log.replace([Part("parts/m.parquet", arg)], [c.seq for c in live[:arg]], {})
        want_live, want_keys = _reference(root)
        assert [c.seq for c in log.live_commits()] == want_live
        for k, seq in want_keys.items():
            found = log.find_key(k)
            assert found is not None and found.seq == seq


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
