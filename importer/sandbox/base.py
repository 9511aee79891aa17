"""What every simulated service in the sandbox speaks: a request in, a response out.

The HTTPS server (``server.py``) parses each request into a ``SandboxRequest``, offers it to
each service in turn (authority, Graph, Assets/Jira, control), applies fault injection, counts
it under the route template the service reports, and writes the ``SandboxResponse``. Services
are plain objects holding their state behind a lock; they never touch sockets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["SandboxRequest", "SandboxResponse", "Service", "json_error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxRequest:
    """One parsed HTTP request."""

    method: str
    path: str  # URL path, percent-decoded, without the query string
    raw_path: str  # the request target as sent (path + query, not decoded)
    query: Mapping[str, list[str]]  # parsed query string (keys as sent, e.g. "$select")
    headers: Mapping[str, str]  # header names lower-cased
    body: bytes = b""
    base_url: str = ""  # e.g. https://127.0.0.1:8443 (for building absolute links)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty); raises ValueError when malformed."""
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))


@dataclass(slots=True, kw_only=True)
class SandboxResponse:
    """One HTTP response; ``body`` is JSON-serialisable data, raw bytes, or None (no body)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    route: str = ""  # route template for stats, e.g. "/v1.0/devices/{id}/registeredOwners"
    content_type: str = "application/json"


class Service(Protocol):
    """A simulated service."""

    name: str  # "authority" | "graph" | "assets" | "control"

    def handle(self, request: SandboxRequest) -> SandboxResponse | None:
        """Answer the request, or return None when the path is not this service's."""


def json_error(
    status: int, body: Any, *, route: str, headers: Mapping[str, str] | None = None
) -> SandboxResponse:
    """Build an error response with a JSON body."""
    return SandboxResponse(status=status, body=body, route=route, headers=dict(headers or {}))
