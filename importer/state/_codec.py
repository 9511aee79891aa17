"""Encoding shared by the backends: instants, epoch numbers, JSON maps, and key checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

__all__ = [
    "Clock",
    "check_name",
    "dump_counts",
    "dump_strs",
    "epoch_s",
    "epoch_us",
    "from_epoch_us",
    "from_iso",
    "load_counts",
    "load_ints",
    "load_strs",
    "now_from",
    "to_iso",
    "utc_now",
]

Clock = Callable[[], datetime]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def utc_now() -> datetime:
    """The default clock: now, in UTC."""
    return datetime.now(UTC)


def now_from(clock: Clock) -> datetime:
    """Call ``clock`` and insist on an aware datetime."""
    now = clock()
    if now.utcoffset() is None:
        raise ValueError("the state store clock must return timezone-aware datetimes")
    return now


def to_iso(value: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order (``2025-01-31T12:00:00.000000Z``)."""
    if value.utcoffset() is None:
        raise ValueError("naive datetimes cannot be stored")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str) -> datetime:
    """Parse what ``to_iso`` wrote, as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def epoch_us(value: datetime) -> int:
    """Microseconds since the Unix epoch: exact, and comparable inside a database."""
    return (value - _EPOCH) // _MICRO


def from_epoch_us(value: int) -> datetime:
    """The inverse of ``epoch_us``."""
    return _EPOCH + value * _MICRO


def epoch_s(value: datetime) -> int:
    """Whole seconds since the Unix epoch (what DynamoDB TTL reads)."""
    return epoch_us(value) // 1_000_000


def check_name(kind: str, value: str) -> str:
    """Reject names that would be ambiguous inside a composite key (``#`` separates key parts)."""
    if not value or "#" in value:
        raise ValueError(f"{kind} must be non-empty and must not contain '#': {value!r}")
    return value


def dump_counts(counts: Mapping[str, Mapping[str, int]]) -> str:
    """Serialise type -> action -> n as compact, sorted JSON."""
    return json.dumps({k: dict(v) for k, v in counts.items()}, sort_keys=True, separators=(",", ":"))


def load_counts(text: str) -> dict[str, dict[str, int]]:
    """Parse what ``dump_counts`` wrote."""
    raw = json.loads(text)
    return {str(k): {str(a): int(n) for a, n in v.items()} for k, v in raw.items()}


def dump_strs(values: Mapping[str, str] | Mapping[str, int]) -> str:
    """Serialise a flat map as compact, sorted JSON."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"))


def load_ints(text: str) -> dict[str, int]:
    """Parse a flat name -> int map."""
    return {str(k): int(v) for k, v in json.loads(text).items()}


def load_strs(text: str) -> dict[str, str]:
    """Parse a flat name -> str map."""
    return {str(k): str(v) for k, v in json.loads(text).items()}
