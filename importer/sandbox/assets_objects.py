"""Object writes: create, update (only the attributes sent change), delete, with Assets' checks.

Validation errors are collected for every attribute and answered together as
``400 {"errorMessages": [], "errors": {"rlabs-insight-attribute-<id>": "<message>"}}``.
Checked: the attribute belongs to the type and is not a system attribute; each value's format
(see ``assets_model``); referenced objects exist and are of the referenced type; users exist;
statuses exist in the schema (by id, or by name as ScriptRunner is reported to send);
``maximumCardinality``; required attributes (``minimumCardinality`` >= 1) on create and when an
update empties them; unique attributes (unless ``enforce_unique`` is off or the caller bypasses).
A ``null`` or ``""`` value counts as no value, so ``"objectAttributeValues": []`` (or ``[{"value":
""}]``) clears an attribute: undocumented on the real API (see the README).
"""

from __future__ import annotations

from collections.abc import Mapping

from importer.sandbox.assets_model import ApiFailure, AttrRec, ObjRec, TypeRec, as_int
from importer.sandbox.assets_store import AssetsStore, AttrInput, now_ms

__all__ = ["create_object", "delete_object", "inputs_by_name", "parse_object_in", "update_object"]


def create_object(
    store: AssetsStore, type_id: int, inputs: list[AttrInput], *, bypass_unique: bool = False
) -> ObjRec:
    """Create an object of ``type_id`` from attribute inputs; raises ApiFailure(400) when invalid."""
    type_rec = store.types.get(type_id)
    if type_rec is None:
        raise ApiFailure(400, errors={"objectTypeId": f"Object type {type_id} was not found"})
    if type_rec.abstract:
        raise ApiFailure(400, errors={"objectTypeId": "Objects cannot be created in an abstract object type"})
    final = _validate(store, type_rec, None, inputs, bypass_unique=bypass_unique)
    missing = {
        _key(attr): f"{attr.name} is required"
        for attr in store.attrs_of(type_id)
        if not attr.system and attr.min_card > 0 and attr.id not in final
    }
    if missing:
        raise ApiFailure(400, errors=missing)
    stamp = now_ms()
    obj = ObjRec(id=store.next_id("object"), type_id=type_id, created_ms=stamp, updated_ms=stamp)
    store.add_object_record(obj)
    for attr_id, values in final.items():
        store.set_values(obj, store.attrs[attr_id], values)
    return obj


def update_object(
    store: AssetsStore,
    ref: str,
    type_id: int | None,
    inputs: list[AttrInput],
    *,
    bypass_unique: bool = False,
) -> ObjRec:
    """Change the attributes sent and keep the others; raises ApiFailure(404/400)."""
    obj = store.find_object(ref)
    if obj is None:
        raise ApiFailure(404, f"Object {ref} was not found")
    if type_id is not None and type_id != obj.type_id:
        raise ApiFailure(400, errors={"objectTypeId": "An object cannot be moved to another object type"})
    final = _validate(store, store.types[obj.type_id], obj, inputs, bypass_unique=bypass_unique)
    for attr_id, values in final.items():
        store.set_values(obj, store.attrs[attr_id], values)
    obj.updated_ms = max(now_ms(), obj.updated_ms + 1)
    return obj


def delete_object(store: AssetsStore, ref: str) -> None:
    """Delete an object (references to it disappear from other objects); raises ApiFailure(404)."""
    obj = store.find_object(ref)
    if obj is None:
        raise ApiFailure(404, f"Object {ref} was not found")
    store.remove_object_record(obj)


def inputs_by_name(store: AssetsStore, type_id: int, values: Mapping[str, object]) -> list[AttrInput]:
    """Attribute inputs from ``{attribute name: value | [values] | None}`` (hand edits)."""
    inputs: list[AttrInput] = []
    for name, value in values.items():
        attr = store.attr_by_name(type_id, name)
        if attr is None:
            raise ApiFailure(400, f"Object type {type_id} has no attribute named {name!r}")
        raw = [] if value is None else list(value) if isinstance(value, list) else [value]
        inputs.append((attr.id, raw))
    return inputs


def parse_object_in(body: object, *, require_type: bool) -> tuple[int | None, list[AttrInput]]:
    """Validate an ``ObjectIn`` body; returns (objectTypeId or None, attribute inputs)."""
    if not isinstance(body, dict):
        raise ApiFailure(400, "The request body must be a JSON object")
    type_id = None
    if body.get("objectTypeId") not in (None, ""):
        type_id = as_int(body["objectTypeId"], "objectTypeId")
    elif require_type:
        raise ApiFailure(400, errors={"objectTypeId": "objectTypeId is required"})
    attributes = body.get("attributes")
    if attributes is None and not require_type:
        attributes = []
    if not isinstance(attributes, list):
        raise ApiFailure(400, errors={"attributes": "attributes must be a list"})
    inputs: list[AttrInput] = []
    for item in attributes:
        if not isinstance(item, dict) or item.get("objectTypeAttributeId") in (None, ""):
            raise ApiFailure(400, "Each attribute needs an objectTypeAttributeId")
        attr_id = as_int(item["objectTypeAttributeId"], "objectTypeAttributeId")
        values = item.get("objectAttributeValues")
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise ApiFailure(400, f"objectAttributeValues of attribute {attr_id} must be a list of objects")
        inputs.append((attr_id, [value.get("value") for value in values]))
    return type_id, inputs


def _key(attr: AttrRec) -> str:
    return f"rlabs-insight-attribute-{attr.id}"


def _validate(
    store: AssetsStore, type_rec: TypeRec, obj: ObjRec | None, inputs: list[AttrInput], *, bypass_unique: bool
) -> dict[int, list[str]]:
    errors: dict[str, str] = {}
    final: dict[int, list[str]] = {}
    for attr_id, raws in inputs:
        attr = store.attrs.get(attr_id)
        if attr is None or attr.type_id != type_rec.id:
            errors[f"rlabs-insight-attribute-{attr_id}"] = (
                f"Object type attribute {attr_id} was not found in object type {type_rec.name}"
            )
            continue
        if attr.system:
            errors[_key(attr)] = f"{attr.name} is a system attribute and cannot be set"
            continue
        try:
            values = _normalize_all(store, type_rec, attr, raws)
        except ValueError as exc:
            errors[_key(attr)] = str(exc)
            continue
        if attr.max_card != -1 and len(values) > attr.max_card:
            errors[_key(attr)] = f"{attr.name} accepts at most {attr.max_card} value(s), got {len(values)}"
        elif len(values) < attr.min_card:
            errors[_key(attr)] = f"{attr.name} is required"
        else:
            final[attr.id] = values
    if store.enforce_unique and not bypass_unique:
        for attr_id, values in final.items():
            index = store.unique_index.get(attr_id)
            if index is None:
                continue
            for value in values:
                holders = [h for h in index.get(value.casefold(), []) if obj is None or h != obj.id]
                if holders:
                    holder = store.object_key(store.objects[holders[0]])
                    errors[_key(store.attrs[attr_id])] = f"The value must be unique: {holder} already has it"
                    break
    if errors:
        raise ApiFailure(400, errors=errors)
    return final


def _normalize_all(store: AssetsStore, type_rec: TypeRec, attr: AttrRec, raws: list[object]) -> list[str]:
    values: list[str] = []
    for raw in raws:
        if raw is None or raw == "":
            continue
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, int | float):
            text = str(raw)
        elif isinstance(raw, str):
            text = raw
        else:
            raise ValueError("Attribute values must be strings")
        stored = store.normalize(type_rec, attr, text)
        if stored not in values:
            values.append(stored)
    return values
