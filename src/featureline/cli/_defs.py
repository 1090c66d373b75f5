"""Definition commands: init, plan, apply, history, list, describe."""

from __future__ import annotations

from typing import Any

import click

from featureline.cli._common import CliError, open_store

_NEW_VERSION = click.option(
    "--new-version",
    "new_versions",
    multiple=True,
    metavar="VIEW",
    help="Apply a breaking change to VIEW as a new view version (old versions stay readable). Repeatable.",
)


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--project", help="Project name (default: the folder name).")
def init(directory: str, project: str | None) -> None:
    """Create a feature repo in DIR with example definitions and data."""
    from featureline.cli._render import console
    from featureline.scaffold import init_repo

    root = init_repo(directory, project=project)
    out = console()
    out.print(
        f"Created feature repo [bold]{root}[/bold] (featureline.yaml, definitions.py, data/)."
    )
    out.print("Next:", style="bold")
    out.print(f"  cd {root}", markup=False)
    out.print("  featureline plan                # what apply would change", markup=False)
    out.print("  featureline apply               # register the definitions", markup=False)
    out.print("  featureline ingest driver_stats # load the example data", markup=False)


@click.command()
@_NEW_VERSION
@click.pass_context
def plan(ctx: click.Context, new_versions: tuple[str, ...]) -> None:
    """Show what `apply` would change in the registry.

    Exits with code 1 when the plan holds breaking changes that `apply` would refuse.
    """
    from featureline.cli._render import console, plan_text

    store = open_store(ctx)
    p = store.plan(new_versions=new_versions)
    console().print(plan_text(p.render()), end="")
    if p.breaking:
        raise CliError(
            f"`featureline apply` would refuse this plan: {len(p.breaking)} breaking change(s), listed above with their fix."
        )


@click.command()
@_NEW_VERSION
@click.option("-m", "--message", default="", help="A note stored with the new registry version.")
@click.pass_context
def apply(ctx: click.Context, new_versions: tuple[str, ...], message: str) -> None:
    """Register the repo's definitions as a new registry version (prints the plan first).

    Stores exactly the plan it prints, onto the registry version it was planned against. If
    another apply stored a version meanwhile, the plan is applied on top of it when the two
    changed different definitions; otherwise nothing is stored and the conflict is reported.
    """
    from featureline.cli._render import console, fmt, plan_text
    from featureline.errors import RegistryConflictError

    store = open_store(ctx)
    out = console()
    p = store.plan(new_versions=new_versions)
    if p.is_empty:
        out.print("No changes: the registry already matches the definitions.")
        return
    out.print(plan_text(p.render()), end="")
    if p.breaking:
        raise CliError(
            f"Nothing was applied: the plan has {len(p.breaking)} refused breaking change(s), listed above with their fix."
        )
    try:
        rv = store.apply(message=message, planned=p)
    except RegistryConflictError as e:
        out.print()
        raise CliError(e.message) from e
    if rv is None:
        out.print()
        out.print("No changes: another apply stored these same changes meanwhile.")
        return
    out.print()
    base = p.base_version or 0
    if rv.version != base + 1:
        others = (
            f"version {base + 1}"
            if rv.version == base + 2
            else f"versions {base + 1}..{rv.version - 1}"
        )
        out.print(
            f"Another apply stored {others} after this plan was made; it changed other definitions, "
            "so this plan was applied on top of it.",
            markup=False,
        )
    out.print(f"Applied registry version [bold green]{rv.version}[/] at {fmt(rv.applied_at)}.")


@click.command()
@click.pass_context
def history(ctx: click.Context) -> None:
    """List the registry versions: when, message and what changed."""
    from featureline.cli._render import change_summary, console, fmt, table

    versions = open_store(ctx).history()
    out = console()
    if not versions:
        out.print(
            "The registry is empty. Run `featureline apply` to create version 1.", markup=False
        )
        return
    rows = [
        (v.version, fmt(v.applied_at.replace(microsecond=0)), v.message, change_summary(v.changes))
        for v in versions
    ]
    out.print(
        table(
            "Registry history",
            ["version", "applied_at (UTC)", "message", "changes"],
            rows,
            numeric=["version"],
        )
    )


