"""Helpers shared by the backends that connect to servers by URL."""

from __future__ import annotations

import importlib
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

from featureline.errors import MissingExtraError


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
