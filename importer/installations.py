"""One installation inside the daemon: its configuration file, what has been opened, its checks.

The daemon runs one ``Installation`` per configuration file. Each step reports to the shared
``Readiness`` (``/readyz``) and ``DaemonMetrics``:

- ``load``: read and validate the file (check ``config``); the instance name must be unique;
- ``open``: decrypt the vault (check ``vault``), open and initialise the state store (check
  ``state``), wire the runtime and count its HTTP attempts;
- ``refresh``: probe the state store and judge the last runs (checks ``state`` and ``runs``);
- ``sweep``: the daily retention sweep of state records and log files.

It also answers the questions a run job asks the state store: who holds the lease, and whether
a slot already ran. It records no runs: sync records each run itself, a run that raises as
``failed``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from importer.config import Settings, load_settings
from importer.errors import ConfigError, ImporterError
from importer.logs import scrub_text, sweep_logs
from importer.runtime import open_runtime, open_state, open_vault

if TYPE_CHECKING:
    from importer.health import Readiness
    from importer.metrics import DaemonMetrics
    from importer.runtime import Runtime
    from importer.schedule import SlotTrigger
    from importer.state import StateStore
    from importer.sync import LeaseKeeper

__all__ = ["Installation", "describe_error", "find_configs"]

_log = structlog.get_logger("importer.daemon")


def find_configs(directory: Path) -> list[Path]:
    """Every ``*.yaml`` (and ``*.yml``) file in ``directory``, sorted; one installation each."""
    if not directory.is_dir():
        raise ConfigError(f"--config-dir {directory}: not a directory")
    found = sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
    if not found:
        raise ConfigError(f"--config-dir {directory}: no *.yaml configuration file in it")
    return found


def describe_error(exc: BaseException) -> str:
    """An exception as one scrubbed line (importer errors are already written for people)."""
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, ImporterError):
        text = f"{type(exc).__name__}: {text}"
    return scrub_text(" ".join(text.split()))[:500]


@dataclass(eq=False)
class Installation:
    """One configuration file inside the daemon, and what has been opened for it.

    ``name`` is the file name until the file loads, then the configured ``instance``.
    """

    path: Path
    name: str
    settings: Settings | None = None
    runtime: Runtime | None = None
    triggers: dict[str, SlotTrigger] = field(default_factory=dict)
    run_lock: threading.Lock = field(default_factory=threading.Lock)
    full_waiting: threading.Event = field(default_factory=threading.Event)  # a full job waits for run_lock
    # Set once the first attempt to open has ended (opened or not): a job that fires while the
    # daemon is still opening waits for it instead of skipping its slot as not_ready.
    open_attempted: threading.Event = field(default_factory=threading.Event)
    keeper: LeaseKeeper | None = None  # the lease of the run in progress, if any

    def load(
        self, others: Iterable[Installation], readiness: Readiness, metrics: DaemonMetrics
    ) -> ConfigError | None:
        """Read and validate the file; return the problem instead of raising it."""
        try:
            settings = load_settings(self.path)
        except ConfigError as exc:
            readiness.set(self.name, "config", False, str(exc))
            _log.error("config_invalid", path=str(self.path), problems=len(exc.problems), error=str(exc))
            return exc
        twin = next((i for i in others if i is not self and i.name == settings.instance), None)
        if twin is not None:
            err = ConfigError(
                f"instance {settings.instance!r} is also configured in {twin.path}", source=str(self.path)
            )
            readiness.set(self.name, "config", False, str(err))
            _log.error("config_invalid", path=str(self.path), error=str(err))
            return err
        readiness.rename(self.name, settings.instance)
        self.name, self.settings = settings.instance, settings
        readiness.set(self.name, "config", True)
        metrics.add_instance(self.name)
        return None

    def open(self, readiness: Readiness, metrics: DaemonMetrics) -> None:
        """Decrypt the vault, open the state store and wire the runtime (each step a check)."""
        try:
            self._open(readiness, metrics)
        finally:
            self.open_attempted.set()

    def _open(self, readiness: Readiness, metrics: DaemonMetrics) -> None:
        settings = self.settings
        assert settings is not None
        try:
            vault = open_vault(settings)
        except Exception as exc:  # every reason is reported the same way
            return self._not_open(readiness, metrics, "vault", exc)
        readiness.set(self.name, "vault", True)
        store: StateStore = open_state(settings)
        try:
            store.init()
        except Exception as exc:
            store.close()
            return self._not_open(readiness, metrics, "state", exc)
        readiness.set(self.name, "state", True)
        try:
            rt = open_runtime(settings, vault=vault, state=store)
        except ImporterError as exc:  # a secret the config names is missing, or no log pepper
            store.close()
            return self._not_open(readiness, metrics, "vault", exc)
        except Exception as exc:
            store.close()
            return self._not_open(readiness, metrics, "state", exc)
        rt.stats.observers.append(metrics.http_observer(self.name))
        self.runtime = rt
        _log.info("installation_opened", backend=settings.state.backend)
        self.refresh(readiness, metrics)
        return None

    def _not_open(self, readiness: Readiness, metrics: DaemonMetrics, check: str, exc: BaseException) -> None:
        error = describe_error(exc)
        readiness.set(self.name, check, False, error)
        metrics.ready.labels(self.name).set(0)
        _log.error(f"{check}_unavailable", error_type=type(exc).__name__, error=error)

    def refresh(self, readiness: Readiness, metrics: DaemonMetrics) -> None:
        """Probe the state store and judge the newest runs (``/readyz``, ``importer_ready``)."""
        rt = self.runtime
        assert rt is not None
        try:
            runs = rt.state.list_runs(limit=readiness.failures_allowed)
        except Exception as exc:
            readiness.set(self.name, "state", False, describe_error(exc))
        else:
            readiness.set(self.name, "state", True)
            readiness.set_runs(self.name, [r.outcome for r in runs], runs[0].error if runs else None)
        metrics.ready.labels(self.name).set(1 if readiness.is_ready(self.name) else 0)

    def sweep(self) -> None:
        """Delete expired run records and approvals, and log files past retention."""
        rt = self.runtime
        if rt is None:
            return
        try:
            records = rt.state.sweep()
            files = sweep_logs(rt.settings.logging.dir, rt.settings.logging.retention_days)
        except Exception as exc:  # tomorrow's sweep tries again
            _log.warning("retention_sweep_failed", error_type=type(exc).__name__)
            return
        _log.info("retention_swept", records=records, log_files=len(files))

    def close(self) -> None:
        """Close the runtime's connections and state store."""
        if self.runtime is not None:
            try:
                self.runtime.close()
            except Exception as exc:  # closing must not hide the exit
                _log.warning("close_failed", error_type=type(exc).__name__)

    # -- what a run job asks the state store --------------------------------------------------

    def holder(self) -> str:
        """Who holds the lease (``host:pid``), or ``unknown``."""
        if self.runtime is None:
            return "unknown"
        try:
            return self.runtime.state.lease_info().owner or "unknown"
        except Exception:
            return "unknown"

    def slot_done(self, kind: str, slot: datetime) -> bool:
        """Whether a scheduled run of this slot already happened on any host (call under the lease).

        A full run also counts for an incremental slot; an interrupted run counts for none.
        """
        assert self.runtime is not None
        try:
            runs = self.runtime.state.list_runs(limit=10)
        except Exception:  # cannot tell: run (we hold the lease, so it is safe)
            return False
        return any(
            r.trigger == "schedule"
            and r.outcome != "interrupted"
            and r.started_at >= slot
            and (kind == "incremental" or r.mode == "full")
            for r in runs
        )
