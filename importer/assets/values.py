"""One normalisation per attribute kind, used on both sides so planning compares like with like.

::

    desired (mapping)   python value ──normalize──►┐
                                                   ├─► NormValue  ──encode──► objectAttributeValues
    current (Assets)    objectAttributeValues ─decode─►┘

``NormValue`` is a scalar (``str``, ``int``, ``float``, ``bool``), ``None`` (no value) or, for a
multi-valued attribute, a sorted tuple without duplicates. The rules remove every difference
that is not a change: ``True`` vs ``"true"``, trailing spaces, NFD vs NFC, date formats and
time zones, the several shapes of a reference value. ``decode(encode(normalize(x)))`` equals
``normalize(x)`` for every kind (property-tested).

Text is limited to 255 characters in Assets; longer values are cut on a grapheme boundary
(``regex`` ``\\X``, so a flag or an accented letter is never split) and end with "…". The
limit is counted in UTF-16 code units, the stricter of the counts a server may apply. A caller
passes a ``Counter`` to learn how many values were cut per attribute (never the values).

``normalize`` never raises for a string given to a text kind (text, textarea, url, email,
select, group, user, reference, status); for a typed kind (integer, double, boolean, date,
time, datetime, ipaddress) an unconvertible value raises ``ValueError`` naming the attribute.
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import regex

from importer.assets.models import AssetsAttribute, AttributeKind, NormScalar, NormValue, as_id

__all__ = ["TEXT_LIMIT", "TRUNCATION_MARKER", "decode", "encode", "normalize", "truncate_text"]

TEXT_LIMIT = 255
TRUNCATION_MARKER = "…"
_GRAPHEME = regex.compile(r"\X")
_TRUE = frozenset({"true"})


class _Invalid(ValueError):
    """A reason written here, safe to show: it never contains the value."""


_FALSE = frozenset({"false"})


def _units(text: str) -> int:
    """Length in UTF-16 code units (what a Java server counts)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def truncate_text(text: str, limit: int = TEXT_LIMIT) -> tuple[str, bool]:
    """Cut ``text`` to ``limit`` UTF-16 units on a grapheme boundary, ending with "…".

    Returns the text and whether it was cut.
    """
    if _units(text) <= limit:
        return text, False
    budget = limit - _units(TRUNCATION_MARKER)
    kept: list[str] = []
    used = 0
    for match in _GRAPHEME.finditer(text):
        cluster = match.group()
        size = _units(cluster)
        if used + size > budget:
            break
        kept.append(cluster)
        used += size
    return "".join(kept).rstrip() + TRUNCATION_MARKER, True


# -- scalar normalisers: raw scalar -> NormScalar (None when empty) --------------------------------


