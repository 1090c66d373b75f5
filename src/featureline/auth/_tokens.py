"""API tokens: shown once, stored hashed, with an expiry, revocable.

A token is `fl_<id>_<secret>`: `id` (16 hex digits) names the row, `secret` is 32 random bytes
(URL-safe base64). Only sha256(secret) is stored and it is compared in constant time. The table
lives in `data/auth.db` next to the registry (SQLite, WAL): a create is one INSERT, a revoke one
UPDATE, so concurrent processes never see half a change. Verified tokens are cached per process
until another connection commits (SQLite's `data_version`, looked at every 0.1 s at most), so a
revoke anywhere takes effect within 0.1 s, without a query per request.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featureline._sqlite import open_file, retry_busy, use_wal
from featureline.auth._principal import Principal
from featureline.errors import NotFoundError, StorageError, UnauthenticatedError, ValidationError

__all__ = ["PREFIX", "TokenInfo", "TokenStore", "parse_duration"]

PREFIX = "fl_"
RECHECK_SECONDS = 0.1  # how stale a process's view of revocations may be
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


class TokenStore:
    """The API tokens of one repo (`data/auth.db`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Principal, float | None]] = {}
        self._version: int | None = None
        self._checked = -RECHECK_SECONDS

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

    def _error(self, e: Exception) -> Exception:
        return StorageError(
            f"The token store `{self.path}` failed: {e}. Fix: retry; check the disk."
        )

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
        db = self._conn()
        with self._lock:
            retry_busy(
                lambda: db.execute(
                    "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (
                        info.id,
                        info.name,
                        json.dumps(list(roles)),
                        _sha(secret),
                        now,
                        info.expires_at,
                    ),
                ),
                _TIMEOUT,
                self._error,
            )
        return f"{PREFIX}{token_id}_{secret}", info

    def list(self) -> builtins.list[TokenInfo]:
        db = self._conn()
        with self._lock:
            rows = retry_busy(
                lambda: db.execute(
                    "SELECT id, name, roles, created_at, expires_at, revoked_at FROM api_tokens ORDER BY created_at"
                ).fetchall(),
                _TIMEOUT,
                self._error,
            )
        return [TokenInfo(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5]) for r in rows]

    def revoke(self, id_or_name: str) -> builtins.list[TokenInfo]:
        """Revoke the token with this id, or every active token of this principal name."""
        db = self._conn()
        now = time.time()
        with self._lock:
            cur = retry_busy(
                lambda: db.execute(
                    "UPDATE api_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND (id = ? OR name = ?)",
                    (now, id_or_name, id_or_name),
                ),
                _TIMEOUT,
                self._error,
            )
            self._cache.clear()
        if cur.rowcount == 0:
            known = [t for t in self.list() if id_or_name in (t.id, t.name)]
            if known:
                return []  # already revoked
            raise NotFoundError(
                f"No token with id or name `{id_or_name}`. Fix: see `featureline token list`."
            )
        return [t for t in self.list() if id_or_name in (t.id, t.name) and t.revoked_at == now]

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; UnauthenticatedError (401) otherwise."""
        db = self._conn()
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= RECHECK_SECONDS:  # a query per request would cost ~10 us
                self._checked = now
                version = db.execute("PRAGMA data_version").fetchone()[0]
                if version != self._version:  # another connection committed: re-verify all
                    self._cache.clear()
                    self._version = version
            hit = self._cache.get(token)
            if hit is None:
                hit = self._lookup(db, token)
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[token] = hit
        principal, expires_at = hit
        if expires_at is not None and expires_at <= time.time():
            raise UnauthenticatedError(
                f"API token `{principal.via.removeprefix('token:')}` has expired. Fix: create a new one "
                "(`featureline token create`)."
            )
        return principal

    def _lookup(self, db: sqlite3.Connection, token: str) -> tuple[Principal, float | None]:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX[:-1] or len(parts[1]) != 16 or not parts[2]:
            raise UnauthenticatedError("The bearer credential is not a Featureline API token.")
        row: Any = db.execute(
            "SELECT name, roles, secret_sha256, expires_at, revoked_at FROM api_tokens WHERE id = ?",
            (parts[1],),
        ).fetchone()
        # compare even when the id is unknown, so timing says nothing about which ids exist
        stored = row[2] if row is not None else "0" * 64
        if not hmac.compare_digest(stored, _sha(parts[2])) or row is None:
            raise UnauthenticatedError("Unknown or wrong API token.")
        if row[4] is not None:
            raise UnauthenticatedError(f"API token `{parts[1]}` was revoked.")
        principal = Principal(row[0], tuple(json.loads(row[1])), f"token:{parts[1]}", row[3])
        return principal, row[3]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
