"""The offline engine boundary: what computes over the stored parts of a view version.

The table side (`offline._log`: commits, live parts as of a time, compare-and-swap replace)
says *which* Parquet parts hold a view's rows; an engine computes over them. Every engine
implements `OfflineEngine` and passes `featureline.testing.offline_contract`. DuckDB is the
engine today (`offline_store: {type: duckdb}` in featureline.yaml); a Ray engine plugs in here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from featureline.definitions import FeatureView
from featureline.errors import ConfigError, did_you_mean
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

    def winners(
        self, view: FeatureView, parts: list[PartRef], since_us: int | None, start_us: int | None, end_us: int | None, chunk_rows: int
    ) -> Iterator[pa.Table]:
        """Per key, the row with the greatest (event, created, ingested, seq) — for materialization.

        Rows of compacted parts ingested at or before `since_us` are skipped; `start_us`/`end_us`
        bound the event time. Columns: keys, __event_us, __created_us, __ingested_us, __seq, features.
        """
        ...

    def batch_winners(self, view: FeatureView, stored: pa.Table, ingested_at_us: int, chunk_rows: int) -> Iterator[pa.Table]:
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


ENGINE_TYPES = ("duckdb",)
_KEYS = {"duckdb": {"type", "path", "threads", "memory_limit"}}


def validate_engine_config(raw: dict[str, Any]) -> list[str]:
    """Problems with an `offline_store:` mapping (unknown type or key), each naming the valid ones."""
    kind = raw.get("type", "duckdb")
    if kind not in ENGINE_TYPES:
        return [f"`offline_store.type: {kind}` is not an offline engine.{did_you_mean(str(kind), ENGINE_TYPES)} Valid: {', '.join(ENGINE_TYPES)}."]
    keys = _KEYS[kind]
    problems = [
        f"unknown setting `offline_store.{k}` for type {kind}.{did_you_mean(str(k), keys)} Valid: {', '.join(sorted(keys))}."
        for k in raw
        if k not in keys
    ]
    threads = raw.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        problems.append(f"`offline_store.threads` must be a positive integer, got `{threads!r}`.")
    limit = raw.get("memory_limit")
    if limit is not None and not isinstance(limit, str):
        problems.append(f"`offline_store.memory_limit` must be a size such as `4GB`, got `{limit!r}`.")
    return problems


def open_engine(raw: dict[str, Any] | None = None) -> OfflineEngine:
    """The engine an `offline_store:` mapping selects (DuckDB by default)."""
    raw = dict(raw or {})
    problems = validate_engine_config(raw)
    if problems:
        raise ConfigError("Problems in `offline_store`:\n" + "\n".join(f"  - {p}" for p in problems))
    from featureline.offline.engines.duckdb import DuckDBEngine

    return DuckDBEngine(threads=raw.get("threads"), memory_limit=raw.get("memory_limit"))
