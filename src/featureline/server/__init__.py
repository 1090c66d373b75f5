"""The Featureline feature server: an ASGI app (Starlette) run by `featureline serve` (uvicorn).

    from featureline.server import create_app
    app = create_app("path/to/repo")          # or create_app(FeatureStore(...))

Needs the `server` extra: pip install 'featureline[server]'.
"""

from __future__ import annotations

from featureline.errors import MissingExtraError

try:
    from featureline.server.app import FeatureServer, app_from_env, create_app
except ImportError as e:  # pragma: no cover - only without the extra
    if e.name in {"starlette", "prometheus_client", "anyio", "uvicorn"}:
        raise MissingExtraError.for_extra(e.name, "server") from e
    raise

__all__ = ["FeatureServer", "app_from_env", "create_app"]
