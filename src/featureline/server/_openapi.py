"""The server's OpenAPI 3.1 document and a self-contained HTML page rendering it (no CDN).

`build_spec` makes the document of the routes; given the registry's current definitions (a
`Catalog`) and the registered model names, it also names them: the features a read may ask for,
the views a push may write and, per view, the columns its push body needs with their types
(Feast's `/push` and `/write-to-online-store` bodies are a `oneOf` over the views), and the
models a predict may call. `LiveSpec` serves that document, rebuilt when the registry version or
the set of models changes, so /openapi.json and /docs always describe what the server will accept.
With `auth.enabled`, the document declares the `bearerAuth` scheme (HTTP bearer: an API token or
an OIDC JWT), requires it of every operation but the public paths (`security: []` there), and
lists their 401 and 403 answers.

The parts: `_openapi_common` (constants and helpers), `_openapi_schemas` (`components.schemas`),
`_openapi_paths` (the operations, with `_openapi_ui`'s), `_openapi_docs` (the /docs page).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from featureline import __version__
from featureline.server._openapi_common import (
    _BEARER,
    _ENTITIES,
    _FEAST_BODY,
    _FEATURES,
    _METHODS,
    _MODEL_NAME,
    _PINNED_REF,
    _SERVICE,
    BEARER_AUTH,
    MAX_ENUM,
    _errors,
    _examples,
    _value_schema,
)
from featureline.server._openapi_docs import render_docs
from featureline.server._openapi_paths import build_paths
from featureline.server._openapi_schemas import build_schemas

if TYPE_CHECKING:
    from featureline.catalog import Catalog
    from featureline.config import AuthSettings
    from featureline.feature_store import FeatureStore

__all__ = ["BEARER_AUTH", "LiveSpec", "build_spec", "render_docs", "secure"]


def secure(spec: dict[str, Any], public_paths: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`spec` as served with auth enabled: the `bearerAuth` scheme, required at the top level,
    waived (`security: []`) on the operations of `public_paths`, and the 401 and 403 answers of
    every other operation (changed in place, and returned)."""
    spec.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_AUTH] = _BEARER
    spec["security"] = [{BEARER_AUTH: []}]
    public = set(public_paths)
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in _METHODS:
                continue
            if path in public:
                op["security"] = []  # answers without a credential
            else:
                responses = op.setdefault("responses", {})
                for code, answer in _errors(401, 403).items():
                    responses.setdefault(code, answer)
    return spec


def build_spec(
    max_entities: int,
    max_body_bytes: int,
    catalog: Catalog | None = None,
    models: list[str] | tuple[str, ...] = (),
    auth: AuthSettings | None = None,
) -> dict[str, Any]:
    """The OpenAPI document; with the registry's `catalog` and the registered `models`, it names
    the features, views (with the columns a push needs) and models the server has; with `auth`
    settings that enable it, its security (`secure`)."""
    views = [vs[-1] for vs in catalog.views.values()] if catalog is not None else []
    features = dict(_FEATURES)
    if catalog is not None:
        refs = [f"{v.name}:{f.name}" for v in views for f in v.schema if f.name not in v.join_keys]
        refs += [f"{o.name}:{f.name}" for o in catalog.odfvs.values() for f in o.features]
        if 0 < len(refs) <= MAX_ENUM:
            features["items"] = {
                "anyOf": [
                    {"type": "string", "enum": sorted(refs)},
                    {"type": "string", "pattern": _PINNED_REF},
                ]
            }
    service = dict(_SERVICE)
    if catalog is not None and catalog.services:
        service["enum"] = sorted(catalog.services)
    view_param: dict[str, Any] = {"type": "string"}
    if views:
        names = "|".join(re.escape(v.name) for v in views)
        view_param["pattern"] = f"^(?:{names})(?:@v[1-9][0-9]*)?$"
    entities = dict(_ENTITIES)
    keys = {k: f.dtype for v in views for f in v.schema for k in v.join_keys if f.name == k}
    if keys:  # the join keys of the registry's views, typed (other names: 400 naming the keys)
        entities["properties"] = {
            k: {"type": "array", "items": _value_schema(t, nullable=False)}
            for k, t in sorted(keys.items())
        }
    model_param: dict[str, Any] = {"type": "string", "pattern": _MODEL_NAME}
    ex = _examples(views)
    if models:
        model_param = {"type": "string", "enum": sorted(models)}
    schemas = build_schemas(features, service, entities, view_param, views)
    paths = build_paths(max_entities, max_body_bytes, ex, view_param, model_param)
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": "Featureline feature server",
            "version": __version__,
            "description": "Online features and push for a Featureline feature repo, with Feast-compatible endpoints "
            "(also POST /write-to-online-store, /materialize, /materialize-incremental with Feast's bodies, "
            "answering JSON null). " + _FEAST_BODY + " "
            'Errors are JSON {"error": type, "message": text}.',
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth is not None and auth.enabled:
        secure(spec, auth.public_paths)
    return spec


class LiveSpec:
    """The document /openapi.json and /docs serve: `build_spec` with the registry's current
    definitions and the registered models, rebuilt when either changes (the registry version,
    the model names). A registry that cannot be read gives the document without names."""

    def __init__(self, store: FeatureStore, max_entities: int, max_body_bytes: int) -> None:
        self.store = store
        self.max_entities = max_entities
        self.max_body_bytes = max_body_bytes
        self._lock = threading.Lock()
        self._key: Any = object()
        self._json = b""
        self._html = b""

    def _refresh(self) -> None:
        from featureline.errors import FeaturelineError

        catalog: Catalog | None
        try:
            catalog = self.store.catalog()
        except FeaturelineError:
            catalog = None  # nothing applied yet
        try:
            models = sorted({r["name"] for r in self.store.models.versions()})
        except FeaturelineError:
            models = []
        key = (catalog.version if catalog is not None else None, tuple(models))
        with self._lock:
            if key == self._key:
                return
            from featureline.server._dispatch import dumps

            auth = self.store.config.auth
            spec = build_spec(self.max_entities, self.max_body_bytes, catalog, models, auth)
            self._json, self._html = dumps(spec), render_docs(spec).encode()
            self._key = key

    def json(self) -> bytes:
        """The OpenAPI document, as JSON."""
        self._refresh()
        return self._json

    def html(self) -> bytes:
        """The /docs page."""
        self._refresh()
        return self._html
