"""JWKS rotation (issue 11): a key rotated out of the identity provider's JWKS is no longer
trusted once the JWKS is reloaded (on a TTL, on an unknown `kid`, or when the file changes on
disk), also for verifications already cached and principals already held; a key rotated in is
picked up without a restart, and unknown `kid`s reload the JWKS at a bounded rate."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

import featureline as fl
from featureline.auth import _jwt
from featureline.errors import UnauthenticatedError
from tests.auth_kit import AUDIENCE, ISSUER, auth_yaml, standard_claims

# how long a test waits for a JWKS file change to be noticed (the file is statted at most
# every `_jwt.FILE_RECHECK_SECONDS`)
NOTICE = 0.25


class Ring:
    """Signing keys by `kid`; the JWKS publishes the ones named."""

    def __init__(self, *kids: str) -> None:
        self.keys = {
            k: rsa.generate_private_key(public_exponent=65537, key_size=2048) for k in kids
        }

    def jwks(self, *kids: str) -> dict[str, Any]:
        out = []
        for kid in kids:
            jwk = RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def token(self, kid: str, sub: str = "jane") -> str:
        body = standard_claims(sub)
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


class JwksServer:
    """The identity provider's JWKS endpoint on loopback: serves `doc` after `delay` seconds,
    counts the fetches."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.hits = 0
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                time.sleep(outer.delay)
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _repo(tmp_path: Path, jwks: str) -> Path:
    root = tmp_path / "repo"
    fl.init_repo(root, project="t", with_data=False)
    (root / "definitions.py").unlink()
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml(jwks))  # type: ignore[arg-type]
    return root


@pytest.fixture
def ring() -> Ring:
    return Ring("old", "new", "newer")


@pytest.fixture
def server(ring: Ring) -> Iterator[JwksServer]:
    s = JwksServer(ring.jwks("old"))
    yield s
    s.close()


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)  # as a deployment would: atomically


def test_a_key_rotated_out_of_the_jwks_file_is_refused_even_when_cached(
    tmp_path: Path, ring: Ring
) -> None:
    root = _repo(tmp_path, "data/jwks.json")
    path = root / "data" / "jwks.json"
    _write(path, ring.jwks("old", "new"))
    old, new = ring.token("old"), ring.token("new")
    with fl.FeatureStore(root) as s:
        a = s.authorizer
        assert a is not None
        held = a.authenticate(old)  # verified and cached
        assert a.authenticate(old) is held
        assert a.authenticate(new).name == "jane"
        _write(path, ring.jwks("new"))  # the identity provider rotates `old` out
        time.sleep(NOTICE)
        with pytest.raises(UnauthenticatedError, match="old"):
            a.authenticate(old)
        with pytest.raises(UnauthenticatedError, match="old"):
            a.alive(held)  # a principal held from before (the HTTP hook's cache, a store's)
        assert a.authenticate(new).name == "jane"  # the key still published is still trusted


def test_a_key_rotated_into_the_jwks_file_is_trusted_without_a_restart(
    tmp_path: Path, ring: Ring
) -> None:
    root = _repo(tmp_path, "data/jwks.json")
    path = root / "data" / "jwks.json"
    _write(path, ring.jwks("old"))
    with fl.FeatureStore(root) as s:
        a = s.authorizer
        assert a is not None
        a.authenticate(ring.token("old"))
        _write(path, ring.jwks("old", "new"))
        assert a.authenticate(ring.token("new")).name == "jane"  # right away: an unknown kid


