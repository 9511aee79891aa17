"""Response bodies in the shapes of the Assets Cloud OpenAPI document (v1.135.77) and its examples.

Ids are strings, as the spec declares. Links point at the sandbox's own base URL (the real API
answers with ``https://api.atlassian.com/ex/jira/{cloudId}/...`` links). Avatars carry no
``mediaClientConfig`` (a media-service JWT nobody here can use). One ``Renderer`` serves one
request and memoises object types and referenced objects, so a 500-object page renders fast.
"""

from __future__ import annotations

from typing import Any

from importer.sandbox.assets_model import (
    DEFAULT_TYPE_NAMES,
    KIND_DEFAULT,
    KIND_REFERENCE,
    KIND_STATUS,
    KIND_USER,
    AttrRec,
    ObjRec,
    RefTypeRec,
    SchemaRec,
    StatusRec,
    TypeRec,
    iso_ms,
)
from importer.sandbox.assets_store import AssetsStore

__all__ = ["Renderer"]


class Renderer:
    """Builds JSON-ready dicts for one request."""

    def __init__(self, store: AssetsStore, base_url: str) -> None:
        self._store = store
        self._ws = store.workspace_id
        self.site = base_url or "https://api.atlassian.com"
        self.api = f"{self.site}/jsm/assets/workspace/{self._ws}/v1"
        self._types: dict[tuple[int, bool], dict[str, Any]] = {}
        self._refs: dict[int, dict[str, Any]] = {}

    def _ids(self, rec_id: int) -> dict[str, Any]:
        return {"workspaceId": self._ws, "globalId": f"{self._ws}:{rec_id}", "id": str(rec_id)}

    def schema(self, rec: SchemaRec, *, counts: bool) -> dict[str, Any]:
        """An ``ObjectSchema``; counts are 0 unless asked for, as ``includeCounts`` documents."""
        types = [t for t in self._store.types.values() if t.schema_id == rec.id]
        return {
            **self._ids(rec.id),
            "name": rec.name,
            "objectSchemaKey": rec.key,
            "status": "Ok",
            "description": rec.description,
            "created": iso_ms(rec.created_ms),
            "updated": iso_ms(rec.updated_ms),
            "objectCount": sum(len(self._store.type_objects[t.id]) for t in types) if counts else 0,
            "objectTypeCount": len(types) if counts else 0,
            "canManage": True,
        }

    def icon(self, icon_id: str, type_id: int | None = None) -> dict[str, Any]:
        """An ``Icon``."""
        icon = self._store.icons[icon_id]
        path = f"objecttype/{type_id}" if type_id is not None else f"icon/{icon_id}"
        return {
            "id": icon.id,
            "name": icon.name,
            "url16": f"{self.api}/{path}/icon.png?size=16",
            "url48": f"{self.api}/{path}/icon.png?size=48",
        }

    def object_type(self, rec: TypeRec, *, count: bool) -> dict[str, Any]:
        """An ``ObjectType``; ``objectCount`` is 0 where the real API leaves it unpopulated."""
        memo = self._types.get((rec.id, count))
        if memo is not None:
            return memo
        parent = self._store.types.get(rec.parent_id) if rec.parent_id is not None else None
        out: dict[str, Any] = {**self._ids(rec.id), "name": rec.name}
        if rec.description:
            out["description"] = rec.description
        out.update(
            {
                "icon": self.icon(rec.icon_id, rec.id),
                "position": rec.position,
                "created": iso_ms(rec.created_ms),
                "updated": iso_ms(rec.updated_ms),
                "objectCount": len(self._store.type_objects[rec.id]) if count else 0,
                "objectSchemaId": str(rec.schema_id),
                "inherited": rec.inherited,
                "abstractObjectType": rec.abstract,
                "parentObjectTypeInherited": bool(parent and parent.inherited),
            }
        )
        if rec.parent_id is not None:
            out["parentObjectTypeId"] = rec.parent_id  # the spec declares this one an integer
        self._types[(rec.id, count)] = out
        return out

    def ref_type(self, rec: RefTypeRec) -> dict[str, Any]:
        """A ``ReferenceType`` (global ones carry ``objectSchemaId: null``, as in the spec example)."""
        return {
            **self._ids(rec.id),
            "name": rec.name,
            "description": rec.description,
            "color": rec.color,
            "url16": f"{self.api}/config/referencetype/{rec.id}/image.png?size=16",
            "removable": rec.schema_id is not None,
            "objectSchemaId": None if rec.schema_id is None else str(rec.schema_id),
        }

    def status(self, rec: StatusRec, *, created: bool = False) -> dict[str, Any]:
        """A ``Status`` (as listed; ``created`` adds the ids the POST example shows)."""
        out: dict[str, Any] = self._ids(rec.id) if created else {"id": str(rec.id)}
        out.update(
            {
                "name": rec.name,
                "description": rec.description,
                "category": rec.category,
                "objectSchemaId": None if rec.schema_id is None else str(rec.schema_id),
            }
        )
        return out

    def attribute(self, attr: AttrRec, *, with_type: bool) -> dict[str, Any]:
        """An ``ObjectTypeAttribute``; ``with_type`` embeds its ``objectType``."""
        out: dict[str, Any] = self._ids(attr.id)
        if with_type:
            out["objectType"] = self.object_type(self._store.types[attr.type_id], count=False)
        out.update({"name": attr.name, "label": attr.label, "type": attr.kind})
        if attr.description:
            out["description"] = attr.description
        if attr.kind == KIND_DEFAULT:
            out["defaultType"] = {"id": attr.default_type, "name": DEFAULT_TYPE_NAMES[attr.default_type]}
        if (
            attr.kind == KIND_REFERENCE
            and attr.ref_object_type_id is not None
            and attr.ref_kind_id is not None
        ):
            ref_kind = self._store.ref_types[attr.ref_kind_id]
            out["referenceType"] = {k: v for k, v in self.ref_type(ref_kind).items() if v is not None}
            out["referenceObjectTypeId"] = str(attr.ref_object_type_id)
            ref_type = self._store.types.get(attr.ref_object_type_id)
            if ref_type is not None:
                out["referenceObjectType"] = self.object_type(ref_type, count=False)
        if attr.kind in (KIND_USER, KIND_STATUS):
            out["typeValueMulti"] = list(attr.type_value_multi)
        if attr.additional_value:
            out["additionalValue"] = attr.additional_value
        out.update(
            {
                "editable": not attr.system,
                "system": attr.system,
                "sortable": True,
                "summable": attr.summable,
                "indexed": True,
                "minimumCardinality": attr.min_card,
                "maximumCardinality": attr.max_card,
                "suffix": attr.suffix,
                "removable": not (attr.system or attr.label),
                "hidden": attr.hidden,
                "includeChildObjectTypes": attr.include_children,
                "uniqueAttribute": attr.unique,
                "regexValidation": attr.regex,
                "options": ",".join(attr.options),
                "position": attr.position,
            }
        )
        return out

    def avatar(self, obj: ObjRec) -> dict[str, Any]:
        """The object's ``Avatar`` (its type's icon)."""
        base = f"{self.api}/objecttype/{obj.type_id}/icon.png"
        out: dict[str, Any] = {"workspaceId": self._ws, "globalId": f"{self._ws}:{obj.id}"}
        out.update({f"url{size}": f"{base}?size={size}" for size in (16, 48, 72, 144, 288)})
        out["objectId"] = str(obj.id)
        return out

    def object(self, obj: ObjRec, *, attributes: str = "none", extended: bool = False) -> dict[str, Any]:
        """An ``Object``; ``attributes``: "none", "aql" (ids only) or "full" (with definitions)."""
        label = self._store.label(obj)
        out: dict[str, Any] = {
            **self._ids(obj.id),
            "label": label,
            "objectKey": self._store.object_key(obj),
            "avatar": self.avatar(obj),
            "objectType": self.object_type(self._store.types[obj.type_id], count=False),
            "created": iso_ms(obj.created_ms),
            "updated": iso_ms(obj.updated_ms),
            "hasAvatar": False,
            "timestamp": obj.updated_ms,
        }
        if attributes != "none":
            out["attributes"] = [
                self.object_attribute(obj, attr, full=attributes == "full")
                for attr in self._store.attrs_of(obj.type_id)
                if attr.system or attr.id in obj.values
            ]
        if extended:
            out["extendedInfo"] = {"openIssuesExists": False, "attachmentsExists": False}
        out["_links"] = {"self": f"{self.api}/object/{obj.id}"}
        out["name"] = label
        return out

    def object_attribute(self, obj: ObjRec, attr: AttrRec, *, full: bool) -> dict[str, Any]:
        """An ``ObjectAttribute``; ``full`` embeds the ``objectTypeAttribute`` definition."""
        value_id = obj.value_ids.get(attr.id)
        if value_id is None:  # system attributes get their id the first time they are shown
            value_id = obj.value_ids[attr.id] = self._store.next_id("value")
        out: dict[str, Any] = self._ids(value_id)
        if full:
            out["objectTypeAttribute"] = self.attribute(attr, with_type=False)
        out["objectTypeAttributeId"] = str(attr.id)
        out["objectAttributeValues"] = [self.value(attr, stored) for stored in self._stored(obj, attr)]
        out["objectId"] = str(obj.id)
        return out

    def _stored(self, obj: ObjRec, attr: AttrRec) -> list[str]:
        if not attr.system:
            return obj.values.get(attr.id, [])
        if attr.name == "Key":
            return [self._store.object_key(obj)]
        return [iso_ms(obj.created_ms if attr.name == "Created" else obj.updated_ms)]

    def value(self, attr: AttrRec, stored: str) -> dict[str, Any]:
        """One ``ObjectAttributeValue``; references, users and statuses carry no ``value``."""
        store = self._store
        if attr.kind == KIND_REFERENCE:
            target = store.objects[int(stored)]
            return {
                "referencedObject": self.referenced_object(target),
                "displayValue": store.label(target),
                "searchValue": store.object_key(target),
                "referencedType": True,
            }
        if attr.kind == KIND_USER:
            return {
                "user": store.users.render_assets_user(stored, self.site),
                "displayValue": store.display_text(attr, stored),
                "searchValue": stored,
                "referencedType": False,
            }
        if attr.kind == KIND_STATUS:
            status = store.statuses[int(stored)]
            return {
                "status": {"id": str(status.id), "name": status.name, "category": status.category},
                "displayValue": status.name,
                "searchValue": str(status.id),
                "referencedType": False,
            }
        return {
            "value": stored,
            "displayValue": store.display_text(attr, stored),
            "searchValue": stored,
            "referencedType": False,
        }

    def referenced_object(self, target: ObjRec) -> dict[str, Any]:
        """The object (without attributes) inside a reference value."""
        memo = self._refs.get(target.id)
        if memo is None:
            memo = self._refs[target.id] = self.object(target)
        return memo
