"""Helpers shared by the backends that connect to servers by URL, and the one reading of a
"SQLite file or PostgreSQL URL" location (the registry and the metadata store)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

from featureline.errors import ConfigError, MissingExtraError


def redact(url: str) -> str:
    """The URL with its password replaced by `***`, safe for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def import_extra(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or say which `featureline[extra]` installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError.for_extra(module, extra) from e


def database_forms(file: str) -> str:
    """The location forms `sqlite_or_postgres` accepts, for messages."""
    return (
        f"`path/to/{file}` (a SQLite file, relative to the project directory), "
        "`sqlite:///relative.db`, `sqlite:////absolute/path.db`, or `postgresql://user@host:5432/db`"
    )


def sqlite_or_postgres(
    location: object, what: str, base_dir: Path, *, file: str, setting: str | None = None
) -> Path | str:
    """Where a backend of `what` ("registry", "metadata") lives: a `str` is a PostgreSQL URL,
    a `Path` a SQLite file (made absolute against `base_dir`). `file` is the example file name
    in messages; `setting`, the featureline.yaml key that holds the location, if any."""
    forms = database_forms(file)
    if not isinstance(location, str) or not location.strip():
        where = f"`{setting}` in featureline.yaml" if setting else "it"
        raise ConfigError(
            f"{what.capitalize()} location `{location!r}` is empty. Fix: set {where} to {forms}."
        )
    location = location.strip()
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    if scheme in ("postgresql", "postgres"):
        return location
    if scheme == "sqlite":
        # SQLAlchemy/MLflow convention: sqlite:///rel.db is relative, sqlite:////abs.db absolute.
        if not location.lower().startswith("sqlite:///") or not location[len("sqlite:///") :]:
            raise ConfigError(
                f"{what.capitalize()} URL `{location}` names no file. Fix: write `sqlite:///{file}` "
                f"(relative to the project directory) or `sqlite:////absolute/{file}`."
            )
        location = location[len("sqlite:///") :]
    elif scheme:
        raise ConfigError(
            f"Unknown {what} URL scheme `{scheme}` in `{location}`. Valid forms: {forms}."
        )
    path = Path(location).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path
