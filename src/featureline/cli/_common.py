"""Small pieces shared by the CLI commands (click only: this module is imported by `--help`)."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from featureline.feature_store import FeatureStore


class CliError(click.ClickException):
    """An error shown as `Error: <message>` in red on stderr, exit code 1, no traceback."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.secho(f"Error: {self.format_message()}", err=True, fg="red", file=file)


def open_store(ctx: click.Context) -> FeatureStore:
    """The FeatureStore of the `--repo` folder (closed when the command ends)."""
    from featureline.feature_store import FeatureStore

    store = FeatureStore(ctx.find_root().obj["repo"])
    ctx.call_on_close(store.close)
    return store
