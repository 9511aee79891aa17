"""Compiled mapping: one Graph record ─► one desired object; total (never raises on any value)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import regex

if TYPE_CHECKING:
    from importer.config import AttributeSpec, ObjectTypeMapping, Settings
from importer.mapping._rules import (
    _KIND_OF_TYPE,
    _TEMPLATE_FIELD,
    SOURCE_FIELDS,
    VIRTUAL_FIELDS,
    _transform_type,
    parse_filter,
)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to the object mapped from another source record."""

    type: str  # the mapping entry's name, e.g. "users"
    source_id: str  # the referenced record's Graph id


@dataclass(frozen=True, slots=True)
class AccountEmail:
    """An email to resolve to an Atlassian accountId before writing a User attribute."""

    email: str


@dataclass(frozen=True, slots=True)
class Desired:
    """What one Graph record should look like in Assets (attribute name ─► raw value)."""

    type: str
    source_id: str
    values: Mapping[str, object]


# -- compiled mapping (pure functions over records) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledAttribute:
    """One attribute's value function and its Assets kind."""

    name: str
    kind: str
    compute: Callable[[Mapping[str, object], str | None], object]
    clear_on_null: bool
    reference: str | None
    options: tuple[str, ...]
    from_owner: bool = False  # the value comes from the device's owner (a reference, or from: owner)


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """A mapping entry ready to apply."""

    entry: ObjectTypeMapping
    attributes: tuple[CompiledAttribute, ...]
    select: tuple[str, ...]  # Graph fields to $select (sorted; id first)
    predicate: Callable[[Mapping[str, object]], bool]
    uses_owner: bool


def compile_mapping(settings: Settings) -> dict[str, CompiledEntry]:
    """Compile every entry of a validated mapping, keyed by entry name."""
    out: dict[str, CompiledEntry] = {}
    for entry in settings.mapping.object_types:
        attrs = tuple(_compile_attribute(name, spec, entry.source) for name, spec in entry.attributes.items())
        used: set[str] = {"id"}
        for spec in entry.attributes.values():
            if spec.template:
                used.update(_TEMPLATE_FIELD.findall(spec.template))
            elif spec.from_ and spec.reference is None:
                used.add(spec.from_)
        filters = [parse_filter(f) for f in entry.filter]
        used.update(f for f, _, _ in filters)
        uses_owner = "owner" in used or any(a.from_owner for a in attrs)
        if entry.source == "devices" and uses_owner and settings.entra.owners == "intune":
            used.add("deviceId")
        used -= VIRTUAL_FIELDS
        select = ("id", *sorted(used - {"id"}))
        out[entry.name] = CompiledEntry(
            entry=entry,
            attributes=attrs,
            select=select,
            predicate=_compile_filters(filters),
            uses_owner=uses_owner,
        )
    return out


def map_record(
    compiled: CompiledEntry, source_id: str, fields: Mapping[str, object], *, owner: str | None = None
) -> Desired | None:
    """Map one Graph record; None when the entry's filter excludes it. Never raises."""
    if not compiled.predicate(fields):
        return None
    values: dict[str, object] = {}
    for attr in compiled.attributes:
        try:
            values[attr.name] = attr.compute(fields, owner)
        except Exception:  # a mapping must be total: a value that cannot be computed is null
            values[attr.name] = None
    return Desired(type=compiled.entry.name, source_id=source_id, values=values)


def _compile_filters(filters: Sequence[tuple[str, str, object]]) -> Callable[[Mapping[str, object]], bool]:
    def predicate(fields: Mapping[str, object]) -> bool:
        for field, op, expected in filters:
            value = fields.get(field)
            if op == "==" and value != expected:
                return False
            if op == "!=" and value == expected:
                return False
            if op == "in" and value not in expected:  # type: ignore[operator]
                return False
            if op == "not in" and value in expected:  # type: ignore[operator]
                return False
        return True

    return predicate


