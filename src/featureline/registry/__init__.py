"""The versioned catalog of definitions: plan/apply/history over a RegistryStore.

Backends: SQLite (default, a local file) and PostgreSQL (shared, by URL).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from featureline.errors import ConfigError
from featureline.registry._plan import Plan, check, diff_snapshots, plan, view_at
from featureline.registry._rebase import rebase
from featureline.registry._store import (
    UNCHECKED,
    RegistryCapabilities,
    RegistryStore,
    RegistryVersion,
)

_VALID_FORMS = (
    "`path/to/registry.db` (a SQLite file, relative to the project directory), "
    "`sqlite:///relative.db`, `sqlite:////absolute/path.db`, or `postgresql://user@host:5432/db`"
)


def open_registry(location: str, project: str, base_dir: Path) -> RegistryStore:
    """Open the registry at `location`: a PostgreSQL URL, or a SQLite file path/URL."""
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(
            f"Registry location `{location!r}` is empty. Fix: set `registry` in featureline.yaml "
            f"to {_VALID_FORMS}."
        )
    location = location.strip()
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    if scheme in ("postgresql", "postgres"):
        from featureline.registry.postgres import PostgresRegistry

        return PostgresRegistry(location, project)
    if scheme == "sqlite":
        # SQLAlchemy/MLflow convention: sqlite:///rel.db is relative, sqlite:////abs.db absolute.
        if not location.lower().startswith("sqlite:///") or not location[len("sqlite:///") :]:
            raise ConfigError(
                f"Registry URL `{location}` names no file. Fix: write `sqlite:///registry.db` "
                "(relative to the project directory) or `sqlite:////absolute/registry.db`."
            )
        location = location[len("sqlite:///") :]
    elif scheme:
        raise ConfigError(
            f"Unknown registry URL scheme `{scheme}` in `{location}`. Valid forms: {_VALID_FORMS}."
        )
    from featureline.registry.sqlite import SqliteRegistry

    path_obj = Path(location).expanduser()
    if not path_obj.is_absolute():
        path_obj = Path(base_dir) / path_obj
    return SqliteRegistry(path_obj)


__all__ = [
    "UNCHECKED",
    "Plan",
    "RegistryCapabilities",
    "RegistryStore",
    "RegistryVersion",
    "check",
    "diff_snapshots",
    "open_registry",
    "plan",
    "rebase",
    "view_at",
]
