"""The `featureline` CLI end to end: CliRunner in process, plus real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import featureline
from featureline.cli import cli

SRC = str(Path(featureline.__file__).resolve().parents[1])
ALL_FEATURES = "driver_stats:conv_rate,driver_stats:acc_rate,driver_stats:avg_daily_trips"


def run(*args: str, repo: Path | None = None) -> Result:
    """Invoke the CLI in process; stdout and stderr are kept apart."""
    runner = CliRunner(env={"COLUMNS": "200", "FORCE_COLOR": None, "FEATURELINE_REPO": None})
    argv = ["--repo", str(repo), *args] if repo is not None else list(args)
    return runner.invoke(cli, argv, catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def failed(result: Result) -> str:
    """The stderr of a command that must fail cleanly: exit 1, `Error: ...`, no traceback."""
    assert result.exit_code == 1, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def subprocess_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }
    env.pop("FEATURELINE_REPO", None)
    return subprocess.run(
        [sys.executable, "-m", "featureline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def entity_file(path: Path, hours_ago: list[float], ids: list[int] | None = None) -> Path:
    now = datetime.now(UTC)
    n = len(hours_ago)
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array(ids or [1001 + i % 50 for i in range(n)], pa.int64()),
                "event_timestamp": pa.array(
                    [now - timedelta(hours=h) for h in hours_ago], pa.timestamp("us", tz="UTC")
                ),
                "trip_completed": pa.array([i % 3 != 0 for i in range(n)]),
            }
        ),
        path,
    )
    return path


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repo made with `init`, applied and ingested through the CLI."""
    root = tmp_path_factory.mktemp("cli") / "drivers"
    out = ok(run("init", str(root), "--project", "drivers"))
    assert "Created feature repo" in out
    ok(run("apply", "-m", "first", repo=root))
    ok(run("ingest", "driver_stats", repo=root))
    yield root


