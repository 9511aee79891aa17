"""The daemon (``importer run``): scheduled runs, one at a time across every host, stopping cleanly.

Each process runs its own APScheduler 3.x ``BlockingScheduler`` with an in-memory job store
(job stores are never shared between schedulers); the installation's **lease** in the state
store decides who works. Per installation there is an ``incremental`` and a ``full`` job
(``schedule.*``, see ``importer.schedule``), each with ``max_instances=1``, ``coalesce=True``
and ``misfire_grace_time=300``. A job:

1. skips when the daemon is stopping, when the installation is not open yet (config, vault or
   state failing), or when the other job of the same installation is running in this process:
   an incremental job skips (also while a full job waits to start, since the full run covers
   its slot); a full job waits for the incremental one to finish, however long it takes, and
   only a stop ends the wait (``misfire_grace_time`` bounds when a job may start, not this wait);
2. takes the lease (``LeaseKeeper(..., wait_s=0)``); when another host holds it, logs the holder
   (``host:pid``) and skips;
3. skips when a scheduled run of the same slot already happened (another host was faster);
4. runs ``run_sync`` with ``should_stop`` wired to the stop flag (sync records every run, a run
   that raises as ``failed``; the daemon counts it and carries on).

Signals: the first SIGTERM or SIGINT stops taking jobs, asks the running sync to stop (apply
finishes its in-flight writes and submits no more, the run commits nothing and is recorded as
``interrupted``), releases the lease and exits 0, within ``stop_timeout_s`` (25 s). If a run
is still going at the deadline, its lease is released (the fence then refuses any commit from
it) and the process exits 1. A second signal exits at once (130 for SIGINT, 143 for SIGTERM);
the lease then expires on its own.

Support jobs: ``open`` (every minute: load configs and open vaults and state stores that are not
open yet, so fixing a vault needs no restart), ``health`` (every 15 s: probe the state store and
judge the last runs, for ``/readyz``) and ``sweep`` (daily: ``state.sweep()`` and ``sweep_logs``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from importer.errors import ConfigError, FatalError, ImporterError, LeaseHeldError
from importer.health import HealthServer, Readiness
from importer.installations import Installation, describe_error, find_configs
from importer.metrics import CONTENT_TYPE, DaemonMetrics
from importer.runtime import holder_name
from importer.schedule import build_trigger
from importer.sync import LeaseKeeper, RunOptions, run_sync

if TYPE_CHECKING:
    from importer.runtime import Runtime
    from importer.sync import RunResult

__all__ = ["JOB_DEFAULTS", "STOP_TIMEOUT_S", "Daemon", "Installation", "describe_error", "find_configs"]

_log = structlog.get_logger("importer.daemon")
JobKind = Literal["incremental", "full"]
JOB_DEFAULTS: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}
STOP_TIMEOUT_S = 25.0
HEALTH_INTERVAL_S = 15.0
OPEN_INTERVAL_S = 60.0
SWEEP_INTERVAL = timedelta(hours=24)
Runner = Callable[..., "RunResult"]


class Daemon:
    """Scheduler, jobs, signals and the health server of ``importer run``."""

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        listen: tuple[str, int] | None = ("127.0.0.1", 9464),
        stop_timeout_s: float = STOP_TIMEOUT_S,
        failures_allowed: int = 3,
        runner: Runner | None = None,
        hard_exit: Callable[[int], Any] = os._exit,
        log_level: str | None = None,
        configure_logs: bool = True,
    ) -> None:
        self.installations = [Installation(path=p, name=p.name) for p in paths]
        self.listen = listen
        self.stop_timeout_s = stop_timeout_s
        self.runner: Runner = runner or run_sync
        self.hard_exit = hard_exit
        self.log_level = log_level
        self.configure_logs = configure_logs
        self.readiness = Readiness(failures_allowed=failures_allowed)
        self.metrics = DaemonMetrics()
        self.server: HealthServer | None = None
        self.scheduler = BlockingScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=2 * len(paths) + 4)},
            job_defaults=dict(JOB_DEFAULTS),
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_job_dropped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._stop_at = 0.0
        self._signals = 0
        self._active = 0
        self._active_cond = threading.Condition()
        for inst in self.installations:
            self.readiness.add(inst.name)

    # -- lifecycle ----------------------------------------------------------------------------

    def load(self) -> None:
        """Load every configuration; raise ``ConfigError`` when none of them loads."""
        if not self.installations:
            raise ConfigError("no configuration file given")
        errors = [
            err
            for inst in self.installations
            if (err := inst.load(self.installations, self.readiness, self.metrics)) is not None
        ]
        if len(errors) == len(self.installations):
            raise errors[0] if len(errors) == 1 else ConfigError("\n".join(str(e) for e in errors))

    def run(self) -> int:
        """Serve until a signal stops the daemon; return the exit code (0 after a clean stop)."""
        self.load()
        if self.configure_logs:
            from importer.logs import configure_logging

            first = next(i.settings for i in self.installations if i.settings is not None)
            configure_logging(first.logging, level=self.log_level)
        if self.listen is not None:
            self.start_server(*self.listen)
        self.install_signal_handlers()
        self.schedule_jobs()
        _log.info(
            "daemon_started",
            installations=[i.name for i in self.installations],
            holder=holder_name(),
            listen=f"{self.listen[0]}:{self.listen[1]}" if self.listen else None,
        )
        if not self._stop.is_set():
            self.scheduler.start()  # blocks until request_stop shuts the scheduler down
        return self._drain()

    def start_server(self, host: str, port: int) -> None:
        """Start ``/healthz``, ``/readyz`` and ``/metrics``."""
        try:
            self.server = HealthServer(
                host, port, readiness=self.readiness, metrics=self.metrics.render, metrics_type=CONTENT_TYPE
            )
        except OSError as exc:
            raise FatalError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.server.start()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT: stop cleanly; the second one exits at once."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)

    def on_signal(self, signum: int, frame: FrameType | None = None) -> None:
        """A signal handler (also called directly by tests)."""
        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals > 1:
            os.write(2, f"importer: second {name}: exiting now; the lease expires on its own\n".encode())
            self.hard_exit(128 + signum)
            return
        self.request_stop(f"received {name}")

    def request_stop(self, reason: str) -> None:
        """Stop taking jobs, ask the running sync to stop, and let ``run`` drain and return."""
        if self._stop.is_set():
            return
        self._stop_reason = reason
        self._stop_at = time.monotonic()
        self._stop.set()
        self.readiness.stopping(f"stopping ({reason})")
        _log.info("daemon_stopping", reason=reason, running=self._active)
        threading.Thread(target=self._shutdown_scheduler, name="stop", daemon=True).start()

    def should_stop(self) -> str | None:
        """What ``RunOptions.should_stop`` asks between writes: the stop reason, once stopping."""
        return f"the daemon is stopping ({self._stop_reason})" if self._stop.is_set() else None

    def _shutdown_scheduler(self) -> None:
        deadline = time.monotonic() + self.stop_timeout_s
        while time.monotonic() < deadline:  # a signal may arrive before the scheduler started
            if self.scheduler.state != STATE_STOPPED:
                try:
                    self.scheduler.shutdown(wait=False)
                except Exception as exc:  # the drain still bounds the exit
                    _log.warning("scheduler_shutdown_failed", error_type=type(exc).__name__)
                return
            time.sleep(0.05)

    def _drain(self) -> int:
        """Wait for running jobs up to the stop deadline, then close everything."""
        deadline = self._stop_at + self.stop_timeout_s
        with self._active_cond:
            while self._active and (left := deadline - time.monotonic()) > 0:
                self._active_cond.wait(left)
            running = self._active
        if running:
            for inst in self.installations:
                keeper, rt = inst.keeper, inst.runtime
                if keeper is not None and rt is not None:
                    try:  # the fence now refuses any commit of the run we abandon
                        rt.state.release_lease(keeper.current())
                    except Exception as exc:  # best effort on the way out
                        _log.warning(
                            "lease_release_failed", instance=inst.name, error_type=type(exc).__name__
                        )
            _log.error("daemon_stop_timed_out", running=running, timeout_s=self.stop_timeout_s)
            self._close()
            self.hard_exit(1)
            return 1
        self._close()
        _log.info("daemon_stopped", reason=self._stop_reason)
        return 0

    def _close(self) -> None:
        for inst in self.installations:
            inst.close()
        if self.server is not None:
            self.server.stop()

    # -- scheduling ---------------------------------------------------------------------------

    def schedule_jobs(self) -> None:
        """Add the run jobs of every loaded installation and the support jobs."""
        now = datetime.now(UTC)
        for inst in self.installations:
            if inst.settings is not None:
                self._add_run_jobs(inst)
        support = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self.scheduler.add_job(
            self.open_pending,
            IntervalTrigger(seconds=OPEN_INTERVAL_S),
            id="open",
            next_run_time=now,
            **support,
        )
        self.scheduler.add_job(
            self.check_health, IntervalTrigger(seconds=HEALTH_INTERVAL_S), id="health", **support
        )
        self.scheduler.add_job(
            self.sweep,
            IntervalTrigger(seconds=SWEEP_INTERVAL.total_seconds(), jitter=600),
            id="sweep",
            next_run_time=now + timedelta(minutes=5),
            **support,
        )

    def _on_job_dropped(self, event: JobEvent) -> None:
        """Count run jobs APScheduler did not start (still running, or missed the grace time)."""
        name, _, kind = str(event.job_id).rpartition(":")
        if name and kind in {"incremental", "full"}:
            reason = "running" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
            self.metrics.skip(name, mode=kind, reason=reason)

    def _add_run_jobs(self, inst: Installation) -> None:
        assert inst.settings is not None
        schedule = inst.settings.schedule
        kinds: tuple[JobKind, ...] = ("incremental", "full")
        for kind in kinds:
            expr = getattr(schedule, kind)
            if expr is None:
                continue
            trigger = build_trigger(expr, schedule.timezone)
            inst.triggers[kind] = trigger
            self.scheduler.add_job(
                self.run_job,
                trigger,
                args=(inst, kind),
                id=f"{inst.name}:{kind}",
                name=f"{kind} sync of {inst.name}",
                replace_existing=True,
                **JOB_DEFAULTS,
            )

    # -- opening installations, health and retention --------------------------------------------

    def open_pending(self) -> None:
        """Load configurations and open vaults and state stores that are not open yet."""
        for inst in self.installations:
            if inst.runtime is not None or self._stop.is_set():
                continue
            if inst.settings is None:
                if inst.load(self.installations, self.readiness, self.metrics) is not None:
                    continue
                self._add_run_jobs(inst)
            with structlog.contextvars.bound_contextvars(instance=inst.name):
                inst.open(self.readiness, self.metrics)

    def check_health(self) -> None:
        """Probe each open installation's state store and judge its last runs."""
        for inst in self.installations:
            if inst.runtime is not None:
                inst.refresh(self.readiness, self.metrics)

    def sweep(self) -> None:
        """The daily retention sweep: expired run records and approvals, old log files."""
        for inst in self.installations:
            with structlog.contextvars.bound_contextvars(instance=inst.name):
                inst.sweep()

    # -- the run job ----------------------------------------------------------------------------

    def run_job(self, inst: Installation, kind: JobKind) -> str:
        """One scheduled job; returns what happened (``success``, ``skipped:lease_held``, ...)."""
        trigger = inst.triggers.get(kind)
        slot = trigger.slot_at(datetime.now(UTC)) if trigger is not None else None
        with structlog.contextvars.bound_contextvars(instance=inst.name, job=kind):
            if self._stop.is_set():
                return self._skip(inst, kind, "stopping")
            if inst.runtime is None:
                # Opening (vault, state) may outlast the first interval on a slow start; its
                # slot waits for the first attempt rather than being skipped.
                while not inst.open_attempted.wait(0.25) and not self._stop.is_set():
                    pass
            rt = inst.runtime
            if rt is None:
                return self._skip(inst, kind, "stopping" if self._stop.is_set() else "not_ready")
            if not self._lock(inst, kind):
                return self._skip(inst, kind, "stopping" if self._stop.is_set() else "busy")
            with self._active_cond:
                self._active += 1
            try:
                return self._with_lease(inst, rt, kind, slot)
            finally:
                inst.run_lock.release()
                with self._active_cond:
                    self._active -= 1
                    self._active_cond.notify_all()

    def _lock(self, inst: Installation, kind: JobKind) -> bool:
        """The in-process lock of an installation: an incremental job never waits, a full one does.

        The full job waits until the lock is free or the daemon stops; while it waits, incremental
        jobs skip, so that a stream of short incremental runs cannot keep the daily full run out.
        """
        if kind == "incremental":
            return not inst.full_waiting.is_set() and inst.run_lock.acquire(blocking=False)
        inst.full_waiting.set()
        try:
            while not self._stop.is_set():
                if inst.run_lock.acquire(timeout=0.25):
                    return True
            return False
        finally:
            inst.full_waiting.clear()

    def _with_lease(self, inst: Installation, rt: Runtime, kind: JobKind, slot: datetime | None) -> str:
        try:
            with LeaseKeeper(rt, holder_name(), wait_s=0) as keeper:
                inst.keeper = keeper
                self.metrics.lease_held.labels(inst.name).set(1)
                try:
                    if slot is not None and inst.slot_done(kind, slot):
                        return self._skip(inst, kind, "slot_done", slot=slot.isoformat())
                    return self._sync(inst, rt, kind, keeper, slot)
                finally:
                    inst.keeper = None
                    self.metrics.lease_held.labels(inst.name).set(0)
        except LeaseHeldError:
            return self._skip(inst, kind, "lease_held", holder=inst.holder())
        except Exception as exc:  # the state store failed while taking the lease
            self.readiness.set(inst.name, "state", False, describe_error(exc))
            return self._skip(inst, kind, "state_error", error_type=type(exc).__name__)

    def _sync(
        self, inst: Installation, rt: Runtime, kind: JobKind, keeper: LeaseKeeper, slot: datetime | None
    ) -> str:
        t0 = time.monotonic()
        _log.info(
            "run_started", mode=kind, slot=slot.isoformat() if slot else None, fence=keeper.current().fence
        )
        options = RunOptions(
            apply=True, full=kind == "full", trigger="schedule", should_stop=self.should_stop
        )
        try:
            result = self.runner(rt, options, lease=keeper)
        except Exception as exc:  # a failed run must not stop the daemon
            duration = time.monotonic() - t0
            error = describe_error(exc)
            _log.error(
                "run_failed",
                mode=kind,
                error_type=type(exc).__name__,
                error=error,
                duration_s=round(duration, 2),
                exc_info=not isinstance(exc, ImporterError),
            )
            self.metrics.observe_run(
                inst.name,
                mode=kind,
                outcome="failed",
                duration_s=duration,
                throttled_waits=rt.stats.throttled_waits,
                waited_s=rt.stats.waited_s,
            )
            inst.refresh(self.readiness, self.metrics)
            return "failed"
        self.metrics.observe_run(
            inst.name,
            mode=result.plan.mode,
            outcome=result.outcome,
            duration_s=result.duration_s,
            applied=result.applied,
            throttled_waits=rt.stats.throttled_waits,
            waited_s=rt.stats.waited_s,
        )
        inst.refresh(self.readiness, self.metrics)
        return result.outcome

    def _skip(self, inst: Installation, kind: JobKind, reason: str, **fields: Any) -> str:
        _log.info("job_skipped", mode=kind, reason=reason, **fields)
        self.metrics.skip(inst.name, mode=kind, reason=reason)
        return f"skipped:{reason}"
