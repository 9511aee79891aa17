"""The Assets schema the mapping needs: resolve it by name, plan what is missing, create it.

The mapping describes each managed object type as a ``TypeRequirement``. At the start of a run
``resolve_schema`` reads the schema in four requests (schema list, object types, the schema's
attributes, statuses) and turns names into ids, or raises ``SchemaDriftError`` listing *every*
problem before anything is written. ``plan_schema`` lists what is missing (``importer schema
plan``); ``apply_schema`` creates it (``importer schema apply``) and is idempotent: a second
apply creates nothing. An attribute that exists with another kind, target or uniqueness is
reported as a conflict and never changed or deleted: that is an administrator's decision.
The requirement and report values live in ``requirements.py`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from importer.assets.client import AssetsClient
from importer.assets.models import (
    TYPE_CODES,
    AssetsAttribute,
    AssetsIcon,
    AssetsObjectType,
    AssetsSchema,
    AssetsStatus,
    AttributeKind,
    ResolvedSchema,
    ResolvedType,
)
from importer.assets.requirements import AttributeRequirement, SchemaApplyResult, SchemaPlan, TypeRequirement
from importer.errors import SchemaDriftError

__all__ = [
    "AttributeRequirement",
    "SchemaApplyResult",
    "SchemaPlan",
    "TypeRequirement",
    "apply_schema",
    "plan_schema",
    "resolve_schema",
]

_log = structlog.get_logger("importer.assets.schema")
DEFAULT_ICONS = ("Object", "Box", "Generic")  # tried in order when a requested icon does not exist
# maximumCardinality is "valid for Type Email, Select, Object, User, Group, Version and Project" (spec)
MULTI_KINDS: tuple[AttributeKind, ...] = ("email", "select", "reference", "user", "group")


@dataclass(slots=True)
class _State:
    """What the schema holds now (mutable while apply adds to it)."""

    schema: AssetsSchema
    types: dict[str, AssetsObjectType]  # casefolded name -> type
    attributes: dict[str, list[AssetsAttribute]]  # type id -> attributes
    statuses: list[AssetsStatus]

    def type(self, name: str) -> AssetsObjectType | None:
        return self.types.get(name.casefold())

    def attribute(self, type_id: str, name: str) -> AssetsAttribute | None:
        wanted = name.casefold()
        found = [a for a in self.attributes.get(type_id, []) if a.name.casefold() == wanted]
        return next((a for a in found if a.name == name), found[0] if found else None)

    def status(self, name: str) -> AssetsStatus | None:
        wanted = name.strip().casefold()
        return next((s for s in self.statuses if s.name.casefold() == wanted), None)


def _load(client: AssetsClient, schema_key: str, requirements: Sequence[TypeRequirement]) -> _State:
    wanted = schema_key.strip().casefold()
    schema = next((s for s in client.list_schemas() if s.key.casefold() == wanted), None)
    if schema is None:
        raise SchemaDriftError(
            [f"object schema with key {schema_key!r} not found (or not visible to this account)"]
        )
    types = {t.name.casefold(): t for t in client.list_object_types(schema.id)}
    attributes: dict[str, list[AssetsAttribute]] = {}
    all_attrs = client.list_schema_attributes(schema.id)
    for attr in all_attrs:
        if attr.object_type_id is not None:
            attributes.setdefault(attr.object_type_id, []).append(attr)
    if any(a.object_type_id is None for a in all_attrs):
        # The schema-wide list does not say which type each attribute belongs to (the spec's
        # example omits objectType): read the managed types one by one instead.
        attributes = {}
        for req in requirements:
            found = types.get(req.name.casefold())
            if found is not None:
                attributes[found.id] = client.list_type_attributes(found.id)
    statuses = client.list_statuses(schema.id)
    return _State(schema=schema, types=types, attributes=attributes, statuses=statuses)


def _conflicts(state: _State, treq: TypeRequirement, found: AssetsObjectType) -> list[str]:
    problems: list[str] = []
    for areq in treq.effective_attributes():
        attr = state.attribute(found.id, areq.name)
        if attr is None:
            continue
        where = f"object type {treq.name!r}: attribute {areq.name!r}"
        if attr.system or not attr.editable:
            problems.append(f"{where} is a system attribute of Assets (not writable); name it differently")
            continue
        if attr.kind != areq.kind:
            problems.append(f"{where} is {attr.kind}, the mapping needs {areq.kind}")
            continue
        if areq.kind == "reference" and areq.reference_type:
            target = state.type(areq.reference_type)
            if target is not None and attr.reference_type_id != target.id:
                problems.append(
                    f"{where} refers to object type id {attr.reference_type_id}, "
                    f"the mapping needs {areq.reference_type!r} (id {target.id})"
                )
        if areq.name.casefold() == treq.key_attribute.casefold() and not attr.unique:
            problems.append(f"{where} is the key attribute but is not unique")
        if areq.multi and not attr.multi:
            problems.append(f"{where} holds one value, the mapping writes several")
    wanted = {a.name.casefold() for a in treq.effective_attributes()}
    for attr in state.attributes.get(found.id, []):
        if attr.min_cardinality > 0 and not attr.system and attr.name.casefold() not in wanted:
            problems.append(
                f"object type {treq.name!r}: attribute {attr.name!r} is required in Assets "
                "but the mapping does not write it (every create would be refused)"
            )
    return problems


def _diff(state: _State, requirements: Sequence[TypeRequirement]) -> SchemaPlan:
    missing_types: list[TypeRequirement] = []
    missing_attrs: list[tuple[str, AttributeRequirement]] = []
    conflicts: list[str] = []
    for treq in requirements:
        found = state.type(treq.name)
        if found is None:
            missing_types.append(treq)
            continue
        missing_attrs += [
            (treq.name, a) for a in treq.effective_attributes() if state.attribute(found.id, a.name) is None
        ]
        conflicts += _conflicts(state, treq, found)
    for treq in requirements:
        for areq in treq.effective_attributes():
            if areq.multi and areq.kind not in MULTI_KINDS:
                conflicts.append(
                    f"object type {treq.name!r}: attribute {areq.name!r} cannot hold several values "
                    f"(Assets allows that for {', '.join(MULTI_KINDS)} attributes only)"
                )
            if areq.kind == "reference" and not areq.reference_type:
                conflicts.append(
                    f"object type {treq.name!r}: reference attribute {areq.name!r} names no target type"
                )
            elif (
                areq.reference_type
                and state.type(areq.reference_type) is None
                and not any(t.name.casefold() == areq.reference_type.casefold() for t in requirements)
            ):
                conflicts.append(
                    f"object type {treq.name!r}: attribute {areq.name!r} refers to "
                    f"object type {areq.reference_type!r}, which is neither in the schema nor mapped"
                )
    wanted_statuses = dict.fromkeys(s.strip() for t in requirements for s in t.statuses if s.strip())
    missing_statuses = tuple(s for s in wanted_statuses if state.status(s) is None)
    return SchemaPlan(
        schema_key=state.schema.key,
        missing_types=tuple(missing_types),
        missing_attributes=tuple(missing_attrs),
        missing_statuses=missing_statuses,
        conflicts=tuple(conflicts),
    )


def resolve_schema(
    client: AssetsClient, schema_key: str, requirements: Sequence[TypeRequirement]
) -> ResolvedSchema:
    """Resolve the schema, its managed types and their attributes by name, or raise before any write.

    Raises:
        SchemaDriftError: listing every problem (missing type, attribute or status, wrong kind,
            reference to the wrong type, key attribute not unique).
    """
    state = _load(client, schema_key, requirements)
    plan = _diff(state, requirements)
    if not plan.is_empty:
        _log.warning("schema_drift_found", schema=state.schema.key, problems=len(plan.problems()))
        raise SchemaDriftError(plan.problems())
    types: dict[str, ResolvedType] = {}
    for treq in requirements:
        found = state.type(treq.name)
        assert found is not None  # an empty plan means every type exists
        types[treq.name] = _resolved_type(state, treq, found)
    statuses = {s.name: s for s in state.statuses}
    _log.info("schema_resolved", schema=state.schema.key, types=len(types), statuses=len(statuses))
    return ResolvedSchema(schema=state.schema, types=types, statuses=statuses)


def _resolved_type(state: _State, treq: TypeRequirement, found: AssetsObjectType) -> ResolvedType:
    by_name: dict[str, AssetsAttribute] = {}
    required = {a.name.casefold(): a.name for a in treq.effective_attributes()}
    for attr in state.attributes.get(found.id, []):
        by_name[required.get(attr.name.casefold(), attr.name)] = attr
    key = by_name[required[treq.key_attribute.casefold()]]
    label = by_name.get(required.get(treq.label_attribute.casefold(), treq.label_attribute))
    return ResolvedType(type=found, attributes=by_name, key_attribute=key, label_attribute=label)


def plan_schema(client: AssetsClient, schema_key: str, requirements: Sequence[TypeRequirement]) -> SchemaPlan:
    """List what the schema lacks for the mapping (no writes)."""
    return _diff(_load(client, schema_key, requirements), requirements)


def _status_category(name: str) -> int:
    """A guess for a new status's colour: active (green), pending (yellow), otherwise inactive (red)."""
    folded = name.casefold()
    if any(w in folded for w in ("pending", "waiting", "review")):
        return 2
    if folded in {"active", "enabled", "in use", "running"}:
        return 1
    return 0


