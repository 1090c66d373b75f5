"""The default online store: one SQLite file in WAL mode, durable, many concurrent readers.

Layout: one table per feature table, `"t:<name>" (key BLOB PRIMARY KEY, value BLOB) WITHOUT
ROWID`, its staged values (event time still ahead) in `"s:<name>" (key, ord, due, value)`
keyed by (key, order), plus `featureline_meta (name, value)`. A read takes, per key, the
greatest value (BLOBs compare as unsigned bytes, and a value starts with its order) of the
written one and the staged ones that are due, in one statement: one snapshot. SQLite folds ASCII case in identifiers, so an
uppercase letter `X` in a table name is stored as `^x` (`Driver` -> `"t:^driver"`).

Keys and values are bound as `bytearray`: the sqlite3 module binds those directly, while
`bytes` first go through its adapter lookup, which costs more than the lookup in the table.

One writer connection (serialised by a lock and `BEGIN IMMEDIATE`) and one reader connection
per thread: in WAL mode readers in any thread or process never block the writer nor each
other, and always see whole committed transactions. Several keys are read with one query that
joins a `VALUES` list to the primary key; its text depends only on a size bucket, so the
prepared statements stay cached.

Opening a file upgrades its layout: each table gains its staged twin, and the head rows that
versions before heads had their own table wrote into tiles tables are deleted, once
(`_drop_old_heads`).
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from featureline._sqlite import retry_busy, use_wal
from featureline.errors import StorageError
from featureline.online._checkpoint import INLINE_PAGES, Checkpointer
from featureline.online._store import (
    DUE_BYTES,
    ORDER_BYTES,
    OnlineCapabilities,
    check_batch,
    check_keys,
    check_meta,
    check_table,
    due_bytes,
    sorted_greatest_per_key,
)

T = TypeVar("T")

_META = "featureline_meta"
_MAX_PER_QUERY = 512
# Reads of n keys bind a VALUES list of the next bucket size, padded with NULL (which matches
# nothing); at most a third of the lookups are padding and each table needs ~17 statements.
_BUCKETS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
_BUCKET_OF = [next(b for b in _BUCKETS if b >= n) for n in range(_MAX_PER_QUERY + 1)]


class _Conn(sqlite3.Connection):
    """A connection that can be weakly referenced (so `close()` can reach every reader)."""


def _sql_name(table: str, kind: str = "t") -> str:
    """The quoted SQLite identifier of a table (`t`) or of its staged values (`s`); case kept:
    `A` is spelled `^a`."""
    spelled = "".join(f"^{c.lower()}" if "A" <= c <= "Z" else c for c in table)
    return f'"{kind}:{spelled}"'


def _table_name(sql_name: str) -> str:
    """The inverse of `_sql_name` (without quotes)."""
    out, upper = [], False
    for c in sql_name[2:]:
        if c == "^":
            upper = True
            continue
        out.append(c.upper() if upper else c)
        upper = False
    return "".join(out)


class _Sql:
    """The statements of one table, built once."""

    __slots__ = (
        "any_due",
        "count",
        "create",
        "delete",
        "drop",
        "name",
        "one",
        "plain_one",
        "promote",
        "stage",
        "staged",
        "unstage",
        "upsert",
        "values",
    )

    def __init__(self, table: str) -> None:
        t = self.name = _sql_name(table)
        s = self.staged = _sql_name(table, "s")
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {t} (key BLOB PRIMARY KEY, value BLOB NOT NULL) "
            "WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {s} (key BLOB NOT NULL, ord BLOB NOT NULL, due BLOB NOT "
            "NULL, value BLOB NOT NULL, PRIMARY KEY (key, ord)) WITHOUT ROWID",
        )
        # substr() of a BLOB is a BLOB, and BLOBs compare with memcmp: unsigned bytes.
        self.upsert = (
            f"INSERT INTO {t} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            f"SET value = excluded.value WHERE substr(excluded.value, 1, {ORDER_BYTES}) > "
            f"substr({t}.value, 1, {ORDER_BYTES})"
        )
        self.stage = (
            f"INSERT INTO {s} (key, ord, due, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key, ord) DO NOTHING"
        )
        self.promote = (
            f"INSERT INTO {t} (key, value) SELECT key, value FROM {s} WHERE due <= ? "
            f"ORDER BY key, ord ON CONFLICT (key) DO UPDATE SET value = excluded.value "
            f"WHERE substr(excluded.value, 1, {ORDER_BYTES}) > substr({t}.value, 1, {ORDER_BYTES})"
        )
        self.unstage = f"DELETE FROM {s} WHERE due <= ?"
        self.any_due = f"SELECT 1 FROM {s} WHERE due <= ? LIMIT 1"
        # the written value, and the greatest due staged one (looked up only when any exists)
        self.one = (
            f"SELECT (SELECT value FROM {t} WHERE key = ?1), CASE WHEN (SELECT 1 FROM {s} LIMIT 1)"
            f" THEN (SELECT max(value) FROM {s} WHERE key = ?1 AND due <= ?2) END"
        )
        self.plain_one = f"SELECT value FROM {t} WHERE key = ?"
        self.delete = (f"DELETE FROM {t} WHERE key = ?", f"DELETE FROM {s} WHERE key = ?")
        self.count = f"SELECT count(*) FROM {t}"
        self.drop = (f"DROP TABLE IF EXISTS {t}", f"DROP TABLE IF EXISTS {s}")
        self.values: dict[int, str] = {}

    def many(self, size: int) -> str:
        """Read `size` keys (bound first) at one due time (bound last)."""
        sql = self.values.get(size)
        if sql is None:
            rows = ",".join(["(?)"] * size)
            sql = self.values[size] = (
                f"WITH q(k) AS (VALUES {rows}) SELECT t.value, CASE WHEN (SELECT 1 FROM "
                f"{self.staged} LIMIT 1) THEN (SELECT max(s.value) FROM {self.staged} s WHERE "
                f"s.key = q.k AND s.due <= ?) END FROM q LEFT JOIN {self.name} t ON t.key = q.k"
            )
        return sql


def _no_table(e: sqlite3.OperationalError) -> bool:
    return str(e).startswith("no such table")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


_HEADS_APART = "layout:heads_apart"
"""Meta set once the head rows of tiles written before heads had their own table are gone."""


def _drop_old_heads(db: sqlite3.Connection, tables: list[str]) -> None:
    """Delete, once per file, the head rows that versions before heads had their own table
    wrote into tiles tables (`tiles.OLD_HEAD_END`; never read since). Cheap once done: one
    lookup of a meta row, made only when the file has tiles tables. The marker is checked again
    and set in the IMMEDIATE transaction that deletes, so processes opening the file at once
    run it once; the deletion is idempotent, and reads never look at these rows."""
    from featureline.online.tiles import OLD_HEAD_END, is_tiles_table

    tiles = [t for t in tables if is_tiles_table(t)]
    done = f"SELECT 1 FROM {_META} WHERE name = ?"
    if not tiles or db.execute(done, (_HEADS_APART,)).fetchone() is not None:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute(done, (_HEADS_APART,)).fetchone() is None:
            for t in tiles:
                db.execute(
                    f"DELETE FROM {_sql_name(t)} WHERE substr(key, -{len(OLD_HEAD_END)}) = ?",
                    (bytearray(OLD_HEAD_END),),
                )
            db.execute(f"INSERT INTO {_META} (name, value) VALUES (?, '1')", (_HEADS_APART,))
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


class SqliteOnlineStore:
    """Online values in a SQLite file. `path` may be relative to the working directory.

    Writers in other processes wait up to `timeout` seconds (SQLite's busy timeout) instead of
    failing with "database is locked". `mmap_mb` maps that much of the file for readers.
    """

    capabilities = OnlineCapabilities(shared=False, durable=True, concurrent_readers=True)

    def __init__(self, path: str | Path, *, timeout: float = 30.0, mmap_mb: int = 1024) -> None:
        self.path = Path(path).expanduser()
        self.timeout = timeout
        self.mmap_mb = mmap_mb
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._sql: dict[str, _Sql] = {}
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._error(e) from e
        self._checkpoints = Checkpointer(self.path, self._connect)
        self._writer: _Conn | None = self._retry_busy(self._open_writer)

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (str(self.path),))

    def __enter__(self) -> SqliteOnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------------

    def _error(self, e: BaseException) -> StorageError:
        return StorageError(
            f"The online store at `{self.path}` failed: {e}. Fix: check that the file is a "
            "Featureline online store, is writable, and is on a local disk (use Redis to share "
            "an online store between machines)."
        )

    def _closed_error(self) -> StorageError:
        return StorageError(
            f"The online store at `{self.path}` is closed. Fix: open it again with "
            f"`SqliteOnlineStore({str(self.path)!r})`."
        )

    def _connect(self) -> _Conn:
        try:
            db = sqlite3.connect(
                str(self.path),
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=1024,
                factory=_Conn,
            )
        except (OSError, sqlite3.Error) as e:
            raise self._error(e) from e
        return db

    def _open_writer(self) -> _Conn:
        db = self._connect()
        try:
            use_wal(db, self.timeout)
            db.execute("PRAGMA cache_size = -65536")  # 64 MiB: big writes touch many pages
            db.execute("PRAGMA journal_size_limit = 67108864")  # trim the WAL after checkpoints
            # checkpoints run off the write path (`_checkpoint`); inline only past the bound
            db.execute(f"PRAGMA wal_autocheckpoint = {INLINE_PAGES}")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {_META} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            names = [
                _table_name(name)
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 't:*'"
                ).fetchall()
            ]
            for table in names:  # a file from before staged values: give each table its twin
                db.execute(_Sql(table).create[1])
            _drop_old_heads(db, names)
        except BaseException:
            db.close()
            raise
        return db

    def _reader(self) -> _Conn:
        """This thread's read connection (opened on first use)."""
        db: _Conn | None = getattr(self._local, "db", None)
        if db is not None and not self._closed:
            return db
        if self._closed:
            raise self._closed_error()
        db = self._connect()
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            db.execute(f"PRAGMA mmap_size = {int(self.mmap_mb) << 20}")
            db.execute("PRAGMA query_only = ON")
        except sqlite3.Error as e:
            db.close()
            raise self._error(e) from e
        with self._readers_lock:
            if self._closed:
                db.close()
                raise self._closed_error()
            self._readers.add(db)
        self._local.db = db
        return db

    def _retry_busy(self, fn: Callable[[], T]) -> T:
        return retry_busy(fn, self.timeout, self._error)

    def _statements(self, table: str) -> _Sql:
        sql = self._sql.get(table)
        if sql is None:
            sql = self._sql[table] = _Sql(check_table(table))
        return sql

    def _write_txn(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(writer)` in one IMMEDIATE transaction (retried while the file is locked)."""

        def run() -> T:
            with self._write_lock:
                db = self._writer
                if db is None:
                    raise self._closed_error()
                db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(db)
                    db.execute("COMMIT")
                except BaseException:
                    _rollback(db)
                    raise
                self._checkpoints.after_commit()
                return out

        return self._retry_busy(run)

    # ---- OnlineStore ------------------------------------------------------------------------

    def write(self, table: str, keys: Sequence[bytes], values: Sequence[bytes]) -> int:
        sql = self._statements(table)
        ks, vs = check_batch(table, keys, values)
        if not ks:
            return 0
        ks, vs = sorted_greatest_per_key(ks, vs)

        def apply(db: sqlite3.Connection) -> int:
            for create in sql.create:
                db.execute(create)
            rows = zip(map(bytearray, ks), map(bytearray, vs), strict=True)
            return db.executemany(sql.upsert, rows).rowcount

        return self._write_txn(apply)

    def write_tables(self, parts: Sequence[tuple[str, Sequence[bytes], Sequence[bytes]]]) -> int:
        """`write` to several tables in one transaction (all of it is visible, or none)."""
        batches = []
        for table, keys, values in parts:
            sql = self._statements(table)
            ks, vs = check_batch(table, keys, values)
            if ks:
                batches.append((sql, *sorted_greatest_per_key(ks, vs)))
        if not batches:
            return 0

        def apply(db: sqlite3.Connection) -> int:
            changed = 0
            for sql, ks, vs in batches:
                for create in sql.create:
                    db.execute(create)
                rows = zip(map(bytearray, ks), map(bytearray, vs), strict=True)
                changed += db.executemany(sql.upsert, rows).rowcount
            return changed

        return self._write_txn(apply)

    def stage(self, table: str, keys: Sequence[bytes], values: Sequence[bytes]) -> int:
        sql = self._statements(table)
        ks, vs = check_batch(table, keys, values)
        if not ks:
            return 0

        def apply(db: sqlite3.Connection) -> int:
            for create in sql.create:
                db.execute(create)
            rows = (
                (bytearray(k), bytearray(v[:ORDER_BYTES]), bytearray(v[:DUE_BYTES]), bytearray(v))
                for k, v in zip(ks, vs, strict=True)
            )
            return db.executemany(sql.stage, rows).rowcount

        return self._write_txn(apply)

    def promote(self, table: str, now_us: int | None = None) -> int:
        sql = self._statements(table)
        due = bytearray(due_bytes(now_us))
        try:  # nothing due (the usual case): no write transaction, no fsync
            if self._reader().execute(sql.any_due, (due,)).fetchone() is None:
                return 0
        except sqlite3.OperationalError as e:
            if _no_table(e):
                return 0
            raise self._error(e) from e

        def apply(db: sqlite3.Connection) -> int:
            try:
                db.execute(sql.promote, (due,))
                return db.execute(sql.unstage, (due,)).rowcount
            except sqlite3.OperationalError as e:
                if _no_table(e):
                    return 0
                raise

        return self._write_txn(apply)

    def read(
        self, table: str, keys: Sequence[bytes], now_us: int | None = None
    ) -> list[bytes | None]:
        sql = self._statements(table)
        ks = check_keys(table, keys)
        db = self._reader()
        n = len(ks)
        due = bytearray(due_bytes(now_us))
        try:
            if n == 1:
                value, staged = db.execute(sql.one, (bytearray(ks[0]), due)).fetchone()
                return [
                    value if staged is None or (value is not None and value > staged) else staged
                ]
            if n <= _MAX_PER_QUERY:
                return self._read_many(db, sql, ks, due)
            db.execute("BEGIN")  # one snapshot across the queries
            try:
                out: list[bytes | None] = []
                for start in range(0, n, _MAX_PER_QUERY):
                    out += self._read_many(db, sql, ks[start : start + _MAX_PER_QUERY], due)
                return out
            finally:
                _rollback(db)
        except sqlite3.OperationalError as e:
            if _no_table(e):
                return self._read_unstaged(db, sql, ks)
            if self._closed:
                raise self._closed_error() from e
            raise self._error(e) from e
        except sqlite3.Error as e:
            if self._closed:
                raise self._closed_error() from e
            raise self._error(e) from e

    def _read_unstaged(
        self, db: sqlite3.Connection, sql: _Sql, keys: list[bytes]
    ) -> list[bytes | None]:
        """Keys of a table with no staged twin (unknown, or made by an older version)."""
        try:
            rows = [db.execute(sql.plain_one, (bytearray(k),)).fetchone() for k in keys]
        except sqlite3.OperationalError as e:
            if _no_table(e):
                return [None] * len(keys)
            raise self._error(e) from e
        return [None if r is None else r[0] for r in rows]

    @staticmethod
    def _read_many(
        db: sqlite3.Connection, sql: _Sql, keys: list[bytes], due: bytearray
    ) -> list[bytes | None]:
        size = _BUCKET_OF[len(keys)]
        params = [*map(bytearray, keys), *([None] * (size - len(keys))), due]
        rows = db.execute(sql.many(size), params).fetchall()[: len(keys)]
        return [v if s is None or (v is not None and v > s) else s for v, s in rows]

    def delete(self, table: str, keys: Sequence[bytes]) -> int:
        sql = self._statements(table)
        ks = check_keys(table, keys)
        if not ks:
            return 0

        def apply(db: sqlite3.Connection) -> int:
            try:
                n = db.executemany(sql.delete[0], ((bytearray(k),) for k in ks)).rowcount
                db.executemany(sql.delete[1], ((bytearray(k),) for k in ks))
                return n
            except sqlite3.OperationalError as e:
                if _no_table(e):
                    return 0
                raise

        return self._write_txn(apply)

    def drop_table(self, table: str) -> None:
        sql = self._statements(table)
        self._write_txn(lambda db: [db.execute(drop) for drop in sql.drop])

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        db = self._reader()
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            if isinstance(e, sqlite3.OperationalError) and _no_table(e):
                return []
            if self._closed:
                raise self._closed_error() from e
            raise self._error(e) from e

    def count(self, table: str) -> int:
        rows = self._query(self._statements(table).count)
        return int(rows[0][0]) if rows else 0

    def tables(self) -> list[str]:
        rows = self._query(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 't:*'"
        )
        return sorted(_table_name(name) for (name,) in rows)

    def get_meta(self, name: str) -> str | None:
        rows = self._query(f"SELECT value FROM {_META} WHERE name = ?", (check_meta(name),))
        return str(rows[0][0]) if rows else None

    def set_meta(self, name: str, value: str) -> None:
        check_meta(name, value)
        self._write_txn(
            lambda db: db.execute(
                f"INSERT INTO {_META} (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
        )

    def health(self) -> dict[str, Any]:
        base: dict[str, Any] = {"backend": "sqlite", "path": str(self.path)}
        try:
            tables = len(self.tables())
            size = sum(
                p.stat().st_size
                for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                if p.exists()
            )
        except Exception as e:
            return {**base, "ok": False, "detail": str(e)}
        detail = f"SQLite file `{self.path}`: {tables} table(s), {size / 2**20:.1f} MiB"
        return {**base, "ok": True, "detail": detail, "tables": tables, "bytes": size}

    def close(self) -> None:
        self._checkpoints.stop()
        with self._write_lock, self._readers_lock:
            self._closed = True
            readers = list(self._readers)
            self._readers.clear()
            writer, self._writer = self._writer, None
        for db in readers:
            db.close()
        if writer is not None:
            writer.close()


__all__ = ["SqliteOnlineStore"]
