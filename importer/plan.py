"""Pure planning: desired vs current ─► a Plan of changes; the deletion guard; the plan hash.

Values reaching this module are already normalised per Assets attribute kind (the same
function on both sides, see ``importer.assets.models``), so equality here means "no change".
``plan`` and ``sync`` build the same ``Plan``: ``plan`` renders it (``importer.render``),
``sync`` applies it (``importer.apply``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from importer.mapping import Ref

__all__ = [
    "ACTIONS",
    "Change",
    "Current",
    "GuardVerdict",
    "Pending",
    "Plan",
    "TypeInput",
    "build_plan",
    "differs",
    "guard",
    "type_order",
]

Action = Literal["create", "update", "mark", "delete"]
ACTIONS: tuple[Action, ...] = ("create", "update", "mark", "delete")
_ORDER = {a: i for i, a in enumerate(ACTIONS)}


@dataclass(frozen=True, slots=True)
class Pending:
    """A reference to an object this same plan creates; its id is known only after apply."""

    ref: Ref


@dataclass(frozen=True, slots=True, kw_only=True)
class Current:
    """An object as it is in Assets now (values normalised)."""

    object_id: str
    label: str | None = None
    values: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeInput:
    """Everything the planner needs for one mapped type.

    ``desired`` holds only records that may have changed (an incremental run leaves out those
    whose content hash matched); ``unchanged`` counts the ones left out. ``current`` holds the
    Assets objects for the desired ids (and, on a full read, every keyed object of the type).
    ``removed`` names source ids that left the source (``"changed"`` = soft-deleted,
    ``"deleted"``, ``"filtered"`` = no longer matches the filter); on a full read every current
    object without a desired record is missing too.
    """

    name: str
    object_type: str
    desired: Mapping[str, Mapping[str, object]]
    current: Mapping[str, Current]
    removed: Mapping[str, str] = field(default_factory=dict)
    full: bool = False
    complete: bool = True
    missing: Literal["ignore", "mark", "delete"] = "mark"
    mark_attribute: str | None = None
    mark_value: object = None
    clear_on_null: frozenset[str] = frozenset()
    managed: int = 0
    unchanged: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)  # source id -> label for display


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One change to one Assets object; ``diff`` maps attribute ─► (current, desired)."""

    action: Action
    type: str
    object_type: str
    source_id: str
    object_id: str | None
    label: str | None
    diff: Mapping[str, tuple[object, object]]
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardVerdict:
    """What the deletion guard decided, with the numbers behind it."""

    refused: bool
    removals: int
    limit: int
    by_type: Mapping[str, tuple[int, int]]  # type -> (removals, per-type limit)
    reason: str | None
    approved: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A deterministic, hashable list of changes."""

    mode: Literal["full", "incremental"]
    changes: tuple[Change, ...]
    unchanged: Mapping[str, int]
    complete: Mapping[str, bool]
    object_types: Mapping[str, str]  # mapping entry name -> Assets object type name
    warnings: tuple[str, ...] = ()
    plan_hash: str = ""
    verdict: GuardVerdict | None = None

    def summary(self) -> dict[str, int]:
        """Counts per action, plus ``unchanged``."""
        counts = Counter(c.action for c in self.changes)
        out: dict[str, int] = {a: counts.get(a, 0) for a in ACTIONS}
        out["unchanged"] = sum(self.unchanged.values())
        return out

    def by_type(self) -> dict[str, dict[str, int]]:
        """Counts per type and action (with ``unchanged``)."""
        out: dict[str, dict[str, int]] = {
            t: dict.fromkeys((*ACTIONS, "unchanged"), 0) for t in self.object_types
        }
        for c in self.changes:
            out[c.type][c.action] += 1
        for t, n in self.unchanged.items():
            out.setdefault(t, dict.fromkeys((*ACTIONS, "unchanged"), 0))["unchanged"] += n
        return out

    @property
    def has_changes(self) -> bool:
        """True when applying would change anything."""
        return bool(self.changes)

    @property
    def is_complete(self) -> bool:
        """True when every source read completed."""
        return all(self.complete.values())


def build_plan(
    inputs: Sequence[TypeInput],
    *,
    mode: Literal["full", "incremental"],
    dependencies: Mapping[str, Iterable[str]] | None = None,
    warnings: Sequence[str] = (),
) -> Plan:
    """Diff every type and return a deterministic plan (guard not applied yet; see ``guard``).

    ``dependencies`` maps a type to the types its references point at, so that creates of
    referenced types come first (``apply`` runs creates in plan order).
    """
    changes: list[Change] = []
    for inp in inputs:
        changes.extend(_diff_type(inp))
    order = type_order([i.name for i in inputs], dependencies or {})
    changes.sort(key=lambda c: (_ORDER[c.action], order[c.type], c.source_id))
    plan = Plan(
        mode=mode,
        changes=tuple(changes),
        unchanged={i.name: i.unchanged + _count_unchanged(i, changes) for i in inputs},
        complete={i.name: i.complete for i in inputs},
        object_types={i.name: i.object_type for i in inputs},
        warnings=tuple(warnings)
        + tuple(
            f"{i.name}: the source read was incomplete; no object of this type is marked or deleted"
            for i in inputs
            if not i.complete
        ),
    )
    return _with_hash(plan)


def _count_unchanged(inp: TypeInput, changes: Sequence[Change]) -> int:
    changed = {c.source_id for c in changes if c.type == inp.name and c.action in ("create", "update")}
    return sum(1 for sid in inp.desired if sid not in changed)


class _Created(Mapping[str, tuple[object, object]]):
    """A create's diff: ``(None, value)`` for every attribute with a value, in name order.

    A view of the desired values rather than a copy: on a first run every object is a create,
    and a copy in tuples cost about 1.5 KB an object (150 MB at 100,000 objects).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = values

    def __getitem__(self, attr: str) -> tuple[object, object]:
        value = self._values[attr]
        if value is None:
            raise KeyError(attr)
        return (None, value)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(a for a, v in self._values.items() if v is not None))

    def __len__(self) -> int:
        return sum(1 for v in self._values.values() if v is not None)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _field_diff(
    want: Mapping[str, object], now: Mapping[str, object], clear_on_null: frozenset[str]
) -> dict[str, tuple[object, object]]:
    diff = {}
    for attr, value in sorted(want.items()):
        if value is None and attr not in clear_on_null:
            continue  # a null source value never blanks a good target value
        old = now.get(attr)
        if isinstance(value, Pending) or value != old:
            diff[attr] = (old, value)
    return diff


