"""The caches on the authenticated path never let an expired or revoked credential through:
verified tokens (bounded, TTL'd, per generation), the principal a store holds
(`FeatureStore(token=...)`), and permission lists built once per catalog."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import featureline as fl
from featureline.auth import Principal, SqliteTokenStore, _tokens
from featureline.errors import UnauthenticatedError
from tests.auth_kit import auth_yaml, expire_token
from tests.helpers import TS, utc

ADMIN = Principal("root", ("admin",))
READ = ["driver_stats:rate"]
ROW = [{"driver_id": 1}]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    fl.init_repo(root, project="t", with_data=False)
    (root / "definitions.py").unlink()
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml())
    driver = fl.Entity("driver", ["driver_id"])
    view = fl.FeatureView(
        "driver_stats",
        entities=[driver],
        schema=[fl.Field("driver_id", fl.Int64), fl.Field("rate", fl.Float64)],
    )
    readers = fl.Permission(
        "read", actions=["read_online"], resources="feature_view:*", roles=["reader"]
    )
    batch = pa.table(
        {
            "driver_id": pa.array([1], pa.int64()),
            "event_timestamp": pa.array([utc(2025, 1, 1)], TS),
            "rate": [0.5],
        }
    )
    with fl.FeatureStore(root, principal=ADMIN) as s:
        s.apply([driver, view, readers])
        s.push("driver_stats", batch)
    return root


class RacingStore(SqliteTokenStore):
    """A token store whose first lookup is overtaken by a revoke in this process: the row is
    read while the token is active, the revoke lands before the verification finishes."""

    racing = True

    def _one(self, token_id: str) -> tuple[Any, ...] | None:
        row = super()._one(token_id)
        if self.racing:
            self.racing = False
            self.revoke(token_id)
        return row


def test_a_verification_overtaken_by_a_revoke_is_not_cached(tmp_path: Path) -> None:
    store = RacingStore(tmp_path / "auth.db")
    try:
        secret, info = store.create("bot", ["reader"])
        store.verify(secret)  # concurrent with the revoke: it may pass, once
        assert [t.status() for t in store.list()] == ["revoked"]
        with pytest.raises(UnauthenticatedError, match="revoked"):
            store.verify(secret)  # was: the stale verification cached, accepted for good
        with pytest.raises(UnauthenticatedError, match="revoked"):
            store.expiry(info.id)
    finally:
        store.close()


def test_a_revoke_in_this_process_is_refused_at_once_elsewhere_within_recheck(
    tmp_path: Path,
) -> None:
    a, b = SqliteTokenStore(tmp_path / "auth.db"), SqliteTokenStore(tmp_path / "auth.db")
    try:
        one, info1 = a.create("bot", ["reader"])
        two, info2 = a.create("bot2", ["reader"])
        for s in (a, b):
            s.verify(one)
            s.verify(two)
            assert s.expiry(info1.id) is None
        a.revoke(info1.id)
        with pytest.raises(UnauthenticatedError, match="revoked"):
            a.verify(one)  # no wait in the process that revoked
        with pytest.raises(UnauthenticatedError, match="revoked"):
            a.expiry(info1.id)
        time.sleep(_tokens.RECHECK_SECONDS + 0.02)
        with pytest.raises(UnauthenticatedError, match="revoked"):
            b.verify(one)
        with pytest.raises(UnauthenticatedError, match="revoked"):
            b.expiry(info1.id)
        assert b.verify(two).name == "bot2" and b.expiry(info2.id) is None
    finally:
        a.close()
        b.close()


def test_the_token_cache_is_bounded_and_entries_are_reverified_after_the_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_tokens, "CACHE_SIZE", 3)
    store = SqliteTokenStore(tmp_path / "auth.db")
    lookups: list[str] = []
    real = store._one

    def counted(token_id: str) -> tuple[Any, ...] | None:
        lookups.append(token_id)
        return real(token_id)

    monkeypatch.setattr(store, "_one", counted)
    try:
        made = [store.create(f"bot{i}", ["reader"]) for i in range(5)]
        secrets = [secret for secret, _ in made]
        for s in secrets:
            store.verify(s)
        assert len(store._cache) <= 3 and len(store._live) <= 3
        assert set(store._cache) == set(secrets[-3:])  # the oldest dropped first
        n = len(lookups)
        store.verify(secrets[-1])
        assert store.expiry(made[-1][1].id) is None
        assert len(lookups) == n  # hits: no query
        monkeypatch.setattr(_tokens, "CACHE_TTL_SECONDS", 0.0)
        store.verify(secrets[-1])
        assert len(lookups) == n + 1  # past the TTL: verified again
        store.expiry(made[-1][1].id)
        assert len(lookups) == n + 2  # and looked at again
    finally:
        store.close()


def test_a_store_holding_a_token_is_refused_once_it_is_revoked(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=ADMIN) as admin:
        tokens = admin.authorizer.tokens  # type: ignore[union-attr]
        here, _ = tokens.create("here", ["reader"])
        there, _ = tokens.create("there", ["reader"])
    with fl.FeatureStore(repo, token=here) as bot:
        assert bot.get_online_features(READ, ROW).to_dict()["rate"] == [0.5]
        bot.authorizer.tokens.revoke("here")  # type: ignore[union-attr]
        with pytest.raises(UnauthenticatedError, match="revoked"):
            bot.get_online_features(READ, ROW)  # was: read on with the revoked token
    with fl.FeatureStore(repo, token=there) as bot:
        assert bot.get_online_features(READ, ROW).to_dict()["rate"] == [0.5]
        with fl.FeatureStore(repo, principal=ADMIN) as other:  # another connection
            other.authorizer.tokens.revoke("there")  # type: ignore[union-attr]
        time.sleep(_tokens.RECHECK_SECONDS + 0.02)
        with pytest.raises(UnauthenticatedError, match="revoked"):
            bot.get_online_features(READ, ROW)
        with pytest.raises(UnauthenticatedError, match="revoked"):
            bot.push("driver_stats", [{"driver_id": 2, "event_timestamp": utc(2025, 1, 1)}])


def test_a_store_holding_a_token_is_refused_once_it_expires(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=ADMIN) as admin:
        tokens = admin.authorizer.tokens  # type: ignore[union-attr]
        brief, _ = tokens.create("brief", ["reader"], expires_in=0.3)
        later, _ = tokens.create("later", ["reader"], expires_in=3600)
    with fl.FeatureStore(repo, token=brief) as bot:
        assert bot.get_online_features(READ, ROW).to_dict()["rate"] == [0.5]
        time.sleep(0.35)
        with pytest.raises(UnauthenticatedError, match="expired"):
            bot.get_online_features(READ, ROW)  # was: read on past the expiry
    with fl.FeatureStore(repo, token=later) as bot:
        assert bot.get_online_features(READ, ROW).to_dict()["rate"] == [0.5]
        expire_token(repo, later)  # its row changed by another connection
        time.sleep(_tokens.RECHECK_SECONDS + 0.02)
        with pytest.raises(UnauthenticatedError, match="expired"):
            bot.get_online_features(READ, ROW)


def test_the_permission_list_is_built_once_per_catalog(repo: Path) -> None:
    with fl.FeatureStore(repo, principal=ADMIN) as s:
        s.catalog_refresh_seconds = 0.0  # the façade's catalog, re-checked on each use
        a = s.authorizer
        assert a is not None
        v1, perms = a.permissions()
        assert a.permissions()[1] is perms  # no list per request
        s.apply(
            [
                *s.catalog().entities.values(),
                s.catalog().view("driver_stats"),
                fl.Permission(
                    "read2", actions=["read_online"], resources="feature_view:*", roles=["r2"]
                ),
            ]
        )
        v2, perms2 = a.permissions()
        assert v2 != v1 and [p.name for p in perms2] == ["read2"]


def test_reads_are_sampled_for_the_audit_at_the_configured_rate(tmp_path: Path) -> None:
    from featureline.auth import AuditLog
    from featureline.config import AuditSettings

    def share(rate: float, n: int = 20_000) -> float:
        log = AuditLog(tmp_path / "audit", AuditSettings(read_sample_rate=rate))
        return sum(log.sample_read() for _ in range(n)) / n

    assert share(0.0) == 0.0 and share(1.0) == 1.0
    assert 0.085 < share(0.1) < 0.115
    assert 0.005 < share(0.01, 100_000) < 0.015


def test_sdk_reads_are_audited_at_the_configured_rate(repo: Path) -> None:
    """Through the read path (its decision held after the first read): a read is sampled once,
    not once by the fast path and again by the full check."""
    yaml = repo / "featureline.yaml"
    yaml.write_text(yaml.read_text() + "  audit:\n    read_sample_rate: 0.2\n")
    with fl.FeatureStore(repo, principal=Principal("p", ("reader",))) as s:
        for _ in range(3000):
            s.get_online_features(READ, ROW)
        audit = s.authorizer.audit  # type: ignore[union-attr]
        assert audit is not None
        reads = audit.query(action="read_online", principal="p")
    assert 480 <= len(reads) <= 720, len(reads)  # 600 expected; sd 22
    assert {e["result"] for e in reads} == {"allowed"}
