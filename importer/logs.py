"""Logging: structlog configured once, every event anonymized before any renderer sees it.

Processor chain (structlog events and stdlib loggers such as urllib3, msal, apscheduler and
botocore alike)::

    merge_contextvars → level, logger, UTC timestamp → exception text → Anonymize → renderer

``Anonymize`` works per key. A secret key (token, secret, password, authorization, api_token,
client_secret... and any ``*_token``/``*_secret``/``*_password``) becomes ``[redacted]``. A
personal key (upn, mail, email, name, display_name, given_name, surname, user, owner,
employee_id, ip, source_id, user_id, label...; ``displayName``, ``Display Name`` and ``_upn``
count too) becomes ``pid:`` + keyed HMAC: exactly what ``importer privacy pseudonym`` prints for
that value. Only structlog's own ``_record`` and ``_from_structlog`` are passed by. Every other value
is free text for ``scrub_text``: the values the vault decrypted, URL credentials, bearer/basic
tokens and JWTs are redacted; query strings dropped; e-mail addresses and UPNs (``#EXT#``
guests, ``%40``-encoded, non-ASCII), GUIDs, MAC and IP addresses pseudonymized; control
characters and bidi overrides escaped, so a name can neither forge a log line nor reorder one
on screen. Request and correlation ids are kept (they name no one; support needs them). The
processor never raises: an event it cannot handle becomes ``log_event_withheld``.

Output: a console renderer on a terminal or JSON lines on stderr, plus one JSON-lines file per
UTC day under ``logging.dir`` (``importer-YYYY-MM-DD.jsonl``, mode 0600). A day's file is
deleted once its first line could be ``logging.retention_days`` old: at start, at every day
rollover, and by the daemon's daily sweep. A full disk or read-only log directory never stops
a sync: the line goes to stderr and ``log_write_failures()`` counts it. Uncaught exceptions are
printed scrubbed too (``sys.excepthook``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from importer.anonymize import (
    PERSONAL_KEYS,
    SECRET_KEYS,
    Anonymize,
    register_secret,
    registered_secrets,
    scrub_text,
    set_pseudonymizer,
)

if TYPE_CHECKING:
    from importer.config import LoggingConfig

__all__ = [
    "PERSONAL_KEYS",
    "SECRET_KEYS",
    "Anonymize",
    "DailyFileHandler",
    "configure_logging",
    "iter_log_lines",
    "log_write_failures",
    "register_secret",
    "registered_secrets",
    "scrub_text",
    "set_pseudonymizer",
    "sweep_logs",
]

_failures = {"count": 0}
_failure_lock = threading.Lock()


def log_write_failures() -> int:
    """How many log records could not be written to the log directory (fell back to stderr)."""
    return _failures["count"]


def _count_failure() -> None:
    with _failure_lock:
        _failures["count"] += 1


# -- files and retention ------------------------------------------------------------------------

_FILE_RE = re.compile(r"^importer-(\d{4}-\d{2}-\d{2})\.jsonl$")
_RETRY_S = 30.0  # a full disk or read-only directory is tried again this often, not at every line


class DailyFileHandler(logging.Handler):
    """JSON lines into ``importer-YYYY-MM-DD.jsonl`` (UTC day), files 0600 in a 0700 directory.

    At the first line of each day, files past ``retention_days`` are swept. Writing never
    raises: when a line cannot be written (disk full, read-only directory, a formatting bug) it
    goes to stderr instead and ``log_write_failures()`` counts it; the directory is tried again
    ``retry_s`` seconds later, not at every line.
    """

    def __init__(
        self,
        directory: Path,
        *,
        retention_days: int | None = None,
        clock: Callable[[], datetime] | None = None,
        retry_s: float = _RETRY_S,
    ) -> None:
        super().__init__()
        self.retry_s = retry_s
        self.directory = directory
        self.retention_days = retention_days
        self._clock = clock or (lambda: datetime.now(UTC))
        self._day: str | None = None
        self._fd: int | None = None
        self._retry_at = 0.0  # after a failure, lines go to stderr until then (monotonic)

    def _open(self, day: str) -> int:
        self._close_fd()
        if self.retention_days is not None:
            sweep_logs(self.directory, self.retention_days, now=self._clock())
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / f"importer-{day}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)  # an existing file keeps no wider mode
        self._fd, self._day = fd, day
        return fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._day = None, None

    def emit(self, record: logging.LogRecord) -> None:
        """Append one line (one ``write`` call, so processes sharing a file do not interleave)."""
        try:
            line = self.format(record)
        except Exception as exc:  # never the record's own text: it may hold values in clear
            _count_failure()
            line = json.dumps({"event": "log_event_withheld", "error_type": type(exc).__name__})
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(line + "\n")
            return
        data = (line + "\n").encode("utf-8", "replace")
        try:
            with self.lock or threading.RLock():
                if time.monotonic() < self._retry_at:
                    raise OSError("the log directory failed a moment ago")
                day = self._clock().strftime("%Y-%m-%d")
                fd = self._fd if day == self._day and self._fd is not None else self._open(day)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError:
            _count_failure()
            self._close_fd()
            self._retry_at = time.monotonic() + self.retry_s
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(line + "\n")

    def close(self) -> None:
        """Close the current file."""
        self._close_fd()
        super().close()


def sweep_logs(directory: Path, retention_days: int, *, now: datetime | None = None) -> list[Path]:
    """Delete the day files whose first line could be ``retention_days`` old; return them.

    A file is named after its UTC day, so ``importer-D.jsonl`` goes as soon as ``D 00:00 +
    retention_days`` has passed: no line is ever kept longer than that (plus the time until the
    next sweep). Errors are skipped: a sweep never stops a run.
    """
    now = now or datetime.now(UTC)
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _FILE_RE.match(path.name)
        if not match:
            continue
        try:
            day = datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            continue
        if day + timedelta(days=retention_days) <= now:
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                continue
    return removed


def iter_log_lines(directory: Path, containing: Iterable[str]) -> Iterator[tuple[str, int, Any]]:
    """Lines of the day files holding any of ``containing``: (file name, line number, parsed line)."""
    needles = [n for n in containing if n]
    if not needles or not directory.is_dir():
        return
    for path in sorted(p for p in directory.iterdir() if _FILE_RE.match(p.name)):
        try:
            handle = path.open(encoding="utf-8", errors="replace")
        except OSError:
            continue
        with handle:
            for number, line in enumerate(handle, 1):
                if any(n in line for n in needles):
                    try:
                        parsed: Any = json.loads(line)
                    except ValueError:
                        parsed = line.rstrip("\n")
                    yield path.name, number, parsed


# -- configuration ------------------------------------------------------------------------------


def _scrubbed_excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Print an uncaught exception's traceback scrubbed, like every log line."""
    text = "".join(traceback.format_exception(kind, exc, tb))
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(scrub_text(text, multiline=True))


