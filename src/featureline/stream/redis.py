"""Redis Streams behind the broker Protocol (redis-py): a consumer group per view.

An entry carries its JSON payload in the field `data` (`XADD <stream> * data '{...}'`). A
consumer reads new entries with XREADGROUP `>`; after a (re)start it first reads its own
pending entries (XREADGROUP `0`), and every `redeliver_after / 2` seconds it takes over entries
another consumer left unacknowledged for `redeliver_after` seconds (XAUTOCLAIM): that is how a
SIGKILLed worker's batch is finished by the next one. XACK acknowledges. A dead letter is an
entry of the dead-letter stream (fields `message_id`, `reason`, `payload`, `size`, `stream`),
added in one MULTI/EXEC with the XACK of the original, so it is never lost nor doubled.

The group is created (from the start of the stream, MKSTREAM) on first use and again if Redis
lost it (restarted without persistence). Connection failures are `StorageError`s; redis-py
reconnects on the next call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from featureline._urls import import_extra, redact
from featureline.errors import StorageError
from featureline.stream._broker import DeadLetter, Lag, Message, cut_payload

_CHUNK = 10_000  # ids per XACK / entries per pipelined XADD


class RedisStreamBroker:
    kind = "redis"

    def __init__(
        self,
        url: str,
        stream: str,
        group: str,
        consumer: str,
        dead_letter: str,
        *,
        redeliver_after: float = 30.0,
    ) -> None:
        redis = import_extra("redis", "redis")
        self._redis = redis
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_stream = dead_letter or f"{stream}:dead"
        self.redeliver_after = float(redeliver_after)
        self._r = redis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=15.0, health_check_interval=10
        )
        # XREADGROUP replies as they come (no per-entry dicts): the hot path of a worker
        self._r.set_response_callback("XREADGROUP", lambda resp, **kw: resp)
        self._own_pending = True  # after a (re)start: my own unacknowledged entries first
        self._pending_from = "0"  # ... from after the last one read (they stay pending)
        self._cursor = "0-0"
        self._next_claim = 0.0
        self._call(self._ensure_group)

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        r = self._redis
        try:
            return fn(*args, **kw)
        except r.ResponseError as e:
            if "NOGROUP" in str(e):  # Redis lost the group (or the stream): make it again
                self._ensure_group()
                return fn(*args, **kw)
            raise StorageError(
                f"Redis at `{redact(self.url)}` refused a stream command on `{self.stream}`: {e}."
            ) from e
        except (r.ConnectionError, r.TimeoutError) as e:
            raise StorageError(
                f"Redis Streams at `{redact(self.url)}` is unreachable ({e}). Fix: start Redis or "
                "correct `streams.redis.url` in featureline.yaml; the worker retries meanwhile."
            ) from e

    def _ensure_group(self) -> None:
        try:
            self._r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except self._redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def _messages(self, entries: list[Any], *, counted: bool) -> list[Message]:
        """Messages of XREADGROUP / XAUTOCLAIM entries; deleted ones (no fields) are acked away."""
        gone = [eid for eid, fields in entries if not fields]
        if gone:
            self._r.xack(self.stream, self.group, *gone)
            entries = [(eid, f) for eid, f in entries if f]
        deliveries: dict[bytes, int] = {}
        if counted and entries:
            info = self._r.xpending_range(
                self.stream,
                self.group,
                min=entries[0][0],
                max=entries[-1][0],
                count=len(entries) * 2,
                consumername=self.consumer,
            )
            deliveries = {d["message_id"]: int(d["times_delivered"]) for d in info}
        out: list[Message] = []
        append = out.append
        data_key = b"data"
        if not deliveries:  # new entries (the hot path): delivered once, a `data` field each
            for eid, fields in entries:
                if type(fields) is list and len(fields) == 2 and fields[0] == data_key:
                    sid = eid.decode()
                    append(Message(sid, fields[1], int(sid[: sid.index("-")]) * 1000))
                else:
                    break
            else:
                return out
            out.clear()  # an unusual entry: all through the general path below
        for eid, fields in entries:
            sid = eid.decode() if isinstance(eid, bytes) else str(eid)
            if isinstance(fields, dict):
                data = fields.get(b"data")
                names = list(fields)
            elif len(fields) == 2 and fields[0] == b"data":  # the usual entry: data only
                data, names = fields[1], [b"data"]
            else:
                pairs = dict(zip(fields[::2], fields[1::2], strict=True))
                data, names = pairs.get(b"data"), list(pairs)
            problem = None
            if data is None:
                found = ", ".join(sorted(k.decode(errors="replace") for k in names))
                problem = (
                    f"the entry has no `data` field (fields: {found}). Fix: add events as "
                    f"`XADD {self.stream} * data '<JSON object>'`."
                )
                data = b""
            out.append(
                Message(
                    sid,
                    data,
                    int(sid.split("-", 1)[0]) * 1000,
                    deliveries.get(eid, 1),
                    None,
                    problem,
                )
            )
        return out

    @staticmethod
    def _entries(resp: Any) -> list[Any]:
        """The entries of a raw XREADGROUP reply on one stream (RESP3 map or RESP2 list)."""
        if not resp:
            return []
        if isinstance(resp, dict):
            return list(next(iter(resp.values())) or [])
        return list(resp[0][1] or [])

    # -- the Protocol --------------------------------------------------------------------------
    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(payloads), _CHUNK):
            pipe = self._r.pipeline(transaction=False)
            for p in payloads[i : i + _CHUNK]:
                pipe.xadd(self.stream, {"data": p})
            ids += [x.decode() for x in self._call(pipe.execute)]
        return ids

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        n = max(1, int(max_messages))
        if self._own_pending:
            resp = self._call(
                self._r.xreadgroup,
                self.group,
                self.consumer,
                {self.stream: self._pending_from},
                count=n,
            )
            entries = self._entries(resp)
            if entries:
                last = entries[-1][0]
                self._pending_from = last.decode() if isinstance(last, bytes) else str(last)
                return self._call(self._messages, entries, counted=True)
            self._own_pending = False
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(self.redeliver_after / 2, 0.05)
            cursor, entries, *_ = self._call(
                self._r.xautoclaim,
                self.stream,
                self.group,
                self.consumer,
                int(self.redeliver_after * 1000),
                start_id=self._cursor,
                count=n,
            )
            self._cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            if self._cursor != "0-0":
                self._next_claim = now  # more to scan: go on at the next read
            if entries:
                return self._call(self._messages, entries, counted=True)
        resp = self._call(
            self._r.xreadgroup,
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=n,
            block=max(1, int(min(timeout, 5.0) * 1000)),
        )
        return self._call(self._messages, self._entries(resp), counted=False)

    def ack(self, messages: Sequence[Message]) -> None:
        ids = [m.id for m in messages]
        for i in range(0, len(ids), _CHUNK):
            self._call(self._r.xack, self.stream, self.group, *ids[i : i + _CHUNK])

    def dead_letter(self, messages: Sequence[tuple[Message, str]]) -> None:
        if not messages:
            return
        pipe = self._r.pipeline(transaction=True)
        for m, reason in messages:
            pipe.xadd(
                self.dead_stream,
                {
                    "message_id": m.id,
                    "reason": reason,
                    "payload": cut_payload(m.data),
                    "size": len(m.data),
                    "stream": self.stream,
                },
            )
        pipe.xack(self.stream, self.group, *[m.id for m, _ in messages])
        self._call(pipe.execute)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        entries = self._call(self._r.xrange, self.dead_stream, "-", "+", count=limit)
        return [
            DeadLetter(
                f[b"message_id"].decode(),
                f[b"reason"].decode(errors="replace"),
                f[b"payload"],
                int(f[b"size"]),
                f[b"stream"].decode(errors="replace"),
            )
            for _, f in entries
        ]

    def lag(self) -> Lag:
        for g in self._call(self._r.xinfo_groups, self.stream):
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == self.group:
                lag = g.get("lag")
                return Lag(int(lag) if lag is not None else None, int(g["pending"]))
        return Lag(None, None)

    def close(self) -> None:
        self._r.close()


__all__ = ["RedisStreamBroker"]
