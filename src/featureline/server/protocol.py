"""uvicorn's HTTP/1.1 protocols with a deadline on request headers.

uvicorn closes a keep-alive connection that stays idle after a response (`timeout_keep_alive`),
but it has no deadline for the headers of a request: a client that opens a connection and sends
nothing, or half a request line, holds the connection (a file descriptor and its buffers) for as
long as it likes, and a few hundred such clients exhaust the server. These subclasses give every
request `header_timeout` seconds, from the connection's start or from its first bytes (after a
previous response), to finish its headers; then the connection gets a 408 (or, if nothing was
sent, is just closed). The body has its own deadline, at the ASGI level (`featureline.server._body`).

`featureline serve` runs `AutoProtocol` (httptools when installed, else h11, as uvicorn's
"auto"). To get the header deadline when running the app under your own uvicorn, pass
`http="featureline.server.protocol:AutoProtocol"`. The timeout comes from the class attribute
`header_timeout`, else FEATURELINE_SERVE_HEADER_TIMEOUT (set by `featureline serve`), else 10 s.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol as _H11Protocol

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "ENV_HEADER_TIMEOUT",
    "AutoProtocol",
    "H11Protocol",
    "HttpToolsProtocol",
]

ENV_HEADER_TIMEOUT = "FEATURELINE_SERVE_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0


def header_timeout_from_env() -> float:
    raw = os.environ.get(ENV_HEADER_TIMEOUT, "")
    try:
        value = float(raw) if raw else DEFAULT_HEADER_TIMEOUT
    except ValueError:
        value = DEFAULT_HEADER_TIMEOUT
    return value if value > 0 else DEFAULT_HEADER_TIMEOUT


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "error": "RequestTimeout",
            "message": f"The request headers did not arrive within {seconds:g} s. Fix: send the whole request "
            "at once, or start the server with a longer --header-timeout (server.header_timeout).",
        }
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _HeaderDeadline:
    """Mixed into a uvicorn protocol: `self.cycle` is the request/response cycle of the latest
    request whose headers were parsed; a new cycle object means new headers arrived."""

    header_timeout: float | None = None  # None: FEATURELINE_SERVE_HEADER_TIMEOUT, else 10 s

    # set by the uvicorn protocol this is mixed into
    cycle: Any
    transport: Any
    loop: asyncio.AbstractEventLoop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_seconds = (
            self.header_timeout if self.header_timeout is not None else header_timeout_from_env()
        )
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_cycle: Any = None
        self._header_bytes = (
            False  # bytes of the awaited request arrived (then the answer is a 408)
        )

    def _awaiting_headers(self) -> bool:
        cycle = self.cycle
        return cycle is None or bool(cycle.response_complete)

    def _arm(self, got_bytes: bool) -> None:
        self._disarm()
        self._header_cycle = self.cycle
        self._header_bytes = got_bytes
        self._header_timer = self.loop.call_later(self._header_seconds, self._header_deadline)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if (
            self.cycle is not self._header_cycle
            or not self._awaiting_headers()
            or self.transport.is_closing()
        ):
            return  # the headers arrived (the request is being served or was)
        if self._header_bytes:
            self.transport.write(_timeout_response(self._header_seconds))
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm(False)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._header_timer is not None and self.cycle is not self._header_cycle:
            self._disarm()  # a request's headers are complete
        if self.transport.is_closing():
            self._disarm()
        elif self._header_timer is None:
            if self._awaiting_headers():
                self._arm(True)  # part of the next request arrived
        else:
            self._header_bytes = True
        # Between requests no timer runs here (a timer per response would cost ~2 us a request):
        # uvicorn's keep-alive timer closes an idle connection, and the first bytes of the next
        # request arm this deadline. (A next request already half-buffered with the previous one
        # gets the keep-alive timeout, 5 s by default, instead.)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class H11Protocol(_HeaderDeadline, _H11Protocol):
    """uvicorn's h11 protocol with the header deadline."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol
except ImportError:  # pragma: no cover - without httptools
    HttpToolsProtocol: type[asyncio.Protocol] = H11Protocol
    AutoProtocol: type[asyncio.Protocol] = H11Protocol
else:

    class _HttpTools(_HeaderDeadline, _HttpToolsProtocol):
        """uvicorn's httptools protocol with the header deadline."""

    HttpToolsProtocol = _HttpTools
    AutoProtocol = _HttpTools
