"""The state of the simulated Assets workspace: records, ids, indices and write validation.

Every method expects the caller to hold ``store.lock`` (an RLock; the service takes it once per
request). Indices kept up to date on every write:

- per object type, the ids of its objects in creation order (a dict used as an ordered set, plus
  a cached list so paging through 100,000 objects slices instead of scanning);
- per unique attribute, casefolded value -> ids of the objects holding it (uniqueness checks,
  ``=``/``IN`` lookups, duplicate statistics);
- per object, who references it (so deleting it removes those reference values, as Assets does).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any

from importer.sandbox.assets_model import (
    KIND_DEFAULT,
    KIND_REFERENCE,
    KIND_STATUS,
    KIND_USER,
    ApiFailure,
    AttrRec,
    IconRec,
    ObjRec,
    RefTypeRec,
    SchemaRec,
    StatusRec,
    TypeRec,
    display_value,
    normalize_default_value,
)
from importer.sandbox.assets_schema import StatusIn, TypeIn, cardinality_allowed
from importer.sandbox.jira_users import JiraUserDirectory

__all__ = ["AssetsStore", "AttrInput", "now_ms"]

AttrInput = tuple[int, list[object]]  # (objectTypeAttributeId, raw values)
_KEY_RE = re.compile(r"(.+)-(\d+)")


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


class AssetsStore:
    """Schemas, object types, attributes, objects, statuses; the rules Assets enforces on writes."""

    def __init__(self, *, workspace_id: str, users: JiraUserDirectory) -> None:
        self.lock = threading.RLock()
        self.workspace_id = workspace_id
        self.users = users
        self.enforce_unique = True
        self.is_last_as_string = False  # AQL pages answer isLast "true"/"false" like the spec example
        self.schemas: dict[int, SchemaRec] = {}
        self.types: dict[int, TypeRec] = {}
        self.attrs: dict[int, AttrRec] = {}
        self.type_attrs: dict[int, list[int]] = {}
        self.objects: dict[int, ObjRec] = {}
        self.type_objects: dict[int, dict[int, None]] = {}
        self.unique_index: dict[int, dict[str, list[int]]] = {}
        self.statuses: dict[int, StatusRec] = {}
        self.ref_types: dict[int, RefTypeRec] = {}
        self.icons: dict[str, IconRec] = {}
        self._type_lists: dict[int, list[int]] = {}
        self._referrers: dict[int, set[tuple[int, int]]] = {}
        # distinct id ranges per kind, so a client mixing up ids gets a 404, not someone else's record
        self._ids = {
            "schema": itertools.count(6),
            "type": itertools.count(19),
            "attr": itertools.count(134),
            "object": itertools.count(81),
            "value": itertools.count(637),
            "status": itertools.count(8),
        }

    def next_id(self, kind: str) -> int:
        """Allocate the next id of ``kind`` (schema, type, attr, object, value, status)."""
        return next(self._ids[kind])

    # ---- schema side -------------------------------------------------------------------------

    def add_schema(self, *, name: str, key: str, description: str = "") -> SchemaRec:
        """Create an object schema."""
        stamp = now_ms()
        rec = SchemaRec(
            id=self.next_id("schema"),
            name=name,
            key=key,
            description=description,
            created_ms=stamp,
            updated_ms=stamp,
        )
        self.schemas[rec.id] = rec
        return rec

    def add_type(self, spec: TypeIn) -> TypeRec:
        """Create an object type with the system attributes Key, Created, Updated and the label Name."""
        if spec.schema_id not in self.schemas:
            raise ApiFailure(400, errors={"objectSchemaId": f"Object schema {spec.schema_id} was not found"})
        if spec.icon_id not in self.icons:
            raise ApiFailure(400, errors={"iconId": f"Icon {spec.icon_id} was not found"})
        if spec.parent_id is not None and (
            spec.parent_id not in self.types or self.types[spec.parent_id].schema_id != spec.schema_id
        ):
            raise ApiFailure(400, errors={"parentObjectTypeId": "The parent object type was not found"})
        if self.find_type(spec.name, spec.schema_id) is not None:
            raise ApiFailure(400, errors={"name": f"An object type named {spec.name!r} already exists"})
        stamp = now_ms()
        rec = TypeRec(
            id=self.next_id("type"),
            schema_id=spec.schema_id,
            name=spec.name,
            description=spec.description,
            icon_id=spec.icon_id,
            position=sum(1 for t in self.types.values() if t.schema_id == spec.schema_id),
            created_ms=stamp,
            updated_ms=stamp,
            parent_id=spec.parent_id,
            inherited=spec.inherited,
            abstract=spec.abstract,
        )
        self.types[rec.id] = rec
        self.type_attrs[rec.id] = []
        self.type_objects[rec.id] = {}
        for name, default_type, system, label in (
            ("Key", 0, True, False),
            ("Name", 0, False, True),
            ("Created", 6, True, False),
            ("Updated", 6, True, False),
        ):
            attr = AttrRec(
                id=self.next_id("attr"),
                type_id=rec.id,
                name=name,
                kind=KIND_DEFAULT,
                default_type=default_type,
                label=label,
                system=system,
                min_card=1,
                position=len(self.type_attrs[rec.id]),
                description="The name of the object" if label else "",
            )
            self.attrs[attr.id] = attr
            self.type_attrs[rec.id].append(attr.id)
        return rec

    def find_type(self, name: str, schema_id: int | None = None) -> TypeRec | None:
        """The object type called ``name`` (case-insensitive), optionally within one schema."""
        wanted = name.casefold()
        for rec in self.types.values():
            if rec.name.casefold() == wanted and (schema_id is None or rec.schema_id == schema_id):
                return rec
        return None

    def attrs_of(self, type_id: int) -> list[AttrRec]:
        """The attributes of a type, by position."""
        return [self.attrs[attr_id] for attr_id in self.type_attrs.get(type_id, [])]

    def attr_by_name(self, type_id: int, name: str) -> AttrRec | None:
        """The attribute of ``type_id`` called ``name`` (case-insensitive)."""
        wanted = name.casefold()
        return next((a for a in self.attrs_of(type_id) if a.name.casefold() == wanted), None)

    def add_attribute(self, type_id: int, fields: dict[str, Any]) -> AttrRec:
        """Create an attribute from parsed ``ObjectTypeAttributeCreate`` fields."""
        if type_id not in self.types:
            raise ApiFailure(404, f"Object type {type_id} was not found")
        self._check_attribute_fields(type_id, None, fields)
        attr = AttrRec(
            id=self.next_id("attr"),
            type_id=type_id,
            position=len(self.type_attrs[type_id]),
            **fields,
        )
        if not cardinality_allowed(attr.kind, attr.default_type):
            attr.max_card = 1
        if attr.kind == KIND_STATUS:
            attr.max_card = 1
        self.attrs[attr.id] = attr
        self.type_attrs[type_id].append(attr.id)
        if attr.label:
            self._move_label(attr)
        if attr.unique:
            self.unique_index[attr.id] = {}
        return attr

    def update_attribute(self, type_id: int, attr_id: int, fields: dict[str, Any]) -> AttrRec:
        """Apply parsed ``ObjectTypeAttributeUpdate`` fields."""
        attr = self.attrs.get(attr_id)
        if attr is None or attr.type_id != type_id:
            raise ApiFailure(404, f"Object type attribute {attr_id} was not found in object type {type_id}")
        if attr.system:
            raise ApiFailure(400, f"The system attribute {attr.name} cannot be changed")
        if fields.get("kind", attr.kind) != attr.kind or fields.get("default_type", attr.default_type) != (
            attr.default_type
        ):
            raise ApiFailure(400, errors={"type": "The type of an existing attribute cannot be changed"})
        self._check_attribute_fields(type_id, attr, fields)
        if fields.get("label") is False and attr.label:
            raise ApiFailure(400, errors={"label": "Make another attribute the label instead"})
        if fields.get("unique") and not attr.unique:
            index = self._build_unique_index(attr)
            if self.enforce_unique and any(len(ids) > 1 for ids in index.values()):
                raise ApiFailure(400, errors={"uniqueAttribute": "Existing values are not unique"})
            self.unique_index[attr.id] = index
        elif fields.get("unique") is False:
            self.unique_index.pop(attr.id, None)
        for name, value in fields.items():
            setattr(attr, name, value)
        if not cardinality_allowed(attr.kind, attr.default_type):
            attr.max_card = 1
        if fields.get("label"):
            self._move_label(attr)
        return attr

    def delete_attribute(self, attr_id: int) -> None:
        """Delete an attribute and its values on every object of its type."""
        attr = self.attrs.get(attr_id)
        if attr is None:
            raise ApiFailure(404, f"Object type attribute {attr_id} was not found")
        if attr.system or attr.label:
            raise ApiFailure(400, f"The attribute {attr.name} cannot be deleted (system or label attribute)")
        for obj_id in self.type_objects[attr.type_id]:
            self.set_values(self.objects[obj_id], attr, [])
        self.unique_index.pop(attr_id, None)
        self.type_attrs[attr.type_id].remove(attr_id)
        del self.attrs[attr_id]

    def _check_attribute_fields(self, type_id: int, current: AttrRec | None, fields: dict[str, Any]) -> None:
        name = fields.get("name")
        if name is not None:
            clash = self.attr_by_name(type_id, name)
            if clash is not None and clash is not current:
                raise ApiFailure(400, errors={"name": f"An attribute named {name!r} already exists"})
        if fields.get("kind") == KIND_REFERENCE:
            ref_type = self.types.get(fields["ref_object_type_id"])
            if ref_type is None:
                raise ApiFailure(400, errors={"typeValue": "The referenced object type was not found"})
            if fields["ref_kind_id"] not in self.ref_types:
                raise ApiFailure(400, errors={"additionalValue": "The reference type was not found"})
        min_card = fields.get("min_card", current.min_card if current else 0)
        max_card = fields.get("max_card", current.max_card if current else 1)
        if max_card != -1 and min_card > max_card:
            raise ApiFailure(400, errors={"minimumCardinality": "must not exceed maximumCardinality"})

    def _move_label(self, attr: AttrRec) -> None:
        for other in self.attrs_of(attr.type_id):
            other.label = other is attr

    def _build_unique_index(self, attr: AttrRec) -> dict[str, list[int]]:
        index: dict[str, list[int]] = {}
        for obj_id in self.type_objects[attr.type_id]:
            for value in self.objects[obj_id].values.get(attr.id, []):
                index.setdefault(value.casefold(), []).append(obj_id)
        return index

    def add_status(self, spec: StatusIn) -> StatusRec:
        """Create a status type (global when no schema is given)."""
        if spec.schema_id is not None and spec.schema_id not in self.schemas:
            raise ApiFailure(400, errors={"objectSchemaId": f"Object schema {spec.schema_id} was not found"})
        rec = StatusRec(
            id=self.next_id("status"),
            name=spec.name,
            category=spec.category,
            description=spec.description,
            schema_id=spec.schema_id,
        )
        self.statuses[rec.id] = rec
        return rec

    def statuses_for(self, schema_id: int | None) -> list[StatusRec]:
        """Global statuses, plus those of ``schema_id`` when given."""
        return [s for s in self.statuses.values() if s.schema_id is None or s.schema_id == schema_id]

    # ---- objects: see assets_objects.py for writes -------------------------------------------

    def type_object_ids(self, type_id: int) -> list[int]:
        """Ids of the type's objects in creation (= id) order; cached until the type changes."""
        cached = self._type_lists.get(type_id)
        if cached is None:
            cached = self._type_lists[type_id] = list(self.type_objects.get(type_id, {}))
        return cached

    def find_object(self, ref: str) -> ObjRec | None:
        """An object by id (``"88"``) or by key (``"ITSM-88"``)."""
        ref = ref.strip()
        if ref.isdigit():
            return self.objects.get(int(ref))
        match = _KEY_RE.fullmatch(ref)
        if match is None:
            return None
        obj = self.objects.get(int(match.group(2)))
        if obj is None or self.schema_of(obj).key.casefold() != match.group(1).casefold():
            return None
        return obj

    def schema_of(self, obj: ObjRec) -> SchemaRec:
        """The schema an object lives in."""
        return self.schemas[self.types[obj.type_id].schema_id]

    def object_key(self, obj: ObjRec) -> str:
        """``{schemaKey}-{id}``, as Assets Cloud numbers keys."""
        return f"{self.schema_of(obj).key}-{obj.id}"

    def label(self, obj: ObjRec) -> str:
        """The display text of the object's label attribute ("" when unset)."""
        for attr_id in self.type_attrs[obj.type_id]:
            attr = self.attrs[attr_id]
            if attr.label:
                values = obj.values.get(attr_id)
                return self.display_text(attr, values[0]) if values else ""
        return ""

    def display_text(self, attr: AttrRec, stored: str) -> str:
        """How a stored value reads: referenced label, user display name, status name, or the value."""
        if attr.kind == KIND_REFERENCE:
            target = self.objects.get(int(stored))
            return self.label(target) if target else stored
        if attr.kind == KIND_USER:
            user = self.users.get(stored)
            return user.display_name if user else stored
        if attr.kind == KIND_STATUS:
            status = self.statuses.get(int(stored))
            return status.name if status else stored
        return display_value(attr, stored)

    def normalize(self, type_rec: TypeRec, attr: AttrRec, raw: str) -> str:
        """Validate one written value of ``attr``; return its stored form or raise ValueError."""
        if attr.kind == KIND_DEFAULT:
            return normalize_default_value(attr, raw)
        text = raw.strip()
        if attr.kind == KIND_REFERENCE:
            target = self.find_object(text)
            if target is None:
                raise ValueError(f"The referenced object {text!r} was not found")
            if not self._is_kind_of(target.type_id, attr):
                raise ValueError(f"Object {self.object_key(target)} is not of the referenced object type")
            return str(target.id)
        if attr.kind == KIND_USER:
            if self.users.get(text) is None:
                raise ValueError(f"No Jira user with accountId {text!r}")
            return text
        allowed = self.statuses_for(type_rec.schema_id)
        for status in allowed:
            if (text.isdigit() and status.id == int(text)) or status.name.casefold() == text.casefold():
                return str(status.id)
        raise ValueError(f"The status {text!r} was not found")

    def _is_kind_of(self, type_id: int, attr: AttrRec) -> bool:
        current: int | None = type_id
        while current is not None:
            if current == attr.ref_object_type_id:
                return True
            current = self.types[current].parent_id if attr.include_children else None
        return False

    def set_values(self, obj: ObjRec, attr: AttrRec, values: list[str]) -> None:
        """Replace the values of ``attr`` on ``obj``, keeping every index in step."""
        old = obj.values.get(attr.id, [])
        index = self.unique_index.get(attr.id)
        if index is not None:
            for value in old:
                holders = index.get(value.casefold(), [])
                if obj.id in holders:
                    holders.remove(obj.id)
                if not holders:
                    index.pop(value.casefold(), None)
            for value in values:
                index.setdefault(value.casefold(), []).append(obj.id)
        if attr.kind == KIND_REFERENCE:
            for value in old:
                self._referrers.get(int(value), set()).discard((obj.id, attr.id))
            for value in values:
                self._referrers.setdefault(int(value), set()).add((obj.id, attr.id))
        if values:
            obj.values[attr.id] = values
            if attr.id not in obj.value_ids:
                obj.value_ids[attr.id] = self.next_id("value")
        else:
            obj.values.pop(attr.id, None)
            obj.value_ids.pop(attr.id, None)

    def add_object_record(self, obj: ObjRec) -> None:
        """Register a new (already validated, value-less) object."""
        self.objects[obj.id] = obj
        self.type_objects[obj.type_id][obj.id] = None
        self._type_lists.pop(obj.type_id, None)

    def remove_object_record(self, obj: ObjRec) -> None:
        """Drop an object, its index entries, and other objects' references to it."""
        for attr_id in list(obj.values):
            self.set_values(obj, self.attrs[attr_id], [])
        for source_id, attr_id in sorted(self._referrers.pop(obj.id, set())):
            source = self.objects.get(source_id)
            if source is not None:
                kept = [v for v in source.values.get(attr_id, []) if v != str(obj.id)]
                self.set_values(source, self.attrs[attr_id], kept)
        del self.objects[obj.id]
        del self.type_objects[obj.type_id][obj.id]
        self._type_lists.pop(obj.type_id, None)
