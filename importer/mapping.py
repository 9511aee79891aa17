"""Pure mapping: Graph records ─► desired Assets objects; and the rules a mapping must obey.

Nothing here does I/O. ``check_mapping`` validates the ``mapping`` section of a raw config
document (used by ``config.py``, so every problem is reported with its key path);
``compile_mapping`` turns validated settings into callables; ``map_record`` applies one
entry to one Graph record and never raises, whatever the record holds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import regex

from importer.errors import ConfigProblem

if TYPE_CHECKING:
    from importer.config import AttributeSpec, ObjectTypeMapping, Settings

__all__ = [
    "SOURCE_FIELDS",
    "AccountEmail",
    "CompiledAttribute",
    "CompiledEntry",
    "Desired",
    "Ref",
    "check_mapping",
    "compile_mapping",
    "map_record",
]

# The Graph v1.0 properties a mapping may read, with their JSON types. `owner` is virtual:
# the id of the device's owner (registeredOwners, or the Intune primary user).
SOURCE_FIELDS: dict[str, dict[str, str]] = {
    "users": {
        "id": "str", "displayName": "str", "givenName": "str", "surname": "str",
        "userPrincipalName": "str", "mail": "str", "mailNickname": "str", "jobTitle": "str",
        "department": "str", "officeLocation": "str", "companyName": "str", "employeeId": "str",
        "employeeType": "str", "employeeHireDate": "datetime", "accountEnabled": "bool",
        "userType": "str", "createdDateTime": "datetime", "mobilePhone": "str",
        "businessPhones": "list", "preferredLanguage": "str", "country": "str", "city": "str",
        "state": "str", "streetAddress": "str", "postalCode": "str", "usageLocation": "str",
        "externalUserState": "str", "onPremisesSyncEnabled": "bool",
        "onPremisesSamAccountName": "str",
    },
    "devices": {
        "id": "str", "deviceId": "str", "displayName": "str", "operatingSystem": "str",
        "operatingSystemVersion": "str", "trustType": "str", "isCompliant": "bool",
        "isManaged": "bool", "accountEnabled": "bool", "approximateLastSignInDateTime": "datetime",
        "registrationDateTime": "datetime", "createdDateTime": "datetime", "deviceOwnership": "str",
        "enrollmentProfileName": "str", "enrollmentType": "str", "managementType": "str",
        "deviceCategory": "str", "mdmAppId": "str", "profileType": "str", "manufacturer": "str",
        "model": "str", "onPremisesSyncEnabled": "bool", "onPremisesLastSyncDateTime": "datetime",
        "complianceExpirationDateTime": "datetime", "owner": "id",
    },
}  # fmt: skip
VIRTUAL_FIELDS = frozenset({"owner"})

_KIND_OF_TYPE = {"str": "text", "bool": "boolean", "datetime": "datetime", "date": "date", "int": "integer",
                 "list": "text", "id": "text", "float": "double"}  # fmt: skip
_KINDS_FOR = {  # which inferred value types each explicit Assets type accepts
    "text": {"str", "bool", "int", "float", "datetime", "date", "list", "id"},
    "textarea": {"str", "list"}, "url": {"str"}, "email": {"str"}, "select": {"str", "bool"},
    "status": {"str", "bool"}, "boolean": {"bool"}, "integer": {"int"}, "double": {"int", "float"},
    "date": {"date", "datetime"}, "datetime": {"datetime"},
}  # fmt: skip
_STRING_TRANSFORMS = {"lower", "upper", "strip"}
_SYSTEM_ATTRIBUTES = frozenset({"key", "created", "updated"})
_FILTER_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(==|!=|not\s+in|in)\s*(.+?)\s*$")
_TEMPLATE_FIELD = re.compile(r"\{([A-Za-z][A-Za-z0-9]*)\}")


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


# -- rules (used by config.py on the raw document) ------------------------------------------------


def parse_literal(text: str) -> object:
    """Parse a filter literal: true, false, null, a number, or a quoted string."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].replace("\\" + text[0], text[0])
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    raise ValueError(f"not a literal: {text} (use true, false, null, a number or a quoted string)")


