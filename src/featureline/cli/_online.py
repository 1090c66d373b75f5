"""Online and storage commands: materialize, online (read a feature vector), compact, vacuum."""

from __future__ import annotations

import json
import time

import click

from featureline.cli._common import open_store


@click.command()
@click.option(
    "--start", metavar="TS", help="Only rows with event time >= TS (ISO 8601 with offset)."
)
@click.option("--end", metavar="TS", help="Only rows with event time <= TS.")
@click.option(
    "--view",
    "views",
    multiple=True,
    help="Only this view (repeatable). Default: every online view.",
)
@click.pass_context
def materialize(
    ctx: click.Context, start: str | None, end: str | None, views: tuple[str, ...]
) -> None:
    """Copy the latest feature values to the online store.

    Without --start/--end, copies what was ingested since the last run (incremental, by ingested
    time, so late and corrected rows arrive too). Safe to interrupt and run again.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from featureline.cli._render import console

    store = open_store(ctx)
    out = console()
    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} keys"),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("Materializing", total=None)

        def progress(n: int) -> None:
            bar.advance(task, n)

        if start or end:
            results = store.materialize(start, end, views or None, progress=progress)
        else:
            results = store.materialize_incremental(views or None, progress=progress)
    for r in results:
        rate = r.rows_scanned / r.seconds if r.seconds > 0 else 0.0
        out.print(
            f"{r.view} v{r.version}: {r.rows_scanned:,} offline rows -> {r.keys_written:,} keys written "
            f"in {r.seconds:.2f} s ({rate:,.0f} rows/s)",
            markup=False,
        )
    out.print(f"Done in {time.perf_counter() - t0:.2f} s.", markup=False)


@click.command("online")
@click.option(
    "--features",
    "features",
    required=True,
    metavar="VIEW:FEATURE,...|SERVICE",
    help="Feature refs, comma-separated, or a feature service name.",
)
@click.option(
    "--entity",
    "entity",
    required=True,
    metavar="JSON",
    help="Entity keys as JSON, e.g. '{\"driver_id\": [1001, 1002]}'.",
)
@click.pass_context
def online(ctx: click.Context, features: str, entity: str) -> None:
    """Read feature vectors from the online store (with per-feature statuses)."""
    from featureline.cli._render import console
    from featureline.errors import ValidationError

    try:
        rows = json.loads(entity)
    except json.JSONDecodeError as e:
        raise ValidationError(
            f"--entity is not valid JSON ({e}). Fix: e.g. --entity '{{\"driver_id\": [1001]}}'."
        ) from e
    refs: str | list[str] = (
        [f.strip() for f in features.split(",")] if ":" in features else features
    )
    resp = open_store(ctx).get_online_features(refs, rows)
    from rich.table import Table

    t = Table(title="online features")
    names = list(resp.keys) + resp.feature_names
    for n in names:
        t.add_column(n)
    d = resp.to_dict()
    for i in range(len(next(iter(d.values()), []))):
        cells = [str(d[k][i]) for k in resp.keys]
        cells += [f"{d[f][i]} ({resp.statuses[f][i]})" for f in resp.feature_names]
        t.add_row(*cells)
    console().print(t)


@click.command()
@click.argument("view")
@click.pass_context
def compact(ctx: click.Context, view: str) -> None:
    """Merge a view's stored batches into one part (faster reads; every as-of answer is kept)."""
    from featureline.cli._render import console

    store = open_store(ctx)
    fv = store.get_feature_view(view)
    t0 = time.perf_counter()
    c = store.compact(fv)
    if c is None:
        console().print(
            f"{view}: nothing to compact (one part or none, or another compaction won).",
            markup=False,
        )
    else:
        console().print(
            f"{view}: merged {len(c.replaces)} commit(s), {c.rows:,} rows in {time.perf_counter() - t0:.2f} s.",
            markup=False,
        )


@click.command()
@click.argument("view", required=False)
@click.option(
    "--grace",
    "grace",
    type=float,
    default=None,
    help="Keep superseded parts this many seconds (default 3600: readers in flight).",
)
@click.pass_context
def vacuum(ctx: click.Context, view: str | None, grace: float | None) -> None:
    """Delete files no live commit references (superseded parts, leftovers of killed writers)."""
    from featureline.cli._render import console

    store = open_store(ctx)
    results = store.vacuum(view, grace)
    files = sum(r.files_removed for r in results)
    freed = sum(r.bytes_freed for r in results)
    console().print(
        f"vacuum: removed {files} file(s), {freed:,} bytes, over {len(results)} view version(s).",
        markup=False,
    )


@click.command()
@click.pass_context
def freshness(ctx: click.Context) -> None:
    """Per view: the freshness objective, event-to-servable latency and staleness.

    Latency is measured on every online write (push, materialize, stream), from a row's event
    time to the moment it was readable online; staleness is now minus the newest servable
    event. A view whose staleness exceeds its objective is marked VIOLATED, and its values read
    online with status STALE.
    """
    from featureline.cli._render import console, fmt_seconds, table

    info = open_store(ctx).freshness()

    def secs(v: float | None) -> str:
        if v is None:
            return "-"
        return "inf" if v == float("inf") else (f"{v * 1000:.0f} ms" if v < 1 else f"{v:,.1f} s")

    rows = []
    for name, f in sorted(info.items()):
        lat = f["latency"]
        ok = f["ok"]
        rows.append(
            [
                name,
                fmt_seconds(f["objective_seconds"]) if f["objective_seconds"] else "none",
                secs(f["servable_staleness_seconds"]),
                "-" if ok is None else ("ok" if ok else "VIOLATED"),
                f"{lat['count']:,}",
                f"<= {secs(lat['p50_seconds'])}" if lat["count"] else "-",
                f"<= {secs(lat['p99_seconds'])}" if lat["count"] else "-",
            ]
        )
    console().print(
        table(
            "Freshness",
            ["view", "objective", "staleness", "status", "rows online", "latency p50", "p99"],
            rows,
            numeric=["rows online"],
        )
    )
