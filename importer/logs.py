"""Logging: structlog configured once, every event anonymized before any renderer sees it.

Processor chain (structlog events and stdlib loggers such as urllib3, msal, apscheduler and
botocore alike)::

    merge_contextvars → level, logger, UTC timestamp → exception text → Anonymize → renderer

``Anonymize`` replaces the values of personal keys (upn, mail, name, owner, ...) with keyed
pseudonyms, redacts secret keys and every value the vault decrypted, and scrubs free text
(messages, exceptions, URLs): e-mail addresses and UPNs, GUIDs, IP addresses, bearer tokens
and JWTs are replaced, query strings dropped, control characters and bidi overrides escaped so
a name cannot forge a log line. Output: a console renderer on a terminal or JSON lines on
stderr, plus one JSON-lines file per UTC day under ``logging.dir`` (mode 0600), deleted after
``logging.retention_days``. A full disk or read-only log directory never stops a sync: the
file handler falls back to stderr and counts the failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

if TYPE_CHECKING:
    from importer.config import LoggingConfig

__all__ = [
    "PERSONAL_KEYS",
    "SECRET_KEYS",
    "Anonymize",
    "DailyFileHandler",
    "configure_logging",
    "log_write_failures",
    "register_secret",
    "registered_secrets",
    "scrub_text",
    "set_pseudonymizer",
    "sweep_logs",
]

PERSONAL_KEYS = frozenset({
    "upn", "mail", "email", "name", "display_name", "displayname", "given_name", "surname", "user",
    "owner", "employee_id", "ip", "user_id", "source_id", "person", "user_principal_name", "label",
    "account_id", "who",
})  # fmt: skip
SECRET_KEYS = frozenset({
    "token", "secret", "password", "authorization", "api_token", "client_secret", "access_token",
    "passphrase", "cookie", "pepper", "private_key", "assertion", "client_assertion",
})  # fmt: skip
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_key_material")

_secrets: set[str] = set()
_lock = threading.Lock()
_pseudonymizer: _Pseudonymizer | None = None
_failures = {"count": 0}


class _Pseudonymizer(Protocol):
    def pseudonym(self, value: str, *, kind: str = "") -> str: ...


def register_secret(value: str) -> None:
    """Remember a decrypted secret so that every log line has it redacted."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def registered_secrets() -> frozenset[str]:
    """Every secret value registered so far."""
    with _lock:
        return frozenset(_secrets)


def set_pseudonymizer(pseudonymizer: _Pseudonymizer | None) -> None:
    """Install the keyed pseudonymizer (built from the vault's pepper) used for personal values."""
    global _pseudonymizer  # noqa: PLW0603 - one process-wide logging configuration
    _pseudonymizer = pseudonymizer


def log_write_failures() -> int:
    """How many log records could not be written to the log directory (fell back to stderr)."""
    return _failures["count"]


def _pid(value: str, kind: str = "") -> str:
    if _pseudonymizer is None:
        return "pid:unkeyed"  # before the vault is open there is no pepper: drop the value
    return _pseudonymizer.pseudonym(value, kind=kind)


_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-'#]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_GUID = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])"
)
_REQUEST_ID = re.compile(r"(?i)(request[-_ ]id|correlation[-_ ]id|trace[-_ ]id)([\"':= ]+)$")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])")
_URL_QUERY = re.compile(r"(https?://[^\s?#\"']+)\?[^\s\"'#]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LOCAL_HOSTS = frozenset({"127.0.0.1", "0.0.0.0"})  # noqa: S104 - a literal to keep, not a bind address


def scrub_text(text: str) -> str:
    """Remove secrets and personal values from free text (messages, exceptions, URLs)."""
    for value in sorted(registered_secrets(), key=len, reverse=True):
        if value in text:
            text = text.replace(value, "[redacted]")
    text = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", text)
    text = _JWT.sub("[redacted-jwt]", text)
    text = _URL_QUERY.sub(r"\1?[query removed]", text)
    text = _EMAIL.sub(lambda m: _pid(m.group(0), "person"), text)

    def guid(m: re.Match[str]) -> str:
        if _REQUEST_ID.search(text[max(0, m.start() - 20) : m.start()]):
            return m.group(0)  # request and correlation ids are what support needs; they name no one
        return _pid(m.group(0).lower(), "id")

    text = _GUID.sub(guid, text)
    text = _IPV4.sub(lambda m: m.group(0) if m.group(0) in _LOCAL_HOSTS else _pid(m.group(0), "ip"), text)
    text = _IPV6.sub(lambda m: _pid(m.group(0), "ip"), text)
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


class Anonymize:
    """Replace personal values with keyed pseudonyms, redact secrets, scrub free text."""

    def __call__(
        self, logger: object, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            if key.startswith("_"):
                continue  # structlog's own bookkeeping (_record, _from_structlog)
            event[key] = self._value(key.lower(), event[key])
        return event

    def _value(self, key: str, value: Any) -> Any:
        if key in SECRET_KEYS or key.endswith(_SECRET_SUFFIXES):
            return "[redacted]"
        if key in PERSONAL_KEYS:
            return _personal(value)
        return _scrub(value)


def _personal(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_personal(v) for v in value]
    return _pid(str(value), "person")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {str(k): Anonymize()._value(str(k).lower(), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub_text(str(value))


_FILE_RE = re.compile(r"^importer-(\d{4}-\d{2}-\d{2})\.jsonl$")


class DailyFileHandler(logging.Handler):
    """JSON lines into ``importer-YYYY-MM-DD.jsonl`` (UTC day), files created 0600.

    Writing never raises: on OSError (disk full, read-only directory) the record goes to stderr
    and ``log_write_failures()`` counts it.
    """

    def __init__(self, directory: Path, *, clock: Any = None) -> None:
        super().__init__()
        self.directory = directory
        self._clock = clock or (lambda: datetime.now(UTC))
        self._day: str | None = None
        self._stream: Any = None

    def _open(self, day: str) -> Any:
        if self._stream is not None:
            self._stream.close()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"importer-{day}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._day = day
        self._stream = os.fdopen(fd, "a", encoding="utf-8")
        return self._stream

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        day = self._clock().strftime("%Y-%m-%d")
        try:
            with self.lock or threading.Lock():
                stream = self._stream if day == self._day and self._stream is not None else self._open(day)
                stream.write(line + "\n")
                stream.flush()
        except OSError:
            _failures["count"] += 1
            self._day = None
            self._stream = None
            with contextlib.suppress(OSError):
                sys.stderr.write(line + "\n")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def sweep_logs(directory: Path, retention_days: int, *, now: datetime | None = None) -> list[Path]:
    """Delete log files older than ``retention_days`` (by the day in their name); return them."""
    now = now or datetime.now(UTC)
    cutoff = (now - timedelta(days=retention_days)).date()
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _FILE_RE.match(path.name)
        if not match:
            continue
        try:
            day = datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=UTC).date()
        except ValueError:
            continue
        if day < cutoff:
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                continue
    return removed


_configured: list[logging.Handler] = []


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Anonymize(),
    ]


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
    console_handler = logging.StreamHandler(stream)
    console_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    _configured.append(console_handler)
    if config is not None:
        sweep_logs(config.dir, config.retention_days)
        file_handler = DailyFileHandler(config.dir)
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
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