def parse_filter(expr: str) -> tuple[str, str, object]:
    """Parse ``field == literal`` / ``!=`` / ``in [a, b]`` / ``not in [...]`` into its parts."""
    match = _FILTER_RE.match(expr)
    if not match:
        raise ValueError(
            f'cannot read filter {expr!r}; write e.g. accountEnabled == true or userType in ["Member"]'
        )
    field, op, rest = match.group(1), re.sub(r"\s+", " ", match.group(2)), match.group(3)
    if op in ("in", "not in"):
        if not (rest.startswith("[") and rest.endswith("]")):
            raise ValueError(f'{op} needs a list in brackets, e.g. {field} in ["a", "b"]')
        items = [s for s in re.split(r",(?=(?:[^\"']*[\"'][^\"']*[\"'])*[^\"']*$)", rest[1:-1]) if s.strip()]
        return field, op, tuple(parse_literal(s) for s in items)
    return field, op, parse_literal(rest)


def check_mapping(mapping: object, sync: object = None) -> Iterator[ConfigProblem]:
    """Yield every semantic problem of a raw ``mapping`` section (shape errors are pydantic's)."""
    if not isinstance(mapping, dict) or not isinstance(mapping.get("object_types"), list):
        return
    entries = [e for e in mapping["object_types"] if isinstance(e, dict)]
    names = {e.get("name"): e for e in entries if isinstance(e.get("name"), str)}
    seen_names: set[str] = set()
    seen_types: set[str] = set()
    for i, entry in enumerate(mapping["object_types"]):
        if not isinstance(entry, dict):
            continue
        base = f"mapping.object_types[{i}]"
        name, object_type = entry.get("name"), entry.get("object_type")
        if isinstance(name, str):
            if name in seen_names:
                yield ConfigProblem(f"{base}.name", f"duplicate name {name!r}")
            seen_names.add(name)
        if isinstance(object_type, str):
            if object_type.casefold() in seen_types:
                yield ConfigProblem(f"{base}.object_type", f"object type {object_type!r} is mapped twice")
            seen_types.add(object_type.casefold())
        yield from _check_entry(entry, base, names)


def _check_entry(
    entry: Mapping[str, Any], base: str, names: Mapping[Any, Mapping[str, Any]]
) -> Iterator[ConfigProblem]:
    source = entry.get("source")
    if not isinstance(source, str) or source not in SOURCE_FIELDS:
        return  # pydantic reports the bad source
    fields = SOURCE_FIELDS[source]
    filters = entry.get("filter", [])
    for j, expr in enumerate(
        [filters] if isinstance(filters, str) else filters if isinstance(filters, list) else []
    ):
        path = f"{base}.filter[{j}]"
        if not isinstance(expr, str):
            continue
        try:
            field, _, _ = parse_filter(expr)
        except ValueError as exc:
            yield ConfigProblem(path, str(exc))
            continue
        if field not in fields or field in VIRTUAL_FIELDS:
            yield ConfigProblem(path, f"unknown {source} field {field!r}{_suggest(field, fields)}")
    attributes = entry.get("attributes")
    if not isinstance(attributes, dict):
        return
    key, label = entry.get("key", "Entra Object ID"), entry.get("label", "Name")
    raw_mark = entry.get("mark")
    mark: Mapping[str, Any] = raw_mark if isinstance(raw_mark, dict) else {}
    # Values not yet type-checked (pydantic reports their type) may be unhashable: test str only.
    if isinstance(label, str) and label not in attributes:
        yield ConfigProblem(
            f"{base}.label", f"label attribute {label!r} must be one of the mapped attributes"
        )
    if isinstance(key, str) and key in attributes:
        yield ConfigProblem(
            f"{base}.attributes.{key}", "this is the key attribute; the importer writes the Graph id into it"
        )
    mark_attr = mark.get("attribute", "Entra Status")
    if isinstance(mark_attr, str) and mark_attr in attributes and (entry.get("missing") or "mark") == "mark":
        yield ConfigProblem(
            f"{base}.attributes.{mark_attr}", "this is the mark attribute (mark.attribute); pick another name"
        )
    for attr, spec in attributes.items():
        if isinstance(attr, str) and attr.strip().casefold() in _SYSTEM_ATTRIBUTES:
            yield ConfigProblem(
                f"{base}.attributes.{attr}",
                "Assets keeps Key, Created and Updated as system attributes of every object type; "
                "choose another name (e.g. 'Created in Entra')",
            )
            continue
        spec_dict = {"from": spec} if isinstance(spec, str) else spec
        if isinstance(spec_dict, dict):
            yield from _check_attribute(spec_dict, f"{base}.attributes.{attr}", source, fields, names)


