"""Small fakes shared by several test packages."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A clock (for ``importer.http``) that only moves when something sleeps; it records the sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.t += max(seconds, 0.0)

    def now(self) -> datetime:
        return datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC) + timedelta(seconds=self.t - 1000.0)
