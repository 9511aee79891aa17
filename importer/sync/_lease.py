"""The installation's lease, held for one run and renewed in the background.

The keeper renews every third of the lease's duration. A renewal refused because another worker
took the lease over loses it at once. A renewal that fails for any other reason (the state store
is unreachable) is retried until the lease would expire: the keeper counts the lease as valid up
to a *safe deadline*, the monotonic time just before the last successful acquire or renew plus
the duration minus a safety margin (a fifth of the duration, at most 30 s: the clock drift and the
renewal's own latency). Past that deadline ``lost`` says so, even while a renewal is still
hanging, so apply stops writing before another host can take the lease.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import structlog

from importer.errors import FatalError, LeaseHeldError, LeaseLostError

if TYPE_CHECKING:
    from importer.runtime import Runtime
    from importer.state import Lease

__all__ = ["EXPIRED", "LeaseKeeper", "RunInterrupted"]

_log = structlog.get_logger("importer.sync")
_MARGIN_SHARE = 0.2  # of the lease's duration, kept back from its expiry ...
_MARGIN_MAX_S = 30.0  # ... but never more than this
EXPIRED = "the lease expired while the state store was unreachable"


def _dead_local_holder(owner: str | None) -> str | None:
    """The holder's name if it is a process of this host and PID namespace that no longer runs.

    Holders are ``host:pid@pidns`` (``runtime.holder_name``). Only a holder in our own PID
    namespace can be checked: two containers may share a host name (host networking) without
    seeing each other's processes, so anything else waits for the lease to expire.
    """
    import os
    import socket

    from importer.runtime import pid_namespace

    if not owner or ":" not in owner:
        return None
    host, _, rest = owner.rpartition(":")
    pid, _, ns = rest.partition("@")
    if host != socket.gethostname() or not pid.isdigit() or not ns or ns != pid_namespace():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return owner
    except PermissionError:
        return None  # it runs, as another user
    return None


class RunInterrupted(FatalError):
    """The run was asked to stop (SIGTERM, lost lease) before it wrote anything."""


class LeaseKeeper:
    """Hold the installation's lease for one run, renewing it in the background."""

    def __init__(self, rt: Runtime, owner: str, *, wait_s: float = 0.0, poll_s: float = 2.0) -> None:
        self.rt = rt
        self.owner = owner
        self.duration = rt.settings.state.lease_s
        self.margin_s = min(self.duration * _MARGIN_SHARE, _MARGIN_MAX_S)
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.lease: Lease | None = None
        self._lost: str | None = None
        self._valid_until = 0.0  # monotonic: the safe deadline of the lease as last confirmed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def lost(self) -> str | None:
        """Why the lease is no longer ours (taken over, or expired unrenewed), or ``None``."""
        with self._lock:
            running = self.lease is not None and not self._stop.is_set()
            if self._lost is None and running and time.monotonic() >= self._valid_until:
                self._lost = EXPIRED
            return self._lost

    def __enter__(self) -> LeaseKeeper:
        deadline = time.monotonic() + self.wait_s
        while True:
            dead = _dead_local_holder(self.rt.state.lease_info().owner)
            asked_at = time.monotonic()  # the store starts the lease's time no earlier than this
            self.lease = self.rt.state.acquire_lease(self.owner, duration_s=self.duration, take_over=dead)
            if self.lease is not None:
                self._valid_until = asked_at + self.duration - self.margin_s
                if dead:
                    _log.warning("lease_taken_over", previous_holder=dead, reason="process no longer runs")
                break
            if time.monotonic() >= deadline:
                info = self.rt.state.lease_info()
                until = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "?"
                raise LeaseHeldError(
                    f"another run holds the lease for {self.rt.settings.instance} "
                    f"({info.owner}, until {until}); try again later or use --wait SECONDS"
                )
            time.sleep(min(self.poll_s, max(0.05, deadline - time.monotonic())))
        _log.info("lease_acquired", fence=self.lease.fence)
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self._next_wait()):
            if self.lost is not None:  # expired while the previous renewal hung
                _log.error("lease_lost", reason=self.lost)
                return
            asked_at = time.monotonic()
            try:
                renewed = self.rt.state.renew_lease(self.current(), duration_s=self.duration)
            except LeaseLostError as exc:
                with self._lock:
                    self._lost = f"the lease was taken over by another worker ({exc})"
                _log.error("lease_lost", reason="taken over")
                return
            except Exception as exc:  # a state outage: keep trying until the lease would expire
                if self.lost is not None:
                    _log.error("lease_lost", reason=self.lost, error=type(exc).__name__)
                    return
                _log.warning("lease_renew_failed", error=type(exc).__name__)
                continue
            with self._lock:
                self.lease = renewed  # what __exit__ releases
                if self._lost is not None:  # too late: the run was already told to stop
                    return
                self._valid_until = asked_at + self.duration - self.margin_s

    def _next_wait(self) -> float:
        """A third of the duration; after failed renewals, no later than the safe deadline."""
        with self._lock:
            left = self._valid_until - time.monotonic()
        return max(0.0, min(self.duration / 3, left))

    def current(self) -> Lease:
        """The lease as last renewed."""
        with self._lock:
            assert self.lease is not None
            return self.lease

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease is not None and self.lost in (None, EXPIRED):  # the store releases only our own
            try:
                self.rt.state.release_lease(self.current())
                _log.info("lease_released")
            except Exception as err:
                _log.warning("lease_release_failed", error=type(err).__name__)
