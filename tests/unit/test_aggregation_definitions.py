"""Aggregation definitions (issue 10 item 1): validated all at once, kept by the registry,
shown by `describe`, and a changed aggregation is a new definition."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import featureline as fl
from featureline.cli import cli
from tests.helpers import new_store

USER = fl.Entity("user", ["user_id"])
SCHEMA = [
    fl.Field("user_id", fl.Int64),
    fl.Field("amount", fl.Float64),
    fl.Field("tag", fl.String),
]


def _view(aggs: list[fl.Aggregation], tile: timedelta = timedelta(minutes=1)) -> fl.FeatureView:
    return fl.FeatureView("tx", [USER], SCHEMA, tile=tile, aggregations=aggs)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    bad = _view(
        [
            fl.Aggregation("amount", "summ", timedelta(hours=1)),  # unknown function
            fl.Aggregation("tag", "mean", timedelta(hours=1)),  # needs a numeric column
            fl.Aggregation("amount", "sum", timedelta(seconds=90)),  # not a multiple of the tile
            fl.Aggregation("amount", "max", timedelta(hours=1), name="amount"),  # clashes
            fl.Aggregation("amout", "count", timedelta(hours=1)),  # no such column
            fl.Aggregation("amount", "approx_percentile", timedelta(hours=1)),  # no q
        ]
    )
    with pytest.raises(fl.FeaturelineError) as e:
        store.apply([USER, bad])
    text = str(e.value)
    for needle in (
        "summ",
        "Did you mean `sum`",
        "`tag`",
        "not a multiple of the view's tile",
        "already a field",
        "`amout`",
        "q",
    ):
        assert needle in text, (needle, text)


def test_registry_keeps_aggregations_and_describe_shows_them(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    view = _view(
        [
            fl.Aggregation("amount", "sum", timedelta(hours=1)),
            fl.Aggregation("tag", "approx_count_distinct", timedelta(days=1), params={"lg_k": 10}),
            fl.Aggregation("amount", "count"),
        ]
    )
    store.apply([USER, view])
    got = store.catalog().view("tx")
    assert [a.name for a in got.aggregations] == [
        "amount_sum_1h",
        "tag_approx_count_distinct_1d",
        "amount_count_lifetime",
    ]
    assert got.tile == timedelta(minutes=1) and got == view
    out = CliRunner().invoke(cli, ["--repo", str(store.repo_path), "describe", "tx"])
    assert out.exit_code == 0, out.output
    assert "amount_sum_1h = sum(amount) over 1 hour" in out.output
    assert "whole history" in out.output
    # a changed window is a changed definition (the online tiles start a new table)
    changed = _view([fl.Aggregation("amount", "sum", timedelta(hours=2))])
    assert store.plan([USER, changed]).changes
    store.close()


def test_views_without_aggregations_serialize_as_before() -> None:
    plain = fl.FeatureView("p", [USER], SCHEMA)
    assert "aggregations" not in plain.to_dict() and "tile_us" not in plain.to_dict()
