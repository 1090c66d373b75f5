"""The demo's third part: a sliding-window aggregation fed by pushed events.

Adds a `driver_trips` view to the repo's definitions (trip events with a fare) with trailing
aggregations over 1-minute tiles, applies it, then pushes three bursts of trip events as a
stream would (a late event in the last one). After each burst it reads the aggregations online
and builds a training set at the same moment: the two must be equal, number for number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

import featureline as fl
from featureline.online import make_plan, read_with_plan

DEFINITION = """

# Added by the demo (examples/drivers/trip_events.py): trip events and trailing aggregations.
from featureline import Aggregation, String  # noqa: E402

driver_trips = FeatureView(
    name="driver_trips",
    entities=[driver],
    schema=[Field(name="driver_id", dtype=Int64), Field(name="fare", dtype=Float64),
            Field(name="city", dtype=String)],
    tile=timedelta(minutes=1),
    aggregations=[
        Aggregation("fare", "count", timedelta(hours=1)),
        Aggregation("fare", "sum", timedelta(hours=1)),
        Aggregation("fare", "mean", timedelta(hours=1)),
        Aggregation("fare", "max", timedelta(days=1)),
        Aggregation("city", "last"),
    ],
    description="Trip events pushed as they happen",
)
"""
AGGS = ["fare_count_1h", "fare_sum_1h", "fare_mean_1h", "fare_max_1d", "city_last_lifetime"]
DRIVERS = [1001, 1002, 1003]


def _burst(rng: np.random.Generator, now: datetime, n: int, late: bool) -> pa.Table:
    ages = rng.integers(1, 50, size=n)  # seconds ago
    if late:
        ages[0] = 50 * 60  # an event from 50 minutes ago arrives only now
    return pa.table(
        {
            "driver_id": pa.array(rng.choice(DRIVERS, size=n), pa.int64()),
            "event_timestamp": pa.array(
                [now - timedelta(seconds=int(a)) for a in ages], pa.timestamp("us", tz="UTC")
            ),
            "fare": pa.array(np.round(rng.uniform(5, 60, size=n), 2)),
            "city": pa.array(rng.choice(["Lisbon", "Porto", "Faro"], size=n)),
        }
    )


def trip_events(
    repo: Path,
    console: Console,
    check: Callable[[str, bool, str], None],
    timings: dict[str, float],
) -> None:
    with (repo / "definitions.py").open("a") as f:
        f.write(DEFINITION)
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    with fl.FeatureStore(repo) as store:
        store.apply(message="demo: trip events with sliding-window aggregations")
        refs = [f"driver_trips:{a}" for a in AGGS]
        plan = make_plan(store.catalog().resolve(refs), {"driver_id": "Int64"}, False)
        shown = Table(
            title="driver_trips, online after each burst (driver 1001)",
            title_justify="left",
            header_style="bold",
        )
        for c in ["burst", "events", *AGGS]:
            shown.add_column(c, justify="right")
        equal_every_time = True
        for i, (n, late) in enumerate([(40, False), (25, False), (30, True)], start=1):
            store.push("driver_trips", _burst(rng, datetime.now(UTC), n, late))
            now = datetime.now(UTC)
            now_us = int(now.timestamp() * 1_000_000)
            online = read_with_plan(store.online, plan, {"driver_id": DRIVERS}, now_us)
            ents = pa.table(
                {
                    "driver_id": pa.array(DRIVERS, pa.int64()),
                    "event_timestamp": pa.array([now] * 3, pa.timestamp("us", tz="UTC")),
                }
            )
            offline = store.get_training_set(ents, refs).to_arrow()
            for a in AGGS:
                equal_every_time &= online.values[a] == offline.column(a).to_pylist()
            row = [online.values[a][0] for a in AGGS]
            shown.add_row(
                str(i) + (" (1 late)" if late else ""),
                str(n),
                *(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row),
            )
        console.print(shown)
    timings["trip events: 3 pushes + reads"] = time.perf_counter() - t0
    check(
        "aggregations online = training set after every burst",
        equal_every_time,
        "5 aggregations x 3 drivers x 3 bursts, late event included",
    )
