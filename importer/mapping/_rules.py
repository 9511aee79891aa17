"""The rules a mapping must obey, checked on the raw config document (config.py reports them).

A filter is ``field == literal``, ``!=``, ``in [..]`` or ``not in [..]``; every field, template
placeholder and transform is checked against the Graph field catalogue below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from importer.errors import ConfigProblem

if TYPE_CHECKING:
    pass

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