def _clean_text(value: object) -> str | None:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, datetime | date | time):
        text = value.isoformat()
    else:
        text = str(value)
    text = unicodedata.normalize("NFC", text).rstrip()
    return text or None


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        raise _Invalid("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise _Invalid("not a whole number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            number = float(text)
            if not number.is_integer():
                raise _Invalid("not a whole number") from None
            return int(number)
    raise _Invalid(f"cannot read an integer from {type(value).__name__}")


def _double(value: object) -> float | None:
    if isinstance(value, bool):
        raise _Invalid("a boolean is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        if not value.strip():
            return None
        number = float(value.strip())
    else:
        raise _Invalid(f"cannot read a number from {type(value).__name__}")
    if not math.isfinite(number):
        raise _Invalid("not a finite number")
    return number + 0.0  # -0.0 -> 0.0


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Invalid("expected true or false")


def _parse_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip())
    else:
        raise _Invalid(f"cannot read a date from {type(value).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _date(value: object) -> str | None:
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and len(value.strip()) == 10:
        return date.fromisoformat(value.strip()).isoformat()
    return _parse_datetime(value).date().isoformat()


def _datetime(value: object) -> str | None:
    if isinstance(value, str) and not value.strip():
        return None
    moment = _parse_datetime(value)
    return f"{moment.date().isoformat()}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"


def _time(value: object) -> str | None:
    if isinstance(value, str):
        if not value.strip():
            return None
        moment = time.fromisoformat(value.strip())
    elif isinstance(value, datetime):
        moment = value.time()
    elif isinstance(value, time):
        moment = value
    else:
        raise _Invalid(f"cannot read a time from {type(value).__name__}")
    return moment.replace(microsecond=0, tzinfo=None).isoformat()


def _ip(value: object) -> str | None:
    text = _clean_text(value)
    return None if text is None else str(ipaddress.ip_address(text.strip()))


def _id_text(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _clean_text(value)


_SCALARS: Mapping[AttributeKind, Callable[[object], NormScalar | None]] = {
    "text": _clean_text, "textarea": _clean_text, "url": _clean_text, "email": _clean_text,
    "select": _clean_text, "group": _clean_text, "user": _id_text, "reference": _id_text,
    "status": _id_text, "integer": _integer, "double": _double, "boolean": _boolean,
    "date": _date, "time": _time, "datetime": _datetime, "ipaddress": _ip,
}  # fmt: skip


def _scalar(attr: AssetsAttribute, value: object, truncations: Counter[str] | None) -> NormScalar | None:
    convert = _SCALARS.get(attr.kind)
    if convert is None:
        raise ValueError(f"attribute {attr.name!r}: kind {attr.kind!r} is not supported")
    if value is None:
        return None
    try:
        result = convert(value)
    except _Invalid as exc:
        raise ValueError(f"attribute {attr.name!r} ({attr.kind}): {exc}") from None
    except (TypeError, ValueError, ArithmeticError):
        # Python's own messages quote the value, which may be personal: say only what was expected.
        raise ValueError(f"attribute {attr.name!r} ({attr.kind}): not a valid {attr.kind} value") from None
    if attr.kind == "select" and isinstance(result, str) and attr.options:
        result = _canonical_option(result, attr.options)
    if attr.kind == "text" and isinstance(result, str):
        result, cut = truncate_text(result)
        if cut and truncations is not None:
            truncations[attr.name] += 1
    return result


def _canonical_option(value: str, options: Sequence[str]) -> str:
    if value in options:
        return value
    folded = value.casefold()
    return next((o for o in options if o.casefold() == folded), value)


def _collect(attr: AssetsAttribute, items: Iterable[NormScalar | None]) -> NormValue:
    present = [v for v in items if v is not None]
    if not attr.multi and len(present) == 1:
        return present[0]
    return _sorted(present) if present else None


def _sorted(items: Sequence[NormScalar]) -> tuple[NormScalar, ...]:
    """Sorted without duplicates; mixed types (a stray text among numbers) sort by type, then text."""
    unique = set(items)
    try:
        return tuple(sorted(unique))
    except TypeError:
        return tuple(sorted(unique, key=lambda v: (type(v).__name__, str(v))))


def normalize(attr: AssetsAttribute, value: object, *, truncations: Counter[str] | None = None) -> NormValue:
    """Normalise a desired value for ``attr`` (a scalar, or a list/tuple/set for several values).

    Raises:
        ValueError: naming the attribute, when a typed value cannot be converted or a
            single-valued attribute is given several values.
    """
    if isinstance(value, list | tuple | set | frozenset):
        items = [_scalar(attr, v, truncations) for v in value]
        if not attr.multi and len({i for i in items if i is not None}) > 1:
            raise ValueError(f"attribute {attr.name!r} holds one value but was given several")
        return _collect(attr, items)
    return _collect(attr, [_scalar(attr, value, truncations)])


def _raw_scalar(kind: AttributeKind, entry: Mapping[str, Any]) -> object:
    """Pick the raw value out of one ``ObjectAttributeValue`` (its shape differs per kind)."""

    def nested(name: str, key: str) -> object:
        inner = entry.get(name)
        return inner.get(key) if isinstance(inner, dict) else None

    if kind == "reference":
        # referencedObject.id is the id we write; searchValue holds the object *key* (ITSM-87).
        candidates = [as_id(nested("referencedObject", "id")), entry.get("value"), entry.get("searchValue")]
    elif kind == "status":
        candidates = [as_id(nested("status", "id")), entry.get("value"), entry.get("searchValue")]
    elif kind == "user":
        candidates = [
            entry.get("value"),
            nested("user", "accountId"),
            nested("user", "key"),
            entry.get("searchValue"),
        ]
    elif kind == "group":
        candidates = [entry.get("value"), nested("group", "name"), entry.get("searchValue")]
    else:
        candidates = [entry.get("value"), entry.get("searchValue")]
    return next((c for c in candidates if c is not None and c != ""), None)


def decode(attr: AssetsAttribute, values: Sequence[Mapping[str, Any]] | None) -> NormValue:
    """Normalise the ``objectAttributeValues`` Assets returned for ``attr``.

    Lenient on purpose: a value the rules cannot read is kept as its stripped text, so it shows
    up as a difference (and gets rewritten) instead of failing the whole read.
    """
    items: list[NormScalar | None] = []
    for entry in values or ():
        if not isinstance(entry, dict):
            continue
        raw = _raw_scalar(attr.kind, entry)
        try:
            items.append(_scalar(attr, raw, None))
        except ValueError:
            items.append(_clean_text(raw))
    return _collect(attr, items)


def _format(value: NormScalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    return str(value)


def encode(attr: AssetsAttribute, value: NormValue) -> list[dict[str, str]]:
    """The ``objectAttributeValues`` to send for a normalised value (``[]`` clears the attribute)."""
    if value is None:
        return []
    items = value if isinstance(value, tuple) else (value,)
    return [{"value": _format(v)} for v in items]
