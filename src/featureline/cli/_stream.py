"""`featureline stream`: consume the views' stream sources into the store (the stream worker)."""

from __future__ import annotations

import click

from featureline.cli._common import open_store


@click.command("stream")
@click.argument("views", nargs=-1)
@click.option(
    "--once", is_flag=True, help="Stop when every stream is drained (a read finds nothing)."
)
@click.option("--max-seconds", type=float, default=None, metavar="S", help="Stop after S seconds.")
@click.option(
    "--consumer",
    default=None,
    metavar="NAME",
    help="This worker's name in the consumer groups (default: <host>-<pid>).",
)
@click.option(
    "--batch-size", type=int, default=10_000, show_default=True, help="Most messages per batch."
)
@click.option(
    "--every",
    "every",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between progress lines.",
)
@click.pass_context
def stream(
    ctx: click.Context,
    views: tuple[str, ...],
    once: bool,
    max_seconds: float | None,
    consumer: str | None,
    batch_size: int,
    every: float,
) -> None:
    """Consume the stream sources of VIEWS (default: every view with one) into the store.

    Each batch of events is pushed through the write path (offline commit, then the online
    store: latest values and aggregation tiles) and acknowledged only then, so a worker killed
    at any point loses nothing and counts nothing twice when restarted. Refused events go to
    the dead-letter stream with their reason. Several workers share a stream through its
    consumer group. Prints events/s, lag and dead letters as it goes; Ctrl-C stops cleanly.
    """
    import signal
    import threading
    import time

    from featureline.cli._render import console
    from featureline.stream import StreamStats, StreamWorker

    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size")
    store = open_store(ctx)
    worker = StreamWorker(store, list(views) or None, consumer=consumer, batch_size=batch_size)
    ctx.call_on_close(worker.close)
    out = console()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for lane in worker.lanes:
        out.print(
            f"{lane.view.name}: {lane.src.broker} stream `{lane.src.stream}`, group "
            f"`{lane.group}`, consumer `{worker.consumer}`, dead letters to "
            f"`{lane.src.dead_letter_stream}`",
            markup=False,
        )
    last: dict[str, tuple[float, int]] = {}

    def progress(stats: list[StreamStats]) -> None:
        now = time.monotonic()
        for s in stats:
            t, n = last.get(s.view, (s.started, 0))
            rate = (s.written - n) / (now - t) if now > t else 0.0
            last[s.view] = (now, s.written)
            lag = s.lag.total if s.lag is not None else None
            q = s.latency_quantiles()
            line = (
                f"{s.view}: {rate:,.0f} events/s, lag {'?' if lag is None else f'{lag:,}'}, "
                f"dead letters {s.dead_letters:,}, written {s.written:,} in {s.batches:,} "
                f"batches ({s.replayed:,} replayed)"
            )
            if s.quarantined:
                line += f", {s.quarantined:,} quarantined by the gate"
            if q:
                line += f", publish->servable p50 {q[0.5] * 1e3:.0f} ms p99 {q[0.99] * 1e3:.0f} ms"
            if s.errors:
                line += f", {s.errors} retried error(s), last: {s.last_error}"
            out.print(line, markup=False)

    t0 = time.monotonic()
    stats = worker.run(
        once=once, max_seconds=max_seconds, stop=stop, progress=progress, progress_every=every
    )
    total = sum(s.written for s in stats)
    dead = sum(s.dead_letters for s in stats)
    held = sum(s.quarantined for s in stats)
    out.print(
        f"Done: {total:,} events written ({held:,} of them quarantined by the gate), "
        f"{dead:,} dead-lettered in {time.monotonic() - t0:.1f} s.",
        markup=False,
    )
