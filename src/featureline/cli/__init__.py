"""The `featureline` command line: parse -> public API -> render.

Only click is imported at module level so that `featureline --help` stays fast; each command
imports the store, pyarrow, duckdb and rich when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from featureline import __version__
from featureline.cli._common import CliError
from featureline.errors import FeaturelineError

__all__ = ["CliError", "cli", "main"]


class _Group(click.Group):
    """Lists commands in the order they were added; turns FeaturelineError into CliError."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FeaturelineError as e:
            raise CliError(str(e)) from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    "repo",
    default=".",
    show_default=True,
    envvar="FEATURELINE_REPO",
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="The feature repo folder (the one holding featureline.yaml).",
)
@click.version_option(__version__, "--version", prog_name="featureline")
@click.pass_context
def cli(ctx: click.Context, repo: str) -> None:
    """Featureline: a feature store with point-in-time correct training sets.

    \b
    Typical session:
      featureline init my_repo && cd my_repo
      featureline apply
      featureline ingest driver_stats
      featureline training-set --entities entities.parquet \\
          --service driver_activity --out training.parquet
    """
    ctx.obj = {"repo": repo}


def _register() -> None:
    from featureline.cli import _auth, _data, _defs, _ml, _online, _quality, _serve, _stream, _ui

    for command in (
        _defs.init,
        _defs.plan,
        _defs.apply,
        _defs.history,
        _defs.list_,
        _defs.describe,
        _data.preview,
        _data.ingest,
        _data.training_set,
        _online.materialize,
        _online.online,
        _online.compact,
        _online.vacuum,
        _stream.stream,
        _online.freshness,
        _quality.quarantine,
        _serve.serve,
        _ui.ui,
        _ml.run_cmd,
        _ml.runs,
        _ml.models,
        _ml.lineage,
        _auth.token,
        _auth.permissions,
        _auth.audit,
    ):
        cli.add_command(command)


_register()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `featureline` console script and `python -m featureline.cli`."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="featureline")
