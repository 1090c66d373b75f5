"""`FeatureStore.catalog()` is cached by the registry's head (issue 10: the push path).

Before: every push, read and describe rebuilt the catalog from the latest snapshot (its JSON
parsed, every definition made again: ~0.4 ms a push, and a new FeatureView object each time,
which the online codec's name cache then held by the thousand)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import featureline as fl
from tests.helpers import driver_defs, new_store


def test_the_catalog_is_read_once_per_registry_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    calls = []
    real = type(store.registry).latest

    def latest(self: object) -> object:
        if self is store.registry:  # not the other store's apply
            calls.append(1)
        return real(self)  # type: ignore[arg-type]

    monkeypatch.setattr(type(store.registry), "latest", latest)
    first = store.catalog()
    assert store.catalog() is first and store.get_feature_view("driver_stats") is (
        store.get_feature_view("driver_stats")
    )
    assert len(calls) == 1
    # an apply from another store (another process, as far as this one knows) moves the head
    other = fl.FeatureStore(store.repo_path)
    entity, view = driver_defs(ttl=timedelta(days=2))
    other.apply([entity, view])
    other.close()
    again = store.catalog()
    assert again is not first and again.version == first.version + 1
    assert store.get_feature_view("driver_stats").ttl == timedelta(days=2)
    assert len(calls) == 2
    store.close()
