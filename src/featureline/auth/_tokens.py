"""API tokens: shown once, stored hashed, with an expiry, revocable.

A token is `fl_<id>_<secret>`: `id` (16 hex digits) names the row, `secret` is 32 random bytes
(URL-safe base64). Only sha256(secret) is stored and it is compared in constant time. The table
lives in `data/auth.db` next to the registry (SQLite, WAL): a create is one INSERT, a revoke one
UPDATE, so concurrent processes never see half a change.

Verified tokens are cached per process (at most `CACHE_SIZE`, each for at most `CACHE_TTL_SECONDS`)
under a *generation*: a revoke through this store moves it at once, and so does a commit by any
other client (SQLite's `data_version`, PostgreSQL's count and newest revocation), looked at every
`RECHECK_SECONDS` (0.1 s) at most. So a revoke in this process is refused immediately, one
anywhere else within 0.1 s, an expired token the moment it expires — without a query per request.
A verification that raced a revoke is not cached (its generation moved meanwhile).
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from featureline._sqlite import open_file, retry_busy, use_wal
from featureline.auth._principal import Principal
from featureline.errors import NotFoundError, StorageError, UnauthenticatedError, ValidationError

__all__ = [
    "PREFIX",
    "PostgresTokenStore",
    "SqliteTokenStore",
    "TokenInfo",
    "TokenStore",
    "open_token_store",
    "parse_duration",
]

PREFIX = "fl_"
RECHECK_SECONDS = 0.1  # how stale a process's view of other clients' revocations may be
CACHE_SIZE = 4096  # verified tokens kept per process (the oldest dropped first)
CACHE_TTL_SECONDS = 60.0  # a cached verification is redone after this long, whatever happened
_TIMEOUT = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
)
"""
K = TypeVar("K")
V = TypeVar("V")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` -> seconds."""
    t = text.strip().lower()
    if len(t) >= 2 and t[-1] in _UNITS and t[:-1].isdigit() and int(t[:-1]) > 0:
        return int(t[:-1]) * _UNITS[t[-1]]
    raise ValidationError(
        f"`{text}` is not a duration. Fix: a positive number and a unit, e.g. `30d`, `12h`, `90m` "
        f"(units: {', '.join(_UNITS)})."
    )


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    roles: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def status(self, now: float | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or time.time()):
            return "expired"
        return "active"


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore(ABC):
    """The API tokens of one project: the logic (hashing, checks, the per-process cache) over a
    few storage primitives a backend implements (SQLite next to a SQLite registry; the registry's
    PostgreSQL database, per project, next to a PostgreSQL one)."""

    where = "the token store"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # token -> (principal, its expiry, monotonic time verified); valid for one generation
        self._cache: dict[str, tuple[Principal, float | None, float]] = {}
        # token id -> (its expiry, monotonic time looked at): seen unrevoked in this generation
        self._live: dict[str, tuple[float | None, float]] = {}
        self._marker: Any = None
        self._checked = -RECHECK_SECONDS
        self._gen = 0

    # -- storage primitives (one statement each: atomic) -------------------------------------
    @abstractmethod
    def _insert(self, row: tuple[Any, ...]) -> None: ...

    @abstractmethod
    def _all(self) -> builtins.list[tuple[Any, ...]]: ...

    @abstractmethod
    def _one(self, token_id: str) -> tuple[Any, ...] | None: ...

    @abstractmethod
    def _revoke(self, id_or_name: str, now: float) -> int: ...

    @abstractmethod
    def _changes(self) -> Any:
        """A value that changes whenever another client creates or revokes a token."""

    @abstractmethod
    def close(self) -> None: ...

    # -- the logic ---------------------------------------------------------------------------
    def create(
        self, name: str, roles: list[str] | tuple[str, ...], expires_in: float | None = None
    ) -> tuple[str, TokenInfo]:
        """A new token for principal `name` with `roles`: (the token, shown once; its record)."""
        if not name or not name.strip() or len(name) > 200:
            raise ValidationError("A token needs a principal name of 1 to 200 characters.")
        roles = tuple(sorted({r.strip() for r in roles if r.strip()}))
        if not roles:
            raise ValidationError("A token needs at least one role. Fix: e.g. `--roles reader`.")
        token_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        now = time.time()
        info = TokenInfo(
            token_id, name.strip(), roles, now, now + expires_in if expires_in else None, None
        )
        self._insert(
            (info.id, info.name, json.dumps(list(roles)), _sha(secret), now, info.expires_at)
        )
        return f"{PREFIX}{token_id}_{secret}", info

    def list(self) -> builtins.list[TokenInfo]:
        return [
            TokenInfo(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5]) for r in self._all()
        ]

    def revoke(self, id_or_name: str) -> builtins.list[TokenInfo]:
        """Revoke the token with this id, or every active token of this principal name (refused
        by this process from now on, by others within RECHECK_SECONDS)."""
        now = time.time()
        n = self._revoke(id_or_name, now)
        with self._lock:
            self._invalidate()
        if n == 0:
            if any(id_or_name in (t.id, t.name) for t in self.list()):
                return []  # already revoked
            raise NotFoundError(
                f"No token with id or name `{id_or_name}`. Fix: see `featureline token list`."
            )
        return [t for t in self.list() if id_or_name in (t.id, t.name) and t.revoked_at == now]

    def _invalidate(self) -> None:
        """(Under the lock.) Forget every verification: a new generation."""
        self._cache.clear()
        self._live.clear()
        self._gen += 1

    def generation(self) -> int:
        """A number that moves whenever a token may have been revoked or changed (by this store at
        once, by another client within RECHECK_SECONDS): what was verified under the current
        generation still holds. Costs a clock read; a query every RECHECK_SECONDS at most."""
        if time.monotonic() - self._checked >= RECHECK_SECONDS:
            with self._lock:
                now = time.monotonic()
                if now - self._checked >= RECHECK_SECONDS:
                    marker = self._changes()  # a query per request would cost ~10 us
                    if marker != self._marker:  # another client created or revoked
                        self._marker = marker
                        self._invalidate()
                    self._checked = now
        return self._gen

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; UnauthenticatedError (401) otherwise."""
        gen = self.generation()  # read before the lookup: a revoke meanwhile moves it
        hit = self._cache.get(token)
        if hit is not None and time.monotonic() - hit[2] >= CACHE_TTL_SECONDS:
            hit = None
        if hit is None:
            verified = time.monotonic()
            principal, expires_at = self._lookup(token)
            hit = (principal, expires_at, verified)
            with self._lock:
                if self._gen == gen:  # nothing revoked since the lookup began: cache it
                    _bounded(self._cache, token, hit)
                    token_id = principal.via.removeprefix("token:")
                    _bounded(self._live, token_id, (expires_at, verified))
        principal, expires_at, _ = hit
        if expires_at is not None and expires_at <= time.time():
            raise _expired(principal.via.removeprefix("token:"))
        return principal

    def expiry(self, token_id: str) -> float | None:
        """The expiry of token `token_id` (verified before), as stored now; 401 if it has been
        revoked (or deleted) since. A dict lookup; a query once per generation and at least every
        CACHE_TTL_SECONDS (what holds a principal for a while, e.g. `FeatureStore(token=...)` or
        the HTTP hook, checks it on each use)."""
        now = time.monotonic()
        gen = self.generation() if now - self._checked >= RECHECK_SECONDS else self._gen
        held = self._live.get(token_id)
        if held is not None and now - held[1] < CACHE_TTL_SECONDS:
            return held[0]
        row = self._one(token_id)  # name, roles, secret_sha256, expires_at, revoked_at
        if row is None:
            raise UnauthenticatedError(f"API token `{token_id}` no longer exists.")
        if row[4] is not None:
            raise UnauthenticatedError(f"API token `{token_id}` was revoked.")
        with self._lock:
            if self._gen == gen:  # nothing revoked since the query began
                _bounded(self._live, token_id, (row[3], now))
        return row[3]

    def _lookup(self, token: str) -> tuple[Principal, float | None]:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX[:-1] or len(parts[1]) != 16 or not parts[2]:
            raise UnauthenticatedError("The bearer credential is not a Featureline API token.")
        row = self._one(parts[1])  # name, roles, secret_sha256, expires_at, revoked_at
        # compare even when the id is unknown, so timing says nothing about which ids exist
        stored = row[2] if row is not None else "0" * 64
        if not hmac.compare_digest(stored, _sha(parts[2])) or row is None:
            raise UnauthenticatedError("Unknown or wrong API token.")
        if row[4] is not None:
            raise UnauthenticatedError(f"API token `{parts[1]}` was revoked.")
        principal = Principal(row[0], tuple(json.loads(row[1])), f"token:{parts[1]}", row[3])
        return principal, row[3]

    def _error(self, e: Exception) -> Exception:
        return StorageError(f"{self.where} failed: {e}. Fix: retry; check the database.")


def _bounded(cache: dict[K, V], key: K, value: V) -> None:
    """(Under the lock.) cache[key] = value, the oldest entries dropped beyond CACHE_SIZE."""
    cache.pop(key, None)
    while len(cache) >= CACHE_SIZE:
        del cache[next(iter(cache))]
    cache[key] = value


def _expired(token_id: str) -> UnauthenticatedError:
    return UnauthenticatedError(
        f"API token `{token_id}` has expired. Fix: create a new one (`featureline token create`)."
    )


_SELECT_ALL = "SELECT id, name, roles, created_at, expires_at, revoked_at FROM api_tokens"
_SELECT_ONE = "SELECT name, roles, secret_sha256, expires_at, revoked_at FROM api_tokens"


class SqliteTokenStore(TokenStore):
    """Tokens in a SQLite file (`auth.db` next to a SQLite registry), WAL mode."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.where = f"The token store `{path}`"
        self._db: sqlite3.Connection | None = None
        self._dblock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = open_file(
                self.path,
                _TIMEOUT,
                "the token store",
                "check that the repo's data/ folder is writable.",
            )
            retry_busy(lambda: use_wal(db, _TIMEOUT), _TIMEOUT, self._error)
            retry_busy(lambda: db.execute(_SCHEMA), _TIMEOUT, self._error)
            self._db = db
        return self._db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        db = self._conn()
        with self._dblock:
            return retry_busy(lambda: db.execute(sql, args), _TIMEOUT, self._error)

    def _insert(self, row: tuple[Any, ...]) -> None:
        self._run("INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, NULL)", row)

    def _all(self) -> builtins.list[tuple[Any, ...]]:
        return self._run(_SELECT_ALL + " ORDER BY created_at").fetchall()

    def _one(self, token_id: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._run(
            _SELECT_ONE + " WHERE id = ?", (token_id,)
        ).fetchone()
        return row

    def _revoke(self, id_or_name: str, now: float) -> int:
        return self._run(
            "UPDATE api_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND (id = ? OR name = ?)",
            (now, id_or_name, id_or_name),
        ).rowcount

    def _changes(self) -> Any:
        return self._run("PRAGMA data_version").fetchone()[0]  # moves on others' commits

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


_PG_SCHEMA_LOCK = 0x6665_6174_746F_6B00  # "feattok": serialises CREATE TABLE across clients
_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS featureline_api_tokens (
    project TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    PRIMARY KEY (project, id)
)
"""


class PostgresTokenStore(TokenStore):
    """Tokens in the registry's PostgreSQL database (table `featureline_api_tokens`, per project)."""

    def __init__(self, url: str, project: str) -> None:
        from featureline._postgres import PgConnection

        super().__init__()
        self.project = project
        self.where = "The token store (PostgreSQL)"
        self.pg = PgConnection(url, "the token store", "FeatureStore(repo)")
        self._ready = False

    def _q(self, sql: str, args: tuple[Any, ...] = (), fetch: str = "") -> Any:
        if not self._ready:

            def create(db: Any) -> None:
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
                db.execute(_PG_SCHEMA)

            self.pg.run(create, "creating the token table", transaction=True)
            self._ready = True

        def fn(db: Any) -> Any:
            cur = db.execute(sql, args)
            if fetch == "all":
                return cur.fetchall()
            if fetch == "one":
                return cur.fetchone()
            return cur.rowcount

        return self.pg.run(fn, "the token store")

    def _insert(self, row: tuple[Any, ...]) -> None:
        self._q(
            "INSERT INTO featureline_api_tokens VALUES (%s, %s, %s, %s, %s, %s, %s, NULL)",
            (self.project, *row),
        )

    def _all(self) -> builtins.list[tuple[Any, ...]]:
        sql = _SELECT_ALL.replace("api_tokens", "featureline_api_tokens")
        return list(
            self._q(sql + " WHERE project = %s ORDER BY created_at", (self.project,), "all")
        )

    def _one(self, token_id: str) -> tuple[Any, ...] | None:
        sql = _SELECT_ONE.replace("api_tokens", "featureline_api_tokens")
        row: tuple[Any, ...] | None = self._q(
            sql + " WHERE project = %s AND id = %s", (self.project, token_id), "one"
        )
        return row

    def _revoke(self, id_or_name: str, now: float) -> int:
        n: int = self._q(
            "UPDATE featureline_api_tokens SET revoked_at = %s WHERE project = %s AND "
            "revoked_at IS NULL AND (id = %s OR name = %s)",
            (now, self.project, id_or_name, id_or_name),
        )
        return n

    def _changes(self) -> Any:
        return self._q(
            "SELECT count(*), max(revoked_at) FROM featureline_api_tokens WHERE project = %s",
            (self.project,),
            "one",
        )

    def close(self) -> None:
        self.pg.close()


def open_token_store(registry: str, project: str, repo_path: Path) -> TokenStore:
    """The token store next to the registry: its PostgreSQL database, or `auth.db` beside a
    SQLite registry file."""
    from featureline._urls import sqlite_or_postgres

    where = sqlite_or_postgres(
        registry, "registry", repo_path, file="registry.db", setting="registry"
    )
    if isinstance(where, str):
        return PostgresTokenStore(where, project)
    return SqliteTokenStore(where.parent / "auth.db")
