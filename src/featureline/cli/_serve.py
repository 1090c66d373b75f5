"""`featureline serve`: the feature server under uvicorn (imported by `--help`: click only here)."""

from __future__ import annotations

import os
import signal
from types import FrameType

import click

DEFAULT_PORT = 6566  # Feast's feature server port, so Feast clients work unchanged


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 for all)."
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (each opens the store).",
)
@click.option(
    "--max-entities",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most entity rows per read request.",
)
@click.option(
    "--max-body-bytes",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest request body.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="FEATURELINE_SERVE_HEADER_TIMEOUT",
    help="Seconds a request gets to send its headers (then 408 and close). [default: server.header_timeout, 10]",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="FEATURELINE_SERVE_BODY_TIMEOUT",
    help="Seconds a request gets to send its body (then 408 and close). [default: server.body_timeout, 30]",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME[:PORT]",
    help="Accept this Host besides localhost, 127.0.0.1, ::1 and the bound address (repeatable; *.domain "
    "for subdomains, * for any). Also server.allowed_hosts in featureline.yaml.",
)
@click.option(
    "--graceful-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds in-flight requests get to finish on shutdown.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (costs throughput).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    max_entities: int,
    max_body_bytes: int,
    header_timeout: float | None,
    body_timeout: float | None,
    allowed_hosts: tuple[str, ...],
    graceful_timeout: int,
    log_level: str,
    access_log: bool,
) -> None:
    """Serve online features over HTTP (native and Feast-compatible endpoints).

    \b
    Endpoints: POST /features/online, POST /push/{view},
    POST /get-online-features and POST /push (Feast's shapes),
    GET /health, /metrics (Prometheus), /openapi.json, /docs.
    SIGTERM or Ctrl+C stops it gracefully: in-flight requests finish first.
    POST bodies must be `Content-Type: application/json`; requests whose Host is
    not allowed (DNS rebinding) get 421.
    """
    from featureline.errors import MissingExtraError

    try:
        import uvicorn
    except ImportError as e:
        raise MissingExtraError.for_extra("uvicorn", "server") from e

    from featureline.config import RepoConfig
    from featureline.server import app as server_app
    from featureline.server import protocol

    repo = os.path.abspath(ctx.find_root().obj["repo"])
    config = RepoConfig.load(
        repo
    )  # a missing or bad featureline.yaml fails here, as `Error: ...`, not in a worker
    # the app factory (and the HTTP protocol) read these in each worker process
    os.environ["FEATURELINE_REPO"] = repo
    os.environ[server_app.ENV_MAX_ENTITIES] = str(max_entities)
    os.environ[server_app.ENV_MAX_BODY_BYTES] = str(max_body_bytes)
    os.environ[protocol.ENV_HEADER_TIMEOUT] = str(header_timeout or config.server.header_timeout)
    if body_timeout is not None:
        os.environ[server_app.ENV_BODY_TIMEOUT] = str(body_timeout)
    if allowed_hosts:
        given = os.environ.get(server_app.ENV_ALLOWED_HOSTS, "")
        os.environ[server_app.ENV_ALLOWED_HOSTS] = ",".join(h for h in (given, *allowed_hosts) if h)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    click.echo(
        f"Featureline serving {repo} at {url} with {workers} worker(s) "
        f"(docs {url}/docs, metrics {url}/metrics). Ctrl+C to stop.",
        err=True,
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal; once it is done,
    # these handlers turn that into a clean exit (code 0) instead of a kill or "Aborted!".
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.run(
            "featureline.server.app:app_from_env",
            factory=True,
            http="featureline.server.protocol:AutoProtocol",  # uvicorn's auto, plus a header deadline
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=graceful_timeout,
            server_header=False,
        )
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Featureline server stopped.", err=True)


class _Stopped(Exception):
    pass


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped()
