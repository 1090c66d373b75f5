"""Every CLI command, given a wrong argument, prints `Error: ...` and exits 1 — never a traceback
(issue 9, item 10); on-demand views are listed and described, and refused where rows are needed."""

from __future__ import annotations

from pathlib import Path

import pytest

import featureline as fl
from tests.e2e.test_cli import failed, ok, run
from tests.helpers import driver_defs, new_store, rows, utc


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    driver, view = driver_defs()

    @fl.on_demand_feature_view(
        sources=[view, fl.RequestSource("trip", [fl.Field("km", fl.Float64)])],
        schema=[fl.Field("score", fl.Float64)],
    )
    def score(inputs: dict[str, list[float | None]]) -> dict[str, list[float | None]]:
        return {
            "score": [
                None if r is None or k is None else r * k
                for r, k in zip(inputs["rate"], inputs["km"], strict=True)
            ]
        }

    store = new_store(tmp_path_factory.mktemp("cli"), driver, view, score)
    store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.5]))
    (store.repo_path / "not_pipelines.py").write_text("x = 1\ndef f():\n    return 2\n")
    return store.repo_path


WRONG = [
    ["describe", "nope"],
    ["describe", "driver_stats@vx"],
    ["preview", "nope"],
    ["preview", "score"],
    ["ingest", "score"],
    ["ingest", "driver_stats", "missing.parquet"],
    [
        "training-set",
        "--entities",
        "missing.parquet",
        "--features",
        "driver_stats:rate",
        "--out",
        "o.parquet",
    ],
    ["materialize", "--view", "score"],
    ["online", "--features", "driver_stats:nope", "--entity", '{"driver_id": [1]}'],
    ["online", "--features", "driver_stats:rate", "--entity", "{not json"],
    ["compact", "nope"],
    ["vacuum", "nope"],
    ["vacuum", "driver_stats", "--grace", "-5"],
    ["run", "nomodule:x"],
    ["run", "not_pipelines:nope"],
    ["run", "not_pipelines:f"],
    ["run", "no_colon"],
    ["runs", "show", "nope"],
    ["models", "show", "nope"],
    ["lineage", "nope"],
    ["ingest", "driver_stats@v9"],
]


@pytest.mark.parametrize("args", WRONG, ids=lambda a: " ".join(a))
def test_a_wrong_argument_is_an_error_not_a_traceback(repo: Path, args: list[str]) -> None:
    result = run(*args, repo=repo)
    if (
        result.exit_code == 2
    ):  # click's own usage errors: `Error: ...` on stderr, exit 2, no traceback
        assert "Error:" in result.stderr and "Traceback" not in result.output
        return
    failed(result)


def test_on_demand_views_are_listed_described_and_refused_where_rows_are_needed(repo: Path) -> None:
    assert "score" in ok(run("list", repo=repo))
    out = ok(run("describe", "score", repo=repo))
    assert "On-demand feature view score" in out and "driver_stats" in out
    msg = failed(run("preview", "score", repo=repo))
    assert "on-demand feature view" in msg and "driver_stats" in msg
