"""Serve the sandbox's Assets service to ``requests`` in-process (no socket): a transport adapter.

The real client stack runs unchanged (``Http`` with its retries, limiter and stats, then
``requests``); only the last hop calls ``AssetsService.handle`` instead of a TLS socket. The
bridge counts requests by the route template the sandbox reports, like the server's stats, and
can inject a fault on chosen requests (e.g. "the create landed, then the connection timed out").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from importer.sandbox.assets import AssetsService
from importer.sandbox.base import SandboxRequest, SandboxResponse

__all__ = ["Fault", "SandboxBridge"]

ORIGIN = "https://127.0.0.1:8443"
# (method, route template, request number for that route) -> what to do instead of answering
Fault = Callable[[SandboxRequest, Callable[[], SandboxResponse]], SandboxResponse]


class SandboxBridge(BaseAdapter):
    """A ``requests`` adapter answering from an ``AssetsService``."""

    def __init__(self, service: AssetsService) -> None:
        super().__init__()
        self.service = service
        self.routes: Counter[tuple[str, str]] = Counter()
        self.faults: dict[tuple[str, str], list[Fault]] = {}

    def fail_next(self, method: str, path_suffix: str, fault: Fault) -> None:
        """Apply ``fault`` to the next request whose path ends with ``path_suffix``."""
        self.faults.setdefault((method.upper(), path_suffix), []).append(fault)

    def count(self, method: str, suffix: str) -> int:
        """Requests seen whose route template ends with ``suffix``."""
        return sum(
            n for (m, route), n in self.routes.items() if m == method.upper() and route.endswith(suffix)
        )

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Answer one prepared request."""
        parts = urlsplit(request.url or "")
        body = request.body or b""
        sreq = SandboxRequest(
            method=(request.method or "GET").upper(),
            path=unquote(parts.path),
            raw_path=parts.path + (f"?{parts.query}" if parts.query else ""),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body.encode("utf-8") if isinstance(body, str) else body,
            base_url=ORIGIN,
        )

        def answer() -> SandboxResponse:
            reply = self.service.handle(sreq)
            if reply is None:
                return SandboxResponse(status=404, body={"errorMessages": ["not served"]}, route="?")
            self.routes[(sreq.method, reply.route)] += 1
            return reply

        fault = self._take_fault(sreq)
        reply = fault(sreq, answer) if fault else answer()
        return _to_response(request, reply)

    def _take_fault(self, sreq: SandboxRequest) -> Fault | None:
        for (method, suffix), queue in self.faults.items():
            if queue and method == sreq.method and sreq.path.endswith(suffix):
                return queue.pop(0)
        return None

    def close(self) -> None:
        """Nothing to close."""


def _to_response(request: requests.PreparedRequest, reply: SandboxResponse) -> requests.Response:
    response = requests.Response()
    response.status_code = reply.status
    payload = reply.body
    if payload is None:
        raw = b""
    elif isinstance(payload, bytes):
        raw = payload
    else:
        raw = json.dumps(payload).encode("utf-8")
    headers: Mapping[str, str] = {"Content-Type": reply.content_type, **reply.headers}
    response.headers = CaseInsensitiveDict(headers)
    response._content = raw
    response.encoding = "utf-8"
    response.url = request.url or ""
    response.request = request
    return response