def _compile_attribute(name: str, spec: AttributeSpec, source: str) -> CompiledAttribute:
    fields = SOURCE_FIELDS[source]
    if spec.reference is not None:
        target = spec.reference

        def reference(_fields: Mapping[str, object], owner: str | None) -> object:
            return Ref(target, owner) if owner else None

        return CompiledAttribute(
            name, "reference", reference, spec.clear_on_null, target, (), from_owner=True
        )
    vtype = "str" if spec.template else fields.get(spec.from_ or "", "str")
    steps = []
    for t in spec.transform:
        steps.append(_transform_fn(t))
        result = _transform_type(t, vtype)
        vtype = result if isinstance(result, str) else vtype
    kind = "user" if spec.user else (spec.type or _KIND_OF_TYPE.get(vtype, "text"))
    read = _template_fn(spec.template) if spec.template else _field_fn(spec.from_ or "")
    default = spec.default

    def compute(record: Mapping[str, object], owner: str | None) -> object:
        value = read(record, owner)
        for step in steps:
            if value is None:
                break
            value = step(value)
        if value is None or value == "":
            value = default
        if spec.user and isinstance(value, str):
            return AccountEmail(value)
        return value

    return CompiledAttribute(
        name, kind, compute, spec.clear_on_null, None, tuple(spec.options), from_owner=spec.from_ == "owner"
    )


def _field_fn(field: str) -> Callable[[Mapping[str, object], str | None], object]:
    if field == "owner":
        return lambda _record, owner: owner
    return lambda record, _owner: _clean(record.get(field))


def _template_fn(template: str) -> Callable[[Mapping[str, object], str | None], object]:
    def render(record: Mapping[str, object], _owner: str | None) -> object:
        used = _TEMPLATE_FIELD.findall(template)
        if used and all(record.get(f) in (None, "") for f in used):
            return None
        text = _TEMPLATE_FIELD.sub(lambda m: _as_text(record.get(m.group(1))), template)
        return " ".join(text.split()) or None

    return render


def _transform_fn(transform: str | dict[str, Any]) -> Callable[[object], object]:
    if transform == "lower":
        return lambda v: _as_text(v).lower()
    if transform == "upper":
        return lambda v: _as_text(v).upper()
    if transform == "strip":
        return lambda v: _as_text(v).strip() or None
    if transform == "date":
        return _to_date
    assert isinstance(transform, dict)
    ((name, arg),) = transform.items()
    if name == "truncate":
        limit = int(arg)
        return lambda v: truncate_graphemes(_as_text(v), limit)
    table = {_map_key(k): val for k, val in arg.items()}
    return lambda v: table.get(_map_key(v), v)


def _map_key(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_date(value: object) -> object:
    parsed = parse_datetime(value)
    return parsed.date().isoformat() if parsed else None


def parse_datetime(value: object) -> datetime | None:
    """Parse a Graph date-time (ISO 8601, 'Z' or offset, up to 7 fractional digits); None if not one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", text
    )
    if not match:
        return None
    day, clock, frac, zone = match.groups()
    iso = day + ("T" + clock if clock else "T00:00") + ((frac or "")[:7] if clock else "")
    if zone and zone != "Z":
        iso += zone if ":" in zone else zone[:3] + ":" + zone[3:]
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def truncate_graphemes(text: str, limit: int, marker: str = "…") -> str:
    """Cut ``text`` to at most ``limit`` characters on a grapheme boundary, ending with ``marker``."""
    if len(text) <= limit:
        return text
    room = limit - len(marker)
    out = []
    used = 0
    for cluster in regex.findall(r"\X", text):
        if used + len(cluster) > room:
            break
        out.append(cluster)
        used += len(cluster)
    return "".join(out) + marker


def _clean(value: object) -> object:
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value)
        return value if value.strip() else None
    if isinstance(value, list):
        items = tuple(str(v) for v in value if v not in (None, ""))
        return items or None
    return value


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)
