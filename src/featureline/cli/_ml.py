"""ML commands: run (a pipeline), runs (list/show/compare), models (list/alias), lineage."""

from __future__ import annotations

import json
from typing import Any

import click

from featureline.cli._common import open_store


def _metadata(ctx: click.Context):  # type: ignore[no-untyped-def]
    return open_store(ctx).models.metadata


def _run(md: Any, run_id: str) -> dict[str, Any]:
    """A run by id; an unknown id names the recent runs and the command that lists them."""
    from featureline.errors import NotFoundError, did_you_mean

    try:
        run: dict[str, Any] = md.get_run(run_id)
    except NotFoundError:
        recent = [r["run_id"] for r in md.list_runs(None, 5)]
        listing = ", ".join(f"`{r}`" for r in recent) or "none yet"
        raise NotFoundError(
            f"Run `{run_id}` does not exist.{did_you_mean(run_id, recent)} Recent runs: {listing}. "
            "Fix: pass a run id that `featureline runs list` shows."
        ) from None
    return run


def _check_model_version(ctx: click.Context, name: str, version: int, fix: str) -> None:
    """A version the model `name` does not have is named with the versions it has. (An unknown
    model is left to the registry, whose message suggests the registered names.)"""
    from featureline.errors import NotFoundError

    have = sorted(int(m["version"]) for m in open_store(ctx).models.versions(name))
    if have and version not in have:
        raise NotFoundError(
            f"Model `{name}` has no version {version}. Its versions: "
            + ", ".join(str(v) for v in have)
            + f". Fix: {fix.format(version=have[-1])} (`featureline models list` shows them all)."
        )


@click.command("run")
@click.argument("target", metavar="MODULE:PIPELINE")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A pipeline parameter (JSON values are parsed). Repeatable.",
)
@click.option(
    "--executor",
    default="process",
    show_default=True,
    type=click.Choice(["process", "inline", "ray"]),
)
@click.option("--no-cache", is_flag=True, help="Run every step again, ignoring cached results.")
@click.pass_context
def run_cmd(
    ctx: click.Context, target: str, params: tuple[str, ...], executor: str, no_cache: bool
) -> None:
    """Run a pipeline (e.g. `driver_pipeline:training`) with the repo's artifact and metadata stores."""
    import importlib
    import sys

    from featureline.cli._render import console
    from featureline.errors import ValidationError, did_you_mean
    from featureline.pipelines.runner import run

    module, _, attr = target.partition(":")
    if not attr:
        raise ValidationError(
            f"`{target}` is not MODULE:PIPELINE. Fix: e.g. `featureline run my_pipelines:training`."
        )
    store = open_store(ctx)
    sys.path.insert(0, str(store.repo_path))
    sys.path.insert(0, ".")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module and not module.startswith(f"{e.name}."):
            raise ValidationError(
                f"Module `{module}` imports `{e.name}`, which is not installed: {e}. Fix: install it in this environment."
            ) from e
        raise ValidationError(
            f"No module `{module}` in the repo (`{store.repo_path}`) or the current folder. "
            f"Fix: pass MODULE:PIPELINE where MODULE.py defines the pipeline, e.g. `featureline run pipelines:training`."
        ) from e
    except SyntaxError as e:
        raise ValidationError(
            f"Module `{module}` has a syntax error at {e.filename}:{e.lineno}: {e.msg}. Fix: correct it and run again."
        ) from e
    from featureline.pipelines.dsl import Pipeline

    pipe = getattr(mod, attr, None)
    if pipe is None:
        found = [n for n, v in vars(mod).items() if isinstance(v, Pipeline)]
        raise ValidationError(
            f"Module `{module}` has no `{attr}`.{did_you_mean(attr, found)} Pipelines it defines: {', '.join(found) or 'none'}. "
            "Fix: name a function decorated with @pipeline."
        )
    if not isinstance(pipe, Pipeline):
        raise ValidationError(
            f"`{target}` is a {type(pipe).__name__}, not a pipeline. Fix: decorate it with @pipeline(name=...) or name one that is."
        )
    values = {}
    for p in params:
        k, _, v = p.partition("=")
        try:
            values[k] = json.loads(v)
        except json.JSONDecodeError:
            values[k] = v
    result = run(
        pipe,
        values,
        executor=executor,
        cache=not no_cache,
        artifact_root=store.config.artifacts,
        metadata=store.models.metadata,
    )
    out = console()
    for name, s in result.steps.items():
        out.print(f"  {s.status:<10} {name:<28} {s.duration * 1000:8.1f} ms", markup=False)
    out.print(f"run {result.run_id}: {result.status} in {result.duration:.2f} s", markup=False)
    if result.status != "succeeded":
        for name, err in result.errors.items():
            out.print(f"[red]{name}[/]: {err.message}")
        ctx.exit(1)


@click.group()
def runs() -> None:
    """Experiment tracking: list, show and compare pipeline runs."""


