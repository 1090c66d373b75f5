"""`featureline init DIR`: a new feature repo with a working example."""

from __future__ import annotations

from pathlib import Path

from featureline.errors import ValidationError

_CONFIG = """\
project: {project}
# registry: a SQLite file (default) or postgresql://user@host:5432/db
registry: data/registry.db
offline_store:
  path: data/offline
online_store:
  type: sqlite
  path: data/online.db
"""

_DEFS = '''\
"""Feature definitions. `featureline plan` shows what `featureline apply` would change."""

from datetime import timedelta

from featureline import Entity, FeatureService, FeatureView, Field, FileSource, Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"], description="A driver of the fleet", owner="ml@example.com")

driver_hourly = FileSource(
    path="data/driver_hourly.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_field="created",
)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    schema=[
        Field("driver_id", Int64),
        Field("conv_rate", Float64, description="Share of offers accepted"),
        Field("acc_rate", Float64, description="Share of rides completed"),
        Field("avg_daily_trips", Int64),
    ],
    source=driver_hourly,
    ttl=timedelta(days=2),
    owner="ml@example.com",
    description="Hourly driver quality statistics",
    tags={"team": "marketplace"},
)

driver_activity = FeatureService(name="driver_activity", features=[driver_stats])
'''


def init_repo(path: str | Path, project: str | None = None, with_data: bool = True) -> Path:
    """Create a feature repo at `path` (which must not hold one already)."""
    root = Path(path)
    if (root / "featureline.yaml").exists():
        raise ValidationError(
            f"`{root}` already holds a feature repo (featureline.yaml exists). Fix: choose another folder."
        )
    name = project or root.resolve().name.replace("-", "_") or "my_project"
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "featureline.yaml").write_text(_CONFIG.format(project=name))
    (root / "definitions.py").write_text(_DEFS)
    if with_data:
        _example_data(root / "data" / "driver_hourly.parquet")
    return root


def _example_data(path: Path, drivers: int = 50, hours: int = 24 * 7) -> None:
    """Hourly stats for a few drivers over the last week, generated here (nothing is downloaded)."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start_us = int((end - timedelta(hours=hours)).timestamp() * 1_000_000)
    ids = np.repeat(np.arange(1001, 1001 + drivers, dtype=np.int64), hours)
    ts = start_us + np.tile(np.arange(hours, dtype=np.int64), drivers) * 3_600_000_000
    n = len(ids)
    pq.write_table(
        pa.table(
            {
                "driver_id": ids,
                "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "created": pa.array(
                    ts + rng.integers(1, 600_000_000, n), pa.timestamp("us", tz="UTC")
                ),
                "conv_rate": rng.random(n),
                "acc_rate": rng.random(n),
                "avg_daily_trips": rng.integers(0, 40, n),
            }
        ),
        path,
    )
