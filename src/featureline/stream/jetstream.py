"""NATS JetStream behind the broker Protocol (nats-py): a durable pull consumer per view.

The source's `stream` is a subject; the JetStream stream holding it is found by subject, or
created (`FL_<subject>`, file storage) when none does. Workers of a group bind to one durable
pull consumer (explicit acks, `ack_wait = redeliver_after`), so JetStream shares messages
between them and redelivers what a dead one left unacknowledged. A message's id is its stream
sequence. A dead letter is a JSON object (`message_id`, `reason`, `size`, `stream`, `payload`
base64) published to the dead-letter subject (a stream is made for it when none holds it)
with `Nats-Msg-Id` set, so a retried dead letter is stored once, then the original is acked.

nats-py is asyncio; the broker runs its own event loop in a daemon thread and the sync methods
wait on it. nats-py reconnects by itself after a server restart; a call that fails meanwhile
is a `StorageError`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from featureline._urls import import_extra, redact
from featureline.errors import StorageError
from featureline.stream._broker import DeadLetter, Lag, Message, cut_payload

T = TypeVar("T")
_CALL_TIMEOUT = 15.0


def _stream_name(subject: str) -> str:
    return "FL_" + re.sub(r"[^A-Za-z0-9_-]", "_", subject)


class JetStreamBroker:
    kind = "nats"

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
        self._nats = import_extra("nats", "nats")
        import_extra("nats.js.api", "nats")
        self.url = url
        self.stream = stream  # the subject
        self.group = group
        self.consumer = consumer
        self.dead_subject = dead_letter or f"deadletter.{stream}"
        self.redeliver_after = float(redeliver_after)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="featureline-nats", daemon=True
        )
        self._thread.start()
        self._nc: Any = None
        try:
            self._run(self._connect())
        except BaseException:
            self.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = _CALL_TIMEOUT) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except StorageError:
            raise
        except Exception as e:
            fut.cancel()
            raise StorageError(
                f"NATS JetStream at `{redact(self.url)}` failed on subject `{self.stream}`: "
                f"{type(e).__name__}: {e}. Fix: start nats-server with JetStream (-js) or correct "
                "`streams.nats.url` in featureline.yaml; the worker retries meanwhile."
            ) from e

    async def _connect(self) -> None:
        from nats.js import api

        # reconnects forever once connected (a server restart); the first connect fails fast
        self._nc = await asyncio.wait_for(
            self._nats.connect(
                self.url,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
            ),
            timeout=3.0,
        )
        self._js = self._nc.jetstream(timeout=5)
        self._stream_name = await self._ensure_stream(self.stream)
        self._dead_name = await self._ensure_stream(self.dead_subject)
        config = api.ConsumerConfig(
            durable_name=self.group,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.redeliver_after,
            filter_subject=self.stream,
            max_ack_pending=100_000,
        )
        self._sub = await self._js.pull_subscribe(
            self.stream,
            durable=self.group,
            stream=self._stream_name,
            config=config,
            pending_msgs_limit=200_000,
        )

    async def _ensure_stream(self, subject: str) -> str:
        from nats.js import api
        from nats.js.errors import NotFoundError

        try:
            return str(await self._js.find_stream_name_by_subject(subject))
        except NotFoundError:
            name = _stream_name(subject)
            await self._js.add_stream(
                api.StreamConfig(name=name, subjects=[subject], storage=api.StorageType.FILE)
            )
            return name

    # -- the Protocol --------------------------------------------------------------------------
    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        async def go() -> list[str]:
            futs = [await self._js.publish_async(self.stream, p) for p in payloads]
            return [str((await f).seq) for f in futs]

        return self._run(go(), timeout=_CALL_TIMEOUT + len(payloads) / 1000)

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        from nats.errors import TimeoutError as NatsTimeout

        async def go() -> list[Message]:
            try:
                msgs = await self._sub.fetch(
                    batch=max(1, int(max_messages)), timeout=max(timeout, 0.01)
                )
            except (TimeoutError, NatsTimeout):
                return []
            out = []
            for m in msgs:
                md = m.metadata
                out.append(
                    Message(
                        str(md.sequence.stream),
                        m.data,
                        int(md.timestamp.timestamp() * 1_000_000),
                        int(md.num_delivered),
                        m,
                    )
                )
            return out

        return self._run(go(), timeout=timeout + _CALL_TIMEOUT)

    async def _ack(self, messages: Sequence[Message]) -> None:
        from nats.errors import MsgAlreadyAckdError

        for m in messages:
            with contextlib.suppress(MsgAlreadyAckdError):
                await m.handle.ack()
        await self._nc.flush(timeout=5)

    def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            self._run(self._ack(messages))

    def dead_letter(self, messages: Sequence[tuple[Message, str]]) -> None:
        async def go() -> None:
            for m, reason in messages:
                body = {
                    "message_id": m.id,
                    "reason": reason,
                    "size": len(m.data),
                    "stream": self.stream,
                    "payload": base64.b64encode(cut_payload(m.data)).decode(),
                }
                await self._js.publish(
                    self.dead_subject,
                    json.dumps(body).encode(),
                    stream=self._dead_name,
                    headers={"Nats-Msg-Id": f"{self._stream_name}:{m.id}"},
                )
            await self._ack([m for m, _ in messages])

        if messages:
            self._run(go())

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        from nats.js.errors import NotFoundError

        async def go() -> list[DeadLetter]:
            out: list[DeadLetter] = []
            seq = 1
            while len(out) < limit:
                try:
                    raw = await self._js.get_msg(
                        self._dead_name, seq=seq, subject=self.dead_subject, next=True
                    )
                except NotFoundError:
                    break
                d = json.loads(raw.data or b"{}")
                out.append(
                    DeadLetter(
                        str(d["message_id"]),
                        str(d["reason"]),
                        base64.b64decode(d["payload"]),
                        int(d["size"]),
                        str(d["stream"]),
                    )
                )
                seq = int(raw.seq or seq) + 1
            return out

        return self._run(go())

    def lag(self) -> Lag:
        async def go() -> Lag:
            info = await self._js.consumer_info(self._stream_name, self.group)
            return Lag(info.num_pending, info.num_ack_pending)

        return self._run(go())

    def close(self) -> None:
        async def go() -> None:
            if self._nc is not None and not self._nc.is_closed:
                await self._nc.close()

        if self._loop.is_running():
            with contextlib.suppress(Exception):  # a broken connection: nothing to close
                asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()


__all__ = ["JetStreamBroker"]
