"""The offline engine boundary: what computes over the stored parts of a view version.

The table side (`offline._log`: commits, live parts as of a time, compare-and-swap replace)
says *which* Parquet parts hold a view's rows; an engine computes over them. Every engine
implements `OfflineEngine` and passes `featureline.testing.offline_contract`. DuckDB is the
engine today (`offline_store: {type: duckdb}` in featureline.yaml); a Ray engine plugs in here.
"""

from __future__ import annotations

from typing import Any

from featureline.errors import ConfigError, did_you_mean
from featureline.offline.engines._base import EngineCapabilities, OfflineEngine

__all__ = [
    "ENGINE_TYPES",
    "EngineCapabilities",
    "OfflineEngine",
    "open_engine",
    "validate_engine_config",
]


ENGINE_TYPES = ("duckdb",)
_KEYS = {"duckdb": {"type", "path", "threads", "memory_limit"}}


def validate_engine_config(raw: dict[str, Any]) -> list[str]:
    """Problems with an `offline_store:` mapping (unknown type or key), each naming the valid ones."""
    kind = raw.get("type", "duckdb")
    if kind not in ENGINE_TYPES:
        return [
            f"`offline_store.type: {kind}` is not an offline engine.{did_you_mean(str(kind), ENGINE_TYPES)} Valid: {', '.join(ENGINE_TYPES)}."
        ]
    keys = _KEYS[kind]
    problems = [
        f"unknown setting `offline_store.{k}` for type {kind}.{did_you_mean(str(k), keys)} Valid: {', '.join(sorted(keys))}."
        for k in raw
        if k not in keys
    ]
    threads = raw.get("threads")
    if threads is not None and (
        not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
    ):
        problems.append(f"`offline_store.threads` must be a positive integer, got `{threads!r}`.")
    limit = raw.get("memory_limit")
    if limit is not None and not isinstance(limit, str):
        problems.append(
            f"`offline_store.memory_limit` must be a size such as `4GB`, got `{limit!r}`."
        )
    return problems


def open_engine(raw: dict[str, Any] | None = None) -> OfflineEngine:
    """The engine an `offline_store:` mapping selects (DuckDB by default)."""
    raw = dict(raw or {})
    problems = validate_engine_config(raw)
    if problems:
        raise ConfigError(
            "Problems in `offline_store`:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    from featureline.offline.engines.duckdb import DuckDBEngine

    return DuckDBEngine(threads=raw.get("threads"), memory_limit=raw.get("memory_limit"))
