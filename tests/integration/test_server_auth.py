"""Auth on every HTTP route (issue 11, items 3-4): with `auth.enabled`, each route answers a
missing credential, a wrong, expired or revoked API token, a JWT with the wrong audience, issuer
or signature (or expired), with 401, and a principal whose roles grant nothing with 403 — never
data. /health answers without a credential when `auth.public_paths` lists it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import featureline as fl
from featureline.auth import ROUTES, Principal
from featureline.server import create_app
from tests.auth_kit import Keys, auth_yaml, expire_token
from tests.integration.server_kit import FEATURES, ThreadServer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
ROW = {
    "driver_id": 1001,
    "event_timestamp": (NOW - timedelta(minutes=5)).isoformat(),
    "created": (NOW - timedelta(minutes=5)).isoformat(),
    "conv_rate": 0.5,
    "acc_rate": 0.9,
    "avg_daily_trips": 7,
}
COLUMNS = {k: [v] for k, v in ROW.items()}
# every route of the app: (method, path template, path, body)
CALLS: list[tuple[str, str, str, Any]] = [
    (
        "POST",
        "/features/online",
        "/features/online",
        {"features": FEATURES, "entities": {"driver_id": [1001]}},
    ),
    (
        "POST",
        "/get-online-features",
        "/get-online-features",
        {"features": FEATURES, "entities": {"driver_id": [1001]}},
    ),
    ("POST", "/push/{view}", "/push/driver_stats", {"rows": [ROW]}),
    ("POST", "/push", "/push", {"push_source_name": "driver_stats", "df": COLUMNS, "to": "online"}),
    (
        "POST",
        "/write-to-online-store",
        "/write-to-online-store",
        {"feature_view_name": "driver_stats", "df": COLUMNS},
    ),
    (
        "POST",
        "/materialize",
        "/materialize",
        {"start_ts": "2020-01-01T00:00:00", "end_ts": NOW.isoformat()},
    ),
    ("POST", "/materialize-incremental", "/materialize-incremental", {"end_ts": NOW.isoformat()}),
    ("GET", "/models", "/models", None),
    ("POST", "/models/{name}/predict", "/models/eta/predict", {"entities": {"driver_id": [1001]}}),
    ("GET", "/metrics", "/metrics", None),
    ("GET", "/openapi.json", "/openapi.json", None),
    ("GET", "/docs", "/docs", None),
    ("GET", "/health", "/health", None),
    ("GET", "/ui", "/ui", None),
    ("GET", "/ui/app.js", "/ui/app.js", None),
    ("GET", "/ui/app.css", "/ui/app.css", None),
    ("GET", "/ui/api/search", "/ui/api/search?q=driver", None),
    ("GET", "/ui/api/views/{name}", "/ui/api/views/driver_stats", None),
    ("GET", "/ui/api/runs", "/ui/api/runs", None),
    ("GET", "/ui/api/runs/{id}", "/ui/api/runs/nope", None),
    ("GET", "/ui/api/models", "/ui/api/models", None),
    ("GET", "/ui/api/models/{name}", "/ui/api/models/nope", None),
    ("GET", "/ui/api/lineage/{model}", "/ui/api/lineage/nope", None),
    ("GET", "/ui/api/pit", "/ui/api/pit?view=driver_stats&key=1001", None),
]
UI_ABSENT = ("/ui/api/runs/{id}", "/ui/api/models/{name}", "/ui/api/lineage/{model}")  # 404s
PERMISSIONS = """

from featureline import Permission

readers = Permission("readers", actions=["read_online"], resources="feature_view:*", roles=["reader"])
writers = Permission("writers", actions=["write_online", "write_offline"], resources="feature_view:driver_*", roles=["writer"])
ops = Permission("ops", actions=["describe"], resources=["endpoint:*", "model:*"], roles=["ops"])
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("auth") / "drivers"
    fl.init_repo(root, project="drivers")
    keys = Keys()
    jwks = keys.write_jwks(root / "data" / "jwks.json")
    with (root / "definitions.py").open("a") as f:
        f.write(PERMISSIONS)
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml(jwks))
    with fl.FeatureStore(root, principal=Principal("root", ("admin",))) as admin:
        admin.apply(message="first")
        admin.ingest("driver_stats")
        admin.materialize_incremental()
        tokens = admin.authorizer.tokens  # type: ignore[union-attr]
        t = {
            role: tokens.create(role, [role])[0]
            for role in ("reader", "writer", "ops", "guest", "admin")
        }
        t["expired"] = tokens.create("old", ["reader", "writer", "ops"])[0]
        expire_token(root, t["expired"])
        t["revoked"] = tokens.create("gone", ["reader", "writer", "ops"])[0]
        tokens.revoke(t["revoked"].split("_")[1])
    app = create_app(root)
    with ThreadServer(app) as url, httpx.Client(base_url=url, timeout=15) as client:
        yield {"client": client, "tokens": t, "keys": keys, "repo": root}


