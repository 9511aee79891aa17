"""Objects of the managed types: bulk read, lookup by key, and writes that never duplicate.

Reading: one AQL search per type (``objectTypeId = N``), 500 objects a page, parsed into
``AssetsObject`` values keyed by our key attribute. Objects without our key attribute are
reported (count and Assets object keys) and left alone; two objects holding the same key are
reported too and never "fixed" by a delete.

Writing: values are encoded per kind (``values.encode``). ``POST /object/create`` has no
idempotency key, so a create that timed out or got a 5xx is retried (under the HTTP layer's
policy: Retry-After, backoff, retry budget, ``http.max_retries``) only after an AQL lookup by
key proves that the earlier attempt did not land; if it did, its id is returned. A 400 on one
object becomes an ``ApiClientError`` naming the attributes the server rejected (its
``rlabs-insight-attribute-N`` keys mapped back to names): the run skips that object and goes
on. 401/403 (``ApiAuthError``) end the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from importer.assets.aql import aql_in, aql_type
from importer.assets.client import AssetsClient
from importer.assets.models import AssetsObject, NormValue, ResolvedType, as_id
from importer.assets.values import decode, encode
from importer.errors import ApiClientError, TransportError

__all__ = ["AssetsObjects", "ReadResult", "parse_object"]

_log = structlog.get_logger("importer.assets.objects")
_ATTRIBUTE_FIELD = re.compile(r"rlabs-insight-attribute-(\d+)")
_LOG_SAMPLE = 20  # object keys listed in a log line; the result holds all of them


def parse_object(rtype: ResolvedType, raw: Mapping[str, Any]) -> AssetsObject:
    """An ``Object`` document as an ``AssetsObject``, values decoded per kind (system attributes skipped)."""
    values: dict[str, NormValue] = {}
    for item in raw.get("attributes") or ():
        if not isinstance(item, dict):
            continue
        attr_id = as_id(item.get("objectTypeAttributeId"))
        if attr_id is None and isinstance(item.get("objectTypeAttribute"), dict):
            attr_id = as_id(item["objectTypeAttribute"].get("id"))
        attr = rtype.attribute_by_id(attr_id) if attr_id else None
        if attr is None or attr.system:
            continue
        name = rtype.name_of(attr.id) or attr.name
        values[name] = decode(attr, item.get("objectAttributeValues"))
    key_name = rtype.name_of(rtype.key_attribute.id) or rtype.key_attribute.name
    key = values.get(key_name)
    type_doc = raw.get("objectType")
    type_id = as_id(type_doc.get("id")) if isinstance(type_doc, dict) else None
    return AssetsObject(
        id=as_id(raw.get("id")) or "",
        type_id=type_id or as_id(raw.get("objectTypeId")) or rtype.id,
        key=key if isinstance(key, str) else None,
        label=raw.get("label") if isinstance(raw.get("label"), str) else None,
        object_key=raw.get("objectKey") if isinstance(raw.get("objectKey"), str) else None,
        values=values,
    )


def _id_order(obj: AssetsObject) -> tuple[int, str]:
    return (int(obj.id), obj.id) if obj.id.isdigit() else (1 << 62, obj.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadResult:
    """A type's objects by key, plus what we found but will not touch.

    ``duplicates`` maps a key held by several objects to all of them, oldest (lowest id) first;
    that one is also in ``objects``, and none is ever deleted to "fix" it. ``unkeyed`` lists the
    Assets object keys (``ENTRA-12``) of objects without our key attribute, which we leave alone.
    """

    objects: Mapping[str, AssetsObject]
    unkeyed: tuple[str, ...] = ()
    duplicates: Mapping[str, tuple[AssetsObject, ...]] = field(default_factory=dict)


class AssetsObjects:
    """Reads and writes objects of resolved types through an ``AssetsClient``."""

    def __init__(self, client: AssetsClient, *, key_chunk: int = 50) -> None:
        self.client = client
        self.key_chunk = key_chunk

    # -- reads -------------------------------------------------------------------------------

    def iter_objects(
        self, type: ResolvedType, *, page_size: int = 500, ql: str | None = None
    ) -> Iterator[AssetsObject]:
        """Every object of ``type`` (one AQL search, ``page_size`` a page), each once."""
        seen: set[str] = set()
        for page in self.client.iter_aql_pages(ql or aql_type(type.id), page_size=page_size):
            for raw in page.objects:
                obj = parse_object(type, raw)
                if obj.id in seen or obj.type_id != type.id:
                    continue  # a page replayed an object, or a subtype's object slipped in
                seen.add(obj.id)
                yield obj

    def read_objects(
        self,
        type: ResolvedType,
        *,
        page_size: int = 500,
        compact: Callable[[AssetsObject], AssetsObject] | None = None,
    ) -> ReadResult:
        """All objects of ``type`` by key, with unkeyed objects and duplicate keys reported.

        ``compact`` sees each keyed object as its page arrives and returns what to keep of it (a
        caller that already knows what it wants may keep a bare id instead of every value).
        """
        objects: dict[str, AssetsObject] = {}
        dupes: dict[str, list[AssetsObject]] = {}
        unkeyed: list[str] = []
        for found in self.iter_objects(type, page_size=page_size):
            key = found.key
            if key is None:
                unkeyed.append(found.object_key or found.id)
                continue
            obj = compact(found) if compact is not None else found
            other = objects.get(key)
            if other is None:
                objects[key] = obj
                continue
            dupes.setdefault(key, [other]).append(obj)
            if _id_order(obj) < _id_order(other):
                objects[key] = obj
        duplicates = {k: tuple(sorted(v, key=_id_order)) for k, v in dupes.items()}
        _log.info(
            "objects_read",
            object_type=type.name,
            objects=len(objects),
            unkeyed=len(unkeyed),
            duplicate_keys=len(duplicates),
        )
        if unkeyed:
            _log.warning(
                "unkeyed_objects_found",
                object_type=type.name,
                count=len(unkeyed),
                object_keys=unkeyed[:_LOG_SAMPLE],
                key_attribute=type.key_attribute.name,
            )
        if duplicates:
            sample = [o.object_key or o.id for objs in list(duplicates.values())[:_LOG_SAMPLE] for o in objs]
            _log.warning(
                "duplicate_keys_found", object_type=type.name, count=len(duplicates), object_keys=sample
            )
        return ReadResult(objects=objects, unkeyed=tuple(unkeyed), duplicates=duplicates)

    def find_by_keys(self, type: ResolvedType, keys: Collection[str]) -> dict[str, AssetsObject]:
        """The objects holding these keys (``"<key>" IN (...)`` in chunks); absent keys are left out."""
        wanted = {k.casefold(): k for k in dict.fromkeys(keys) if k}
        found: dict[str, AssetsObject] = {}
        ordered = list(wanted.values())
        for start in range(0, len(ordered), self.key_chunk):
            chunk = ordered[start : start + self.key_chunk]
            ql = aql_in(type.id, type.key_attribute.name, chunk)
            for obj in self.iter_objects(type, page_size=max(100, 2 * len(chunk)), ql=ql):
                # AQL compares case-insensitively on Cloud: match the same way.
                requested = wanted.get(obj.key.casefold()) if obj.key else None
                if requested is not None and (
                    requested not in found or _id_order(obj) < _id_order(found[requested])
                ):
                    found[requested] = obj
        return found

    # -- writes ------------------------------------------------------------------------------

    def _payload(
        self, type: ResolvedType, values: Mapping[str, NormValue], *, skip_empty: bool
    ) -> list[dict[str, Any]]:
        payload: list[dict[str, Any]] = []
        for name, value in values.items():
            attr = type.attribute(name)
            encoded = encode(attr, value)
            if skip_empty and not encoded:
                continue
            payload.append({"objectTypeAttributeId": attr.id, "objectAttributeValues": encoded})
        return payload

    def create_object(self, type: ResolvedType, values: Mapping[str, NormValue]) -> str:
        """Create an object and return its id; never creates a second one for the same key.

        Raises:
            ValueError: ``values`` lacks the key attribute.
            ApiClientError: the server rejected the object (names the attributes).
        """
        key = values.get(type.name_of(type.key_attribute.id) or type.key_attribute.name)
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"object type {type.name!r}: a new object needs its key attribute {type.key_attribute.name!r}"
            )
        payload = self._payload(type, values, skip_empty=True)

        def landed() -> Mapping[str, object] | None:
            # An attempt may have landed: only a lookup proving it did not allows another one.
            existing = self.find_by_keys(type, [key]).get(key)
            if existing is None:
                _log.warning("object_create_retried", object_type=type.name)
                return None
            _log.info("object_create_recovered", object_type=type.name, object_key=existing.object_key)
            return {"id": existing.id, "objectKey": existing.object_key}

        try:
            answer = self.client.create_object(type.id, payload, landed=landed)
        except ApiClientError as exc:
            raise _named(type, exc) from None
        object_id = as_id(answer.get("id"))
        if object_id is None:
            raise TransportError(
                service=self.client.http.service,
                method="POST",
                route="/object/create",
                status=201,
                detail="the answer carries no object id",
            )
        _log.debug("object_created", object_type=type.name, object_key=answer.get("objectKey"))
        return object_id

    def update_object(
        self, object_id: str, type: ResolvedType, values: Mapping[str, NormValue]
    ) -> AssetsObject | None:
        """Write only the given (changed) attributes; None clears one. Returns the echoed object.

        The echo is compared with what was sent; a difference is logged by attribute name.
        """
        if not values:
            return None
        try:
            answer = self.client.update_object(
                object_id, type.id, self._payload(type, values, skip_empty=False)
            )
        except ApiClientError as exc:
            raise _named(type, exc) from None
        if not answer.get("attributes"):
            return None
        echoed = parse_object(type, answer)
        # An attribute without a value is absent from the echo, so .get() covers clears too.
        differing = sorted(n for n, v in values.items() if echoed.values.get(n) != v)
        if differing:
            _log.warning(
                "object_update_echo_differed",
                object_type=type.name,
                object_key=echoed.object_key,
                attributes=differing,
            )
        return echoed

    def delete_object(self, object_id: str) -> bool:
        """Delete an object; True when deleted now, False when it was already gone (both succeed)."""
        deleted = self.client.delete_object(object_id)
        _log.debug("object_deleted" if deleted else "object_already_gone", object_id=object_id)
        return deleted


def _named(type: ResolvedType, exc: ApiClientError) -> ApiClientError:
    """The same error with ``rlabs-insight-attribute-N`` field keys replaced by attribute names."""
    fields: dict[str, str] = {}
    for key, message in exc.fields.items():
        match = _ATTRIBUTE_FIELD.fullmatch(key)
        attr = type.attribute_by_id(match.group(1)) if match else None
        fields[(type.name_of(attr.id) or attr.name) if attr else key] = message
    detail = (
        f"{type.name}: rejected attribute(s) {', '.join(sorted(fields))}"
        if fields
        else f"{type.name}: object rejected"
    )
    return ApiClientError(
        **exc.origin(),
        fields=fields,
        detail=detail,
        server_messages=exc.server_messages,
    )