def test_full_session(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    ok(run("init", str(root)))
    assert (root / "featureline.yaml").exists()

    out = ok(run("plan", repo=root))
    assert (
        "+ entity driver" in out
        and "+ view driver_stats" in out
        and "+ service driver_activity" in out
    )
    assert "Plan: 3 to add, 0 to change, 0 to remove." in out

    out = ok(run("apply", "-m", "initial definitions", repo=root))
    assert "+ view driver_stats" in out and "Applied registry version 1" in out
    assert "No changes" in ok(run("apply", repo=root))

    out = ok(run("ingest", "driver_stats", repo=root))
    assert (
        "Ingested 8,400 rows into driver_stats v1" in out and "rows/s" in out and "commit 1" in out
    )

    out = ok(run("list", repo=root))
    for text in (
        "driver_stats",
        "v1",
        "2 days",
        "ml@example.com",
        "team=marketplace",
        "driver_id",
        "driver_activity",
    ):
        assert text in out

    out = ok(run("describe", "driver_stats", repo=root))
    for text in (
        "Hourly driver quality statistics",
        "rows stored",
        "8,400",
        "time range",
        "conv_rate",
        "avg_daily_trips",
        "null rate",
        "0.00%",
    ):
        assert text in out

    out = ok(run("preview", "driver_stats", "-n", "3", repo=root))
    assert "newest 3 row(s)" in out and "conv_rate" in out

    entities = entity_file(tmp_path / "entities.parquet", [1, 2, 3, 30, 24 * 30])
    target = tmp_path / "out" / "training.parquet"
    out = ok(
        run(
            "training-set",
            "--entities",
            str(entities),
            "--features",
            ALL_FEATURES,
            "--out",
            str(target),
            repo=root,
        )
    )
    assert "5 rows x 6 columns (3 feature(s))" in out and str(target) in out
    table = pq.read_table(target)
    assert table.column_names == [
        "driver_id",
        "event_timestamp",
        "trip_completed",
        "conv_rate",
        "acc_rate",
        "avg_daily_trips",
    ]
    assert table.column("conv_rate").null_count == 1  # 30 days ago: no data within the 2-day ttl
    assert table.select(["driver_id", "event_timestamp", "trip_completed"]).equals(
        pq.read_table(entities)
    )

    out = ok(run("history", repo=root))
    assert "initial definitions" in out and "+ view driver_stats" in out


def test_training_set_by_service_csv_full_names_and_as_of(repo: Path, tmp_path: Path) -> None:
    entities = entity_file(tmp_path / "entities.parquet", [1, 5, 10])
    target = tmp_path / "training.csv"
    as_of = datetime.now(UTC).isoformat()
    out = ok(
        run(
            "training-set",
            "--entities",
            str(entities),
            "--service",
            "driver_activity",
            "--out",
            str(target),
            "--as-of",
            as_of,
            "--full-feature-names",
            repo=repo,
        )
    )
    assert "3 rows x 6 columns" in out and "as the store knew it at" in out
    header = target.read_text().splitlines()[0]
    assert "driver_stats__conv_rate" in header and "driver_stats__avg_daily_trips" in header

    before_apply = (datetime.now(UTC) - timedelta(days=365)).isoformat()
    err = failed(
        run(
            "training-set",
            "--entities",
            str(entities),
            "--service",
            "driver_activity",
            "--out",
            str(target),
            "--as-of",
            before_apply,
            repo=repo,
        )
    )
    assert "held no definitions" in err


def test_unknown_view_suggests_the_closest_name(repo: Path) -> None:
    for args in (
        ["describe", "driver_stat"],
        ["preview", "driver_stat"],
        ["ingest", "driver_stat"],
    ):
        err = failed(run(*args, repo=repo))
        assert "Unknown feature view `driver_stat`" in err and "Did you mean `driver_stats`?" in err


def test_unknown_feature_and_service(repo: Path, tmp_path: Path) -> None:
    entities = entity_file(tmp_path / "e.parquet", [1])
    err = failed(
        run(
            "training-set",
            "--entities",
            str(entities),
            "--features",
            "driver_stats:conv",
            "--out",
            str(tmp_path / "o.parquet"),
            repo=repo,
        )
    )
    assert "Did you mean `conv_rate`?" in err
    err = failed(
        run(
            "training-set",
            "--entities",
            str(entities),
            "--service",
            "driver_activty",
            "--out",
            str(tmp_path / "o.parquet"),
            repo=repo,
        )
    )
    assert "Did you mean `driver_activity`?" in err


def test_missing_entities_file(repo: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    err = failed(
        run(
            "training-set",
            "--entities",
            str(missing),
            "--service",
            "driver_activity",
            "--out",
            str(tmp_path / "o.parquet"),
            repo=repo,
        )
    )
    assert f"Entity file `{missing}` does not exist" in err
    assert not (tmp_path / "o.parquet").exists()


def test_naive_entity_timestamps_are_refused(repo: Path, tmp_path: Path) -> None:
    naive = tmp_path / "naive.csv"
    naive.write_text("driver_id,event_timestamp\n1001,2025-01-01T10:00:00\n")
    err = failed(
        run(
            "training-set",
            "--entities",
            str(naive),
            "--service",
            "driver_activity",
            "--out",
            str(tmp_path / "o.parquet"),
            repo=repo,
        )
    )
    assert "naive" in err and "event_timestamp" in err


def test_usage_errors_exit_2(repo: Path, tmp_path: Path) -> None:
    entities = entity_file(tmp_path / "e.parquet", [1])
    both = run(
        "training-set",
        "--entities",
        str(entities),
        "--features",
        ALL_FEATURES,
        "--service",
        "driver_activity",
        "--out",
        "x.parquet",
        repo=repo,
    )
    assert both.exit_code == 2 and "exactly one of them" in both.stderr
    assert (
        run(
            "training-set", "--service", "driver_activity", "--out", "x.parquet", repo=repo
        ).exit_code
        == 2
    )


def test_not_a_repo_and_repo_from_env(tmp_path: Path, repo: Path) -> None:
    err = failed(run("list", repo=tmp_path))
    assert "featureline.yaml" in err and "featureline init" in err
    runner = CliRunner(env={"FEATURELINE_REPO": str(repo), "COLUMNS": "200"})
    assert "driver_stats" in ok(runner.invoke(cli, ["list"]))


def test_init_refuses_an_existing_repo(repo: Path) -> None:
    assert "already holds a feature repo" in failed(run("init", str(repo)))


def test_plan_and_apply_changes_and_new_versions(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    ok(run("init", str(root)))
    ok(run("apply", repo=root))
    defs = root / "definitions.py"
    defs.write_text(defs.read_text().replace("ttl=timedelta(days=2)", "ttl=timedelta(days=1)"))
    out = ok(run("plan", repo=root))
    assert "~ view driver_stats" in out and "ttl: 2 days -> 1 day" in out
    assert "Applied registry version 2" in ok(run("apply", "-m", "shorter ttl", repo=root))

    defs.write_text(
        defs.read_text().replace(
            'Field("avg_daily_trips", Int64)', 'Field("avg_daily_trips", Float64)'
        )
    )
    result = run("plan", repo=root)
    assert "[breaking]" in result.stdout and "Refused" in result.stdout  # Rich markup left alone
    assert "would refuse this plan" in failed(result)
    assert "Nothing was applied" in failed(run("apply", repo=root))
    assert "Applied registry version 3" in ok(
        run("apply", "--new-version", "driver_stats", repo=root)
    )
    assert "v2 (also v1)" in ok(run("list", repo=root))
    out = ok(run("history", repo=root))
    assert "shorter ttl" in out and "driver_stats v2" in out
    assert "Did you mean `driver_stats`?" in failed(
        run("plan", "--new-version", "driver_stat", repo=root)
    )


def test_version_and_help() -> None:
    assert featureline.__version__ in ok(run("--version"))
    out = ok(run("--help"))
    for name in (
        "init",
        "plan",
        "apply",
        "history",
        "list",
        "describe",
        "preview",
        "ingest",
        "training-set",
        "--repo",
    ):
        assert name in out


def test_subprocess_session(tmp_path: Path) -> None:
    """The real entry point, with real stdout/stderr and exit codes."""
    init = subprocess_cli("init", "repo", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    root = tmp_path / "repo"
    for args in (["apply"], ["ingest", "driver_stats"]):
        done = subprocess_cli(*args, cwd=root)
        assert done.returncode == 0, done.stderr
    entities = entity_file(tmp_path / "entities.parquet", [1, 2])
    done = subprocess_cli(
        "--repo",
        "repo",
        "training-set",
        "--entities",
        "entities.parquet",
        "--service",
        "driver_activity",
        "--out",
        "ts.parquet",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "2 rows x 6 columns" in done.stdout
    assert pq.read_table(tmp_path / "ts.parquet").num_rows == pq.read_table(entities).num_rows

    bad = subprocess_cli("describe", "driver_stat", cwd=root)
    assert bad.returncode == 1
    assert (
        bad.stderr.startswith("Error: Unknown feature view `driver_stat`.")
        and "Did you mean `driver_stats`?" in bad.stderr
    )
    assert "Traceback" not in bad.stderr and bad.stdout == ""


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from featureline.cli import cli\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'duckdb', 'rich', 'numpy', 'pandas', 'polars', 'yaml'})\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
