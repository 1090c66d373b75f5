"""Over HTTP, what a credential was granted is kept with its cached caller (the route check, and
the read decisions) only while the catalog it was decided under is the current one: a permission
taken away is refused from the first request that sees the new catalog, on every route."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import featureline as fl
from featureline.auth import Principal
from featureline.server import create_app
from tests.integration.server_kit import FEATURES, ThreadServer

pytestmark = pytest.mark.integration

ADMIN = Principal("root", ("admin",))
BODY = {"features": FEATURES, "entities": {"driver_id": [1001]}}
PERMISSIONS = """

from featureline import Permission

readers = Permission("readers", actions=["read_online", "describe"], resources=["feature_view:*", "model:*"], roles=["reader"])
"""


def test_a_grant_taken_away_is_refused_on_the_next_request_under_the_new_catalog(
    tmp_path: Path,
) -> None:
    root = tmp_path / "drivers"
    fl.init_repo(root, project="drivers")
    definitions = root / "definitions.py"
    original = definitions.read_text()
    definitions.write_text(original + PERMISSIONS)
    with (root / "featureline.yaml").open("a") as f:
        f.write("\nauth:\n  enabled: true\n")
    with fl.FeatureStore(root, principal=ADMIN) as admin:
        admin.apply(message="first")
        admin.ingest("driver_stats")
        admin.materialize_incremental()
        token = admin.authorizer.tokens.create("reader", ["reader"])[0]  # type: ignore[union-attr]
    app = create_app(root)
    app.service.store.catalog_refresh_seconds = 0.0  # each request sees the newest catalog
    headers = {"authorization": f"Bearer {token}"}
    with ThreadServer(app) as url, httpx.Client(base_url=url, timeout=15) as client:
        for _ in range(3):  # granted, then held by the cached caller
            assert client.post("/features/online", json=BODY, headers=headers).status_code == 200
            assert client.get("/models", headers=headers).status_code == 200
        definitions.write_text(original)  # the permission is taken away
        with fl.FeatureStore(root, principal=ADMIN) as admin:
            admin.apply(message="no readers")
        r = client.post("/features/online", json=BODY, headers=headers)
        assert r.status_code == 403, r.text
        assert client.get("/models", headers=headers).status_code == 403
        definitions.write_text(original + PERMISSIONS)  # and given back
        with fl.FeatureStore(root, principal=ADMIN) as admin:
            admin.apply(message="readers again")
        assert client.post("/features/online", json=BODY, headers=headers).status_code == 200
        assert client.get("/models", headers=headers).status_code == 200