def test_an_unknown_kid_reloads_the_jwks_url_at_a_bounded_rate(
    tmp_path: Path, ring: Ring, server: JwksServer
) -> None:
    verifier = fl.FeatureStore(_repo(tmp_path, server.url)).authorizer.jwt  # type: ignore[union-attr]
    assert verifier is not None
    held = verifier.verify(ring.token("old"))
    assert server.hits == 1
    server.doc = ring.jwks("new")  # `new` rotated in, `old` out, in one step
    assert verifier.verify(ring.token("new")).name == "jane"  # an unknown kid: reloaded
    assert server.hits == 2
    with pytest.raises(UnauthenticatedError, match="old"):  # dropped by that reload
        verifier.verify(ring.token("old"))
    with pytest.raises(UnauthenticatedError, match="old"):
        verifier.check(held)
    # kids nobody published (an attacker's, or `newer` too soon) do not hammer the IdP
    server.doc = ring.jwks("new", "newer")
    for _ in range(5):
        with pytest.raises(UnauthenticatedError, match="not in the configured JWKS"):
            verifier.verify(_forged(ring))
    assert server.hits <= 3


def _forged(ring: Ring) -> str:
    body = {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}
    return jwt.encode(body, ring.keys["newer"], algorithm="RS256", headers={"kid": "unpublished"})


def test_the_jwks_url_is_reloaded_after_its_ttl_and_drops_cached_verifications(
    tmp_path: Path, ring: Ring, server: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_jwt, "JWKS_TTL_SECONDS", 0.2, raising=False)
    server.doc = ring.jwks("old", "new")
    root = _repo(tmp_path, server.url)
    with fl.FeatureStore(root) as s:
        a = s.authorizer
        assert a is not None
        old = ring.token("old")
        held = a.authenticate(old)
        assert a.authenticate(ring.token("new")).name == "jane"
        server.doc = ring.jwks("new")  # rotated out; no token with an unknown kid arrives
        time.sleep(0.3)
        # the request noticing the TTL starts the reload; once it lands `old` is refused
        assert "old" in str(_eventually_refused(lambda: a.alive(held)))
        with pytest.raises(UnauthenticatedError, match="old"):
            a.authenticate(old)
        assert a.authenticate(ring.token("new")).name == "jane"


def _eventually_refused(call: Any, within: float = 5.0) -> UnauthenticatedError:
    """The error `call` raises once a background JWKS reload has landed (polled)."""
    end = time.monotonic() + within
    while True:
        try:
            call()
        except UnauthenticatedError as e:
            return e
        if time.monotonic() > end:
            pytest.fail(f"still accepted {within} s after the JWKS TTL passed")
        time.sleep(0.02)


