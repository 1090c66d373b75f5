"""Data commands: preview, ingest, training-set."""

from __future__ import annotations

import glob
import os
import time
from typing import TYPE_CHECKING

import click

from featureline.cli._common import open_store
from featureline.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa


@click.command()
@click.argument("view")
@click.option(
    "-n", "n", default=10, show_default=True, type=click.IntRange(min=1), help="Number of rows."
)
@click.pass_context
def preview(ctx: click.Context, view: str, n: int) -> None:
    """Show the newest N stored rows of a feature view (the values a training set can return)."""
    from featureline.cli._render import arrow_table, console

    data = open_store(ctx).preview(view, n)
    out = console()
    if data.num_rows == 0:
        out.print(
            f"Feature view `{view}` holds no rows yet. Run `featureline ingest {view}`.",
            markup=False,
        )
        return
    out.print(arrow_table(data, title=f"{view}: newest {data.num_rows} row(s)"))


@click.command()
@click.argument("view")
@click.argument("file", required=False)
@click.pass_context
def ingest(ctx: click.Context, view: str, file: str | None) -> None:
    """Append a batch to a feature view, atomically.

    FILE is a Parquet or CSV file (or a glob); without it, the view's source is read.
    Relative paths are tried from the current folder, then from the repo.
    """
    from featureline.cli._render import console, fmt

    store = open_store(ctx)
    out = console()
    what = file or "the view's source"
    start = time.perf_counter()
    with out.status(f"Ingesting {what} into {view} ...", spinner="dots"):
        result = store.ingest(view, file)
    seconds = time.perf_counter() - start
    rate = result.rows / seconds if seconds > 0 else float("inf")
    out.print(
        f"Ingested [bold]{result.rows:,}[/] rows into [bold]{result.view}[/] v{result.version} "
        f"in {seconds:.2f} s ({rate:,.0f} rows/s): commit {result.commit}, "
        f"ingested at {fmt(result.ingested_at)}."
    )
    if result.shadowed_in_batch:
        out.print(
            f"{result.shadowed_in_batch:,} row(s) of the batch lost a tie within it (same key and event time; "
            "the greatest created time, then the last row, wins). They are kept but never returned.",
            style="yellow",
        )
    if result.ignored_columns:
        out.print(
            f"Ignored column(s) the view does not declare (not stored): {', '.join(result.ignored_columns)}.",
            style="yellow",
            markup=False,
        )
    if result.non_finite:
        counts = ", ".join(f"{k}: {v:,}" for k, v in result.non_finite.items())
        out.print(f"NaN/Inf values stored: {counts}.", style="yellow", markup=False)


@click.command("training-set")
@click.option(
    "--entities",
    "entities",
    required=True,
    metavar="FILE",
    help="Entity rows: Parquet or CSV with join keys and a tz-aware timestamp column.",
)
@click.option(
    "--features",
    "features",
    multiple=True,
    metavar="VIEW:FEATURE,...",
    help='Features, comma-separated, e.g. "driver_stats:conv_rate,driver_stats:acc_rate". Repeatable.',
)
@click.option("--service", help="A feature service name (instead of --features).")
@click.option(
    "--out",
    "out_path",
    required=True,
    metavar="FILE",
    help="Output file: .parquet (default) or .csv.",
)
@click.option(
    "--as-of",
    "as_of",
    metavar="TS",
    help="Build it as the store knew it at TS (ISO 8601 with offset, e.g. 2025-01-01T00:00:00Z).",
)
@click.option("--full-feature-names", is_flag=True, help="Name columns `view__feature`.")
@click.option(
    "--timestamp-column",
    help="The entity time column (default: event_timestamp, or the only timestamp column).",
)
@click.pass_context
def training_set(
    ctx: click.Context,
    entities: str,
    features: tuple[str, ...],
    service: str | None,
    out_path: str,
    as_of: str | None,
    full_feature_names: bool,
    timestamp_column: str | None,
) -> None:
    """Build a point-in-time correct training set for the entity rows in FILE."""
    from featureline.cli._render import console, fmt

    refs = [r.strip() for spec in features for r in spec.split(",") if r.strip()]
    if bool(refs) == bool(service):
        raise click.UsageError(
            "Pass either --features VIEW:FEATURE,... or --service NAME (exactly one of them)."
        )
    _check_exists(entities)
    if not out_path.lower().endswith((".parquet", ".pq", ".csv")):
        raise ValidationError(
            f"`--out {out_path}`: the output format is chosen by the file name and `{os.path.splitext(out_path)[1] or 'no extension'}` "
            "is not one Featureline writes. Fix: end it in .parquet or .csv."
        )
    store = open_store(ctx)
    out = console()
    start = time.perf_counter()
    with out.status("Building the training set ...", spinner="dots"):
        ts = store.get_training_set(
            entities,
            service if service else refs,
            as_of=as_of,
            full_feature_names=full_feature_names,
            timestamp_column=timestamp_column,
        )
        path = _write(ts.to_arrow(), out_path)
    seconds = time.perf_counter() - start
    table = ts.to_arrow()
    out.print(
        f"Training set: [bold]{table.num_rows:,}[/] rows x {table.num_columns} columns "
        f"({len(ts.features)} feature(s)) in {seconds:.2f} s -> [bold]{path}[/]"
    )
    out.print(f"columns: {', '.join(table.column_names)}", markup=False)
    known = (
        f"as the store knew it at {fmt(ts.as_of)}"
        if ts.as_of is not None
        else "with everything ingested so far"
    )
    out.print(f"registry version {ts.registry_version}, {known}", markup=False)


def _check_exists(path: str) -> None:
    from featureline.errors import NotFoundError

    found = (
        glob.glob(path)
        if any(c in path for c in "*?[")
        else ([path] if os.path.exists(path) else [])
    )
    if not found:
        raise NotFoundError(
            f"Entity file `{path}` does not exist (relative to `{os.getcwd()}`). "
            "Fix: pass a Parquet or CSV file with the join keys and a timestamp column."
        )


def _write(table: pa.Table, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.lower().endswith(".csv"):
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    return path
