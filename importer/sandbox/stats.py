"""Request counts by service, method, route template and status (``GET /_sandbox/stats``)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["RequestStats"]


class RequestStats:
    """Thread-safe counters; routes are templates (``/v1.0/devices/{id}/registeredOwners``), never ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str, int]] = Counter()

    def record(self, service: str, method: str, route: str, status: int) -> None:
        """Count one request (status 0: the connection was dropped without a response)."""
        with self._lock:
            self._counts[(service, method, route, status)] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """Every counter, sorted by service, route, method and status."""
        with self._lock:
            items = sorted(self._counts.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1], kv[0][3]))
        return [
            {"service": service, "method": method, "route": route, "status": status, "count": count}
            for (service, method, route, status), count in items
        ]

    def total(self, service: str | None = None) -> int:
        """How many requests were counted (for one service, or all)."""
        with self._lock:
            return sum(n for key, n in self._counts.items() if service is None or key[0] == service)

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()
