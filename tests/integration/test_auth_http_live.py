"""The online read route hands the request's caller to the store itself (no context variable), and
the store-side check trusts the HTTP hook's liveness check of the same request: the request's
principal is still the one checked (never the store's own), a revoke is refused from the next
request on, and an expiry the moment it passes, even within a request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import featureline as fl
import featureline.auth._authorizer as authorizer_module
from featureline.auth import Principal, http_authenticator
from featureline.errors import PermissionDeniedError, UnauthenticatedError
from featureline.server import create_app
from featureline.server._body import NO_DEADLINE
from featureline.server._dispatch import Call
from tests.integration.server_kit import FEATURES, ThreadServer

pytestmark = pytest.mark.integration

ADMIN = Principal("root", ("admin",))
BODY = {"features": FEATURES, "entities": {"driver_id": [1001]}}
ENTITIES = {"driver_id": [1001]}
# readers may read online some feature view, but not driver_stats
ELSEWHERE = """

from featureline import Permission

readers = Permission("readers", actions=["read_online"], resources="feature_view:elsewhere", roles=["reader"])
"""
EVERYWHERE = """

from featureline import Permission

readers = Permission("readers", actions=["read_online"], resources="feature_view:*", roles=["reader"])
"""


def _repo(tmp_path: Path, permissions: str, auth: str = "\nauth:\n  enabled: true\n") -> Path:
    """The drivers repo with `permissions` applied, data ingested and materialized, and `auth`
    (the `auth:` section of featureline.yaml)."""
    root = tmp_path / "drivers"
    fl.init_repo(root, project="drivers")
    with (root / "definitions.py").open("a") as f:
        f.write(permissions)
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth)
    with fl.FeatureStore(root, principal=ADMIN) as admin:
        admin.apply(message="permissions")
        admin.ingest("driver_stats")
        admin.materialize_incremental()
    return root


def _call(token: str) -> Call:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/features/online",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    return Call(scope, None, {}, 1 << 20, NO_DEADLINE)


def test_the_request_caller_is_checked_not_the_store_own_principal(tmp_path: Path) -> None:
    root = _repo(tmp_path, ELSEWHERE)
    store = fl.FeatureStore(root, principal=ADMIN)  # the server's store acts as an admin itself
    token = store.authorizer.tokens.create("reader", ["reader"])[0]  # type: ignore[union-attr]
    headers = {"authorization": f"Bearer {token}"}
    try:
        with ThreadServer(create_app(store)) as url, httpx.Client(base_url=url, timeout=15) as c:
            for _ in range(2):  # denied each time (decided and audited per request)
                r = c.post("/features/online", json=BODY, headers=headers)
                assert r.status_code == 403, r.text
                assert "driver_stats" in r.json()["message"]
            assert c.post("/features/online", json=BODY).status_code == 401
            assert c.post("/get-online-features", json=BODY, headers=headers).status_code == 403
    finally:
        store.close()
    denials = [
        e
        for e in store.authorizer.audit.query(principal="reader")  # type: ignore[union-attr]
        if e["result"] == "denied"
    ]
    assert len(denials) >= 3


def test_a_revoke_within_a_request_is_refused_from_the_next_request_on(tmp_path: Path) -> None:
    root = _repo(tmp_path, EVERYWHERE)
    with fl.FeatureStore(root) as store:
        a = store.authorizer
        assert a is not None
        token, info = a.tokens.create("reader", ["reader"])
        hook = http_authenticator(a)
        for _ in range(2):  # decided, then held by the caller
            caller = hook(_call(token), "/features/online")
            store._read_online(FEATURES, ENTITIES, False, caller)
        caller = hook(_call(token), "/features/online")  # this request was let in ...
        a.tokens.revoke(info.id)  # ... and the token revoked while it is served: it completes
        store._read_online(FEATURES, ENTITIES, False, caller)
        with pytest.raises(UnauthenticatedError, match="revoked"):  # the next request: 401
            hook(_call(token), "/features/online")
        with pytest.raises(UnauthenticatedError):  # and the store's other paths refuse it too
            caller.check_read("read_online", [], None, ("x",), store.catalog().version)


def test_an_expiry_within_a_request_is_refused_at_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _repo(tmp_path, EVERYWHERE)
    with fl.FeatureStore(root) as store:
        a = store.authorizer
        assert a is not None
        token, info = a.tokens.create("reader", ["reader"], expires_in=3600)
        hook = http_authenticator(a)
        for _ in range(2):
            caller = hook(_call(token), "/features/online")
            store._read_online(FEATURES, ENTITIES, False, caller)
        caller = hook(_call(token), "/features/online")
        later = info.expires_at + 1  # type: ignore[operator]
        monkeypatch.setattr(authorizer_module, "_time", lambda: later)
        monkeypatch.setattr(authorizer_module.time, "time", lambda: later)
        with pytest.raises(UnauthenticatedError, match="expired"):
            store._read_online(FEATURES, ENTITIES, False, caller)


def test_a_denied_plan_is_not_kept_and_a_new_catalog_is_decided_anew(tmp_path: Path) -> None:
    root = _repo(tmp_path, EVERYWHERE)
    with fl.FeatureStore(root) as store:
        a = store.authorizer
        assert a is not None
        token = a.tokens.create("reader", ["reader"])[0]
        hook = http_authenticator(a)
        caller = hook(_call(token), "/features/online")
        store._read_online(FEATURES, ENTITIES, False, caller)
        assert len(caller._plans) == 1
        definitions = root / "definitions.py"
        definitions.write_text(definitions.read_text().replace("feature_view:*", "feature_view:x"))
        with fl.FeatureStore(root, principal=ADMIN) as admin:
            admin.apply(message="readers read x only")
        store.catalog_refresh_seconds = 0.0
        for _ in range(2):
            with pytest.raises(PermissionDeniedError):
                store._read_online(
                    FEATURES, ENTITIES, False, hook(_call(token), "/features/online")
                )
        assert not any(c.catalog is store._current() for c in caller._plans)  # denied: not kept


@pytest.mark.parametrize("rate", [0.2, 1.0])
def test_reads_let_in_by_the_hook_are_audited_at_the_configured_rate(
    tmp_path: Path, rate: float
) -> None:
    """A read the HTTP hook just let in (its decision held, the common case) is sampled for the
    audit once, at the configured rate: every one at 1.0."""
    root = _repo(
        tmp_path, EVERYWHERE, f"\nauth:\n  enabled: true\n  audit:\n    read_sample_rate: {rate}\n"
    )
    with fl.FeatureStore(root) as store:
        a = store.authorizer
        assert a is not None and a.audit is not None
        token = a.tokens.create("reader", ["reader"])[0]
        hook = http_authenticator(a)
        for _ in range(3000):
            store._read_online(FEATURES, ENTITIES, False, hook(_call(token), "/features/online"))
        reads = a.audit.query(action="read_online", principal="reader")
    if rate == 1.0:
        assert len(reads) == 3000
    else:
        assert 480 <= len(reads) <= 720, len(reads)  # 600 expected; sd 22
    assert {e["result"] for e in reads} == {"allowed"}
