"""Pipeline run tracking: runs, steps, artifacts, params, metrics and lineage.

Backends: SQLite (default, a local file) and PostgreSQL (shared, by URL).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from featureline.errors import ConfigError
from featureline.pipelines.metadata._store import (
    RUN_STATUSES,
    STEP_STATUSES,
    MetadataCapabilities,
    MetadataStore,
)

_VALID_FORMS = (
    "`path/to/metadata.db` (a SQLite file, relative to the project directory), "
    "`sqlite:///relative.db`, `sqlite:////absolute/path.db`, or `postgresql://user@host:5432/db`"
)


def open_metadata_store(location: str, base_dir: Path, namespace: str) -> MetadataStore:
    """Open the metadata store at `location`: a PostgreSQL URL, or a SQLite file path/URL."""
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(
            f"Metadata location `{location!r}` is empty. Fix: set it to {_VALID_FORMS}."
        )
    location = location.strip()
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    if scheme in ("postgresql", "postgres"):
        from featureline.pipelines.metadata.postgres import PostgresMetadataStore

        return PostgresMetadataStore(location, namespace)
    if scheme == "sqlite":
        # SQLAlchemy/MLflow convention: sqlite:///rel.db is relative, sqlite:////abs.db absolute.
        if not location.lower().startswith("sqlite:///") or not location[len("sqlite:///") :]:
            raise ConfigError(
                f"Metadata URL `{location}` names no file. Fix: write `sqlite:///metadata.db` "
                "(relative to the project directory) or `sqlite:////absolute/metadata.db`."
            )
        location = location[len("sqlite:///") :]
    elif scheme:
        raise ConfigError(
            f"Unknown metadata URL scheme `{scheme}` in `{location}`. Valid forms: {_VALID_FORMS}."
        )
    from featureline.pipelines.metadata.sqlite import SqliteMetadataStore

    path = Path(location).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    return SqliteMetadataStore(path, namespace)


__all__ = [
    "RUN_STATUSES",
    "STEP_STATUSES",
    "MetadataCapabilities",
    "MetadataStore",
    "open_metadata_store",
]
