"""A shared online store in Redis (redis-py). Several projects may share one Redis database.

Layout, for namespace `ns` (the project): one hash per table, `ns:<table>`, whose fields are
the keys; the set `ns:@tables` of table names; the hash `ns:@meta`; staged values (event time
still ahead) in the hash `ns:@s:<table>` (per key, its staged values, each prefixed by its
4-byte length) and the sorted set `ns:@z:<table>` (per key, the earliest event time staged).
(`@` cannot occur in a table name, so these never collide.) A read is one Lua script: HMGET,
and only when the table has staged values, the greatest due staged value per key. A write is a Lua script that applies
the greatest-order rule to many fields at once; a large write is cut into chunks of
`chunk_rows`, sent as EVALSHA calls in one MULTI/EXEC pipeline: atomic, and one round trip.
Redis serves no other client while a transaction runs, so callers should write in batches of
about 10,000-100,000 rows to keep read latency low.

The first call of a store upgrades the namespace's layout once: the head rows that versions
before heads had their own table wrote into tiles tables are deleted (`_drop_old_heads`).

Connections are made lazily and remade after Redis restarts; the script is loaded again when
Redis has lost it (NOSCRIPT). Timeouts are short so a dead Redis fails fast: reads and
`health()` give up after `timeout` seconds, writes after `write_timeout`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from featureline._urls import import_extra, redact
from featureline.errors import ConfigError, StorageError, ValidationError
from featureline.online._store import (
    OnlineCapabilities,
    check_batch,
    check_keys,
    check_meta,
    check_table,
    due_bytes,
    event_us_of,
    greatest_per_key,
)

if TYPE_CHECKING:
    import redis

T = TypeVar("T")

# KEYS[1]: the table's hash; KEYS[2]: the namespace's set of tables.
# ARGV[1]: the table name; then key, value, key, value, ...
# A value is stored when its key is absent or the stored value's 32-byte order is smaller.
# Orders are compared as 8 big-endian unsigned 32-bit integers (exact in Lua's doubles), which
# is the same as comparing bytes; Lua's own `<` on strings follows the server's locale.
_WRITE_LUA = """
local h = KEYS[1]
redis.call('SADD', KEYS[2], ARGV[1])
local nf = (#ARGV - 1) / 2
local fields = {}
for i = 1, nf do fields[i] = ARGV[2 * i] end
local cur = redis.call('HMGET', h, unpack(fields))
local su = struct.unpack
local out, m, n = {}, 0, 0
for i = 1, nf do
  local v = ARGV[2 * i + 1]
  local c = cur[i]
  local newer = true
  if c then
    local a1, a2 = su('>I4I4', c)
    local b1, b2 = su('>I4I4', v)
    if a1 ~= b1 then newer = a1 < b1
    elseif a2 ~= b2 then newer = a2 < b2
    else
      local f = '>I4I4I4I4I4I4'
      local a3, a4, a5, a6, a7, a8 = su(f, c, 9)
      local b3, b4, b5, b6, b7, b8 = su(f, v, 9)
      if a3 ~= b3 then newer = a3 < b3
      elseif a4 ~= b4 then newer = a4 < b4
      elseif a5 ~= b5 then newer = a5 < b5
      elseif a6 ~= b6 then newer = a6 < b6
      elseif a7 ~= b7 then newer = a7 < b7
      else newer = a8 < b8 end
    end
  end
  if newer then
    out[m + 1] = fields[i]
    out[m + 2] = v
    m = m + 2
    n = n + 1
    if m >= 4000 then
      redis.call('HSET', h, unpack(out, 1, m))
      m = 0
    end
  end
end
if m > 0 then redis.call('HSET', h, unpack(out, 1, m)) end
return n
"""
# Shared by the scripts below: orders compared as 8 unsigned 32-bit words.
_LUA_ORDER = """
local su = struct.unpack
local function gt(a, b, words)
  for w = 1, words do
    local x = su('>I4', a, 4 * w - 3)
    local y = su('>I4', b, 4 * w - 3)
    if x ~= y then return x > y end
  end
  return false
end
local function entries(blob)
  local out, pos = {}, 1
  while pos <= #blob do
    local n = su('>I4', blob, pos)
    out[#out + 1] = string.sub(blob, pos + 4, pos + 3 + n)
    pos = pos + 4 + n
  end
  return out
end
local function best_due(blob, due)
  local best = false
  for _, e in ipairs(entries(blob)) do
    if not gt(e, due, 2) and (not best or gt(e, best, 8)) then best = e end
  end
  return best
end
"""
# KEYS: the table's hash, its staged hash. ARGV: the due time (8 bytes), then the keys.
_READ_LUA = (
    _LUA_ORDER
    + """
local fields = {}
for i = 2, #ARGV do fields[i - 1] = ARGV[i] end
local vals = redis.call('HMGET', KEYS[1], unpack(fields))
if redis.call('EXISTS', KEYS[2]) == 0 then return vals end
local staged = redis.call('HMGET', KEYS[2], unpack(fields))
for i = 1, #fields do
  if staged[i] then
    local b = best_due(staged[i], ARGV[1])
    if b and (not vals[i] or gt(b, vals[i], 8)) then vals[i] = b end
  end
end
return vals
"""
)
# KEYS: staged hash, its sorted set, the namespace's set of tables.
# ARGV: the table name, then key, value, event time (µs), ...; returns the (key, order) added.
_STAGE_LUA = """
redis.call('SADD', KEYS[3], ARGV[1])
local n = 0
for i = 2, #ARGV, 3 do
  local k, v = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[1], k) or ''
  local pos, seen, o = 1, false, string.sub(v, 1, 32)
  while pos <= #cur do
    local len = struct.unpack('>I4', cur, pos)
    if string.sub(cur, pos + 4, pos + 35) == o then seen = true break end
    pos = pos + 4 + len
  end
  if not seen then
    redis.call('HSET', KEYS[1], k, cur .. struct.pack('>I4', #v) .. v)
    redis.call('ZADD', KEYS[2], 'LT', ARGV[i + 2], k)
    n = n + 1
  end
end
return n
"""
# KEYS: the table's hash, staged hash, sorted set. ARGV: due (8 bytes), due (µs), a limit.
# Returns {keys looked at, values that were due}.
_PROMOTE_LUA = (
    _LUA_ORDER
    + """
local ks = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local due_n = 0
for _, k in ipairs(ks) do
  local blob = redis.call('HGET', KEYS[2], k)
  local keep, best, first = {}, false, false
  if blob then
    for _, e in ipairs(entries(blob)) do
      if gt(e, ARGV[1], 2) then
        keep[#keep + 1] = struct.pack('>I4', #e) .. e
        local hi, lo = su('>I4I4', e)
        local ev = (hi - 2147483648) * 4294967296 + lo
        if not first or ev < first then first = ev end
      else
        due_n = due_n + 1
        if not best or gt(e, best, 8) then best = e end
      end
    end
  end
  if best then
    local cur = redis.call('HGET', KEYS[1], k)
    if not cur or gt(best, cur, 8) then redis.call('HSET', KEYS[1], k, best) end
  end
  if #keep == 0 then
    redis.call('HDEL', KEYS[2], k)
    redis.call('ZREM', KEYS[3], k)
  else
    redis.call('HSET', KEYS[2], k, table.concat(keep))
    redis.call('ZADD', KEYS[3], first, k)
  end
end
return {#ks, due_n}
"""
)
# KEYS: a tiles table's hash. ARGV: an HSCAN cursor, the end of old head fields, a count.
# Returns {the next cursor, the fields deleted}: one step of the scan, atomic.
_DROP_OLD_HEADS_LUA = """
local e = ARGV[2]
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'MATCH', '*' .. e, 'COUNT', ARGV[3])
local old = {}
for i = 1, #r[2], 2 do
  local f = r[2][i]
  if string.sub(f, -#e) == e then old[#old + 1] = f end
end
for i = 1, #old, 1000 do redis.call('HDEL', KEYS[1], unpack(old, i, math.min(i + 999, #old))) end
return {r[1], #old}
"""
_HEADS_APART = "layout:heads_apart"
"""Meta set once the head rows of tiles written before heads had their own table are gone."""
_MAX_CHUNK = 7000  # HMGET's arguments go through Lua's C stack (8,000 slots)
_CHUNK_BYTES = 32 << 20
_READ_CHUNK = 5_000  # the read script unpacks the keys as arguments, like HMGET in _WRITE_LUA
_PROMOTE_KEYS = 1000


class RedisOnlineStore:
    """Online values of one `namespace` (the project) in the Redis at `url`."""

    capabilities = OnlineCapabilities(shared=True, durable=False, concurrent_readers=True)

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        timeout: float = 2.0,
        write_timeout: float = 60.0,
        chunk_rows: int = 5000,
    ) -> None:
        self._redis = import_extra("redis", "redis")
        if not isinstance(namespace, str) or not namespace.strip():
            raise ValidationError(
                f"Redis online store needs a non-empty namespace, got `{namespace!r}`. "
                "Fix: set `project` in featureline.yaml."
            )
        if not isinstance(chunk_rows, int) or not 1 <= chunk_rows <= _MAX_CHUNK:
            raise ValidationError(
                f"`chunk_rows` must be an integer in 1..{_MAX_CHUNK}, got `{chunk_rows!r}`."
            )
        self.url, self.namespace = url, namespace
        self.timeout, self.write_timeout, self.chunk_rows = timeout, write_timeout, chunk_rows
        self._closed = False
        self._keys: dict[str, bytes] = {}
        self._tables_key = f"{namespace}:@tables".encode()
        self._meta_key = f"{namespace}:@meta".encode()
        self._client = self._new_client(timeout, retries=2)
        self._writer = self._new_client(write_timeout, retries=2)
        self._probe = self._new_client(min(timeout, 1.0), retries=0)
        self._script = self._writer.register_script(_WRITE_LUA)
        self._read_script = self._client.register_script(_READ_LUA)
        self._stage_script = self._writer.register_script(_STAGE_LUA)
        self._promote_script = self._writer.register_script(_PROMOTE_LUA)
        self._drop_script = self._writer.register_script(_DROP_OLD_HEADS_LUA)
        self._upgraded = False
        kwargs = self._client.connection_pool.connection_kwargs
        self.address = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"

    def _new_client(self, timeout: float, retries: int) -> redis.Redis:
        r = self._redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        # Retry only lost connections (e.g. after a Redis restart), not timeouts: a hung
        # Redis should fail after one timeout, not several.
        retry = Retry(ExponentialBackoff(cap=0.1, base=0.01), retries, (r.ConnectionError,))
        try:
            client: redis.Redis = r.Redis.from_url(
                self.url,
                socket_timeout=timeout,
                socket_connect_timeout=min(timeout, 1.0),
                retry=retry,
            )
        except ValueError as e:
            raise ConfigError(
                f"Redis URL `{redact(self.url)}` is invalid: {e}. "
                "Fix: write e.g. `redis://127.0.0.1:6379/0` (or `rediss://` for TLS)."
            ) from e
        return client

    def __repr__(self) -> str:
        return f"RedisOnlineStore({redact(self.url)!r}, namespace={self.namespace!r})"

    def __reduce__(self) -> tuple[Callable[..., RedisOnlineStore], tuple[()]]:
        rebuild = functools.partial(
            type(self),
            self.url,
            self.namespace,
            timeout=self.timeout,
            write_timeout=self.write_timeout,
            chunk_rows=self.chunk_rows,
        )
        return (rebuild, ())

    def __enter__(self) -> RedisOnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------------

    def _unreachable(self, e: BaseException) -> StorageError:
        return StorageError(
            f"Redis at `{self.address}` is unreachable: {e}; check that it is running and that "
            f"`online_store.url` in featureline.yaml (`{redact(self.url)}`) points to it."
        )

    def _run(self, fn: Callable[[], T]) -> T:
        """Run `fn`, turning Redis errors into StorageError."""
        if self._closed:
            raise StorageError(
                f"The Redis online store `{self.namespace}` at `{self.address}` is closed. Fix: "
                f"open it again with `RedisOnlineStore({redact(self.url)!r}, "
                f"{self.namespace!r})`."
            )
        r = self._redis
        try:
            if not self._upgraded:
                self._drop_old_heads()
            return fn()
        except (r.ConnectionError, r.TimeoutError) as e:
            raise self._unreachable(e) from e
        except r.RedisError as e:
            raise StorageError(
                f"Redis at `{self.address}` refused a request for namespace `{self.namespace}`: "
                f"{e}. Fix: check the server's log, memory (`maxmemory`) and that no other "
                "program writes the namespace's keys."
            ) from e

    def _drop_old_heads(self) -> None:
        """Delete, once per namespace, the head rows that versions before heads had their own
        table wrote into tiles tables (`tiles.OLD_HEAD_END`; never read since). Cheap once
        done: one round trip on a store's first call. Each scan step is one script (HSCAN and
        HDEL, atomic); the deletion is idempotent, so processes starting at once may each run
        it, and reads never look at these rows; the marker is set when a pass has finished."""
        from featureline.online.tiles import OLD_HEAD_END, is_tiles_table

        pipe = self._writer.pipeline(transaction=False)
        pipe.hexists(self._meta_key, _HEADS_APART)
        pipe.smembers(self._tables_key)
        done, names = pipe.execute()
        tiles = [] if done else [n.decode() for n in names if is_tiles_table(n.decode())]
        for table in tiles:
            cursor: bytes | int = 0
            while True:
                cursor, _ = self._drop_script(
                    keys=[self._key(table)], args=[cursor, OLD_HEAD_END, 1000]
                )
                if int(cursor) == 0:
                    break
        if tiles:
            self._writer.hset(self._meta_key, _HEADS_APART, "1")
        self._upgraded = True

    def _key(self, table: str, kind: str = "") -> bytes:
        """The Redis key of a table's hash (`kind` ""), staged hash ("@s:") or sorted set ("@z:")."""
        key = self._keys.get(kind + table)
        if key is None:
            name = check_table(table)
            key = self._keys[kind + table] = f"{self.namespace}:{kind}{name}".encode()
        return key

    # ---- OnlineStore ------------------------------------------------------------------------

    def write(self, table: str, keys: Sequence[bytes], values: Sequence[bytes]) -> int:
        return self.write_tables([(table, keys, values)])

    def write_tables(self, parts: Sequence[tuple[str, Sequence[bytes], Sequence[bytes]]]) -> int:
        """`write` to several tables at once: one MULTI/EXEC (all of it is visible, or none)."""
        calls: list[tuple[list[bytes], list[bytes]]] = []
        for table, keys, values in parts:
            hkey = self._key(table)
            ks, vs = check_batch(table, keys, values)
            if not ks:
                continue
            ks, vs = greatest_per_key(ks, vs)
            skeys, name = [hkey, self._tables_key], table.encode()
            # Keep each EVALSHA well under Redis's limits on one request
            # (`client-query-buffer-limit`).
            row_bytes = (sum(map(len, ks)) + sum(map(len, vs))) / len(ks)
            step = max(1, min(self.chunk_rows, int(_CHUNK_BYTES / row_bytes)))
            for start in range(0, len(ks), step):
                part = ks[start : start + step]
                args = [name] * (2 * len(part) + 1)
                args[1::2] = part
                args[2::2] = vs[start : start + step]
                calls.append((skeys, args))
        if not calls:
            return 0
        script = self._script

        def apply() -> int:
            if len(calls) == 1:  # one script call: atomic by itself
                skeys, args = calls[0]
                return int(script(keys=skeys, args=args, client=self._writer))
            pipe = self._writer.pipeline(transaction=True)  # loads the script if missing
            for skeys, args in calls:
                script(keys=skeys, args=args, client=pipe)
            return sum(int(n) for n in pipe.execute())

        def apply_reloading() -> int:
            try:
                return apply()
            except self._redis.exceptions.NoScriptError:
                # Redis restarted (or SCRIPT FLUSH) between loading and running the script.
                # Nothing was applied (every chunk failed), and writes are idempotent anyway.
                self._writer.script_load(_WRITE_LUA)
                return apply()

        return self._run(apply_reloading)

    def stage(self, table: str, keys: Sequence[bytes], values: Sequence[bytes]) -> int:
        ks, vs = check_batch(table, keys, values)
        if not ks:
            return 0
        skeys = [self._key(table, "@s:"), self._key(table, "@z:"), self._tables_key]
        name = table.encode()

        def apply() -> int:
            pipe = self._writer.pipeline(transaction=True)
            for start in range(0, len(ks), self.chunk_rows):
                args: list[bytes | int] = [name]
                for k, v in zip(
                    ks[start : start + self.chunk_rows],
                    vs[start : start + self.chunk_rows],
                    strict=True,
                ):
                    args += [k, v, event_us_of(v)]
                self._stage_script(keys=skeys, args=args, client=pipe)
            return sum(int(n) for n in pipe.execute())

        def apply_reloading() -> int:
            try:
                return apply()
            except self._redis.exceptions.NoScriptError:  # as in `write`: nothing was applied
                self._writer.script_load(_STAGE_LUA)
                return apply()

        return self._run(apply_reloading)

    def promote(self, table: str, now_us: int | None = None) -> int:
        skeys = [self._key(table), self._key(table, "@s:"), self._key(table, "@z:")]
        now = time.time_ns() // 1000 if now_us is None else int(now_us)
        args: list[bytes | int] = [due_bytes(now), now, _PROMOTE_KEYS]

        def apply() -> int:
            total = 0
            while True:
                seen, due = self._promote_script(keys=skeys, args=args, client=self._writer)
                total += int(due)
                if int(seen) < _PROMOTE_KEYS:
                    return total

        return self._run(apply)

    def read(
        self, table: str, keys: Sequence[bytes], now_us: int | None = None
    ) -> list[bytes | None]:
        skeys = [self._key(table), self._key(table, "@s:")]
        ks = check_keys(table, keys)
        if not ks:
            return []
        due = due_bytes(now_us)
        script = self._read_script
        if len(ks) <= _READ_CHUNK:

            def one_call() -> list[bytes | None]:
                # EVALSHA directly: redis-py's Script wrapper costs ~10 µs per call
                try:
                    return cast(
                        "list[bytes | None]", self._client.evalsha(sha, 2, *skeys, due, *ks)
                    )
                except self._redis.exceptions.NoScriptError:  # Redis restarted: load it again
                    self._client.script_load(_READ_LUA)
                    return cast(
                        "list[bytes | None]", self._client.evalsha(sha, 2, *skeys, due, *ks)
                    )

            sha = script.sha
            return self._run(one_call)

        def chunked() -> list[bytes | None]:
            pipe = self._client.pipeline(transaction=True)  # one snapshot across the chunks
            for start in range(0, len(ks), _READ_CHUNK):
                script(keys=skeys, args=[due, *ks[start : start + _READ_CHUNK]], client=pipe)
            return [v for part in pipe.execute() for v in part]

        return self._run(chunked)

    def delete(self, table: str, keys: Sequence[bytes]) -> int:
        hkey, skey, zkey = self._key(table), self._key(table, "@s:"), self._key(table, "@z:")
        ks = list(dict.fromkeys(check_keys(table, keys)))
        if not ks:
            return 0

        def apply() -> int:
            pipe = self._client.pipeline(transaction=True)
            for start in range(0, len(ks), _READ_CHUNK):
                part = ks[start : start + _READ_CHUNK]
                pipe.hdel(hkey, *part)
                pipe.hdel(skey, *part)
                pipe.zrem(zkey, *part)
            return sum(int(n) for n in pipe.execute()[::3])

        return self._run(apply)

    def drop_table(self, table: str) -> None:
        hkey, skey, zkey = self._key(table), self._key(table, "@s:"), self._key(table, "@z:")

        def apply() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(hkey, skey, zkey)
            pipe.srem(self._tables_key, table)
            pipe.execute()

        self._run(apply)

    def count(self, table: str) -> int:
        hkey = self._key(table)
        return int(self._run(lambda: self._client.hlen(hkey)))

    def tables(self) -> list[str]:
        names = self._run(lambda: cast("set[bytes]", self._client.smembers(self._tables_key)))
        return sorted(n.decode() for n in names)

    def get_meta(self, name: str) -> str | None:
        check_meta(name)
        value = self._run(lambda: cast("bytes | None", self._client.hget(self._meta_key, name)))
        return None if value is None else value.decode()

    def set_meta(self, name: str, value: str) -> None:
        check_meta(name, value)
        self._run(lambda: self._client.hset(self._meta_key, name, value))

    def health(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "backend": "redis",
            "url": redact(self.url),
            "namespace": self.namespace,
        }
        if self._closed:
            return {**base, "ok": False, "detail": "the store is closed"}
        start = time.perf_counter()
        try:
            self._probe.ping()
        except Exception as e:
            down = isinstance(e, (self._redis.ConnectionError, self._redis.TimeoutError))
            text = str(self._unreachable(e)) if down else f"Redis at `{self.address}` failed: {e}"
            return {**base, "ok": False, "detail": text}
        ms = (time.perf_counter() - start) * 1000
        detail = f"Redis at `{self.address}` answered PING in {ms:.2f} ms"
        return {**base, "ok": True, "detail": detail, "latency_ms": round(ms, 3)}

    def close(self) -> None:
        self._closed = True
        for client in (self._client, self._writer, self._probe):
            client.close()


__all__ = ["RedisOnlineStore"]
