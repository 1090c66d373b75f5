"""Over HTTP, the caller of a credential is cached (by the exact Authorization value) and still
refused the moment its API token is revoked in this process, within RECHECK_SECONDS when it is
revoked elsewhere, and the moment the token or the JWT expires."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import featureline as fl
from featureline.auth import Principal
from featureline.auth._tokens import RECHECK_SECONDS
from featureline.server import create_app
from tests.auth_kit import Keys, auth_yaml
from tests.integration.server_kit import FEATURES, ThreadServer

pytestmark = pytest.mark.integration

ADMIN = Principal("root", ("admin",))
BODY = {"features": FEATURES, "entities": {"driver_id": [1001]}}
PERMISSIONS = """

from featureline import Permission

readers = Permission("readers", actions=["read_online", "describe"], resources=["feature_view:*", "model:*"], roles=["reader"])
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("authcache") / "drivers"
    fl.init_repo(root, project="drivers")
    keys = Keys()
    jwks = keys.write_jwks(root / "data" / "jwks.json")
    with (root / "definitions.py").open("a") as f:
        f.write(PERMISSIONS)
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml(jwks))
    with fl.FeatureStore(root, principal=ADMIN) as admin:
        admin.apply(message="first")
        admin.ingest("driver_stats")
        admin.materialize_incremental()
    app = create_app(root)
    with ThreadServer(app) as url, httpx.Client(base_url=url, timeout=15) as client:
        yield {"client": client, "repo": root, "app": app, "keys": keys}


def _token(env: dict[str, Any], name: str, expires_in: float | None = None) -> str:
    with fl.FeatureStore(env["repo"], principal=ADMIN) as admin:
        tokens = admin.authorizer.tokens  # type: ignore[union-attr]
        return tokens.create(name, ["reader"], expires_in)[0]


def _read(env: dict[str, Any], credential: str, path: str = "/features/online") -> int:
    headers = {"authorization": f"Bearer {credential}"}
    client: httpx.Client = env["client"]
    if path == "/models":
        return client.get(path, headers=headers).status_code
    return client.post(path, json=BODY, headers=headers).status_code


def test_a_revoke_by_the_server_process_is_refused_from_the_next_request(
    env: dict[str, Any],
) -> None:
    token = _token(env, "here")
    assert [_read(env, token) for _ in range(3)] == [200, 200, 200]
    assert _read(env, token, "/models") == 200
    env["app"].service.store.authorizer.tokens.revoke("here")
    assert _read(env, token) == 401
    assert _read(env, token, "/models") == 401


def test_a_revoke_by_another_process_is_refused_within_the_recheck_bound(
    env: dict[str, Any],
) -> None:
    token = _token(env, "there")
    assert [_read(env, token) for _ in range(3)] == [200, 200, 200]
    with fl.FeatureStore(env["repo"], principal=ADMIN) as other:  # another connection
        other.authorizer.tokens.revoke("there")  # type: ignore[union-attr]
    time.sleep(RECHECK_SECONDS + 0.02)
    response = env["client"].post(
        "/features/online", json=BODY, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401 and "revoked" in response.json()["message"]
    assert _read(env, token, "/models") == 401


def test_an_expiring_token_is_refused_from_its_expiry(env: dict[str, Any]) -> None:
    token = _token(env, "brief", expires_in=0.6)
    assert [_read(env, token) for _ in range(3)] == [200, 200, 200]
    time.sleep(0.65)
    response = env["client"].post(
        "/features/online", json=BODY, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401 and "expired" in response.json()["message"]
    assert _read(env, token, "/models") == 401


def test_an_expiring_jwt_is_refused_from_its_expiry(env: dict[str, Any]) -> None:
    exp = int(time.time()) + 2
    jwt = env["keys"].token(sub="jane", roles=["reader"], exp=exp)
    assert [_read(env, jwt) for _ in range(3)] == [200, 200, 200]
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    assert _read(env, jwt) == 401
    assert _read(env, jwt, "/models") == 401


def test_a_wrong_secret_for_a_cached_token_id_is_refused(env: dict[str, Any]) -> None:
    token = _token(env, "real")
    assert _read(env, token) == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert _read(env, forged) == 401
    assert _read(env, token) == 200
