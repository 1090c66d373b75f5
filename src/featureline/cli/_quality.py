"""`featureline quarantine list | show VIEW | replay VIEW [--fixed FILE]`: inspect, fix and
re-ingest the rows a view's quarantine gate kept out (featureline.quality)."""

from __future__ import annotations

import click

from featureline.cli._common import CliError, open_store


@click.group()
def quarantine() -> None:
    """Rows kept out by a view's constraints: list, show, fix and replay them.

    \b
    Typical session:
      featureline quarantine list
      featureline quarantine show payments --out bad.parquet
      # fix the values in bad.parquet (keep the __quarantine_id column), then
      featureline quarantine replay payments --fixed bad.parquet
    """


@quarantine.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Views with quarantined rows: rows, batches, times, and rows per violated constraint."""
    from featureline.cli._render import console, table

    found = open_store(ctx).quarantine()
    if not found:
        console().print("No quarantined rows.")
        return
    rows = [
        (
            view,
            s["rows"],
            s["batches"],
            s["oldest"],
            s["newest"],
            ", ".join(f"{k} {n:,}" for k, n in s["constraints"].items()),
        )
        for view, s in found.items()
    ]
    cols = ["view", "rows", "batches", "oldest", "newest", "violations"]
    console().print(table("Quarantine", cols, rows, numeric=["rows", "batches"]))


@quarantine.command()
@click.argument("view")
@click.option("--limit", default=20, show_default=True, help="Rows to print.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write every quarantined row (with __quarantine_id) to a .parquet or .csv file to fix.",
)
@click.pass_context
def show(ctx: click.Context, view: str, limit: int, out: str | None) -> None:
    """The quarantined rows of VIEW, with the constraints each violates."""
    import pyarrow.compute as pc

    from featureline.cli._render import arrow_table, console

    store = open_store(ctx)
    rows = store.quarantined_rows(view)
    if rows is None:
        console().print(f"No quarantined rows for {view}.", markup=False)
        return
    shown = rows.set_column(
        rows.schema.get_field_index("__violations"),
        "__violations",
        pc.binary_join(rows.column("__violations"), ", "),
    )
    if out:
        if out.lower().endswith((".csv", ".csv.gz")):
            import pyarrow.csv as pacsv

            pacsv.write_csv(shown, out)
        else:
            import pyarrow.parquet as pq

            pq.write_table(rows, out)
        console().print(
            f"Wrote {rows.num_rows:,} row(s) to {out}. Fix the values (keep `__quarantine_id`), "
            f"then: featureline quarantine replay {view} --fixed {out}",
            markup=False,
        )
        return
    keep = [c for c in shown.column_names if c not in ("__batch_id", "__row", "__view_version")]
    shown = shown.select(keep)
    title = f"{rows.num_rows:,} quarantined row(s) of {view}"
    if rows.num_rows > limit:
        title += f" (first {limit}; --out FILE writes all)"
    console().print(arrow_table(shown.slice(0, limit), title))


@quarantine.command()
@click.argument("view")
@click.option(
    "--fixed",
    type=click.Path(exists=True, dir_okay=False),
    help="Corrected rows (.parquet or .csv with __quarantine_id), e.g. from `show --out`. "
    "Default: the rows as stored (after relaxing a constraint).",
)
@click.pass_context
def replay(ctx: click.Context, view: str, fixed: str | None) -> None:
    """Re-check quarantined rows of VIEW; land (one commit) and remove those that now pass."""
    from featureline.cli._render import console

    result = open_store(ctx).replay_quarantine(view, fixed)
    console().print(str(result), markup=False)
    if result.still_quarantined and not result.landed:
        raise CliError(
            f"No row passes yet ({result.still_quarantined:,} still fail). "
            f"Fix: see `featureline quarantine show {view}`."
        )


@quarantine.command()
@click.option(
    "--grace",
    type=float,
    default=None,
    help="Only files older than this many seconds (default: ORPHAN_GRACE_SECONDS, 1 hour).",
)
@click.pass_context
def gc(ctx: click.Context, grace: float | None) -> None:
    """Remove orphan quarantine files (written by a write that crashed before its commit)."""
    from featureline.cli._render import console
    from featureline.quality import quarantine as q

    root = open_store(ctx).offline.root
    removed = q.gc(root) if grace is None else q.gc(root, grace)
    console().print(f"Removed {len(removed):,} orphan quarantine file(s).")
