"""`FeatureStore.freshness(view=...)` (issue 12): one view's freshness, the same figures as the
all-views answer, without reading the other views; the UI's view page asks for its view alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import featureline as fl
from featureline.server._ui_data import UiData
from tests.helpers import new_store, rows, utc


def _views() -> list[Any]:
    driver = fl.Entity("driver", ["driver_id"])
    schema = [
        fl.Field("driver_id", fl.Int64),
        fl.Field("rate", fl.Float64),
        fl.Field("trips", fl.Int64),
    ]
    return [driver, *(fl.FeatureView(n, entities=[driver], schema=schema) for n in ("a", "b"))]


def test_one_view_has_the_figures_of_all_views(tmp_path: Path) -> None:
    with new_store(tmp_path, *_views()) as store:
        store.ingest("a", rows([1, 2], [utc(2025, 1, 1), utc(2025, 1, 2)], [1.0, 2.0]))
        store.ingest("b", rows([1], [utc(2025, 1, 3)], [1.0]))
        every = store.freshness()
        for name in ("a", "b"):
            one = store.freshness(name)
            assert list(one) == [name]
            got, want = one[name], every[name]
            for key in ("rows", "last_event", "last_ingested", "objective_seconds", "quarantined"):
                assert got[key] == want[key], key
        assert store.freshness(store.get_feature_view("a"))["a"]["rows"] == 2
        assert store.freshness("a@v1")["a"]["rows"] == 2


def test_the_view_page_reads_its_view_alone(tmp_path: Path) -> None:
    with new_store(tmp_path, *_views()) as store:
        store.ingest("a", rows([1], [utc(2025, 1, 1)], [1.0]))
        real = store.freshness
        asked: list[Any] = []

        def freshness(view: Any = None) -> Any:
            asked.append(getattr(view, "name", view))
            return real(view)

        with mock.patch.object(store, "freshness", side_effect=freshness):
            page = UiData(store).view("a")
        assert asked == ["a"]
        assert page["freshness"]["last_event"] == utc(2025, 1, 1)


def test_one_views_quarantine_count_reads_its_files_alone(tmp_path: Path) -> None:
    from featureline.quality import quarantine
    from tests.unit.test_quality import _batch, _view

    card, pay = _view()
    _, refunds = _view(name="refunds")
    with new_store(tmp_path, card, pay, refunds) as store:
        t = _batch([1, 2, 3], [utc(2025, 1, 1)] * 3, [5.0, -1.0, 20000.0], ["ams", "xyz", "ber"])
        store.ingest("payments", t)
        store.ingest("refunds", _batch([4], [utc(2025, 1, 2)], [-2.0], ["ams"]))
        root = store.offline.root
        every = quarantine.count(root)
        assert every == {"payments": 2, "refunds": 1}
        opened: list[str] = []
        real = quarantine._files

        def files(offline_root: Path, view: str) -> list[Path]:
            opened.append(view)
            return real(offline_root, view)

        with mock.patch.object(quarantine, "_files", side_effect=files):
            assert quarantine.count(root, "refunds") == {"refunds": 1}
            assert store.freshness("payments")["payments"]["quarantined"] == 2
        assert opened == ["refunds", "payments"]
        assert quarantine.count(root, "nope") == {}
        assert store.freshness()["refunds"]["quarantined"] == 1
