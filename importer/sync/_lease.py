"""The installation's lease, held for one run and renewed in the background."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import structlog

from importer.errors import FatalError, LeaseHeldError, LeaseLostError

if TYPE_CHECKING:
    from importer.runtime import Runtime
    from importer.state import Lease

__all__ = ["LeaseKeeper", "RunInterrupted"]

_log = structlog.get_logger("importer.sync")


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
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.lease: Lease | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> LeaseKeeper:
        deadline = time.monotonic() + self.wait_s
        while True:
            dead = _dead_local_holder(self.rt.state.lease_info().owner)
            self.lease = self.rt.state.acquire_lease(self.owner, duration_s=self.duration, take_over=dead)
            if self.lease is not None:
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
        while not self._stop.wait(self.duration / 3):
            try:
                with self._lock:
                    assert self.lease is not None
                    self.lease = self.rt.state.renew_lease(self.lease, duration_s=self.duration)
            except LeaseLostError as exc:
                self.lost = f"the lease was taken over by another worker ({exc})"
                _log.error("lease_lost")
                return
            except Exception as exc:  # a state outage: keep trying until the lease would expire
                _log.warning("lease_renew_failed", error=type(exc).__name__)

    def current(self) -> Lease:
        """The lease as last renewed."""
        with self._lock:
            assert self.lease is not None
            return self.lease

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease is not None and self.lost is None:
            try:
                self.rt.state.release_lease(self.current())
                _log.info("lease_released")
            except Exception as err:
                _log.warning("lease_release_failed", error=type(err).__name__)
