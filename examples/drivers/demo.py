"""Featureline end to end, on generated ride-hailing data (`make demo`).

1,000 drivers report hourly statistics for 30 days. Most rows arrive on time (batch 1);
about 3% arrive late and about 2% are corrected afterwards (same driver and event time,
a later created time, a different value) - both land in batch 2. A training set for
10,000 labelled trip requests is then built twice: as the store knew it at time T (after
batch 1) and as it knows it now. The script checks both against an independent NumPy
computation of the point-in-time rules, prints what changed, and exits 1 if a check fails.

Run: python examples/drivers/demo.py [--repo PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

import featureline as fl

HERE = Path(__file__).resolve().parent
VIEW = "driver_stats"
FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips"]
DRIVERS = 1_000
DAYS = 30
ENTITY_ROWS = 10_000
LATE_SHARE = 0.03
CORRECTED_SHARE = 0.02
HOUR_US = 3_600_000_000
UTC_US = pa.timestamp("us", tz="UTC")

console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


@dataclass
class World:
    """The generated truth: dense [hour, driver] matrices and the two batches."""

    start_us: int
    driver_ids: np.ndarray
    original: dict[str, np.ndarray]  # [H, D] values as first reported (NaN = null)
    final: dict[str, np.ndarray]  # [H, D] values after corrections
    late: np.ndarray  # [H, D] bool: arrives in batch 2 only
    corrected: np.ndarray  # [H, D] bool: corrected in batch 2
    batch1: pa.Table
    batch2: pa.Table


def generate(rng: np.random.Generator, now: datetime) -> World:
    hours = DAYS * 24
    end = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    start_us = int((end - timedelta(hours=hours - 1)).timestamp()) * 1_000_000
    ids = np.arange(1001, 1001 + DRIVERS, dtype=np.int64)
    hod = (np.arange(hours) + (end.hour + 1)) % 24  # hour of day of each hour index

    conv_base = rng.beta(6, 3, DRIVERS)
    acc_base = rng.beta(9, 2, DRIVERS)
    trips_base = rng.gamma(6.0, 3.0, DRIVERS)
    peak = 0.06 * np.sin(2 * np.pi * (hod - 8) / 24)[:, None]  # busier, pickier evenings
    conv = np.clip(conv_base[None, :] + peak + rng.normal(0, 0.05, (hours, DRIVERS)), 0, 1)
    conv[rng.random((hours, DRIVERS)) < 0.01] = np.nan  # no offers that hour: null
    acc = np.clip(acc_base[None, :] + rng.normal(0, 0.03, (hours, DRIVERS)), 0, 1)
    trips = rng.poisson(trips_base[None, :] * (1 + peak), (hours, DRIVERS)).astype(np.float64)

    late = rng.random((hours, DRIVERS)) < LATE_SHARE
    corrected = (rng.random((hours, DRIVERS)) < CORRECTED_SHARE) & ~late
    step = rng.choice([-1.0, 1.0], (hours, DRIVERS)) * rng.uniform(0.05, 0.2, (hours, DRIVERS))
    conv_fixed = np.where(
        np.isnan(conv), np.clip(conv_base[None, :] + step, 0, 1), np.clip(conv + step, 0, 1)
    )
    conv_fixed = np.where(
        conv_fixed == conv, np.abs(conv - 0.5), conv_fixed
    )  # clipped to the same value
    acc_fixed = np.clip(acc - np.abs(step) / 2, 0, 1)
    original = {"conv_rate": conv, "acc_rate": acc, "avg_daily_trips": trips}
    final = {
        "conv_rate": np.where(corrected, conv_fixed, conv),
        "acc_rate": np.where(corrected, acc_fixed, acc),
        "avg_daily_trips": trips,
    }

    event_us = (
        start_us
        + np.arange(hours, dtype=np.int64)[:, None] * HOUR_US
        + np.zeros((1, DRIVERS), np.int64)
    )
    created_us = event_us + rng.integers(
        30_000_000, 900_000_000, (hours, DRIVERS)
    )  # 30 s to 15 min
    now_us = int(now.timestamp() * 1_000_000)
    recomputed_us = np.minimum(
        created_us + rng.integers(HOUR_US, 48 * HOUR_US, (hours, DRIVERS)), now_us
    )
    driver = np.broadcast_to(ids[None, :], (hours, DRIVERS))

    def rows(
        mask: np.ndarray, values: dict[str, np.ndarray], created: np.ndarray
    ) -> dict[str, pa.Array]:
        conv_col = values["conv_rate"][mask]
        return {
            "driver_id": pa.array(driver[mask]),
            "event_timestamp": pa.array(event_us[mask], UTC_US),
            "created": pa.array(created[mask], UTC_US),
            "conv_rate": pa.array(conv_col, mask=np.isnan(conv_col)),
            "acc_rate": pa.array(values["acc_rate"][mask]),
            "avg_daily_trips": pa.array(values["avg_daily_trips"][mask].astype(np.int64)),
        }

    batch1 = pa.table(rows(~late, original, created_us))
    late_rows = pa.table(rows(late, original, created_us))
    fixes = pa.table(rows(corrected, final, recomputed_us))
    batch2 = pa.concat_tables([late_rows, fixes]).sort_by(
        [("event_timestamp", "ascending"), ("driver_id", "ascending")]
    )
    return World(start_us, ids, original, final, late, corrected, batch1, batch2)


def entity_rows(rng: np.random.Generator, world: World) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """10,000 trip requests (driver, request time) labelled with whether the trip completed."""
    hours = DAYS * 24
    d = rng.integers(0, DRIVERS, ENTITY_ROWS)
    ts = world.start_us + rng.integers(0, hours * HOUR_US, ENTITY_ROWS)
    h = (ts - world.start_us) // HOUR_US
    completed = rng.random(ENTITY_ROWS) < world.final["acc_rate"][h, d]
    table = pa.table(
        {
            "driver_id": pa.array(world.driver_ids[d]),
            "event_timestamp": pa.array(ts, UTC_US),
            "trip_completed": pa.array(completed),
        }
    )
    return table, d, ts


def expected(
    world: World, d: np.ndarray, ts: np.ndarray, ttl_us: int | None, as_of_t: bool
) -> dict[str, np.ndarray]:
    """The point-in-time answer computed directly: newest visible hour <= ts, within the TTL."""
    h = (ts - world.start_us) // HOUR_US
    if not as_of_t:  # every hour is present now, and corrections win (later created time)
        return {f: world.final[f][h, d] for f in FEATURES}
    hours = world.late.shape[0]
    idx = np.where(~world.late, np.arange(hours)[:, None], -1)
    last = np.maximum.accumulate(idx, axis=0)[h, d]  # newest hour <= h that batch 1 held
    ok = last >= 0
    if ttl_us:
        ok &= world.start_us + last * HOUR_US >= ts - ttl_us
    safe = np.where(ok, last, 0)
    return {f: np.where(ok, world.original[f][safe, d], np.nan) for f in FEATURES}


def column(table: pa.Table, name: str) -> np.ndarray:
    values: np.ndarray = np.asarray(table.column(name).to_numpy(), dtype=np.float64)
    return values


def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def run(repo: Path, seed: int) -> int:
    timings: dict[str, float] = {}
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append((name, bool(ok), detail))

    console.print(
        Panel.fit(
            "[bold]Featureline demo[/]: ride-hailing drivers, late and corrected data, time travel",
            border_style="cyan",
        )
    )
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    world = generate(rng, datetime.now(UTC))
    entities, ent_d, ent_ts = entity_rows(rng, world)
    timings["generate data"] = time.perf_counter() - t0
    console.print(
        f"Generated {world.batch1.num_rows + int(world.late.sum()):,} hourly rows for {DRIVERS:,} drivers over {DAYS} days: "
        f"{world.batch1.num_rows:,} on time, {int(world.late.sum()):,} late, {int(world.corrected.sum()):,} corrections."
    )

    if repo.exists():
        shutil.rmtree(repo)
    fl.init_repo(repo, project="drivers_demo", with_data=False)
    pq.write_table(world.batch1, repo / "data" / "driver_hourly.parquet")  # the view's source
    pq.write_table(world.batch2, repo / "data" / "driver_hourly_late.parquet")

    with fl.FeatureStore(repo) as store:
        t0 = time.perf_counter()
        rv = store.apply(message="demo: initial definitions")
        timings["apply"] = time.perf_counter() - t0
        check("apply created registry version 1", rv is not None and rv.version == 1)
        view = store.get_feature_view(VIEW)
        check(
            "view defines the expected features",
            [f.name for f in view.features] == FEATURES,
            ", ".join(f.name for f in view.features),
        )
        ttl_us = int(view.ttl.total_seconds() * 1_000_000) if view.ttl else None
        ttl = f"{view.ttl.total_seconds() / 3600:g} hours" if view.ttl else "none"
        console.print(
            f"Applied registry version {rv.version if rv else '?'}: view [bold]{VIEW}[/] ({len(view.features)} features, ttl {ttl})."
        )

        t0 = time.perf_counter()
        r1 = store.ingest(VIEW)  # no data: reads the view's source, data/driver_hourly.parquet
        timings["ingest batch 1"] = time.perf_counter() - t0
        console.print(
            f"Batch 1: {r1.rows:,} rows in {timings['ingest batch 1']:.2f} s ({r1.rows / timings['ingest batch 1']:,.0f} rows/s), commit {r1.commit}."
        )

        t_known = datetime.now(UTC)
        console.print(
            f"T = [bold]{t_known.isoformat()}[/]  (what the store knows now; batch 2 arrives after this)"
        )
        time.sleep(0.01)

        t0 = time.perf_counter()
        r2 = store.ingest(VIEW, str(repo / "data" / "driver_hourly_late.parquet"))
        timings["ingest batch 2"] = time.perf_counter() - t0
        console.print(
            f"Batch 2: {r2.rows:,} rows (late + corrected) in {timings['ingest batch 2']:.2f} s, commit {r2.commit}."
        )
        check("batch 2 committed after T", r2.ingested_at > t_known >= r1.ingested_at)

        t0 = time.perf_counter()
        now_set = store.get_training_set(entities, [f"{VIEW}:{f}" for f in FEATURES])
        timings["training set (now)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        past_set = store.get_training_set(
            entities, [f"{VIEW}:{f}" for f in FEATURES], as_of=t_known
        )
        timings["training set (as_of=T)"] = time.perf_counter() - t0
        now_set.to_parquet(repo / "data" / "training_set.parquet")
        info = store.describe(VIEW)

        # online serving: copy the latest values to the online store, read them back in-process
        t0 = time.perf_counter()
        mat = store.materialize_incremental()
        timings["materialize (online)"] = time.perf_counter() - t0
        drivers = sorted(
            {
                int(d)
                for d in world.batch1.column("driver_id").to_pylist()[:: len(world.batch1) // 50]
            }
        )
        t0 = time.perf_counter()
        online = store.get_online_features(
            [f"{VIEW}:{f}" for f in FEATURES], {"driver_id": drivers}
        )
        timings["online read (50 drivers)"] = time.perf_counter() - t0
        at_now = pa.table(
            {
                "driver_id": pa.array(drivers, pa.int64()),
                "event_timestamp": pa.array(
                    [datetime.now(UTC)] * len(drivers), pa.timestamp("us", tz="UTC")
                ),
            }
        )
        offline_now = store.get_training_set(at_now, [f"{VIEW}:{f}" for f in FEATURES]).to_arrow()
        console.print(
            f"Materialized {mat[0].rows_scanned:,} offline rows -> {mat[0].keys_written:,} online keys in {timings['materialize (online)']:.2f} s; "
            f"read {len(drivers)} drivers online in {timings['online read (50 drivers)'] * 1000:.2f} ms."
        )
        check(
            "online read equals the training set at now (online = offline)",
            all(online.to_dict()[f] == offline_now.column(f).to_pylist() for f in FEATURES),
            f"{len(drivers)} drivers, statuses {sorted(set(online.statuses[FEATURES[0]]))}",
        )

    now_t, past_t = now_set.to_arrow(), past_set.to_arrow()
    check(
        f"{ENTITY_ROWS:,} rows out, one per entity row",
        now_t.num_rows == past_t.num_rows == ENTITY_ROWS,
    )
    check(
        "entity columns kept unchanged, in input order",
        now_t.select(entities.column_names).equals(entities)
        and past_t.select(entities.column_names).equals(entities),
    )
    exp_now = expected(world, ent_d, ent_ts, ttl_us, as_of_t=False)
    exp_past = expected(world, ent_d, ent_ts, ttl_us, as_of_t=True)
    for f in FEATURES:
        bad_now = int((~same(column(now_t, f), exp_now[f])).sum())
        bad_past = int((~same(column(past_t, f), exp_past[f])).sum())
        check(f"{f}: now matches the point-in-time rules", bad_now == 0, f"{bad_now} mismatches")
        check(
            f"{f}: as_of=T matches the point-in-time rules", bad_past == 0, f"{bad_past} mismatches"
        )

    h = (ent_ts - world.start_us) // HOUR_US
    hit_fix = world.corrected[h, ent_d]
    hit_late = world.late[h, ent_d]
    conv_now, conv_past = column(now_t, "conv_rate"), column(past_t, "conv_rate")
    differ = ~same(conv_now, conv_past)
    fixed_now = world.final["conv_rate"][h, ent_d]
    check(
        "corrected values visible now",
        bool(hit_fix.any()) and bool(same(conv_now[hit_fix], fixed_now[hit_fix]).all()),
        f"{int(hit_fix.sum())} entity rows hit a corrected hour",
    )
    check(
        "pre-correction values at as_of=T",
        bool(same(conv_past[hit_fix], world.original["conv_rate"][h, ent_d][hit_fix]).all()),
    )
    check(
        "late rows invisible at T, visible now",
        bool(hit_late.any()) and bool(differ[hit_late].mean() > 0.9),
        f"{int(hit_late.sum())} entity rows hit a late hour",
    )
    check(
        "rows that differ are exactly those hitting late or corrected hours",
        not differ[~(hit_fix | hit_late)].any(),
    )

    from ml_loop import ml_loop
    from trip_events import trip_events

    ml_loop(repo, console, check, timings)
    trip_events(repo, console, check, timings)
    show_examples(now_t, past_t, np.flatnonzero(hit_fix)[:4], np.flatnonzero(hit_late & differ)[:2])
    show_summary(
        now_t,
        past_t,
        info,
        r1.rows,
        r2.rows,
        int(differ.sum()),
        int(hit_fix.sum()),
        int(hit_late.sum()),
        timings,
    )
    return show_checks(checks, repo)


def show_examples(now_t: pa.Table, past_t: pa.Table, fixed: np.ndarray, late: np.ndarray) -> None:
    t = Table(
        title="Same entity rows, as of T vs now (conv_rate)",
        title_justify="left",
        header_style="bold",
    )
    for name in ("driver_id", "request time (UTC)", "conv_rate @ T", "conv_rate now", "why"):
        t.add_column(name, justify="right" if name.startswith(("driver", "conv")) else "left")
    ids = now_t.column("driver_id").to_pylist()
    times = now_t.column("event_timestamp").to_pylist()
    now_v, past_v = now_t.column("conv_rate").to_pylist(), past_t.column("conv_rate").to_pylist()

    def f(v: float | None) -> str:
        return "null" if v is None else f"{v:.4f}"

    for why, rows in (("corrected after T", fixed), ("arrived after T", late)):
        for i in rows.tolist():
            t.add_row(
                str(ids[i]), times[i].strftime("%Y-%m-%d %H:%M:%S"), f(past_v[i]), f(now_v[i]), why
            )
    console.print(t)


def show_summary(
    now_t: pa.Table,
    past_t: pa.Table,
    info: dict[str, object],
    rows1: int,
    rows2: int,
    differing: int,
    hit_fix: int,
    hit_late: int,
    timings: dict[str, float],
) -> None:
    t = Table(title="Training set", title_justify="left", header_style="bold")
    t.add_column("feature")
    t.add_column("null rate now", justify="right")
    t.add_column("null rate @ T", justify="right")
    t.add_column("mean now", justify="right")
    t.add_column("rows differing", justify="right")
    for f in FEATURES:
        a, b = column(now_t, f), column(past_t, f)
        t.add_row(
            f,
            f"{np.isnan(a).mean():.2%}",
            f"{np.isnan(b).mean():.2%}",
            f"{np.nanmean(a):.4f}",
            f"{int((~same(a, b)).sum()):,}",
        )
    console.print(t)
    console.print(
        f"{now_t.num_rows:,} rows x {now_t.num_columns} columns ({len(FEATURES)} features + driver_id, event_timestamp, trip_completed); "
        f"{differing:,} rows differ in conv_rate between T and now "
        f"({hit_fix:,} hit a corrected hour, {hit_late:,} a late one). "
        f"Stored: {info.get('rows', 0):,} rows in {info.get('commits', 0)} commits (batch 1: {rows1:,}, batch 2: {rows2:,})."
    )
    tt = Table(title="Timings", title_justify="left", header_style="bold")
    tt.add_column("step")
    tt.add_column("seconds", justify="right")
    for step, s in timings.items():
        tt.add_row(step, f"{s:.2f}")
    tt.add_row("total", f"{sum(timings.values()):.2f}", style="bold")
    console.print(tt)


def show_checks(checks: list[tuple[str, bool, str]], repo: Path) -> int:
    t = Table(title="Checks", title_justify="left", header_style="bold")
    t.add_column("")
    t.add_column("check")
    t.add_column("detail", style="dim")
    for name, ok, detail in checks:
        t.add_row("[green]PASS[/]" if ok else "[bold red]FAIL[/]", name, detail)
    console.print(t)
    failed = [c for c in checks if not c[1]]
    if failed:
        console.print(f"[bold red]{len(failed)} check(s) failed.[/]")
        return 1
    try:
        shown = repo.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = repo
    console.print(
        f"[bold green]All {len(checks)} checks passed.[/] Explore it: featureline --repo {shown} describe {VIEW}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--repo", type=Path, default=HERE / "repo", help="folder for the demo repo (recreated)"
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    return run(args.repo, args.seed)


sys.path.insert(0, str(HERE))

if __name__ == "__main__":
    sys.exit(main())
