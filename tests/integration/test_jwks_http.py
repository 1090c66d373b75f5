"""A JWT whose `kid` the server does not hold reloads the JWKS without stalling the event loop:
while a slow identity provider answers that reload, requests signed with a known key and health
checks on the same uvicorn loop answer at once, and the unknown-kid request itself succeeds once
the reload has landed (the key was rotated in)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from featureline.server import create_app
from tests.auth_kit import auth_yaml
from tests.integration.server_kit import ThreadServer
from tests.integration.test_auth_http_live import BODY, EVERYWHERE, _repo
from tests.unit.test_jwks_rotation import JwksServer, Ring

pytestmark = pytest.mark.integration


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_an_unknown_kid_reload_does_not_stall_the_server_loop(tmp_path: Path) -> None:
    ring = Ring("old", "new")
    idp = JwksServer(ring.jwks("old"))
    try:
        root = _repo(tmp_path, EVERYWHERE, auth_yaml(idp.url))  # type: ignore[arg-type]
        with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=15) as c:
            r = c.post("/features/online", json=BODY, headers=_bearer(ring.token("old")))
            assert r.status_code == 200, r.text
            assert idp.hits == 1
            idp.doc, idp.delay = ring.jwks("old", "new"), 2.0  # `new` rotated in; a slow IdP
            result: dict[str, Any] = {}

            def unknown_kid() -> None:
                with httpx.Client(base_url=url, timeout=15) as other:
                    result["r"] = other.post(
                        "/features/online", json=BODY, headers=_bearer(ring.token("new"))
                    )

            t = threading.Thread(target=unknown_kid)
            t.start()
            end = time.monotonic() + 5
            while idp.hits < 2:  # its JWKS reload is under way
                assert time.monotonic() < end, "the unknown kid never reloaded the JWKS"
                time.sleep(0.01)
            started = time.monotonic()
            known = c.post("/features/online", json=BODY, headers=_bearer(ring.token("old", "bob")))
            health = c.get("/health")
            took = time.monotonic() - started
            assert known.status_code == 200, known.text
            assert health.status_code == 200, health.text
            assert took < 0.5, f"the server loop stalled {took:.2f} s on the unknown kid's reload"
            assert result == {}, "the unknown kid was answered before its JWKS reload landed"
            t.join(15)
            r = result["r"]
            assert r.status_code == 200, r.text  # found by the reload: the request went through
            assert r.json()["entities"] == {"driver_id": [1001]}
            assert idp.hits == 2
    finally:
        idp.close()
