"""The web UI's registry cache (issue 12) on every registry backend: the latest snapshot and the
version log are read once per registry head (`RegistryStore.head()`), re-read after an apply made
through another store (another process), on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import featureline as fl
from featureline.server._ui_data import UiData

pytestmark = pytest.mark.integration


def _objects(description: str) -> list[Any]:
    account = fl.Entity("account", ["account_id"])
    view = fl.FeatureView(
        "acct",
        entities=[account],
        schema=[fl.Field("account_id", fl.Int64), fl.Field("amount", fl.Float64)],
        description=description,
    )
    return [account, view]


@pytest.fixture(params=["sqlite", "postgres"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "repo"
    fl.init_repo(root, project="t", with_data=False)
    (root / "definitions.py").unlink()
    project = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        project = f"ui-head-{uuid.uuid4().hex}"
        cfg = (root / "featureline.yaml").read_text()
        cfg = cfg.replace("project: t\n", f"project: {project}\n")
        (root / "featureline.yaml").write_text(
            cfg.replace("registry: data/registry.db", f"registry: {url}")
        )
    yield root
    if project is not None:
        import psycopg

        from featureline.registry.postgres import TABLE

        with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as con:
            con.execute(f"DELETE FROM {TABLE} WHERE project = %s", (project,))


def _counting(store: fl.FeatureStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"latest": 0, "history": 0}
    registry = store.registry
    for name in calls:
        real = getattr(registry, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(registry, name, counted)
    return calls


def test_the_ui_reads_the_registry_once_per_head(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fl.FeatureStore(repo) as store, fl.FeatureStore(repo) as other:
        store.apply(_objects("first"))
        data = UiData(store)
        calls = _counting(store, monkeypatch)
        assert store.registry.head() is not None
        page = data.view("acct")
        assert page["definition"]["description"] == "first"
        assert [h["registry_version"] for h in page["history"]] == [1]
        seen = dict(calls)
        assert data.search("acct")["total"] >= 1
        again = data.view("acct")
        assert again["history"] == page["history"]
        # the catalog and the version log are cached: only check_read's resolution reads
        # `latest` again (FeatureStore._view), never the whole history
        assert calls["history"] == seen["history"] == 1
        other.apply(_objects("second"))  # another store: the head moves
        moved = data.view("acct")
        assert calls["history"] == 2
        assert [h["registry_version"] for h in moved["history"]] == [1, 2]
        assert data._latest()[0].version == 2