def _pick_icon(icons: Sequence[AssetsIcon], wanted: str | None) -> str | None:
    by_name = {i.name.casefold(): i.id for i in icons}
    for name in ((wanted,) if wanted else ()) + DEFAULT_ICONS:
        if name.casefold() in by_name:
            return by_name[name.casefold()]
    return icons[0].id if icons else None


def _attribute_body(
    client: AssetsClient, areq: AttributeRequirement, *, target_id: str | None, reference_kind: str | None
) -> dict[str, Any]:
    type_code, default_id = TYPE_CODES[areq.kind]
    body: dict[str, Any] = {"name": areq.name, "type": type_code}
    if default_id is not None:
        body["defaultTypeId"] = default_id
    if areq.kind == "reference":
        body["typeValue"] = client.wire_id(target_id or "")
        body["additionalValue"] = reference_kind
    elif areq.kind == "user":
        body["additionalValue"] = "SHOW_PROFILE"
    if areq.kind == "select" and areq.options:
        body["options"] = ",".join(areq.options)
    body["minimumCardinality"] = 1 if areq.required else 0
    body["maximumCardinality"] = -1 if areq.multi else 1
    if areq.unique:
        body["uniqueAttribute"] = True
    if areq.label:
        body["label"] = True
    return body


def _adopt_label(
    client: AssetsClient,
    treq: TypeRequirement,
    type_id: str,
    attrs: list[AssetsAttribute],
    renamed: list[str],
) -> list[AssetsAttribute]:
    """Rename a new type's own label attribute to the mapping's label name, unless the mapping uses it."""
    wanted = {a.name.casefold() for a in treq.effective_attributes()}
    auto = next((a for a in attrs if a.label and not a.system), None)
    if (
        auto is None
        or auto.name.casefold() in wanted
        or any(a.name.casefold() == treq.label_attribute.casefold() for a in attrs)
    ):
        return attrs
    echoed = client.update_attribute(type_id, auto.id, {"name": treq.label_attribute})
    if not echoed.id:  # an empty echo: keep what we know, with the new name
        echoed = replace(auto, name=treq.label_attribute)
    renamed.append(f"{treq.name}.{auto.name} -> {treq.label_attribute}")
    _log.info("label_attribute_renamed", object_type=treq.name, attribute=treq.label_attribute)
    return [echoed if a.id == auto.id else a for a in attrs]


