"""Records of the simulated Assets workspace, the API error type, and value codecs.

A stored attribute value is always a canonical string: Text as sent, Integer ``"42"``, Double
``repr(float)`` (``"3.0"``), Boolean ``"true"``/``"false"``, Date ``YYYY-MM-DD``, DateTime
``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC), Time ``HH:MM[:SS]``, a Reference the referenced object's id,
a User the accountId, a Status the status id. Input coercion follows the reference notes: values
arrive as strings (numbers and booleans are tolerated and turned into strings).
"""

from __future__ import annotations

import ipaddress
import math
import re
import time as time_module
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_TYPE_NAMES",
    "KIND_DEFAULT",
    "KIND_REFERENCE",
    "KIND_STATUS",
    "KIND_USER",
    "MAX_TEXT_LENGTH",
    "ApiFailure",
    "AttrRec",
    "IconRec",
    "ObjRec",
    "RefTypeRec",
    "SchemaRec",
    "StatusRec",
    "TypeRec",
    "as_bool",
    "as_int",
    "display_value",
    "iso_ms",
    "normalize_default_value",
]

KIND_DEFAULT, KIND_REFERENCE, KIND_USER, KIND_STATUS = 0, 1, 2, 7
DEFAULT_TYPE_NAMES = {
    0: "Text",
    1: "Integer",
    2: "Boolean",
    3: "Double",
    4: "Date",
    5: "Time",
    6: "DateTime",
    7: "Url",
    8: "Email",
    9: "Textarea",
    10: "Select",
    11: "IP Address",
}
MAX_TEXT_LENGTH = 255
_INT_RE = re.compile(r"[+-]?\d+")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?")


class ApiFailure(Exception):
    """An API error answer: status, ``errorMessages`` and ``errors`` (the ``Errors`` schema)."""

    def __init__(self, status: int, message: str | None = None, *, errors: dict[str, str] | None = None):
        super().__init__(message or f"HTTP {status}")
        self.status = status
        self.messages = [message] if message else []
        self.errors = dict(errors or {})

    def body(self) -> dict[str, Any]:
        """The JSON body Assets sends with this error."""
        return {"errorMessages": list(self.messages), "errors": dict(self.errors)}


@dataclass(slots=True, kw_only=True)
class SchemaRec:
    """An object schema."""

    id: int
    name: str
    key: str
    description: str
    created_ms: int
    updated_ms: int


@dataclass(slots=True, kw_only=True)
class TypeRec:
    """An object type."""

    id: int
    schema_id: int
    name: str
    description: str
    icon_id: str
    position: int
    created_ms: int
    updated_ms: int
    parent_id: int | None = None
    inherited: bool = False
    abstract: bool = False


@dataclass(slots=True, kw_only=True)
class AttrRec:
    """An object type attribute; ``kind`` is the API's ``type`` (0 default, 1 ref, 2 user, 7 status)."""

    id: int
    type_id: int
    name: str
    kind: int
    default_type: int = -1  # meaningful for kind 0 only
    label: bool = False
    system: bool = False
    ref_object_type_id: int | None = None  # kind 1: the referenced object type
    ref_kind_id: int | None = None  # kind 1: the reference type (``additionalValue``)
    additional_value: str = ""
    min_card: int = 0
    max_card: int = 1
    unique: bool = False
    options: list[str] = field(default_factory=list)
    position: int = 0
    description: str = ""
    hidden: bool = False
    include_children: bool = False
    regex: str = ""
    suffix: str = ""
    summable: bool = False
    type_value_multi: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class ObjRec:
    """An object; ``values`` maps attribute id to canonical value strings (system values excluded)."""

    id: int
    type_id: int
    created_ms: int
    updated_ms: int
    values: dict[int, list[str]] = field(default_factory=dict)
    value_ids: dict[int, int] = field(default_factory=dict)  # attribute id -> object attribute id


@dataclass(slots=True, kw_only=True)
class StatusRec:
    """A status type; ``schema_id`` None = global."""

    id: int
    name: str
    category: int
    description: str = ""
    schema_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefTypeRec:
    """A reference type (the ``additionalValue`` of a reference attribute)."""

    id: int
    name: str
    description: str
    color: str
    schema_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IconRec:
    """A global icon."""

    id: str
    name: str


