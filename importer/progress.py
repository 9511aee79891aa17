"""Progress of long runs: a rich progress bar on a terminal, a log line per 1,000 operations otherwise."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import structlog

__all__ = ["LogProgress", "RichProgress", "open_progress"]

_log = structlog.get_logger("importer.progress")


class LogProgress:
    """One structured log line per ``every`` operations and at the end of each phase."""

    def __init__(self, every: int = 1000) -> None:
        self.every = every
        self.phase = ""
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()

    def start(self, phase: str, total: int) -> None:
        """Begin a phase."""
        self._finish_phase()
        with self._lock:
            self.phase, self.total, self.done = phase, total, 0
        _log.info("phase_started", phase=phase, total=total)

    def advance(self, done: int = 1) -> None:
        """Count finished operations."""
        with self._lock:
            before = self.done
            self.done += done
            crossed = before // self.every != self.done // self.every
            snapshot = (self.phase, self.done, self.total)
        if crossed:
            _log.info("progress_reported", phase=snapshot[0], done=snapshot[1], total=snapshot[2])

    def _finish_phase(self) -> None:
        if self.phase:
            _log.info("phase_finished", phase=self.phase, done=self.done, total=self.total)

    def close(self) -> None:
        """End the last phase."""
        self._finish_phase()
        self.phase = ""


class RichProgress:
    """A rich progress bar per phase (on stderr)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: object | None = None
        self._lock = threading.Lock()

    def start(self, phase: str, total: int) -> None:
        """Begin a phase with a new bar."""
        with self._lock:
            if self._task is None:
                self._progress.start()
            self._task = self._progress.add_task(phase, total=total)

    def advance(self, done: int = 1) -> None:
        """Move the current bar."""
        with self._lock:
            if self._task is not None:
                self._progress.advance(self._task, done)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop drawing."""
        if self._task is not None:
            self._progress.stop()


@contextlib.contextmanager
def open_progress(*, tty: bool) -> Iterator[LogProgress | RichProgress]:
    """The right progress reporter for where the output goes."""
    progress: LogProgress | RichProgress = RichProgress() if tty else LogProgress()
    try:
        yield progress
    finally:
        progress.close()
