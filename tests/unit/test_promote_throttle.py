"""A push promotes due staged values at most once a second per online store and table (on Redis
each promote is a round trip on every push of a stream), and that never changes a read: a
staged row is served from its event time on whether it was promoted or not."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from featureline.online import materialize
from tests.helpers import driver_defs, new_store, rows


def _spied(store: object, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    online = store.online  # type: ignore[attr-defined]
    calls: list[str] = []
    real = online.promote
    monkeypatch.setattr(online, "promote", lambda t, now=None: calls.append(t) or real(t, now))
    return calls


def test_pushes_within_a_second_promote_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    calls = _spied(store, monkeypatch)
    now = datetime.now(UTC)
    for i in range(5):
        store.push("driver_stats", rows([i], [now], [float(i)]))
    assert len(calls) == 1  # (was: one per push)
    monkeypatch.setattr(materialize, "PROMOTE_EVERY_SECONDS", 0.0)
    store.push("driver_stats", rows([9], [now], [9.0]))
    assert len(calls) == 2


def test_a_staged_row_is_served_when_due_without_a_promote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    calls = _spied(store, monkeypatch)
    now = datetime.now(UTC)
    store.push("driver_stats", rows([1], [now - timedelta(seconds=1)], [1.0]))
    store.push("driver_stats", rows([1], [now + timedelta(seconds=0.5)], [2.0]))  # staged
    assert len(calls) == 1
    got = store.get_online_features(["driver_stats:rate"], {"driver_id": [1]}).to_dict()
    assert got["rate"] == [1.0]  # the staged value is not due yet
    time.sleep(0.7)
    got = store.get_online_features(["driver_stats:rate"], {"driver_id": [1]}).to_dict()
    assert got["rate"] == [2.0] and len(calls) == 1  # served from its event time, unpromoted
