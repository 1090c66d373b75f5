"""The Host check accepts the ASGI `server` pair as a tuple or as a list (Starlette's
TestClient sends a list; the check answered 500 with a TypeError)."""

from __future__ import annotations

from featureline.server._hosts import HostCheck


def _scope(host: bytes, server: object) -> dict[str, object]:
    return {"headers": [(b"host", host)], "server": server, "scheme": "http"}


def test_server_as_a_list_or_a_tuple() -> None:
    check = HostCheck()
    for server in (("127.0.0.1", 6566), ["127.0.0.1", 6566], ["testserver", 80]):
        name, port = server
        assert check.check(_scope(f"{name}:{port}".encode(), server)) is None
        assert check.check(_scope(b"evil.example:6566", server)) == "evil.example:6566"
