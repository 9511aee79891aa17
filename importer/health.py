"""The daemon's HTTP endpoints and its readiness logic.

``/healthz``  200 while the process serves requests (a liveness probe).
``/readyz``   200 only when every installation passes every check, else 503; the JSON body names
              each failing check and why (scrubbed: no personal value, no secret).
``/metrics``  the daemon's Prometheus registry.

Checks per installation: ``config`` (the file loaded and validated), ``vault`` (decrypted, every
``secret:NAME`` present), ``state`` (the store answered its last probe) and ``runs`` (the last
``failures_allowed`` runs did not all fail). The daemon also reports ``stopping`` once it has
been asked to stop, so a load balancer or an operator sees it going away.

The server is the standard library's ``ThreadingHTTPServer`` in a daemon thread: three small
read-only routes need nothing more.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from importer.logs import scrub_text

__all__ = ["CHECKS", "Check", "HealthServer", "Readiness", "parse_listen"]

_log = structlog.get_logger("importer.health")
CHECKS = ("config", "vault", "state", "runs")
_MAX_REASON = 300


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check: passed or not, and why not."""

    ok: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok} if self.ok else {"ok": False, "reason": self.reason}


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) as a (host, port) pair."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9464")
    return host, int(port)


class Readiness:
    """What ``/readyz`` reports: per-installation checks, updated by the daemon's threads."""

    def __init__(self, *, failures_allowed: int = 3) -> None:
        self.failures_allowed = failures_allowed
        self._checks: dict[str, dict[str, Check]] = {}
        self._stopping: str | None = None
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        """Start tracking an installation: every check pending until the daemon has tried it."""
        with self._lock:
            self._checks.setdefault(name, {c: Check(False, "not checked yet") for c in CHECKS})

    def rename(self, old: str, new: str) -> None:
        """An installation known by its file name now has its instance name."""
        with self._lock:
            if old != new and old in self._checks:
                self._checks[new] = self._checks.pop(old)

    def set(self, name: str, check: str, ok: bool, reason: str | None = None) -> None:
        """Record the result of one check (``reason`` is scrubbed and shortened)."""
        if check not in CHECKS:
            raise ValueError(f"unknown readiness check {check!r}")
        text = None if ok else scrub_text(reason or "failed")[:_MAX_REASON]
        with self._lock:
            self._checks.setdefault(name, {c: Check(False, "not checked yet") for c in CHECKS})
            self._checks[name][check] = Check(ok, text)

    def set_runs(self, name: str, outcomes: list[str], last_error: str | None = None) -> None:
        """Judge the ``runs`` check from the newest run outcomes (newest first)."""
        recent = outcomes[: self.failures_allowed]
        failing = len(recent) >= self.failures_allowed and all(o == "failed" for o in recent)
        reason = None
        if failing:
            reason = f"the last {self.failures_allowed} runs failed"
            if last_error:
                reason += f" (newest: {last_error})"
        self.set(name, "runs", not failing, reason)

    def stopping(self, reason: str) -> None:
        """The daemon was asked to stop."""
        with self._lock:
            self._stopping = reason

    def is_ready(self, name: str) -> bool:
        """Whether one installation passes every check."""
        with self._lock:
            checks = self._checks.get(name, {})
            return bool(checks) and all(c.ok for c in checks.values())

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready, JSON body) for ``/readyz``."""
        with self._lock:
            snapshot = {name: dict(checks) for name, checks in sorted(self._checks.items())}
            stopping = self._stopping
        installations = {
            name: {
                "ready": all(c.ok for c in checks.values()),
                "checks": {k: c.as_dict() for k, c in checks.items()},
            }
            for name, checks in snapshot.items()
        }
        failing = [
            f"{name}: {check}: {c.reason}"
            for name, checks in snapshot.items()
            for check, c in checks.items()
            if not c.ok
        ]
        if stopping:
            failing.insert(0, f"daemon: {stopping}")
        if not installations:
            failing.append("daemon: no installation configured")
        ready = not failing
        return ready, {"ready": ready, "failing": failing, "installations": installations}


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on one address, served from a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        readiness: Readiness,
        metrics: Callable[[], bytes],
        metrics_type: str = "text/plain; version=0.0.4; charset=utf-8",
    ) -> None:
        self.readiness = readiness
        handler = _handler(readiness, metrics, metrics_type)
        server_class = type(
            "_Server", (ThreadingHTTPServer,), {"address_family": _family(host), "daemon_threads": True}
        )
        self._server: ThreadingHTTPServer = server_class((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the port is the real one when 0 was asked for."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="health", daemon=True
        )
        self._thread.start()
        host, port = self.address
        _log.info("health_server_started", host=host, port=port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()


def _family(host: str) -> Any:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _handler(
    readiness: Readiness, metrics: Callable[[], bytes], metrics_type: str
) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "importer"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                ready, body = readiness.report()
                data = (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")
                self._send(200 if ready else 503, data, "application/json")
            elif path == "/metrics":
                try:
                    self._send(200, metrics(), metrics_type)
                except Exception as exc:  # a broken collector must not kill the server thread
                    _log.warning("metrics_failed", error_type=type(exc).__name__)
                    self._send(500, b"metrics failed\n", "text/plain; charset=utf-8")
            else:
                self._send(
                    404, b"not found: try /healthz, /readyz or /metrics\n", "text/plain; charset=utf-8"
                )

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds would drown the log; errors surface as events

    return _Handler