def differs(want: Mapping[str, object], now: Mapping[str, object], clear_on_null: frozenset[str]) -> bool:
    """Whether ``build_plan`` would update an object holding ``now`` to ``want`` (the same test)."""
    return bool(_field_diff(want, now, clear_on_null))


def _diff_type(inp: TypeInput) -> Iterable[Change]:
    for sid in sorted(inp.desired):
        want = inp.desired[sid]
        cur = inp.current.get(sid)
        label = inp.labels.get(sid) or (cur.label if cur else None)
        if cur is None:
            yield Change(
                action="create",
                type=inp.name,
                object_type=inp.object_type,
                source_id=sid,
                object_id=None,
                label=label,
                diff=_Created(want),
            )
            continue
        diff = _field_diff(want, cur.values, inp.clear_on_null)
        if diff:
            yield Change(
                action="update",
                type=inp.name,
                object_type=inp.object_type,
                source_id=sid,
                object_id=cur.object_id,
                label=label,
                diff=diff,
            )
    if not inp.complete or inp.missing == "ignore":
        return
    missing: dict[str, str] = {sid: why for sid, why in inp.removed.items() if sid not in inp.desired}
    if inp.full:
        for sid in inp.current:
            if sid not in inp.desired:
                missing.setdefault(sid, "not in Entra")
    for sid in sorted(missing):
        cur = inp.current.get(sid)
        if cur is None:
            continue  # never synced, or already deleted: nothing to remove
        reason = _REASONS.get(missing[sid], missing[sid])
        soft = missing[sid] == "changed"
        removal: Action | None = None
        marked: dict[str, tuple[object, object]] = {}
        if inp.missing == "delete" and not (soft and inp.mark_attribute):
            removal = "delete"
        elif inp.mark_attribute and cur.values.get(inp.mark_attribute) != inp.mark_value:
            removal = "mark"
            marked = {inp.mark_attribute: (cur.values.get(inp.mark_attribute), inp.mark_value)}
        if removal is not None:
            yield Change(
                action=removal,
                type=inp.name,
                object_type=inp.object_type,
                source_id=sid,
                object_id=cur.object_id,
                label=cur.label,
                diff=marked,
                reason=reason,
            )


_REASONS = {
    "changed": "soft-deleted in Entra (restorable)",
    "deleted": "deleted in Entra",
    "filtered": "no longer matches the mapping's filter",
}


def type_order(names: Sequence[str], deps: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Referenced types first; otherwise the mapping's order."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for dep in deps.get(name, ()):
            if dep in names:
                visit(dep)
        order.append(name)

    for name in names:
        visit(name)
    return {n: i for i, n in enumerate(order)}


def guard(
    plan: Plan,
    *,
    managed: Mapping[str, int],
    delete_max: int,
    delete_max_percent: float,
    approved_hash: str | None = None,
) -> Plan:
    """Apply the deletion guard: too many removals refuse the plan unless this exact one is approved."""
    removals = Counter(c.type for c in plan.changes if c.action in ("mark", "delete"))
    total = sum(removals.values())
    by_type: dict[str, tuple[int, int]] = {}
    reasons: list[str] = []
    if total > delete_max:
        reasons.append(f"{total} marks/deletes exceed sync.delete_max={delete_max}")
    for name, count in sorted(removals.items()):
        limit = max(1, math.floor(managed.get(name, 0) * delete_max_percent / 100))
        by_type[name] = (count, limit)
        if count > limit:
            reasons.append(
                f"{name}: {count} of {managed.get(name, 0)} managed objects "
                f"exceed sync.delete_max_percent={delete_max_percent:g}% ({limit})"
            )
    refused = bool(reasons)
    approved = refused and approved_hash is not None and approved_hash == plan.plan_hash
    verdict = GuardVerdict(
        refused=refused and not approved,
        removals=total,
        limit=delete_max,
        by_type=by_type,
        reason="; ".join(reasons) or None,
        approved=approved,
    )
    return replace(plan, verdict=verdict)


def jsonable(value: object) -> object:
    """A JSON form of a normalised value (references and pending creates spelled out)."""
    if isinstance(value, Pending):
        return {"pending_create": value.ref.type, "source_id": value.ref.source_id}
    if isinstance(value, Ref):
        return {"ref": value.type, "source_id": value.source_id}
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _with_hash(plan: Plan) -> Plan:
    digest = hashlib.sha256()
    for c in plan.changes:
        row = [
            c.action,
            c.type,
            c.source_id,
            c.object_id,
            sorted((a, jsonable(old), jsonable(new)) for a, (old, new) in c.diff.items()),
        ]
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        digest.update(b"\n")
    return replace(plan, plan_hash=digest.hexdigest()[:16])