def _call(
    env: dict[str, Any], method: str, path: str, body: Any, credential: str | None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {credential}"} if credential is not None else {}
    return env["client"].request(method, path, json=body, headers=headers)


def _served(env: dict[str, Any]) -> dict[str, list[str]]:
    app = create_app(env["repo"])
    return {
        p: sorted(m for m in ms if m != "HEAD") for p, ms in app.dispatcher.router.paths.items()
    }


def _every_call(env: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """CALLS, plus any other route the app serves (a path parameter `x`, no body)."""
    known = {c[1] for c in CALLS}
    extra = [
        (method, path, re.sub(r"\{\w+\}", "x", path), None)
        for path, methods in _served(env).items()
        if path not in known
        for method in methods
    ]
    return CALLS + extra


def test_every_route_of_the_app_has_a_permission_mapping(env: dict[str, Any]) -> None:
    served = set(_served(env))
    assert {c[1] for c in CALLS} <= served, {c[1] for c in CALLS} - served
    assert served == set(ROUTES), (served - set(ROUTES), set(ROUTES) - served)


def test_routes_beyond_the_matrix_refuse_without_a_grant(env: dict[str, Any]) -> None:
    """Routes added after the matrix was written (the UI, ...) get the same refusals."""
    bad = _bad_credentials(env)
    for method, _, path, body in _every_call(env)[len(CALLS) :]:
        for what in ("none", "wrong token", "expired token", "revoked token", "jwt wrong audience"):
            resp = _call(env, method, path, body, bad[what])
            assert resp.status_code == 401, (path, what, resp.status_code)
        assert _call(env, method, path, body, env["tokens"]["guest"]).status_code == 403, path


def _bad_credentials(env: dict[str, Any]) -> dict[str, str | None]:
    keys, t = env["keys"], env["tokens"]
    past = int((NOW - timedelta(hours=1)).timestamp())
    return {
        "none": None,
        "wrong token": t["reader"][:-4] + "AAAA",
        "unknown token id": "fl_0123456789abcdef_" + t["reader"].split("_", 2)[2],
        "garbage": "hello",
        "expired token": t["expired"],
        "revoked token": t["revoked"],
        "jwt wrong audience": keys.token(roles=["reader", "writer", "ops"], aud="someone-else"),
        "jwt wrong issuer": keys.token(roles=["reader", "writer", "ops"], iss="https://evil.test"),
        "jwt wrong signature": keys.token(roles=["reader", "writer", "ops"], key=keys.bad),
        "jwt expired": keys.token(roles=["reader", "writer", "ops"], exp=past, iat=past - 60),
        "jwt without audience": keys.token(roles=["reader", "writer", "ops"], aud=None),
    }


@pytest.mark.parametrize(("method", "template", "path", "body"), CALLS, ids=[c[2] for c in CALLS])
def test_bad_credentials_are_401_on_every_route(
    env: dict[str, Any], method: str, template: str, path: str, body: Any
) -> None:
    for what, credential in _bad_credentials(env).items():
        resp = _call(env, method, path, body, credential)
        if template == "/health":  # public by configuration
            assert resp.status_code == 200, (what, resp.text)
            continue
        assert resp.status_code == 401, (path, what, resp.status_code, resp.text[:300])
        assert set(resp.json()) == {"error", "message"}, resp.text
        assert resp.json()["error"] == "UnauthenticatedError"
        assert resp.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "template", "path", "body"), CALLS, ids=[c[2] for c in CALLS])