def test_a_ttl_reload_of_the_jwks_url_runs_in_the_background(
    tmp_path: Path, ring: Ring, server: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stale-while-revalidate: the request that notices the TTL has passed verifies with the keys
    held at once, however slow the identity provider; the keys it then publishes are used once
    the reload lands (no unknown-kid reload needed)."""
    monkeypatch.setattr(_jwt, "JWKS_TTL_SECONDS", 0.2, raising=False)
    verifier = fl.FeatureStore(_repo(tmp_path, server.url)).authorizer.jwt  # type: ignore[union-attr]
    assert verifier is not None
    assert verifier.verify(ring.token("old")).name == "jane"
    assert server.hits == 1
    server.doc, server.delay = ring.jwks("old", "new"), 1.0  # `new` rotated in; a slow IdP
    time.sleep(0.3)  # the TTL passes
    started = time.monotonic()
    assert verifier.verify(ring.token("old", sub="bob")).name == "bob"  # not cached: verified
    took = time.monotonic() - started
    assert took < 0.3, f"the request waited {took:.2f} s for the JWKS reload"
    monkeypatch.setattr(_jwt, "JWKS_TTL_SECONDS", 300.0)  # one reload only, from here
    end = time.monotonic() + 5
    while server.hits < 2 or verifier._revalidating:  # the reload lands
        assert time.monotonic() < end, "the background JWKS reload never landed"
        time.sleep(0.02)
    assert server.hits == 2
    assert verifier.verify(ring.token("new")).name == "jane"  # from the background reload
    assert server.hits == 2  # no unknown-kid reload was needed


def test_a_failed_reload_keeps_the_keys_it_had(
    tmp_path: Path, ring: Ring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JWKS briefly unreadable (a non-atomic rewrite, the IdP down) does not lock everyone out;
    a bad JWKS at start is still a configuration error."""
    root = _repo(tmp_path, "data/jwks.json")
    path = root / "data" / "jwks.json"
    _write(path, ring.jwks("old"))
    with fl.FeatureStore(root) as s:
        a = s.authorizer
        assert a is not None
        token = ring.token("old")
        held = a.authenticate(token)
        path.write_text("{not json")
        time.sleep(NOTICE)
        a.alive(held)
        assert a.authenticate(token).name == "jane"


def test_an_unknown_kid_reload_does_not_hold_up_tokens_signed_with_known_keys(
    tmp_path: Path, ring: Ring, server: JwksServer
) -> None:
    """While a token with an unknown `kid` waits for the identity provider (a slow JWKS reload),
    tokens signed with a key already held verify at once; the unknown kids that arrive meanwhile
    share that one reload (the IdP is asked once), and a kid it rotated in is then trusted."""
    verifier = fl.FeatureStore(_repo(tmp_path, server.url)).authorizer.jwt  # type: ignore[union-attr]
    assert verifier is not None
    assert verifier.verify(ring.token("old")).name == "jane"
    assert server.hits == 1
    server.doc, server.delay = ring.jwks("old", "new"), 1.5  # `new` rotated in; a slow IdP
    results: dict[str, Any] = {}

    def unknown(name: str, token: str) -> None:
        try:
            results[name] = verifier.verify(token).name
        except UnauthenticatedError as e:
            results[name] = e

    threads = [threading.Thread(target=unknown, args=("new", ring.token("new")))]
    threads[0].start()
    time.sleep(0.2)  # its reload is under way
    threads += [
        threading.Thread(target=unknown, args=(f"forged{i}", _forged(ring))) for i in range(5)
    ]
    for t in threads[1:]:
        t.start()
    started = time.monotonic()
    assert verifier.verify(ring.token("old", sub="bob")).name == "bob"  # not cached: verified
    took = time.monotonic() - started
    assert took < 0.5, f"a known kid waited {took:.2f} s for the unknown kid's JWKS reload"
    for t in threads:
        t.join(10)
    assert results["new"] == "jane"  # rotated in: found by the reload
    for i in range(5):
        assert isinstance(results[f"forged{i}"], UnauthenticatedError)
    assert server.hits == 2  # one reload for all the unknown kids
    server.delay = 0.0
    for _ in range(5):  # and a flood after it is still held to the rate
        with pytest.raises(UnauthenticatedError, match="not in the configured JWKS"):
            verifier.verify(_forged(ring))
    assert server.hits == 2


def test_an_unknown_kid_without_waiting_hands_back_the_reload_to_await(
    tmp_path: Path, ring: Ring, server: JwksServer
) -> None:
    """`verify(..., wait=False)` (the HTTP hook, on the event loop) does not wait for a slow
    identity provider: it raises JwksReloadPending at once (a 401 asking for a retry, if nobody
    awaits it); awaited, the reload lands and the rotated-in key verifies."""
    import asyncio

    verifier = fl.FeatureStore(_repo(tmp_path, server.url)).authorizer.jwt  # type: ignore[union-attr]
    assert verifier is not None
    verifier.verify(ring.token("old"))
    server.doc, server.delay = ring.jwks("old", "new"), 1.0
    started = time.monotonic()
    with pytest.raises(_jwt.JwksReloadPending, match="retry") as pending:
        verifier.verify(ring.token("new"), wait=False)
    assert time.monotonic() - started < 0.5
    assert verifier.verify(ring.token("old", sub="bob"), wait=False).name == "bob"  # meanwhile
    asyncio.run(pending.value.wait())
    assert verifier.verify(ring.token("new"), wait=False).name == "jane"
    assert server.hits == 2
