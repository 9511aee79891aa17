"""Test-only views and hand edits of the Assets workspace, served under ``/_sandbox/assets/``.

Routes (no auth; the server forwards ``/_sandbox/assets/*`` here; stats route ``""``):

- ``GET objects?type=NAME[&schema=KEY]``: the objects of a type, values by attribute name;
- ``POST objects`` ``{"type", "attributes": {name: value | [values]}, "bypass_unique"?, "schema"?}``:
  create by hand (201);
- ``PUT objects/{id}`` ``{"attributes": {name: value | [values] | null}, "bypass_unique"?}``: hand edit;
- ``DELETE objects/{id}``: hand delete (204);
- ``POST attributes/rename`` ``{"type", "attribute", "new_name", "schema"?}``;
- ``POST attributes/delete`` ``{"type", "attribute", "schema"?}``;
- ``GET``/``POST settings``: ``enforce_unique``, ``is_last_as_string``, ``rate_limit_per_minute``;
- ``GET stats``: ``snapshot_stats()``;
- ``POST users`` ``{"email", "display_name", "active"?, "email_visible"?}`` -> ``{"accountId"}``.

Type names resolve in the managed schema unless ``schema`` (a key) says otherwise. Dumped values
are the stored forms: references as the referenced object's id, users as accountIds, statuses as
status ids; single-valued attributes (maximumCardinality 1) as a string, others as a list.
"""

from __future__ import annotations

from typing import Any

from importer.sandbox.assets_model import ApiFailure, ObjRec, TypeRec, as_bool, iso_ms
from importer.sandbox.assets_objects import create_object, delete_object, inputs_by_name, update_object
from importer.sandbox.assets_ratelimit import SlidingWindowLimiter
from importer.sandbox.assets_store import AssetsStore
from importer.sandbox.base import SandboxRequest, SandboxResponse

__all__ = ["dump_object", "dump_objects", "handle_control", "resolve_type", "settings_of", "snapshot_stats"]

PREFIX = "/_sandbox/assets/"


def resolve_type(
    store: AssetsStore, name: str, *, managed_schema_id: int, schema_key: str | None
) -> TypeRec | None:
    """The type called ``name`` in the schema with ``schema_key`` (default: the managed schema)."""
    if schema_key is None:
        return store.find_type(name, managed_schema_id)
    schema = next((s for s in store.schemas.values() if s.key.casefold() == schema_key.casefold()), None)
    return None if schema is None else store.find_type(name, schema.id)


def dump_object(store: AssetsStore, obj: ObjRec) -> dict[str, Any]:
    """One object as a plain dict, attribute values by attribute name."""
    attributes: dict[str, Any] = {}
    for attr in store.attrs_of(obj.type_id):
        values = obj.values.get(attr.id)
        if values:
            attributes[attr.name] = values[0] if attr.max_card == 1 else list(values)
    return {
        "id": str(obj.id),
        "objectKey": store.object_key(obj),
        "label": store.label(obj),
        "objectType": store.types[obj.type_id].name,
        "created": iso_ms(obj.created_ms),
        "updated": iso_ms(obj.updated_ms),
        "attributes": attributes,
    }


def dump_objects(
    store: AssetsStore, type_name: str, *, managed_schema_id: int, schema_key: str | None = None
) -> list[dict[str, Any]]:
    """Every object of a type (empty when the type does not exist), in id order."""
    type_rec = resolve_type(store, type_name, managed_schema_id=managed_schema_id, schema_key=schema_key)
    if type_rec is None:
        return []
    return [dump_object(store, store.objects[i]) for i in store.type_object_ids(type_rec.id)]


def snapshot_stats(store: AssetsStore, *, managed_schema_id: int) -> dict[str, Any]:
    """Object counts and duplicate unique values per type of the managed schema (+ other schemas)."""
    objects: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    others: dict[str, dict[str, int]] = {}
    for type_rec in store.types.values():
        count = len(store.type_objects[type_rec.id])
        if type_rec.schema_id != managed_schema_id:
            others.setdefault(store.schemas[type_rec.schema_id].key, {})[type_rec.name] = count
            continue
        objects[type_rec.name] = count
        duplicates[type_rec.name] = sum(
            1
            for attr in store.attrs_of(type_rec.id)
            if not attr.system and attr.id in store.unique_index
            for holders in store.unique_index[attr.id].values()
            if len(holders) > 1
        )
    return {"objects": objects, "duplicate_keys": duplicates, "other_schemas": others}


def settings_of(store: AssetsStore, limiter: SlidingWindowLimiter) -> dict[str, Any]:
    """The switches tests can flip."""
    return {
        "enforce_unique": store.enforce_unique,
        "is_last_as_string": store.is_last_as_string,
        "rate_limit_per_minute": limiter.per_minute,
    }


def handle_control(
    store: AssetsStore, limiter: SlidingWindowLimiter, req: SandboxRequest, *, managed_schema_id: int
) -> SandboxResponse:
    """Answer one ``/_sandbox/assets/*`` request."""
    try:
        status, body = _dispatch(store, limiter, req, managed_schema_id)
    except ApiFailure as failure:
        status, body = failure.status, failure.body()
    return SandboxResponse(status=status, body=body, route="")


