"""Pipeline run tracking: runs, steps, artifacts, params, metrics and lineage.

Backends: SQLite (default, a local file) and PostgreSQL (shared, by URL).
"""

from __future__ import annotations

from pathlib import Path

from featureline._urls import sqlite_or_postgres
from featureline.pipelines.metadata._store import (
    RUN_STATUSES,
    STEP_STATUSES,
    MetadataCapabilities,
    MetadataStore,
)


def open_metadata_store(location: str, base_dir: Path, namespace: str) -> MetadataStore:
    """Open the metadata store at `location`: a PostgreSQL URL, or a SQLite file path/URL."""
    where = sqlite_or_postgres(location, "metadata", base_dir, file="metadata.db")
    if isinstance(where, str):
        from featureline.pipelines.metadata.postgres import PostgresMetadataStore

        return PostgresMetadataStore(where, namespace)
    from featureline.pipelines.metadata.sqlite import SqliteMetadataStore

    return SqliteMetadataStore(where, namespace)


__all__ = [
    "RUN_STATUSES",
    "STEP_STATUSES",
    "MetadataCapabilities",
    "MetadataStore",
    "open_metadata_store",
]