def test_a_role_granted_nothing_is_403_on_every_route(
    env: dict[str, Any], method: str, template: str, path: str, body: Any
) -> None:
    resp = _call(env, method, path, body, env["tokens"]["guest"])
    if template == "/health":
        assert resp.status_code == 200
        return
    assert resp.status_code == 403, (path, resp.status_code, resp.text[:300])
    assert resp.json()["error"] == "PermissionDeniedError"
    assert "guest" in resp.json()["message"]


def test_each_role_reaches_what_it_is_granted_and_nothing_else(env: dict[str, Any]) -> None:
    t = env["tokens"]
    reads = {"/features/online", "/get-online-features"}
    writes = {
        "/push/{view}",
        "/push",
        "/write-to-online-store",
        "/materialize",
        "/materialize-incremental",
    }
    describes = {"/models", "/metrics", "/openapi.json", "/docs"}
    # the UI's pages and its catalog, runs and models; its view data needs a grant on the view
    describes |= {"/ui", "/ui/app.js", "/ui/app.css", "/ui/api/search", "/ui/api/runs"}
    describes |= {"/ui/api/models"}
    for role, allowed in (("reader", reads), ("writer", writes), ("ops", describes)):
        for method, template, path, body in CALLS:
            if template in ("/health", "/models/{name}/predict", *UI_ABSENT):
                continue
            resp = _call(env, method, path, body, t[role])
            if template in allowed:
                assert resp.status_code == 200, (role, path, resp.text[:300])
            else:
                assert resp.status_code == 403, (role, path, resp.status_code, resp.text[:300])


def test_a_valid_jwt_reads_with_the_roles_of_its_claim(env: dict[str, Any]) -> None:
    keys = env["keys"]
    body = CALLS[0][3]
    resp = _call(env, "POST", "/features/online", body, keys.token(roles=["reader"]))
    assert resp.status_code == 200, resp.text
    assert resp.json()["features"]["conv_rate"][0] is not None
    resp = _call(env, "POST", "/push/driver_stats", {"rows": [ROW]}, keys.token(roles=["reader"]))
    assert resp.status_code == 403


def test_admin_token_reaches_every_route(env: dict[str, Any]) -> None:
    for method, _template, path, body in CALLS:
        resp = _call(env, method, path, body, env["tokens"]["admin"])
        assert resp.status_code not in (401, 403), (path, resp.text[:300])


def test_health_needs_a_credential_unless_public(tmp_path: Path) -> None:
    root = tmp_path / "r"
    fl.init_repo(root, project="r", with_data=False)
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml(public="[]"))
    app = create_app(root)
    with ThreadServer(app) as url, httpx.Client(base_url=url, timeout=15) as client:
        assert client.get("/health").status_code == 401
        assert client.get("/metrics").status_code == 401


def test_concurrent_requests_each_act_as_their_own_principal(env: dict[str, Any]) -> None:
    """The request's caller is per request (a context variable): concurrent public, reader and
    guest requests never see one another's principal."""
    from concurrent.futures import ThreadPoolExecutor

    t = env["tokens"]
    read = CALLS[0]
    jobs = [("GET", "/health", None, None, 200), ("POST", read[2], read[3], t["reader"], 200)]
    jobs += [
        ("POST", read[2], read[3], t["guest"], 403),
        ("GET", "/metrics", None, t["reader"], 403),
    ]
    url = str(env["client"].base_url)

    def run(job: tuple[str, str, Any, str | None, int]) -> tuple[int, int]:
        method, path, body, credential, want = job
        headers = {"authorization": f"Bearer {credential}"} if credential else {}
        with httpx.Client(base_url=url, timeout=15) as c:
            return c.request(method, path, json=body, headers=headers).status_code, want

    with ThreadPoolExecutor(8) as pool:
        for got, want in pool.map(run, jobs * 10):
            assert got == want


def test_a_principal_granted_nothing_learns_nothing_from_validation(env: dict[str, Any]) -> None:
    """Data routes refuse a principal with no grant of their action before reading the body, so
    a bad body or an unknown view name is a 403 too (not a 400/404 naming the catalog)."""
    for method, template, path, _ in CALLS:
        if ROUTES[template] is not None:
            continue
        for body in ({"bogus": 1}, {"features": ["nope:x"], "entities": {"k": [1]}}):
            resp = _call(
                env, method, path.replace("driver_stats", "nope"), body, env["tokens"]["guest"]
            )
            assert resp.status_code == 403, (path, resp.text[:200])
            assert "driver_stats" not in resp.text
