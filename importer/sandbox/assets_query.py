"""Evaluate a parsed AQL tree against the store, using indices where the query allows.

Each node compiles to a ``_Plan``: optional sorted candidate ids taken from an index, whether
those candidates are exactly the answer, and a predicate for everything else. ``objectTypeId =
N`` pages straight off the type's cached id list; ``"Unique Attr" = "v"`` / ``IN`` come from the
unique-value index. Results are in object id (= creation) order.

Semantics: object properties ``objectTypeId``, ``objectType`` (name), ``objectSchemaId``,
``objectSchema`` (name or key), ``objectId`` and ``Key``; any other field is an attribute name
that must exist on some object type of the workspace, else the query is invalid. Comparisons
are case-insensitive and whole-value for ``=``/``IN``, substring for ``LIKE``. A reference
matches the referenced object's label or key, a user the accountId or display name, a status
its name; numbers, booleans and dates compare in their stored canonical form.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from importer.sandbox.aql import And, Comparison, Node, Or
from importer.sandbox.assets_model import (
    KIND_DEFAULT,
    KIND_REFERENCE,
    KIND_STATUS,
    KIND_USER,
    ApiFailure,
    AttrRec,
    ObjRec,
    iso_ms,
    normalize_default_value,
)
from importer.sandbox.assets_store import AssetsStore

__all__ = ["run_query"]

Predicate = Callable[[ObjRec], bool]


@dataclass(frozen=True, slots=True)
class _Plan:
    candidates: Sequence[int] | None  # sorted object ids, or None for "every object"
    exact: bool  # the candidates are exactly the matches (no predicate needed)
    match: Predicate


def run_query(store: AssetsStore, node: Node, *, start: int, limit: int | None) -> tuple[int, list[ObjRec]]:
    """Return (total matches, the page of objects from ``start``); ``limit`` None = count only."""
    plan = _compile(store, node)
    ids: Sequence[int] = plan.candidates if plan.candidates is not None else list(store.objects)
    if plan.exact:
        total = len(ids)
        page_ids = ids[start : start + limit] if limit is not None else []
        return total, [store.objects[i] for i in page_ids]
    matched = [store.objects[i] for i in ids if plan.match(store.objects[i])]
    return len(matched), matched[start : start + limit] if limit is not None else []


def _invalid(message: str) -> ApiFailure:
    return ApiFailure(400, message)


def _compile(store: AssetsStore, node: Node) -> _Plan:
    if isinstance(node, Comparison):
        return _compile_comparison(store, node)
    plans = [_compile(store, item) for item in node.items]
    if isinstance(node, And):
        indexed = [p for p in plans if p.candidates is not None]
        best = min(indexed, key=lambda p: len(p.candidates or ())) if indexed else None
        rest = [p.match for p in plans if p is not best or not p.exact]
        return _Plan(
            candidates=best.candidates if best else None,
            exact=not rest,
            match=lambda obj: all(match(obj) for match in rest),
        )
    assert isinstance(node, Or)
    if all(p.candidates is not None for p in plans):
        merged = sorted(set(heapq.merge(*(p.candidates or () for p in plans))))
        return _Plan(merged, all(p.exact for p in plans), _any([p.match for p in plans]))
    return _Plan(None, False, _any([p.match for p in plans]))


def _any(matches: list[Predicate]) -> Predicate:
    return lambda obj: any(match(obj) for match in matches)


def _types_plan(store: AssetsStore, type_ids: set[int]) -> _Plan:
    lists = [store.type_object_ids(t) for t in sorted(type_ids)]
    candidates: Sequence[int] = lists[0] if len(lists) == 1 else list(heapq.merge(*lists))
    # an unknown type name or id matches nothing (unverified: real AQL may call it invalid)
    return _Plan(candidates, True, lambda obj: obj.type_id in type_ids)


def _ints(node: Comparison) -> set[int]:
    try:
        return {int(value) for value in node.values}
    except ValueError:
        raise _invalid(f"{node.field} expects numeric ids, got {', '.join(node.values)}") from None


def _compile_comparison(store: AssetsStore, node: Comparison) -> _Plan:
    field = node.field.casefold()
    needles = {value.casefold() for value in node.values}
    if node.op == "LIKE" and field in ("objecttypeid", "objectschemaid", "objectid"):
        raise _invalid(f"LIKE cannot be used with {node.field}")
    if field == "objecttypeid":
        return _types_plan(store, _ints(node) & store.types.keys())
    if field == "objectschemaid":
        schemas = _ints(node)
        return _types_plan(store, {t.id for t in store.types.values() if t.schema_id in schemas})
    if field in ("objecttype", "objectschema"):
        names: dict[int, tuple[str, ...]]
        if field == "objecttype":
            names = {t.id: (t.name.casefold(),) for t in store.types.values()}
        else:
            names = {
                t.id: (store.schemas[t.schema_id].name.casefold(), store.schemas[t.schema_id].key.casefold())
                for t in store.types.values()
            }
        return _types_plan(store, {t for t, forms in names.items() if _hit(node, forms, needles)})
    if field == "objectid":
        ids = sorted(i for i in _ints(node) if i in store.objects)
        return _Plan(ids, True, lambda obj: obj.id in ids)
    if field == "key":
        if node.op == "LIKE":
            return _Plan(None, False, lambda obj: _hit(node, (store.object_key(obj).casefold(),), needles))
        found = {obj.id for value in node.values if (obj := store.find_object(value)) is not None}
        return _Plan(sorted(found), True, lambda obj: obj.id in found)
    return _compile_attribute(store, node, needles)


def _compile_attribute(store: AssetsStore, node: Comparison, needles: set[str]) -> _Plan:
    attrs = [a for a in store.attrs.values() if a.name.casefold() == node.field.casefold()]
    if not attrs:
        raise _invalid(f"The attribute {node.field!r} does not exist in this workspace (invalid AQL)")
    by_type = {attr.type_id: attr for attr in attrs}
    if node.op != "LIKE" and all(attr.id in store.unique_index for attr in attrs):
        forms = {_needle_form(attr, needle) for attr in attrs for needle in needles}
        hits = {
            obj_id for attr in attrs for form in forms for obj_id in store.unique_index[attr.id].get(form, ())
        }
        return _Plan(sorted(hits), True, lambda obj: obj.id in hits)
    per_attr = {attr.id: {_needle_form(attr, needle) for needle in needles} for attr in attrs}

    def match(obj: ObjRec) -> bool:
        attr = by_type.get(obj.type_id)
        if attr is None:
            return False
        wanted = per_attr[attr.id]
        return any(_hit(node, _forms(store, attr, stored), wanted) for stored in _stored_values(attr, obj))

    return _Plan(None, False, match)


def _stored_values(attr: AttrRec, obj: ObjRec) -> Sequence[str]:
    """The attribute's stored values; Created/Updated are derived from the object itself."""
    if attr.system:
        return (iso_ms(obj.created_ms if attr.name == "Created" else obj.updated_ms),)
    return obj.values.get(attr.id, ())


def _hit(node: Comparison, forms: Sequence[str], needles: set[str]) -> bool:
    if node.op == "LIKE":
        return any(needle in form for form in forms for needle in needles)
    return any(form in needles for form in forms)


def _needle_form(attr: AttrRec, needle: str) -> str:
    """A query value in the canonical stored form of ``attr`` (``3`` -> ``3.0`` for a Double)."""
    if attr.kind == KIND_DEFAULT and attr.default_type not in (0, 9, 10):
        try:
            return normalize_default_value(attr, needle).casefold()
        except ValueError:
            return needle
    return needle


def _forms(store: AssetsStore, attr: AttrRec, stored: str) -> tuple[str, ...]:
    if attr.kind == KIND_REFERENCE:
        target = store.objects.get(int(stored))
        if target is None:
            return ()
        return (store.label(target).casefold(), store.object_key(target).casefold())
    if attr.kind == KIND_USER:
        user = store.users.get(stored)
        return (stored.casefold(), user.display_name.casefold()) if user else (stored.casefold(),)
    if attr.kind == KIND_STATUS:
        status = store.statuses.get(int(stored))
        return (status.name.casefold(),) if status else ()
    return (stored.casefold(),)