@runs.command("list")
@click.option("--pipeline", help="Only runs of this pipeline.")
@click.option("-n", "limit", default=20, show_default=True)
@click.pass_context
def runs_list(ctx: click.Context, pipeline: str | None, limit: int) -> None:
    from rich.table import Table

    from featureline.cli._render import console

    t = Table(title="runs")
    for c in ("run", "pipeline", "status", "started", "finished"):
        t.add_column(c)
    for r in _metadata(ctx).list_runs(pipeline, limit):
        t.add_row(
            r["run_id"],
            r["pipeline"],
            r["status"],
            str(r["created_at"])[:19],
            str(r.get("finished_at") or "")[:19],
        )
    console().print(t)


@runs.command("show")
@click.argument("run_id")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str) -> None:
    from rich.table import Table

    from featureline.cli._render import console

    r = _run(_metadata(ctx), run_id)
    out = console()
    out.print(f"run {r['run_id']} · pipeline {r['pipeline']} · {r['status']}", markup=False)
    out.print(f"params: {json.dumps(r.get('params', {}), default=str)}", markup=False)
    out.print(f"metrics: {json.dumps(r.get('metrics', {}), default=str)}", markup=False)
    t = Table(title="steps")
    for c in ("step", "status", "attempts", "outputs", "error"):
        t.add_column(c)
    for s in r.get("steps", []):
        outs = ", ".join(
            f"{k}={v.id[:12]}" for k, v in (s.get("outputs") or {}).items() if hasattr(v, "id")
        )
        t.add_row(
            s["step"], s["status"], str(s.get("attempts", "")), outs, (s.get("error") or "")[:80]
        )
    out.print(t)


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_context
def runs_compare(ctx: click.Context, run_ids: tuple[str, ...]) -> None:
    """Params and metrics of several runs side by side."""
    from rich.table import Table

    from featureline.cli._render import console

    md = _metadata(ctx)
    data = [_run(md, r) for r in run_ids]
    t = Table(title="compare")
    t.add_column("")
    for r in data:
        t.add_column(r["run_id"])
    keys = sorted(
        {f"param {k}" for r in data for k in r.get("params", {})}
        | {f"metric {k}" for r in data for k in r.get("metrics", {})}
    )
    for k in keys:
        kind, _, name = k.partition(" ")
        src = "params" if kind == "param" else "metrics"
        t.add_row(k, *[str(r.get(src, {}).get(name, "")) for r in data])
    console().print(t)


@click.group()
def models() -> None:
    """The model registry: versions, aliases and model cards."""


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    from rich.table import Table

    from featureline.cli._render import console

    t = Table(title="models")
    for c in ("model", "version", "aliases", "registered"):
        t.add_column(c)
    for m in open_store(ctx).models.versions():
        t.add_row(m["name"], str(m["version"]), ", ".join(m["aliases"]), str(m["created_at"])[:19])
    console().print(t)


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@click.pass_context
def models_alias(ctx: click.Context, name: str, alias: str, version: int) -> None:
    """Point ALIAS (e.g. production) of model NAME at VERSION."""
    _check_model_version(
        ctx, name, version, f"`featureline models alias {name} {alias} {{version}}`"
    )
    open_store(ctx).models.set_alias(name, alias, version)
    click.echo(f"{name}@{alias} -> v{version}")


@models.command("show")
@click.argument("ref", metavar="NAME[:VERSION|:ALIAS]")
@click.pass_context
def models_show(ctx: click.Context, ref: str) -> None:
    """The model card."""
    name, _, v = ref.partition(":")
    if v.isdigit():
        _check_model_version(ctx, name, int(v), f"`featureline models show {name}:{{version}}`")
    mv = open_store(ctx).models.get(name, v or None)
    click.echo(
        json.dumps(
            {
                "name": mv.name,
                "version": mv.version,
                "aliases": mv.aliases,
                "artifact": mv.artifact.id,
                **mv.card,
            },
            indent=2,
            default=str,
        )
    )


@click.command()
@click.argument("target", metavar="MODEL[:VERSION] | --view VIEW")
@click.option(
    "--view",
    "is_view",
    is_flag=True,
    help="TARGET is a feature view (VIEW or VIEW@vN): show what uses it.",
)
@click.pass_context
def lineage(ctx: click.Context, target: str, is_view: bool) -> None:
    """Lineage: feature view versions -> training set -> run -> model version -> deployments.

    With --view, the reverse: which training sets, runs and models use the view.
    """
    from featureline.cli._render import console

    reg = open_store(ctx).models
    if is_view:
        view = (
            target
            if "@" in target
            else f"{target}@v{open_store(ctx).get_feature_view(target).version}"
        )
        edges = reg.lineage("feature_view", view, "down")
        root = f"feature_view {view}"
    else:
        name, _, v = target.partition(":")
        mv = reg.get(name, v or None)
        up = reg.lineage("model", mv.ref, "up")
        down = reg.lineage("model", mv.ref, "down")
        edges = up + down
        root = f"model {mv.ref}"
    out = console()
    out.print(root, markup=False)
    if not edges:
        out.print("  (no lineage recorded)", markup=False)
    for e in sorted(edges, key=lambda e: (e["depth"], e["src_kind"], e["src_id"])):
        out.print(
            f"  {'  ' * (e['depth'] - 1)}{e['src_kind']} {e['src_id']} --{e['relation']}--> {e['dst_kind']} {e['dst_id']}",
            markup=False,
        )
