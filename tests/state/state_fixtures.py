"""Helpers for the state tests (a module with a unique name, so any test module can import it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from importer.state import StateStore

__all__ = ["START", "FakeClock", "StoreFactory"]

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class StoreFactory:
    """Builds stores on one backing file or table: each call is another worker or host."""

    def __init__(self, backend: str, build: Callable[..., StateStore]) -> None:
        self.backend = backend
        self._build = build
        self.created: list[StateStore] = []

    def __call__(self, **kwargs: Any) -> StateStore:
        store = self._build(**kwargs)
        self.created.append(store)
        return store
