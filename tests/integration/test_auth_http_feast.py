"""The Feast read route (`POST /get-online-features`) hands the request's caller to the store
itself, as `POST /features/online` does: the read checks (and audits) the request's principal,
never whatever the context variable holds, and the dispatcher leaves that variable alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

import featureline as fl
import featureline.feature_store as feature_store_module
from featureline.auth._principal import CURRENT
from featureline.server import create_app
from tests.integration.test_auth_http_live import ADMIN, BODY, ELSEWHERE, _repo

pytestmark = pytest.mark.integration


def test_the_feast_read_checks_the_handed_caller_not_the_context_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _repo(tmp_path, ELSEWHERE)  # readers may not read driver_stats
    seen: list[tuple[Any, Any]] = []
    read = feature_store_module._online_features

    def spy(*args: Any) -> Any:  # (source, catalog, hot, features, rows, full, caller, live)
        seen.append((args[6], CURRENT.get()))
        return read(*args)

    monkeypatch.setattr(feature_store_module, "_online_features", spy)
    with fl.FeatureStore(root) as store:
        a = store.authorizer
        assert a is not None and a.audit is not None
        token = a.tokens.create("reader", ["reader"])[0]
        admin = a.caller(ADMIN)

        async def request() -> httpx.Response:
            transport = httpx.ASGITransport(app=create_app(store))
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                CURRENT.set(admin)  # the context holds another caller, an admin
                return await c.post(
                    "/get-online-features",
                    json=BODY,
                    headers={"authorization": f"Bearer {token}"},
                )

        r = asyncio.run(request())
        assert r.status_code == 403, r.text  # the request's principal, not the admin's
        assert "driver_stats" in r.json()["message"]
        [(caller, current)] = seen
        assert caller is not None and caller.name == "reader"  # handed to the store
        assert current is admin, "the route had the context variable set to the request caller"
        denied = [e for e in a.audit.query(principal="reader") if e["result"] == "denied"]
        assert denied, "the denied Feast read was not audited as the request's principal"
        assert not [e for e in a.audit.query(principal="root") if e["action"] == "read_online"]
