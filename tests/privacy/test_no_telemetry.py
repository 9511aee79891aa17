"""No telemetry: a whole sandbox sync connects to the configured endpoints and nowhere else."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import make_env


def _numeric(host: Any) -> bool:
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except ValueError:
        return False
    return True


class Guard:
    """Refuses every connection but the sandbox's; records what was attempted."""

    def __init__(self, allowed: tuple[str, int]) -> None:
        self.allowed = allowed
        self.refused: list[object] = []
        self.lookups: list[object] = []
        self.allowed_connects = 0
        self._connect = socket.socket.connect
        self._connect_ex = socket.socket.connect_ex
        self._getaddrinfo = socket.getaddrinfo

    def _check(self, address: Any) -> None:
        if isinstance(address, tuple) and tuple(address[:2]) == self.allowed:
            self.allowed_connects += 1
            return
        self.refused.append(address)
        raise ConnectionRefusedError(f"test: no connection to {address!r} allowed")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Patch the socket module (a plain function per method, so ``self`` stays the socket)."""
        connect, connect_ex = self._connect, self._connect_ex

        def guarded_connect(sock: socket.socket, address: Any) -> None:
            self._check(address)
            connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
            self._check(address)
            return connect_ex(sock, address)

        monkeypatch.setattr(socket.socket, "connect", guarded_connect)
        monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _numeric(host):
            self.lookups.append(host)  # a name lookup is already a packet to a resolver
            raise socket.gaierror(socket.EAI_NONAME, f"test: no lookup of {host!r} allowed")
        return self._getaddrinfo(host, *args, **kwargs)


def test_a_full_sync_talks_to_the_configured_endpoints_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in make_env(tmp_path, users=20, devices=25):
        guard = Guard(("127.0.0.1", int(env.sb.port)))
        guard.install(monkeypatch)
        with pytest.raises(ConnectionRefusedError):  # the guard holds (192.0.2.1: a documentation address)
            socket.create_connection(("192.0.2.1", 443), timeout=1)
        assert guard.refused == [("192.0.2.1", 443)]
        guard.refused.clear()
        first = env.run("--log-level", "debug", "sync")
        env.sb.mutate(update_users=2, hard_delete_devices=1)
        second = env.run("--log-level", "debug", "sync")
        full = env.run("--log-level", "debug", "sync", "--full")
        user = env.sb.directory.dump("users")["value"][0]["userPrincipalName"]
        export = env.run("privacy", "export", user)
        monkeypatch.undo()
        assert [r.code for r in (first, second, full, export)] == [0, 0, 0, 0], first.err + export.err
        assert guard.refused == []
        assert guard.lookups == []
        assert guard.allowed_connects > 0  # the guard did see the importer's connections
