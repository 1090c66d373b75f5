"""With auth enabled, /openapi.json says so (issue 11): a `bearerAuth` HTTP bearer scheme in
components, required at the top level, waived (`security: []`) on the public paths only, and
the 401 / 403 answers on every other operation; with auth off the document has no security."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import featureline as fl
from featureline.auth import Principal
from featureline.config import AuthSettings
from featureline.server import create_app
from featureline.server._openapi import build_spec
from tests.auth_kit import auth_yaml
from tests.integration.server_kit import ThreadServer

pytestmark = pytest.mark.integration

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    root = tmp_path_factory.mktemp("openapiauth") / "drivers"
    fl.init_repo(root, project="drivers")
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml(public="[/health, /metrics]"))
    with fl.FeatureStore(root, principal=Principal("root", ("admin",))) as store:
        store.apply(message="first")
        token = store.authorizer.tokens.create("root", ["admin"])[0]  # type: ignore[union-attr]
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=15) as c:
        yield c, token


def test_the_document_declares_bearer_auth_and_where_it_is_needed(
    served: tuple[httpx.Client, str],
) -> None:
    client, token = served
    assert client.get("/openapi.json").status_code == 401  # not public here
    r = client.get("/openapi.json", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    spec = r.json()
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"bearerAuth": []}]
    ops = list(_operations(spec))
    assert len(ops) > 10
    for path, method, op in ops:
        if path in ("/health", "/metrics"):
            assert op["security"] == [], (method, path)
            assert "401" not in op["responses"], (method, path)
        else:
            assert "security" not in op, (method, path)  # the top-level requirement holds
            assert {"401", "403"} <= set(op["responses"]), (method, path)
    # the document is what the server does: public answers without, the rest 401
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/models").status_code == 401
    docs = client.get("/docs", headers={"authorization": f"Bearer {token}"}).text
    assert "Authentication" in docs and "bearerAuth" in docs


def test_the_document_with_security_is_valid_openapi(served: tuple[httpx.Client, str]) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    client, token = served
    spec = client.get("/openapi.json", headers={"authorization": f"Bearer {token}"}).json()
    schema = schemathesis.openapi.from_dict(spec)
    assert all(r.ok() for r in schema.get_all_operations())


def test_no_security_in_the_document_with_auth_off() -> None:
    for auth in (None, AuthSettings(enabled=False, public_paths=("/health",))):
        spec = build_spec(100, 10_000, auth=auth)
        assert "security" not in spec
        assert "securitySchemes" not in spec["components"]
        assert all("security" not in op for _, _, op in _operations(spec))
        assert all("401" not in op["responses"] for _, _, op in _operations(spec))


def test_no_path_is_public_unless_configured() -> None:
    spec = build_spec(100, 10_000, auth=AuthSettings(enabled=True))
    assert spec["security"] == [{"bearerAuth": []}]
    assert all("security" not in op for _, _, op in _operations(spec))
