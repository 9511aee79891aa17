"""Forget one person: a plan for their Assets objects, then state; audited under their pseudonym."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importer.apply import ApplyResult
    from importer.assets import ResolvedSchema
    from importer.config import Settings
    from importer.plan import Plan
    from importer.privacy._person import Holdings
    from importer.runtime import Runtime

__all__ = ["ForgetResult", "forget", "forget_plan"]


def forget_plan(holdings: Holdings, settings: Settings) -> Plan:
    """The plan for ``forget --delete-objects``, built and ordered like a sync's.

    Their user objects are deleted; the devices they own stay (they belong to the organisation)
    but their owner reference is cleared first, so nothing in Assets points at them any more.
    """
    from importer.plan import Current, TypeInput, build_plan

    inputs: list[TypeInput] = []
    for name in dict.fromkeys(h.type for h in holdings.records):
        items = [h for h in holdings.records if h.type == name and h.asset is not None]
        people = [h for h in items if h.role == "person"]
        devices = [h for h in items if h.role == "owned_device" and h.attribute]
        if not items:
            continue
        inputs.append(
            TypeInput(
                name=name,
                object_type=items[0].object_type,
                desired={h.source_id: {h.attribute: h.unlinked} for h in devices if h.attribute},
                current={
                    h.source_id: Current(
                        object_id=h.asset.id,
                        label=h.asset.label,
                        values={h.attribute: h.asset.values.get(h.attribute)} if h.attribute else {},
                    )
                    for h in items
                    if h.asset is not None
                },
                removed=dict.fromkeys((h.source_id for h in people), "forgotten on request"),
                missing="delete",
                clear_on_null=frozenset(h.attribute for h in devices if h.attribute),
            )
        )
    deps = {
        e.name: [a.reference for a in e.attributes.values() if a.reference]
        for e in settings.mapping.object_types
    }
    return build_plan(inputs, mode="incremental", dependencies=deps)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetResult:
    """What ``forget`` removed."""

    id_map_entries: int
    cached_accounts: int
    applied: ApplyResult | None = None
    failures: tuple[str, ...] = field(default_factory=tuple)


class _Writer:
    """apply's writer for a forget plan: updates (owner references) and deletes, nothing created."""

    def __init__(self, rt: Runtime, schema: ResolvedSchema, holdings: Holdings) -> None:
        self.objects = rt.objects()
        self.types = {h.type: schema.type(h.object_type) for h in holdings.records}

    def create(self, type_name: str, values: Mapping[str, object]) -> str:
        raise ValueError("a forget plan creates nothing")

    def update(self, type_name: str, object_id: str, values: Mapping[str, object]) -> None:
        self.objects.update_object(object_id, self.types[type_name], values)  # type: ignore[arg-type]

    def delete(self, type_name: str, object_id: str) -> None:
        self.objects.delete_object(object_id)


def forget(rt: Runtime, holdings: Holdings, plan: Plan | None, schema: ResolvedSchema) -> ForgetResult:
    """Apply ``plan`` (if given), then drop their id map entries and cached accounts; audit it.

    Their own id map entries always go; a device's goes with the change to its object (its
    entry's content hash names them as owner, and no longer matches Assets). An object whose
    change failed keeps its entry, which still describes it truly.
    """
    import structlog

    from importer.apply import apply_plan
    from importer.state import AuditRecord

    applied = None
    failed: set[tuple[str, str]] = set()
    if plan is not None and plan.changes:
        applied = apply_plan(
            plan, _Writer(rt, schema, holdings), max_concurrency=rt.settings.http.max_concurrency
        )
        failed = applied.failed_ids
        if applied.aborted:
            failed |= {(c.type, c.source_id) for c in plan.changes} - applied.succeeded
    drop: dict[str, set[str]] = {}
    for h in holdings.records:
        if h.entry is None or (h.type, h.source_id) in failed:
            continue
        if h.role == "person" or (plan is not None and h.asset is not None):
            drop.setdefault(h.type, set()).add(h.source_id)
    removed = sum(rt.state.delete_id_entries(t, ids) for t, ids in drop.items())
    accounts = len(holdings.accounts)
    rt.state.delete_accounts(holdings.account_keys)
    counts = applied.counts if applied else {}
    deleted_objects = sum(n for (_, action), n in counts.items() if action == "delete")
    unlinked = sum(n for (_, action), n in counts.items() if action == "update")
    rt.state.add_audit(
        AuditRecord(
            at=datetime.now(UTC),
            action="privacy_forget",
            subject=holdings.pseudonym,
            detail={
                "id_map_entries": str(removed),
                "cached_accounts": str(accounts),
                "objects_deleted": str(deleted_objects),
                "devices_unlinked": str(unlinked),
                "objects_failed": str(len(failed)),
            },
        )
    )
    structlog.get_logger("importer.privacy").info(
        "person_forgotten",
        person=holdings.pseudonym,
        id_map_entries=removed,
        cached_accounts=accounts,
        objects_deleted=deleted_objects,
        devices_unlinked=unlinked,
        objects_failed=len(failed),
    )
    problems = (
        tuple(f"{f.action} {f.type} {f.object_id}: {f.error}" for f in applied.failures) if applied else ()
    )
    if applied is not None and applied.aborted:
        problems += (applied.aborted,)
    return ForgetResult(id_map_entries=removed, cached_accounts=accounts, applied=applied, failures=problems)