def _check_attribute(
    spec: Mapping[str, Any],
    path: str,
    source: str,
    fields: Mapping[str, str],
    names: Mapping[Any, Mapping[str, Any]],
) -> Iterator[ConfigProblem]:
    field, template, reference = spec.get("from"), spec.get("template"), spec.get("reference")
    explicit = spec.get("type")
    if reference is not None:
        if isinstance(reference, str) and reference not in names:
            known = ", ".join(sorted(str(n) for n in names)) or "none"
            yield ConfigProblem(path, f"unknown reference {reference!r} (mapped types: {known})")
        if field not in (None, "owner") or source != "devices":
            yield ConfigProblem(
                path, "references come from the device owner: use them on devices, with from: owner"
            )
        if explicit not in (None, "reference"):
            yield ConfigProblem(f"{path}.type", "a reference attribute has type reference")
        return
    if field is None and template is None:
        yield ConfigProblem(path, 'say where the value comes from: from: <field> or template: "..."')
        return
    if field is not None and template is not None:
        yield ConfigProblem(path, "use either from or template, not both")
        return
    vtype = "str"
    if isinstance(template, str):
        for name in _TEMPLATE_FIELD.findall(template):
            if name not in fields or name in VIRTUAL_FIELDS:
                yield ConfigProblem(
                    f"{path}.template", f"unknown {source} field {name!r}{_suggest(name, fields)}"
                )
    elif isinstance(field, str):
        if field not in fields:
            yield ConfigProblem(f"{path}.from", f"unknown {source} field {field!r}{_suggest(field, fields)}")
            return
        vtype = fields[field]
    transforms = spec.get("transform", [])
    for k, t in enumerate(transforms if isinstance(transforms, list) else [transforms]):
        result = _transform_type(t, vtype)
        if isinstance(result, ConfigProblem):
            yield ConfigProblem(f"{path}.transform[{k}]", result.message)
            return
        vtype = result
    if spec.get("user"):
        if vtype != "str":
            yield ConfigProblem(path, "user: true needs an email-like text field (mail or userPrincipalName)")
        if explicit not in (None, "user"):
            yield ConfigProblem(f"{path}.type", "an Atlassian user attribute has type user")
        return
    if isinstance(explicit, str) and explicit in _KINDS_FOR and vtype not in _KINDS_FOR[explicit]:
        yield ConfigProblem(f"{path}.type", f"type {explicit} does not fit a {vtype} value")
    if explicit in ("reference", "user"):
        yield ConfigProblem(
            f"{path}.type",
            f"type {explicit} needs {'reference: <type>' if explicit == 'reference' else 'user: true'}",
        )


def _transform_type(transform: object, vtype: str) -> str | ConfigProblem:
    if isinstance(transform, str):
        if transform in _STRING_TRANSFORMS:
            return (
                vtype
                if vtype == "str"
                else ConfigProblem("", f"{transform} works on text, not on a {vtype} value")
            )
        if transform == "date":
            return (
                "date"
                if vtype == "datetime"
                else ConfigProblem("", f"date works on date-times, not on a {vtype} value")
            )
        return ConfigProblem(
            "", f"unknown transform {transform!r} (lower, upper, strip, date, map, truncate)"
        )
    if isinstance(transform, dict) and len(transform) == 1:
        ((name, arg),) = transform.items()
        if name == "truncate":
            if not isinstance(arg, int) or isinstance(arg, bool) or arg < 1:
                return ConfigProblem("", "truncate needs a positive number of characters")
            return (
                vtype
                if vtype == "str"
                else ConfigProblem("", f"truncate works on text, not on a {vtype} value")
            )
        if name == "map":
            if not isinstance(arg, dict) or not arg:
                return ConfigProblem("", "map needs a mapping of source value to Assets value")
            kinds = {type(v).__name__ for v in arg.values()}
            return kinds.pop() if len(kinds) == 1 and kinds <= {"str", "bool", "int", "float"} else "str"
    return ConfigProblem(
        "", "a transform is a name (lower, upper, strip, date) or {map: {...}} / {truncate: N}"
    )


def _suggest(name: str, fields: Mapping[str, str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
        uses_owner = any(a.reference is not None or "owner" in used for a in attrs)
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

        return CompiledAttribute(name, "reference", reference, spec.clear_on_null, target, ())
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

    return CompiledAttribute(name, kind, compute, spec.clear_on_null, None, tuple(spec.options))


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
