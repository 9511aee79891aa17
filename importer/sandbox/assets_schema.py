"""Parse the schema-side request bodies (ObjectTypeIn, ObjectTypeAttributeCreate/Update, StatusIn).

Each parser checks the body's own shape and returns plain values; the store then checks them
against the workspace (does the schema, icon, referenced type exist...). Ids and type codes are
accepted as ints or numeric strings, as the spec's own example sends ``"type": "0"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from importer.sandbox.assets_model import (
    KIND_DEFAULT,
    KIND_REFERENCE,
    KIND_STATUS,
    KIND_USER,
    ApiFailure,
    as_bool,
    as_int,
)

__all__ = [
    "StatusIn",
    "TypeIn",
    "cardinality_allowed",
    "parse_attribute_in",
    "parse_status_in",
    "parse_type_in",
]

_MULTI_VALUE_DEFAULT_TYPES = {8, 10}  # Email, Select: the spec lists cardinality as valid for these
_USER_PROFILE = {"SHOW_PROFILE", "HIDE_PROFILE"}
_URL_PING = {"ENABLED", "DISABLED"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeIn:
    """A parsed ObjectTypeIn."""

    name: str
    description: str
    icon_id: str
    schema_id: int
    parent_id: int | None
    inherited: bool
    abstract: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusIn:
    """A parsed StatusIn."""

    name: str
    category: int
    schema_id: int | None
    description: str


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiFailure(400, "The request body must be a JSON object")
    return body


def _name(body: dict[str, Any], *, required: bool) -> str | None:
    if "name" not in body and not required:
        return None
    value = body.get("name")
    if not isinstance(value, str) or not value.strip():
        raise ApiFailure(400, errors={"name": "A name is required"})
    return value.strip()


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiFailure(400, errors={key: "must be a string"})
    return value


def parse_type_in(body: object) -> TypeIn:
    """Validate an ``ObjectTypeIn`` body (required: name, iconId, objectSchemaId)."""
    data = _require_object(body)
    name = _name(data, required=True)
    assert name is not None
    missing = [key for key in ("iconId", "objectSchemaId") if data.get(key) in (None, "")]
    if missing:
        raise ApiFailure(400, errors={key: f"{key} is required" for key in missing})
    parent = data.get("parentObjectTypeId")
    return TypeIn(
        name=name,
        description=_text(data, "description") or "",
        icon_id=str(as_int(data["iconId"], "iconId")),
        schema_id=as_int(data["objectSchemaId"], "objectSchemaId"),
        parent_id=None if parent in (None, "") else as_int(parent, "parentObjectTypeId"),
        inherited=as_bool(data.get("inherited", False), "inherited"),
        abstract=as_bool(data.get("abstractObjectType", False), "abstractObjectType"),
    )


def parse_status_in(body: object) -> StatusIn:
    """Validate a ``StatusIn`` body (required: name, category 0/1/2)."""
    data = _require_object(body)
    name = _name(data, required=True)
    assert name is not None
    if data.get("category") is None:
        raise ApiFailure(400, errors={"category": "category is required"})
    category = as_int(data["category"], "category")
    if category not in (0, 1, 2):
        raise ApiFailure(400, errors={"category": "category must be 0 (inactive), 1 (active) or 2 (pending)"})
    schema = data.get("objectSchemaId")
    return StatusIn(
        name=name,
        category=category,
        schema_id=None if schema in (None, "") else as_int(schema, "objectSchemaId"),
        description=_text(data, "description") or "",
    )


def parse_attribute_in(body: object, *, partial: bool) -> dict[str, Any]:
    """Validate an ObjectTypeAttributeCreate (``partial=False``) or ...Update body.

    Returns ``AttrRec`` field names mapped to values, only for what the body sets.
    """
    data = _require_object(body)
    out: dict[str, Any] = {}
    name = _name(data, required=not partial)
    if name is not None:
        out["name"] = name
    if "type" in data or not partial:
        if data.get("type") in (None, ""):
            raise ApiFailure(400, errors={"type": "type is required"})
        kind = as_int(data["type"], "type")
        if kind not in (KIND_DEFAULT, KIND_REFERENCE, KIND_USER, KIND_STATUS):
            raise ApiFailure(
                400, errors={"type": f"Attribute type {kind} is not supported (sandbox: 0, 1, 2 or 7)"}
            )
        out["kind"] = kind
        if kind == KIND_DEFAULT:
            if data.get("defaultTypeId") in (None, ""):
                raise ApiFailure(400, errors={"defaultTypeId": "defaultTypeId is required for type Default"})
            default_type = as_int(data["defaultTypeId"], "defaultTypeId")
            if not 0 <= default_type <= 11:
                raise ApiFailure(400, errors={"defaultTypeId": f"Unknown default type {default_type}"})
            out["default_type"] = default_type
        if kind == KIND_REFERENCE:
            for key in ("typeValue", "additionalValue"):
                if data.get(key) in (None, ""):
                    raise ApiFailure(400, errors={key: f"{key} is required for an object reference"})
            out["ref_object_type_id"] = as_int(data["typeValue"], "typeValue")
            out["ref_kind_id"] = as_int(data["additionalValue"], "additionalValue")
    _parse_flags(data, out)
    return out


def _parse_flags(data: dict[str, Any], out: dict[str, Any]) -> None:
    for key, target in (
        ("label", "label"),
        ("uniqueAttribute", "unique"),
        ("hidden", "hidden"),
        ("includeChildObjectTypes", "include_children"),
        ("summable", "summable"),
    ):
        if data.get(key) is not None:
            out[target] = as_bool(data[key], key)
    for key, target in (("description", "description"), ("suffix", "suffix")):
        text = _text(data, key)
        if text is not None:
            out[target] = text
    regex = _text(data, "regexValidation")
    if regex is not None:
        try:
            re.compile(regex)
        except re.error:
            raise ApiFailure(400, errors={"regexValidation": "Invalid regular expression"}) from None
        out["regex"] = regex
    options = _text(data, "options")
    if options is not None:
        out["options"] = [option.strip() for option in options.split(",") if option.strip()]
    additional = data.get("additionalValue")
    if additional not in (None, "") and out.get("kind") != KIND_REFERENCE:
        text_value = str(additional).upper()
        if text_value not in _USER_PROFILE | _URL_PING:
            raise ApiFailure(400, errors={"additionalValue": f"Invalid additionalValue {additional!r}"})
        out["additional_value"] = text_value
    if isinstance(data.get("typeValueMulti"), list):
        out["type_value_multi"] = [str(item) for item in data["typeValueMulti"]]
    for key, target in (("minimumCardinality", "min_card"), ("maximumCardinality", "max_card")):
        if data.get(key) not in (None, ""):
            out[target] = as_int(data[key], key)
    if out.get("min_card", 0) < 0:
        raise ApiFailure(400, errors={"minimumCardinality": "must be 0 or more"})
    if "max_card" in out and out["max_card"] != -1 and out["max_card"] < 1:
        raise ApiFailure(400, errors={"maximumCardinality": "must be -1 (unlimited) or 1 or more"})


def cardinality_allowed(kind: int, default_type: int) -> bool:
    """Whether a maximumCardinality above 1 is honoured for this attribute type."""
    return kind in (KIND_REFERENCE, KIND_USER) or (
        kind == KIND_DEFAULT and default_type in _MULTI_VALUE_DEFAULT_TYPES
    )
