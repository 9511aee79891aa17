"""The sandbox's HTTPS server: one port, HTTP/1.1 keep-alive, dispatch by path, faults, stats.

Paths go to services by prefix: ``/v1.0/...`` to Graph; ``/rest/...`` and ``/jsm/...`` to
Assets/Jira; ``/_sandbox/assets/...`` to Assets' test routes; other ``/_sandbox/...`` to the
control API; everything else to the authority. Graph and Assets requests can get faults
(``faults.py``) and are counted (``stats.py``) with the authority's; ``/_sandbox`` never is.

The TLS handshake runs in the connection's own thread, so a slow or broken client never blocks
the accept loop; a client dropping a connection ends only that thread. Nothing is logged:
service exceptions become a 500 and are kept in ``errors`` for tests to assert on.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from importer.http import route_template
from importer.sandbox.base import SandboxRequest, SandboxResponse, Service
from importer.sandbox.faults import FaultDecision, Faults, fault_response
from importer.sandbox.stats import RequestStats

__all__ = ["SandboxServer"]

_IDLE_TIMEOUT_S = 120.0
_PASS = FaultDecision()


def _service_for(path: str) -> tuple[str, bool]:
    """(service name, whether the request counts and may get faults)."""
    if path.startswith("/_sandbox/assets"):
        return "assets", False
    if path.startswith("/_sandbox"):
        return "control", False
    if path == "/v1.0" or path.startswith("/v1.0/"):
        return "graph", True
    if path.startswith(("/rest/", "/jsm/")):
        return "assets", True
    return "authority", True


class SandboxServer:
    """Serve the given services over HTTPS on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        context: ssl.SSLContext,
        services: Mapping[str, Service],
        faults: Faults,
        stats: RequestStats,
    ) -> None:
        self.services = dict(services)
        self.faults = faults
        self.stats = stats
        self.errors: list[str] = []
        self._learned: dict[tuple[str, str, str], str] = {}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_Server", (_HTTPServer,), {"address_family": family})
        self._httpd: _HTTPServer = server_class((host, port), _Handler)
        self._httpd.app = self
        self._httpd.context = context
        bound = self._httpd.server_address
        self.host = host
        self.port = int(bound[1])
        self.base_url = f"https://{f'[{host}]' if family == socket.AF_INET6 else host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sandbox-https",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every open connection and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()

    def dispatch(self, request: SandboxRequest) -> tuple[SandboxResponse | None, str]:
        """Answer one request: (response or None for a dropped connection, delivery mode)."""
        name, counted = _service_for(request.path)
        decision = self.faults.decide(name) if counted and name in ("graph", "assets") else _PASS
        if decision.latency_s:
            time.sleep(decision.latency_s)
        if decision.action in ("drop_before", "status"):
            route = self._route(name, request)
            if decision.action == "drop_before":
                self.stats.record(name, request.method, route, 0)
                return None, "drop"
            response = fault_response(name, decision, request, route=route)
            self.stats.record(name, request.method, route, response.status)
            return response, "normal"
        response = self._handle(name, request)
        held = self.faults.answer_delay(name, request.method, request.path) if counted else 0.0
        dropped = decision.action == "drop_after"  # processed, but the client never hears of it
        if counted:
            generic = route_template(request.path)
            if response.route:
                self._learned[(name, request.method, generic)] = response.route
            self.stats.record(
                name, request.method, response.route or generic, 0 if dropped else response.status
            )
        if held:
            time.sleep(held)  # processed and counted; the answer comes after the client's read timeout
        if dropped:
            return None, "drop"
        return response, "truncate" if decision.action == "truncate" else "normal"

    def _route(self, name: str, request: SandboxRequest) -> str:
        service = self.services.get(name)
        route_for = getattr(service, "route_for", None)
        if callable(route_for):
            return str(route_for(request.path))
        generic = route_template(request.path)
        return self._learned.get((name, request.method, generic), generic)

    def _handle(self, name: str, request: SandboxRequest) -> SandboxResponse:
        service = self.services.get(name)
        try:
            response = service.handle(request) if service is not None else None
        except Exception:  # a bug in a service must not kill the connection or the server
            self.errors.append(traceback.format_exc())
            body = {
                "error": {"code": "SandboxInternalError", "message": "The sandbox failed on this request."}
            }
            return SandboxResponse(status=500, body=body, route=route_template(request.path))
        if response is None:
            body = {
                "error": {
                    "code": "NotFound",
                    "message": f"No sandbox service answers {request.method} {request.path}.",
                }
            }
            return SandboxResponse(status=404, body=body, route="/{unknown}")
        return response


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    app: SandboxServer
    context: ssl.SSLContext

    def server_activate(self) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().server_activate()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's thread, then serve requests until it closes."""
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request.settimeout(_IDLE_TIMEOUT_S)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            with contextlib.suppress(OSError):
                request.close()
            return
        with self._conns_lock:
            self._conns.add(conn)
        try:
            _Handler(conn, client_address, self)
        except (OSError, ssl.SSLError, ValueError):
            pass  # the client went away: only this connection ends
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError, ValueError):
                conn.close()

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError, ValueError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: the default prints a traceback to stderr."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        """Serve any method the same way."""
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        app = self.server.app
        body = self._read_body()
        raw_path = self.path
        path, _, query = raw_path.partition("?")
        request = SandboxRequest(
            method=self.command,
            path=unquote(path),
            raw_path=raw_path,
            query=parse_qs(query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=app.base_url,
        )
        response, mode = app.dispatch(request)
        if response is None:
            self._drop()
            return
        self._write(response, truncate=mode == "truncate")

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError, ValueError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _write(self, response: SandboxResponse, *, truncate: bool) -> None:
        if response.body is None:
            payload = b""
        elif isinstance(response.body, bytes):
            payload = response.body
        else:
            payload = json.dumps(response.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        status = response.status
        reason = self.responses.get(status, ("Unknown",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {email.utils.formatdate(usegmt=True)}"]
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            if payload or response.body is not None:
                lines.append(f"Content-Type: {response.content_type}")
            lines.append(f"Content-Length: {len(payload) if not truncate else max(len(payload), 1)}")
        lines.extend(f"{k}: {v}" for k, v in response.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if self.command == "HEAD" or no_body:
            payload = b""
        if truncate:
            self.wfile.write(head + payload[: len(payload) // 2])
            self._drop()
            return
        self.wfile.write(head + payload)
