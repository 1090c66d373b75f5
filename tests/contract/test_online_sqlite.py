"""The SQLite online store passes the online contract, plus SQLite specifics and
`open_online_store`."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from featureline.errors import ConfigError, StorageError
from featureline.online import OnlineStore, open_online_store
from featureline.online.sqlite import SqliteOnlineStore
from featureline.testing.online_contract import OnlineStoreContract, order, value


class TestSqliteOnlineStore(OnlineStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[OnlineStore]:
        s = SqliteOnlineStore(tmp_path / "nested" / "dir" / "online.db")
        yield s
        s.close()


def test_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    with SqliteOnlineStore(path) as store:
        assert store.capabilities.durable and not store.capabilities.shared
        store.write("Driver_stats__v1", [b"\x00k"], [value(3, b"\xff")])
        store.write("driver_stats__v1", [b"k"], [value(4)])
        store.set_meta("w", "1")
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0]: r[1] for r in con.execute("SELECT name, sql FROM sqlite_schema")}
        assert "WITHOUT ROWID" in names["t:^driver_stats__v1"]
        assert "t:driver_stats__v1" in names and "featureline_meta" in names
        row = con.execute('SELECT typeof(key), typeof(value), value FROM "t:^driver_stats__v1"')
        assert row.fetchone() == ("blob", "blob", value(3, b"\xff"))
    finally:
        con.close()


def test_upsert_compares_orders_as_bytes_not_text(tmp_path: Path) -> None:
    """`substr` of a BLOB is a BLOB and BLOBs compare with memcmp (0x80 > 0x7f, NUL counts)."""
    con = sqlite3.connect(":memory:")
    try:
        for a, b in [(b"\x7f", b"\x80"), (b"\x00", b"\x00\x00"), (b"\xc3\x28", b"\xc3\x29")]:
            got = con.execute("SELECT substr(?, 1, 32) < substr(?, 1, 32)", (a, b)).fetchone()
            assert got == (1,)
    finally:
        con.close()
    with SqliteOnlineStore(tmp_path / "o.db") as store:
        low, high = b"\x7f" + b"\xff" * 31, b"\x80" + bytes(31)
        assert store.write("t", [b"k"], [high + b"h"]) == 1
        assert store.write("t", [b"k"], [low + b"l"]) == 0
        assert store.read("t", [b"k"]) == [high + b"h"]


def _write_in_other_process(path: str, start: int, count: int) -> None:
    with SqliteOnlineStore(path) as store:
        for n in range(start, start + count):
            store.write("t", [b"a", b"b"], [value(n), value(n)])


def test_another_process_writes_while_this_one_reads(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with SqliteOnlineStore(path) as store:
        store.write("t", [b"a", b"b"], [value(0), value(0)])
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_write_in_other_process, args=(str(path), 1, 300))
        proc.start()
        seen = reads = 0
        while proc.is_alive():
            a, b = store.read("t", [b"a", b"b"])
            assert a == b, "a write of two keys was seen half-applied"
            assert a is not None
            n = int.from_bytes(a[:32], "big")
            assert n >= seen, "a reader went back to an older value"
            seen, reads = n, reads + 1
        proc.join(timeout=60)
        assert proc.exitcode == 0
        assert reads > 0
        assert store.read("t", [b"a"]) == [value(300)]
        assert store.write("t", [b"a"], [value(300)]) == 0


def test_unopenable_path_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="online store"):
        SqliteOnlineStore(blocker / "online.db")


def test_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "online.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"online\.db"):
        SqliteOnlineStore(bogus)


def test_health_reports_a_closed_store(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "o.db")
    store.write("t", [b"k"], [order(1)])
    health = store.health()
    assert health["ok"] and health["tables"] == 1 and health["backend"] == "sqlite"
    store.close()
    health = store.health()
    assert health["ok"] is False and "closed" in health["detail"]


# ---- open_online_store ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"type": "sqlite"}, "base/data/online.db"),
        ({"type": "sqlite", "path": "data/online.db"}, "base/data/online.db"),
        ({"type": "sqlite", "path": "x/o.db"}, "base/x/o.db"),
    ],
)
def test_open_sqlite_relative_paths(tmp_path: Path, config: dict[str, str], expected: str) -> None:
    store = open_online_store(config, tmp_path / "base", "proj")
    try:
        assert isinstance(store, SqliteOnlineStore)
        assert store.path == tmp_path / expected
        assert store.path.exists()
    finally:
        store.close()


def test_open_sqlite_absolute_path(tmp_path: Path) -> None:
    store = open_online_store({"type": "sqlite", "path": str(tmp_path / "abs.db")}, Path("/x"), "p")
    try:
        assert isinstance(store, SqliteOnlineStore) and store.path == tmp_path / "abs.db"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        ({"type": "sqllite"}, ["`sqllite`", "Did you mean `sqlite`?", "`redis`"]),
        ({"type": "rediss"}, ["`rediss`", "Did you mean `redis`?"]),
        ({"type": "dynamodb"}, ["`dynamodb`", "Valid: `redis`, `sqlite`"]),
        ({"path": "x.db"}, ["no `type`", "`sqlite`"]),
        ("sqlite", ["must be a mapping", "`'sqlite'`"]),
        ({"type": "sqlite", "pth": "x.db"}, ["`pth`", "Did you mean `path`?"]),
        ({"type": "sqlite", "path": ""}, ["`path` must be a non-empty string"]),
        ({"type": "redis"}, ["`url` is required"]),
        ({"type": "redis", "url": "redis://h", "host": "h"}, ["`host`", "`url`"]),
    ],
)
def test_open_online_store_rejects_bad_config(
    tmp_path: Path, config: object, fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        open_online_store(config, tmp_path, "proj")  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)
    assert not list(tmp_path.iterdir())