def apply_schema(
    client: AssetsClient, schema_key: str, requirements: Sequence[TypeRequirement]
) -> SchemaApplyResult:
    """Create the object types, attributes and statuses the mapping needs; a second run creates nothing."""
    state = _load(client, schema_key, requirements)
    plan = _diff(state, requirements)
    made_statuses: list[str] = []
    made_types: list[str] = []
    made_attrs: list[str] = []
    made_renames: list[str] = []
    conflicts = list(plan.conflicts)
    for name in plan.missing_statuses:
        status = client.create_status(schema_id=state.schema.id, name=name, category=_status_category(name))
        state.statuses.append(status)
        made_statuses.append(name)
    icons: list[AssetsIcon] | None = None
    for treq in plan.missing_types:
        icons = client.list_global_icons() if icons is None else icons
        icon_id = _pick_icon(icons, treq.icon)
        if icon_id is None:
            conflicts.append(f"object type {treq.name!r} cannot be created: the workspace offers no icon")
            continue
        created = client.create_object_type(
            schema_id=state.schema.id, name=treq.name, description=treq.description, icon_id=icon_id
        )
        state.types[created.name.casefold()] = created
        # Assets gives a new type its system attributes (Key, Created, Updated) and a required
        # label attribute (Name); on a type we just made, that one becomes our label attribute.
        attrs = client.list_type_attributes(created.id)
        state.attributes[created.id] = _adopt_label(client, treq, created.id, attrs, made_renames)
        made_types.append(treq.name)
    reference_kind: str | None = None
    for treq in requirements:
        found = state.type(treq.name)
        if found is None:
            continue
        for areq in treq.effective_attributes():
            if state.attribute(found.id, areq.name) is not None:
                continue
            target = state.type(areq.reference_type) if areq.reference_type else None
            if areq.kind == "reference":
                if target is None:
                    continue  # reported as a conflict by the plan
                if reference_kind is None:
                    kinds = client.list_reference_types(state.schema.id)
                    reference_kind = next(
                        (k.id for k in kinds if k.name.casefold() == "reference"),
                        kinds[0].id if kinds else "",
                    )
            body = _attribute_body(
                client, areq, target_id=target.id if target else None, reference_kind=reference_kind
            )
            attr = client.create_attribute(found.id, body)
            state.attributes.setdefault(found.id, []).append(attr)
            made_attrs.append(f"{treq.name}.{areq.name}")
    _log.info(
        "schema_applied",
        schema=state.schema.key,
        types_created=len(made_types),
        attributes_created=len(made_attrs),
        statuses_created=len(made_statuses),
        conflicts=len(conflicts),
    )
    return SchemaApplyResult(
        created_types=tuple(made_types),
        created_attributes=tuple(made_attrs),
        created_statuses=tuple(made_statuses),
        renamed_attributes=tuple(made_renames),
        conflicts=tuple(conflicts),
    )
