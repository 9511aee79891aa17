"""A sliding 60-second request budget shared by every Assets route (off unless set)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from importer.sandbox.assets_model import iso_ms

__all__ = ["RATE_LIMITED_BODY", "SlidingWindowLimiter"]

WINDOW_S = 60.0
RATE_LIMITED_BODY: dict[str, Any] = {
    "errorMessages": ["The request has been rate-limited. Please try again later."],
    "errors": {},
    "status": 429,
}


class SlidingWindowLimiter:
    """At most ``per_minute`` accepted requests in any 60 s; refused requests do not count.

    ``clock`` (monotonic seconds) is an attribute so tests can move time.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._per_minute: int | None = None
        self._hits: deque[float] = deque()

    @property
    def per_minute(self) -> int | None:
        """The budget, or None when unlimited."""
        return self._per_minute

    def set(self, per_minute: int | None) -> None:
        """Set (or with None remove) the budget; past hits still count against a new budget."""
        if per_minute is not None and per_minute < 0:
            raise ValueError("per_minute must be >= 0 or None")
        with self._lock:
            self._per_minute = per_minute

    def reset(self) -> None:
        """Forget every past request: the next one starts a fresh window."""
        with self._lock:
            self._hits.clear()

    def check(self) -> float | None:
        """Count one request; None when it is allowed, else seconds until the window frees."""
        with self._lock:
            if self._per_minute is None:
                return None
            now = self.clock()
            while self._hits and self._hits[0] <= now - WINDOW_S:
                self._hits.popleft()
            if len(self._hits) < self._per_minute:
                self._hits.append(now)
                return None
            if self._per_minute == 0:
                return WINDOW_S
            freeing = self._hits[len(self._hits) - self._per_minute]
            return max(freeing + WINDOW_S - now, 0.001)

    def headers(self, wait_s: float) -> dict[str, str]:
        """``Retry-After`` (whole seconds, rounded up) and ``X-RateLimit-*`` for a 429."""
        reset_ms = time.time_ns() // 1_000_000 + math.ceil(wait_s * 1000)
        return {
            "Retry-After": str(max(1, math.ceil(wait_s))),
            "X-RateLimit-Reset": iso_ms(reset_ms),
            "X-RateLimit-Limit": str(self._per_minute or 0),
            "X-RateLimit-Remaining": "0",
        }
