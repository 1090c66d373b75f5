"""Online storage: the latest value per key, per table, for low-latency reads.

Backends: SQLite (default, a local file in WAL mode) and Redis (shared, by URL). Both
implement `OnlineStore` and pass `featureline.testing.online_contract`. The read path
(`featureline.read`) uses the plan-and-read functions re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featureline.errors import ConfigError, unknown
from featureline.online._read import (
    OnlineResponse,
    PlanCache,
    entity_columns,
    make_plan,
    read_with_plan,
)
from featureline.online._store import ORDER_BYTES, OnlineCapabilities, OnlineStore, due_bytes

_SETTINGS: dict[str, dict[str, str]] = {
    "sqlite": {"path": "a file path, relative to the project directory (default `data/online.db`)"},
    "redis": {
        "url": "e.g. `redis://127.0.0.1:6379/0` (required)",
        "namespace": "the key prefix (default: the project name)",
    },
}
_EXAMPLE = (
    "`online_store: {type: sqlite, path: data/online.db}` or "
    "`online_store: {type: redis, url: redis://127.0.0.1:6379/0}`"
)


def _check(config: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"`online_store` must be a mapping, got `{config!r}`. Fix: write {_EXAMPLE}."
        )
    kind = config.get("type")
    if kind is None:
        raise ConfigError(
            f"`online_store` has no `type`. Valid: `redis`, `sqlite`. Fix: write {_EXAMPLE}."
        )
    if not isinstance(kind, str) or kind not in _SETTINGS:
        raise ConfigError(
            f"online_store: {unknown('online store type', str(kind), _SETTINGS)} "
            f"Fix: write {_EXAMPLE}."
        )
    allowed = _SETTINGS[kind]
    problems = [
        unknown(f"`{kind}` online store setting", str(k), allowed)
        for k in config
        if k != "type" and k not in allowed
    ]
    problems += [
        f"`{k}` must be a non-empty string, got `{v!r}`."
        for k, v in config.items()
        if k in allowed and (not isinstance(v, str) or not v.strip())
    ]
    if kind == "redis" and "url" not in config:
        problems.append("`url` is required, e.g. `url: redis://127.0.0.1:6379/0`.")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        settings = ", ".join(f"`{k}` ({v})" for k, v in allowed.items())
        raise ConfigError(
            f"Problems in `online_store` (type `{kind}`):\n{lines}\n"
            f"Fix: a `{kind}` online store takes: {settings}."
        )
    return kind, {k: v for k, v in config.items() if k != "type"}


def open_online_store(config: Mapping[str, Any], base_dir: Path, project: str) -> OnlineStore:
    """Open the online store described by featureline.yaml's `online_store` mapping."""
    kind, settings = _check(config)
    if kind == "redis":
        from featureline.online.redis import RedisOnlineStore

        return RedisOnlineStore(settings["url"], settings.get("namespace", project))
    from featureline.online.sqlite import SqliteOnlineStore

    path = Path(settings.get("path", "data/online.db")).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    return SqliteOnlineStore(path)


__all__ = [
    "ORDER_BYTES",
    "OnlineCapabilities",
    "OnlineResponse",
    "OnlineStore",
    "PlanCache",
    "due_bytes",
    "entity_columns",
    "make_plan",
    "open_online_store",
    "read_with_plan",
]
