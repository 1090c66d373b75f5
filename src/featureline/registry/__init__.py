"""The versioned catalog of definitions: plan/apply/history over a RegistryStore.

Backends: SQLite (default, a local file) and PostgreSQL (shared, by URL).
"""

from __future__ import annotations

from pathlib import Path

from featureline._urls import sqlite_or_postgres
from featureline.registry._plan import Plan, check, diff_snapshots, plan, view_at
from featureline.registry._rebase import rebase
from featureline.registry._store import (
    UNCHECKED,
    RegistryCapabilities,
    RegistryHead,
    RegistryStore,
    RegistryVersion,
)


def open_registry(location: str, project: str, base_dir: Path) -> RegistryStore:
    """Open the registry at `location`: a PostgreSQL URL, or a SQLite file path/URL."""
    where = sqlite_or_postgres(
        location, "registry", base_dir, file="registry.db", setting="registry"
    )
    if isinstance(where, str):
        from featureline.registry.postgres import PostgresRegistry

        return PostgresRegistry(where, project)
    from featureline.registry.sqlite import SqliteRegistry

    return SqliteRegistry(where)


__all__ = [
    "UNCHECKED",
    "Plan",
    "RegistryCapabilities",
    "RegistryHead",
    "RegistryStore",
    "RegistryVersion",
    "check",
    "diff_snapshots",
    "open_registry",
    "plan",
    "rebase",
    "view_at",
]