def _json(req: SandboxRequest) -> dict[str, Any]:
    try:
        body = req.json()
    except ValueError:
        raise ApiFailure(400, "The body is not valid JSON") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiFailure(400, "The body must be a JSON object")
    return body


def _dispatch(
    store: AssetsStore, limiter: SlidingWindowLimiter, req: SandboxRequest, managed: int
) -> tuple[int, Any]:
    tail = req.path[len(PREFIX) :].strip("/")
    method = req.method.upper()
    body = _json(req) if method in ("POST", "PUT") else {}
    if tail == "settings":
        if method == "POST":
            _apply_settings(store, limiter, body)
        return 200, settings_of(store, limiter)
    if tail == "users" and method == "POST":
        email, name = body.get("email"), body.get("display_name")
        if not isinstance(email, str) or not isinstance(name, str):
            raise ApiFailure(400, "email and display_name are required")
        account_id = store.users.add(
            email,
            name,
            active=as_bool(body.get("active", True), "active"),
            email_visible=as_bool(body.get("email_visible", True), "email_visible"),
        )
        return 201, {"accountId": account_id}
    with store.lock:
        if tail == "stats" and method == "GET":
            return 200, snapshot_stats(store, managed_schema_id=managed)
        if tail == "objects" and method == "GET":
            type_name = req.arg("type")
            if not type_name:
                raise ApiFailure(400, "The type query parameter is required")
            return 200, dump_objects(
                store, type_name, managed_schema_id=managed, schema_key=req.arg("schema")
            )
        if tail == "objects" and method == "POST":
            type_rec = _type_from(store, body, managed)
            inputs = inputs_by_name(store, type_rec.id, _attributes(body))
            obj = create_object(store, type_rec.id, inputs, bypass_unique=_bypass(body))
            return 201, dump_object(store, obj)
        if tail.startswith("objects/") and method in ("PUT", "DELETE"):
            ref = tail[len("objects/") :]
            if method == "DELETE":
                delete_object(store, ref)
                return 204, None
            found = store.find_object(ref)
            if found is None:
                raise ApiFailure(404, f"Object {ref} was not found")
            inputs = inputs_by_name(store, found.type_id, _attributes(body))
            return 200, dump_object(
                store, update_object(store, ref, None, inputs, bypass_unique=_bypass(body))
            )
        if tail in ("attributes/rename", "attributes/delete") and method == "POST":
            type_rec = _type_from(store, body, managed)
            attr = store.attr_by_name(type_rec.id, str(body.get("attribute", "")))
            if attr is None:
                raise ApiFailure(
                    404, f"Object type {type_rec.name} has no attribute {body.get('attribute')!r}"
                )
            if tail.endswith("delete"):
                store.delete_attribute(attr.id)
                return 200, {"deleted": str(attr.id)}
            new_name = body.get("new_name")
            if not isinstance(new_name, str) or not new_name.strip():
                raise ApiFailure(400, "new_name is required")
            store.update_attribute(type_rec.id, attr.id, {"name": new_name.strip()})
            return 200, {"id": str(attr.id), "name": new_name.strip()}
    raise ApiFailure(404, f"No sandbox control route {method} {req.path}")


def _apply_settings(store: AssetsStore, limiter: SlidingWindowLimiter, body: dict[str, Any]) -> None:
    unknown = set(body) - {"enforce_unique", "is_last_as_string", "rate_limit_per_minute"}
    if unknown:
        raise ApiFailure(400, f"Unknown settings: {', '.join(sorted(unknown))}")
    if "enforce_unique" in body:
        store.enforce_unique = as_bool(body["enforce_unique"], "enforce_unique")
    if "is_last_as_string" in body:
        store.is_last_as_string = as_bool(body["is_last_as_string"], "is_last_as_string")
    if "rate_limit_per_minute" in body:
        limit = body["rate_limit_per_minute"]
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise ApiFailure(400, "rate_limit_per_minute must be a non-negative integer or null")
        limiter.set(limit)


def _type_from(store: AssetsStore, body: dict[str, Any], managed: int) -> TypeRec:
    name = body.get("type")
    schema = body.get("schema")
    if not isinstance(name, str):
        raise ApiFailure(400, "type is required")
    type_rec = resolve_type(
        store, name, managed_schema_id=managed, schema_key=schema if isinstance(schema, str) else None
    )
    if type_rec is None:
        raise ApiFailure(404, f"Object type {name!r} was not found")
    return type_rec


def _attributes(body: dict[str, Any]) -> dict[str, Any]:
    attributes = body.get("attributes", {})
    if not isinstance(attributes, dict):
        raise ApiFailure(400, "attributes must be an object of name -> value")
    return attributes


def _bypass(body: dict[str, Any]) -> bool:
    return as_bool(body.get("bypass_unique", False), "bypass_unique")