def iso_ms(epoch_ms: int) -> str:
    """``2021-02-16T20:04:41.527Z`` from epoch milliseconds."""
    t = time_module.gmtime(epoch_ms // 1000)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        f".{epoch_ms % 1000:03d}Z"
    )


def as_int(value: object, what: str) -> int:
    """An id or count sent as an int or a numeric string (the spec's example sends strings)."""
    if isinstance(value, bool):
        raise ApiFailure(400, f"{what} must be a number", errors={what: "must be a number"})
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    raise ApiFailure(400, f"{what} must be a number", errors={what: "must be a number"})


def as_bool(value: object, what: str) -> bool:
    """A boolean sent as JSON true/false or the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ApiFailure(400, f"{what} must be a boolean", errors={what: "must be a boolean"})


def normalize_default_value(attr: AttrRec, raw: str) -> str:
    """Validate ``raw`` for a default-kind attribute; return the stored form or raise ValueError."""
    kind = attr.default_type
    text = raw.strip() if kind not in (0, 9) else raw
    if kind == 0:
        if len(raw) > MAX_TEXT_LENGTH:
            raise ValueError(f"Text values are limited to {MAX_TEXT_LENGTH} characters (got {len(raw)})")
        if attr.regex and not re.fullmatch(attr.regex, raw):
            raise ValueError("The value does not match the attribute's regular expression")
        return raw
    if kind == 9:
        return raw
    if kind == 1:
        if not _INT_RE.fullmatch(text) or not -(2**31) <= int(text) < 2**31:
            raise ValueError(f"'{raw}' is not a valid Integer")
        return str(int(text))
    if kind == 2:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"'{raw}' is not a valid Boolean (use true or false)")
        return text.lower()
    if kind == 3:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"'{raw}' is not a valid Double") from None
        if not math.isfinite(number):
            raise ValueError(f"'{raw}' is not a valid Double")
        return repr(number)
    if kind == 4:
        try:
            if not _DATE_RE.fullmatch(text):
                raise ValueError(text)
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError(f"'{raw}' is not a valid Date (use YYYY-MM-DD)") from None
    if kind == 5:
        if not _TIME_RE.fullmatch(text):
            raise ValueError(f"'{raw}' is not a valid Time (use HH:MM or HH:MM:SS)")
        return time.fromisoformat(text).isoformat(timespec="seconds" if text.count(":") == 2 else "minutes")
    if kind == 6:
        return _normalize_datetime(raw, text)
    if kind == 7:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or " " in text:
            raise ValueError(f"'{raw}' is not a valid URL")
        return text
    if kind == 8:
        if not _EMAIL_RE.fullmatch(text):
            raise ValueError(f"'{raw}' is not a valid Email address")
        return text
    if kind == 10:
        for option in attr.options:
            if option.lower() == text.lower():
                return option
        raise ValueError(f"'{raw}' is not one of the options: {', '.join(attr.options)}")
    if kind == 11:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError(f"'{raw}' is not a valid IP address") from None
    raise ValueError(f"Unsupported attribute type {kind}")


def _normalize_datetime(raw: str, text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{raw}' is not a valid DateTime (use ISO 8601)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # no offset: read as UTC (documented sandbox choice)
    return iso_ms(round(moment.timestamp() * 1000))


def display_value(attr: AttrRec, stored: str) -> str:
    """The ``displayValue`` Assets shows for a default-kind value (dates in Jira's short format)."""
    if attr.default_type == 6:  # stored as YYYY-MM-DDTHH:MM:SS.mmmZ
        hour = int(stored[11:13])
        clock = f"{(hour - 1) % 12 + 1}:{stored[14:16]} {'AM' if hour < 12 else 'PM'}"
        return f"{stored[8:10]}/{_MONTHS[int(stored[5:7]) - 1]}/{stored[2:4]} {clock}"
    if attr.default_type == 4:  # stored as YYYY-MM-DD
        return f"{stored[8:10]}/{_MONTHS[int(stored[5:7]) - 1]}/{stored[2:4]}"
    return stored