def _scrubbed_thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    _scrubbed_excepthook(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Anonymize(),
    ]


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose error report never prints the record (it may hold values in clear)."""

    def handleError(self, record: logging.LogRecord) -> None:
        _count_failure()


_configured: list[logging.Handler] = []


def configure_logging(
    config: LoggingConfig | None = None,
    *,
    level: str | None = None,
    console_level: str | None = None,
    stream: Any = None,
    console: bool | None = None,
    noisy: Iterable[str] = ("urllib3", "msal", "botocore", "boto3", "s3transfer", "apscheduler"),
) -> None:
    """Configure structlog and stdlib logging once per process (calling again reconfigures).

    ``level`` overrides ``logging.level`` for both outputs; ``console_level`` sets the terminal's
    own threshold (interactive verbs show warnings only, the daemon shows info).
    """
    stream = stream or sys.stderr
    fmt = config.format if config else "auto"
    use_console = (
        console if console is not None else (fmt == "console" or (fmt == "auto" and stream.isatty()))
    )
    chosen = (level or (config.level if config else "info")).upper()
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    root = logging.getLogger()
    for handler in _configured:
        root.removeHandler(handler)
        handler.close()
    _configured.clear()
    console_handler = _StreamHandler(stream)
    console_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    _configured.append(console_handler)
    if config is not None:
        sweep_logs(config.dir, config.retention_days)
        file_handler = DailyFileHandler(config.dir, retention_days=config.retention_days)
        file_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=_shared(),
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )
        file_handler.setLevel(logging.DEBUG if chosen == "DEBUG" else logging.INFO)
        _configured.append(file_handler)
    console_handler.setLevel((console_level or chosen).upper())
    for handler in _configured:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if chosen == "DEBUG" else logging.INFO)
    for name in noisy:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings (urllib3's, say) go through the same chain
    # Uncaught exceptions are printed scrubbed too, unless someone else (a test runner) hooked in.
    if sys.excepthook in (sys.__excepthook__, _scrubbed_excepthook):
        sys.excepthook = _scrubbed_excepthook
    if threading.excepthook in (threading.__excepthook__, _scrubbed_thread_hook):
        threading.excepthook = _scrubbed_thread_hook
    structlog.configure(
        # filter_by_level first: an event below the level costs one check, not the whole chain
        # (anonymizing included) before stdlib logging drops it; e.g. request_finished per request.
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
