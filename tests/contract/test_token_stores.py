"""Both token stores (SQLite beside a SQLite registry, the registry's PostgreSQL database) keep
the same promises: a token verifies until it expires or is revoked, a revoke by another client
is seen within RECHECK_SECONDS, only the hash is stored, projects do not see each other's."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from featureline.auth import PostgresTokenStore, SqliteTokenStore, TokenStore
from featureline.auth._tokens import RECHECK_SECONDS
from featureline.errors import NotFoundError, UnauthenticatedError


@pytest.fixture(params=["sqlite", "postgres"])
def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[TokenStore, TokenStore, Any]]:
    """Two clients of one token store, and one of another project (PostgreSQL) or file."""
    if request.param == "sqlite":
        stores = [SqliteTokenStore(tmp_path / "auth.db"), SqliteTokenStore(tmp_path / "auth.db")]
        other: TokenStore = SqliteTokenStore(tmp_path / "other" / "auth.db")
    else:
        url = request.getfixturevalue("postgres_url")
        project = f"t_{uuid.uuid4().hex[:8]}"
        stores = [PostgresTokenStore(url, project), PostgresTokenStore(url, project)]
        other = PostgresTokenStore(url, project + "_other")
    yield stores[0], stores[1], other
    for s in (*stores, other):
        s.close()


def test_create_verify_expire_revoke(pair: tuple[TokenStore, TokenStore, Any]) -> None:
    a, b, other = pair
    secret, info = a.create("bot", ["writer", "reader"], expires_in=3600)
    p = b.verify(secret)
    assert (p.name, p.roles, p.via) == ("bot", ("reader", "writer"), f"token:{info.id}")
    with pytest.raises(UnauthenticatedError):
        other.verify(secret)
    with pytest.raises(UnauthenticatedError, match="Unknown or wrong"):
        b.verify(secret[:-2] + "zz")
    short, _ = a.create("brief", ["reader"], expires_in=0.05)
    b.verify(short)
    time.sleep(0.06)
    with pytest.raises(UnauthenticatedError, match="expired"):
        b.verify(short)
    assert [t.status() for t in a.list()] == ["active", "expired"]
    assert [t.id for t in a.revoke("bot")] == [info.id]
    assert a.revoke("bot") == []  # already revoked
    with pytest.raises(NotFoundError):
        a.revoke("nobody")
    time.sleep(RECHECK_SECONDS + 0.01)
    with pytest.raises(UnauthenticatedError, match="revoked"):
        b.verify(secret)  # the other client sees the revoke
    assert [t.status() for t in b.list()] == ["revoked", "expired"]
