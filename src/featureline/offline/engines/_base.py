"""The offline engine Protocol and its declared capabilities (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from featureline.definitions import FeatureView
from featureline.offline._pit import JoinSpec, PartRef


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do, declared up front instead of failing at run time."""

    asof_join: bool = True  # a native as-of join (else: a sort-merge join is emulated)
    streams_results: bool = True  # scans come back in bounded chunks
    distributed: bool = False  # work spreads over several machines
    spills_to_disk: bool = True  # joins larger than memory finish


class OfflineEngine(Protocol):
    """Computations over the parts of one view version (DESIGN §3 semantics)."""

    name: str
    capabilities: EngineCapabilities

    def point_in_time_join(self, entities: pa.Table, spec: JoinSpec) -> pa.Table:
        """`entities(__rid, keys, __ts)` → `(__rid, <outputs of spec.features>)`, one row per entity row (any order)."""
        ...

    def latest_rows(self, spec: JoinSpec, limit: int | None = None) -> pa.Table:
        """The tie winners of `spec.parts` visible at `spec.as_of_us`: keys, event_timestamp, features; newest first."""
        ...

    def window_events(
        self, spec: JoinSpec, keys: pa.Table | None, start_us: int | None
    ) -> pa.Table:
        """The events of `spec.parts` visible at `spec.as_of_us` (one tie winner per key and
        event time) with event time at or after `start_us`, for the join keys in `keys` (None:
        every key) — aggregation features. Columns: keys, __event_us, features; sorted by keys,
        then event time."""
        ...

    def winners(
        self,
        view: FeatureView,
        parts: list[PartRef],
        since_us: int | None,
        start_us: int | None,
        end_us: int | None,
        chunk_rows: int,
        now_us: int | None = None,
    ) -> Iterator[pa.Table]:
        """Per key, the row with the greatest (event, created, ingested, seq) — for materialization.

        Rows of compacted parts ingested at or before `since_us` are skipped; `start_us`/`end_us`
        bound the event time. With `now_us`, the winner is taken among rows with event time at
        or before it, and every row with a later event time is returned too (staged online
        until it is due). Columns: keys, __event_us, __created_us, __ingested_us, __seq, features.
        """
        ...

    def batch_winners(
        self,
        view: FeatureView,
        stored: pa.Table,
        ingested_at_us: int,
        chunk_rows: int,
        now_us: int | None = None,
    ) -> Iterator[pa.Table]:
        """`winners` over one committed batch held in memory (the online apply of a push)."""
        ...

    def merge_parts(self, view: FeatureView, parts: list[PartRef], dest: Path) -> None:
        """Write the rows of `parts` to one Parquet file at `dest`, each with its ingested time and
        the system time from which a later tie beats it (compaction; every as-of answer kept)."""
        ...

    def profile(self, view: FeatureView, parts: list[PartRef]) -> dict[str, Any]:
        """Row count, event-time range, superseded rows and per-feature statistics."""
        ...

    def close(self) -> None: ...
