"""The Host allow-list: a guard against DNS rebinding.

A web page at http://evil.example:6566 can make its own name resolve to 127.0.0.1, and then its
scripts read and write the feature server on the user's machine as "same origin". The browser
still sends `Host: evil.example:6566`, so the server answers only requests whose Host it knows:
by default localhost, 127.0.0.1, [::1], the machine's host name and the address the connection
came in on, each with the server's port (bare, only when that port is the scheme's default).
`server.allowed_hosts` in featureline.yaml (or `featureline serve --allowed-host`) adds names:
`name` (any port), `name:port`, `*.domain` (any subdomain, any port) or `*` (no check).
A request without a Host header (HTTP/1.0; never a browser) is allowed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from featureline.errors import ValidationError

__all__ = ["HostCheck"]

_DEFAULT_NAMES = ("localhost", "127.0.0.1", "[::1]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _bracket(ip: str) -> str:
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def split_host(value: str) -> tuple[str, str | None]:
    """`name:port` -> (name, port); `[::1]:80` -> ("[::1]", "80"); no port -> (name, None)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1 :]
        return value[: end + 1], rest[1:] if rest.startswith(":") else None
    name, sep, port = value.rpartition(":")
    if not sep or ":" in name:
        return value, None
    return name, port


class HostCheck:
    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = tuple(dict.fromkeys(h.strip().lower() for h in extra if h.strip()))
        self.any = "*" in self.extra
        self.exact: set[str] = set()  # name:port
        self.names: set[str] = set()  # any port
        self.suffixes: list[str] = []  # *.domain -> .domain
        for h in self.extra:
            if h == "*":
                continue
            if h.startswith("*."):
                self.suffixes.append(h[1:])
                continue
            name, port = split_host(h)
            if port is None:
                self.names.add(_bracket(name))
            elif not port.isdigit():
                raise ValidationError(
                    f"Bad allowed host `{h}`: the port `{port}` is not a number. Fix: write `name` or `name:port`."
                )
            else:
                self.exact.add(f"{_bracket(name)}:{int(port)}")
        try:
            self.hostname = socket.gethostname().lower()
        except OSError:  # pragma: no cover
            self.hostname = ""
        self._ok: dict[
            tuple[Any, str], frozenset[bytes]
        ] = {}  # (server address, scheme) -> Host values accepted

    def _accepted(self, server: Any, scheme: str) -> frozenset[bytes]:
        if isinstance(server, list):  # (host, port) as a list, as some ASGI servers send it
            server = tuple(server)
        key = (server, scheme)
        hit = self._ok.get(key)
        if hit is not None:
            return hit
        names = [*_DEFAULT_NAMES, *((self.hostname,) if self.hostname else ())]
        port = None
        if server is not None and len(server) >= 2 and isinstance(server[1], int):
            names.append(_bracket(str(server[0]).lower()))
            port = server[1]
        values: set[str] = set()
        for n in names:
            if port is None:
                values.add(n)
            else:
                values.add(f"{n}:{port}")
                if _DEFAULT_PORTS.get(scheme) == port:
                    values.add(n)
        out = frozenset(v.encode() for v in values)
        if len(self._ok) > 64:  # a server has few local addresses; stay bounded regardless
            self._ok.clear()
        self._ok[key] = out
        return out

    def check(self, scope: Any) -> str | None:
        """None when the request's Host is allowed, else the offending Host (for the message)."""
        if self.any:
            return None
        host: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        if host is None:
            return None
        host = host.lower()
        if host in self._accepted(scope.get("server"), scope.get("scheme", "http")):
            return None
        text = host.decode("latin-1")
        if self.extra:
            name, port = split_host(text)
            if name in self.names or any(name.endswith(s) for s in self.suffixes):
                return None
            if port is not None and port.isdigit() and f"{name}:{int(port)}" in self.exact:
                return None
        return text

    def message(self, host: str, scope: Any) -> str:
        accepted = sorted(
            v.decode() for v in self._accepted(scope.get("server"), scope.get("scheme", "http"))
        )
        accepted += [h for h in self.extra if h not in accepted]
        shown = host if len(host) <= 100 else host[:100] + "..."
        return (
            f"Host `{shown}` is not allowed: this server answers for {', '.join(f'`{a}`' for a in accepted)}. "
            "A browser page on another site could otherwise reach it through a name it controls (DNS rebinding). "
            "Fix: use one of those names, or add yours with `featureline serve --allowed-host NAME[:PORT]` "
            "(or `server.allowed_hosts` in featureline.yaml)."
        )
