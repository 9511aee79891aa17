"""The lease keeper: renewals in the background, and a lease that runs out during a state outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from importer.errors import LeaseLostError
from importer.state import Lease, LeaseInfo
from importer.sync import LeaseKeeper
from importer.sync._lease import EXPIRED


@dataclass
class FakeStore:
    """The lease part of a state store; ``renew`` decides what each renewal does."""

    renew: Callable[[int], None] = lambda n: None
    renewals: int = 0
    released: list[Lease] = field(default_factory=list)
    renewed: threading.Event = field(default_factory=threading.Event)

    def lease_info(self) -> LeaseInfo:
        return LeaseInfo(owner=None, expires_at=None, released=True, fence=0)

    def acquire_lease(self, owner: str, *, duration_s: float, take_over: str | None = None) -> Lease:
        return self._lease(owner, duration_s, fence=7)

    def renew_lease(self, lease: Lease, *, duration_s: float) -> Lease:
        self.renewals += 1
        self.renew(self.renewals)  # may raise, or hang
        self.renewed.set()
        return self._lease(lease.owner, duration_s, fence=lease.fence)

    def release_lease(self, lease: Lease) -> None:
        self.released.append(lease)

    @staticmethod
    def _lease(owner: str, duration_s: float, *, fence: int) -> Lease:
        expires = datetime.now(UTC) + timedelta(seconds=duration_s)
        return Lease(
            instance="contoso", owner=owner, fence=fence, rvn=f"r{time.monotonic()}", expires_at=expires
        )


def _runtime(store: FakeStore, lease_s: float) -> Any:
    return SimpleNamespace(
        settings=SimpleNamespace(instance="contoso", state=SimpleNamespace(lease_s=lease_s)), state=store
    )


def _wait_lost(keeper: LeaseKeeper, within_s: float) -> str | None:
    deadline = time.monotonic() + within_s
    while keeper.lost is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return keeper.lost


def _unreachable(n: int) -> None:
    raise ConnectionError("state store unreachable")


def test_a_lease_that_cannot_be_renewed_is_lost_before_it_expires() -> None:
    """A state outage longer than the lease stops the run's writes before another host may take over."""
    store = FakeStore(renew=_unreachable)
    keeper = LeaseKeeper(_runtime(store, lease_s=1.0), "host-a:1@ns")
    with keeper:
        started = time.monotonic()
        assert keeper.lost is None  # freshly acquired
        assert _wait_lost(keeper, within_s=5) == EXPIRED
        assert time.monotonic() - started < 1.0  # before the lease's own expiry
        assert store.renewals >= 1  # it did try, while the lease was still valid
    assert EXPIRED == "the lease expired while the state store was unreachable"


def test_a_renewal_that_hangs_does_not_keep_the_run_writing() -> None:
    """A state-store call stuck in a network timeout cannot stretch the lease past its expiry."""
    release = threading.Event()
    store = FakeStore(renew=lambda n: release.wait(10) and None)
    keeper = LeaseKeeper(_runtime(store, lease_s=1.0), "host-a:1@ns")
    try:
        with keeper:
            assert _wait_lost(keeper, within_s=5) == EXPIRED
            release.set()  # the renewal finally answers: too late, the run stays stopped
            assert store.renewed.wait(5)
            assert keeper.lost == EXPIRED
    finally:
        release.set()


def test_a_short_outage_keeps_the_lease() -> None:
    """One failed renewal followed by a good one: the run keeps its lease."""

    def fail_once(n: int) -> None:
        if n == 1:
            raise ConnectionError("state store unreachable")

    store = FakeStore(renew=fail_once)
    with LeaseKeeper(_runtime(store, lease_s=3.0), "host-a:1@ns") as keeper:
        assert store.renewed.wait(10)
        assert store.renewals == 2
        assert keeper.lost is None
    assert len(store.released) == 1  # and gives it back at the end


def test_a_lease_taken_over_is_lost_at_once() -> None:
    def taken(n: int) -> None:
        raise LeaseLostError("fence 7 is no longer held by this worker")

    store = FakeStore(renew=taken)
    with LeaseKeeper(_runtime(store, lease_s=1.5), "host-a:1@ns") as keeper:
        lost = _wait_lost(keeper, within_s=5)
    assert lost is not None
    assert lost.startswith("the lease was taken over by another worker")
    assert store.released == []  # the new holder's lease is left alone
