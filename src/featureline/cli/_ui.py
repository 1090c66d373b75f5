"""`featureline ui`: the web UI (issue 12) — `featureline serve` with the UI's address printed."""

from __future__ import annotations

import click

DEFAULT_UI_PORT = 6567  # next to serve's 6566, so both can run at once


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 for all)."
)
@click.option(
    "--port",
    default=DEFAULT_UI_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port.",
)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int) -> None:
    """Serve the web UI at /ui: catalog search, views with statistics, the point-in-time
    explorer, runs and their comparison, models and lineage (one worker; the JSON API behind it
    is under /ui/api, documented in /openapi.json)."""
    from featureline.cli._serve import serve

    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Featureline UI at http://{shown}:{port}/ui", err=True)
    ctx.invoke(serve, host=host, port=port)