@click.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List feature views, entities and feature services."""
    from featureline.cli._render import console, fmt_seconds, fmt_tags, table

    cat = open_store(ctx).catalog()
    out = console()
    view_rows = []
    for name, versions in sorted(cat.views.items()):
        v = versions[-1]
        shown = f"v{v.version}" + (
            f" (also {', '.join('v' + str(o.version) for o in versions[:-1])})"
            if len(versions) > 1
            else ""
        )
        view_rows.append(
            (
                name,
                shown,
                ", ".join(e.name for e in v.entities),
                len(v.features),
                fmt_seconds(v.ttl_seconds),
                v.owner,
                fmt_tags(v.tags),
            )
        )
    out.print(
        table(
            f"Feature views (registry version {cat.version})",
            ["name", "version", "entities", "features", "ttl", "owner", "tags"],
            view_rows,
            numeric=["features"],
        )
    )
    ent_rows = [
        (e.name, ", ".join(e.join_keys), e.owner, e.description)
        for _, e in sorted(cat.entities.items())
    ]
    out.print(table("Entities", ["name", "join keys", "owner", "description"], ent_rows))
    svc_rows = [
        (s.name, len(s.refs()), s.owner, s.description) for _, s in sorted(cat.services.items())
    ]
    out.print(
        table(
            "Feature services",
            ["name", "features", "owner", "description"],
            svc_rows,
            numeric=["features"],
        )
    )
    od_rows = [
        (
            o.name,
            ", ".join(o.source_views),
            ", ".join(f.name for f in o.request_fields),
            len(o.features),
            o.mode,
        )
        for _, o in sorted(cat.odfvs.items())
    ]
    out.print(
        table(
            "On-demand feature views",
            ["name", "sources", "request fields", "features", "mode"],
            od_rows,
            numeric=["features"],
        )
    )


@click.command()
@click.argument("view")
@click.pass_context
def describe(ctx: click.Context, view: str) -> None:
    """Show a feature view: definition, versions, stored rows and per-feature statistics.

    VIEW is a view name, optionally with a version: `driver_stats@v1`.
    """
    from rich.console import Group

    from featureline.cli._render import console, fmt, fmt_seconds, fmt_tags, key_values, table
    from featureline.definitions import Check

    info: dict[str, Any] = open_store(ctx).describe(view)
    d = info["definition"]
    if info.get("on_demand"):
        console().print(f"On-demand feature view {d['name']}", markup=False)
        console().print(
            key_values(
                [
                    ("sources", ", ".join(d["sources"])),
                    (
                        "request fields",
                        ", ".join(f"{f['name']} ({f['dtype']})" for f in d["request_fields"]),
                    ),
                    ("features", ", ".join(f"{f['name']} ({f['dtype']})" for f in d["schema"])),
                    ("mode", d["mode"]),
                    ("code hash", d["code_hash"]),
                    ("stored rows", "none: computed at read time from its sources"),
                ]
            )
        )
        return
    src = d.get("source") or {}
    rows = int(info.get("rows", 0))
    pairs: list[tuple[str, Any]] = [
        ("view", f"{d['name']} v{d.get('version')}"),
        ("versions", ", ".join(f"v{v}" for v in info.get("versions", []))),
        ("entities", ", ".join(d.get("entities", []))),
        ("description", d.get("description") or ""),
        ("owner", d.get("owner") or ""),
        ("tags", fmt_tags(d.get("tags"))),
        ("ttl", fmt_seconds(d.get("ttl_seconds"))),
        ("source", src.get("path") or ""),
        ("event time", src.get("timestamp_field") or "event_timestamp"),
        ("created time", src.get("created_timestamp_field") or ""),
        (
            "rows stored",
            f"{rows:,} (every row ever ingested; the statistics below are over all of them)",
        ),
        ("commits", info.get("commits", 0)),
    ]
    if d.get("aggregations"):
        tile = d.get("tile_us", 0)
        pairs.append(("tile", fmt_seconds(tile / 1e6) if tile else "0 (exact windows)"))
        pairs.append(
            (
                "aggregations",
                "; ".join(
                    f"{a['name']} = {a['function']}({a['column']}) over "
                    + (
                        fmt_seconds(a["window_us"] / 1e6)
                        if a["window_us"] is not None
                        else "the whole history"
                    )
                    + (f" {a['params']}" if a.get("params") else "")
                    for a in d["aggregations"]
                ),
            )
        )
    constraints = [
        f"{f['name']}: " + ", ".join(Check.from_dict(c).describe() for c in f["constraints"])
        for f in d.get("schema", [])
        if f.get("constraints")
    ] + [Check.from_dict(c).describe() for c in d.get("checks", [])]
    if constraints:  # the gate and what it checks (featureline.quality)
        pairs.append(("gate", d.get("gate") or "quarantine (default)"))
        pairs.append(("constraints", "; ".join(constraints)))
    if rows:
        pairs.append(
            ("time range", f"{fmt(info.get('first_event'))}  ->  {fmt(info.get('last_event'))}")
        )
    if info.get("superseded_rows"):
        pairs.append(
            (
                "superseded",
                f"{info['superseded_rows']:,} rows marked as losing a tie (same key and event time); never returned",
            )
        )
    feats = info.get("features", {})
    stats_rows = []
    for f in d.get("schema", []):
        name = f["name"]
        s = feats.get(name)
        if s is None:  # a join key or timestamp column
            continue
        distinct = s.get("distinct")
        if isinstance(distinct, int):  # an approximate count can exceed the non-null values
            distinct = min(distinct, round(rows * (1 - float(s.get("null_rate", 0.0)))))
        stats_rows.append(
            (
                name,
                s.get("dtype", f.get("dtype")),
                f"{s['null_rate']:.2%}" if rows else None,
                s.get("min"),
                s.get("max"),
                s.get("mean"),
                distinct if rows else None,
                f.get("description") or "",
            )
        )
    cols = [
        "feature",
        "dtype",
        "null rate",
        "min",
        "max",
        "mean",
        "distinct (approx)",
        "description",
    ]
    console().print(
        Group(key_values(pairs), "", table("Features", cols, stats_rows, numeric=cols[2:7]))
    )
