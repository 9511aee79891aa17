"""The simulated directory: users and devices, their owners, Intune records, and a change log.

Each collection keeps records in creation order (an append-only list of ids) and an append-only
change log; a position in the log is the collection's *sequence*. Delta rounds are defined by
two sequences (from, to), which makes them exact: a change is in exactly one round. Objects are
never removed from storage: a soft delete marks them restorable, a hard delete marks them gone
(both are reported by delta as ``@removed``).

``Directory.mutate`` applies the control API's changes deterministically: the same tenant and
the same sequence of calls touch the same ids with the same new values.
"""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from importer.sandbox.data import (
    DEVICE_FIELDS,
    REFERENCE_TIME,
    USER_FIELDS,
    DataGenerator,
    GeneratedTenant,
)

__all__ = [
    "HARD",
    "LIVE",
    "MUTATIONS",
    "OP_CREATE",
    "OP_HARD",
    "OP_RESTORE",
    "OP_SOFT",
    "OP_UPDATE",
    "SOFT",
    "Collection",
    "Directory",
    "MutationError",
]

LIVE, SOFT, HARD = 0, 1, 2
OP_CREATE, OP_UPDATE, OP_SOFT, OP_HARD, OP_RESTORE = 1, 2, 4, 8, 16
MUTATIONS = (
    "add_users", "add_devices", "update_users", "disable_users", "enable_users", "update_devices",
    "reassign_owners", "soft_delete_users", "soft_delete_devices", "hard_delete_users",
    "hard_delete_devices", "restore_users", "restore_devices",
)  # fmt: skip
_U = {name: i for i, name in enumerate(USER_FIELDS)}
_D = {name: i for i, name in enumerate(DEVICE_FIELDS)}


class MutationError(ValueError):
    """A mutate request named an unknown change or a count that is not a non-negative integer."""


@dataclass(slots=True)
class Collection:
    """One kind of directory object (``users`` or ``devices``)."""

    kind: str
    fields: tuple[str, ...]
    records: dict[str, list[Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # creation order, append-only
    created_at: list[int] = field(default_factory=list)  # log sequence at creation (-1: generated)
    state: dict[str, int] = field(default_factory=dict)  # only non-live objects (SOFT / HARD)
    log: list[tuple[str, int, frozenset[str]]] = field(default_factory=list)  # (id, OP_*, props)
    index: dict[str, int] = field(init=False)  # property name -> position in a record

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in enumerate(self.fields)}

    @property
    def sequence(self) -> int:
        """The current change sequence (the log's length)."""
        return len(self.log)

    def created_before(self, sequence: int) -> int:
        """How many objects (a prefix of ``order``) existed before ``sequence``."""
        return bisect.bisect_left(self.created_at, sequence)

    def add(self, record: list[Any], *, logged: bool) -> None:
        """Append a new object (logged as a creation unless it is part of the initial data)."""
        oid = record[0]
        self.records[oid] = record
        self.order.append(oid)
        self.created_at.append(len(self.log) if logged else -1)
        if logged:
            self.log.append((oid, OP_CREATE, frozenset(self.fields)))

    def set(self, oid: str, values: Mapping[str, Any]) -> frozenset[str]:
        """Change properties; logs and returns the names whose value really changed."""
        record = self.records[oid]
        changed = []
        for name, value in values.items():
            i = self.index[name]
            if record[i] != value:
                record[i] = value
                changed.append(name)
        props = frozenset(changed)
        if props:
            self.log.append((oid, OP_UPDATE, props))
        return props

    def mark(self, oid: str, state: int) -> None:
        """Soft-delete, hard-delete or restore an object, and log it."""
        op = {SOFT: OP_SOFT, HARD: OP_HARD, LIVE: OP_RESTORE}[state]
        if state == LIVE:
            self.state.pop(oid, None)
        else:
            self.state[oid] = state
        self.log.append((oid, op, frozenset()))

    def live(self, oid: str) -> bool:
        """True when the object exists and is not deleted."""
        return oid in self.records and oid not in self.state

    def iter_live(self) -> Iterable[str]:
        """Ids of live objects in creation order."""
        state = self.state
        return (oid for oid in self.order if oid not in state)

    def as_dict(self, oid: str) -> dict[str, Any]:
        """Every stored property of one object."""
        return dict(zip(self.fields, self.records[oid], strict=True))


@dataclass(slots=True, kw_only=True)
class _Batch:
    """One mutate call: its RNG, what it asked for, what it touched."""

    rng: random.Random
    counts: Mapping[str, int]
    created: float
    touched: set[str] = field(default_factory=set)
    out: dict[str, list[str]] = field(default_factory=dict)
    owners: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out = {key: [] for key in MUTATIONS if key in self.counts}

    def n(self, key: str) -> int:
        """The count asked for one kind of change."""
        return int(self.counts.get(key, 0))

    def pick(
        self, coll: Collection, key: str, ok: Callable[[str], bool], *, limit: int | None = None
    ) -> list[str]:
        """Choose up to the asked number of untouched objects for which ``ok`` holds, and record them."""
        wanted = self.n(key) if limit is None else limit
        if wanted <= 0:
            return []
        pool = [oid for oid in coll.order if oid not in self.touched and ok(oid)]
        chosen = self.rng.sample(pool, min(wanted, len(pool)))
        self.touched.update(chosen)
        self.out[key].extend(chosen)
        return chosen


class Directory:
    """Users, devices, owners and Intune records behind one lock."""

    def __init__(self, generated: GeneratedTenant, generator: DataGenerator, *, seed: int) -> None:
        self.lock = threading.RLock()
        self.users = Collection("users", USER_FIELDS)
        self.devices = Collection("devices", DEVICE_FIELDS)
        for rec in generated.users:
            self.users.add(rec, logged=False)
        for rec in generated.devices:
            self.devices.add(rec, logged=False)
        self.owners: dict[str, str] = dict(generated.owners)
        self.managed: dict[str, list[Any]] = dict(generated.managed)
        self.managed_order: list[str] = [d for d in self.devices.order if d in self.managed]
        self._generator = generator
        self._seed = seed
        self._batches = 0

    def collection(self, kind: str) -> Collection:
        """``users`` or ``devices``."""
        return self.users if kind == "users" else self.devices

    def registered_owner(self, device_id: str) -> str | None:
        """The device's owner when that user is live (deleted users vanish from navigation)."""
        owner = self.owners.get(device_id)
        return owner if owner is not None and self.users.live(owner) else None

    def mutate(self, counts: Mapping[str, Any], *, seed: int | None = None) -> dict[str, list[str]]:
        """Apply the requested numbers of changes; returns the ids touched per kind of change.

        Each object is touched by at most one kind of change per call. Order: additions, updates,
        owner changes, soft deletes, hard deletes (soft-deleted objects first), restores.
        """
        for key, value in counts.items():
            if key not in MUTATIONS:
                raise MutationError(f"unknown mutation {key!r}; known: {list(MUTATIONS)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise MutationError(f"{key} must be an integer >= 0")
        with self.lock:
            self._batches += 1
            batch = _Batch(
                rng=random.Random(f"importer-sandbox-mutate:{self._seed}:{self._batches}:{seed}"),
                counts=counts,
                created=float(REFERENCE_TIME + self._batches * 86400),
            )
            self._additions(batch)
            self._updates(batch)
            for kind in ("users", "devices"):
                self._removals(batch, kind)
            return batch.out

    def _additions(self, batch: _Batch) -> None:
        users, devices, rng = self.users, self.devices, batch.rng
        for _ in range(batch.n("add_users")):
            rec = self._generator.user(rng, created=batch.created)
            users.add(rec, logged=True)
            batch.touched.add(rec[0])
            batch.out["add_users"].append(rec[0])
        owners = self._owner_pool() if batch.n("add_devices") or batch.n("reassign_owners") else []
        batch.owners = owners
        for _ in range(batch.n("add_devices")):
            owner = users.records[rng.choice(owners)] if owners and rng.random() < 0.85 else None
            rec, intune = self._generator.device(rng, owner, created=batch.created)
            devices.add(rec, logged=True)
            batch.touched.add(rec[0])
            if owner is not None:
                self.owners[rec[0]] = owner[0]
            if intune is not None:
                self.managed[rec[0]] = intune
                self.managed_order.append(rec[0])
            batch.out["add_devices"].append(rec[0])

    def _updates(self, batch: _Batch) -> None:
        users, devices, rng = self.users, self.devices, batch.rng
        for i, oid in enumerate(batch.pick(users, "update_users", self._enabled_member)):
            title, department = self._generator.job_change(rng, users.records[oid], clear_title=i % 4 == 3)
            users.set(oid, {"jobTitle": title, "department": department})
        for oid in batch.pick(users, "disable_users", self._enabled_member):
            users.set(oid, {"accountEnabled": False})
        for oid in batch.pick(users, "enable_users", self._disabled_user):
            users.set(oid, {"accountEnabled": True})
        version = _D["operatingSystemVersion"]
        for oid in batch.pick(devices, "update_devices", devices.live):
            devices.set(
                oid, {"operatingSystemVersion": self._generator.os_update(rng, devices.records[oid][version])}
            )
        for oid in batch.pick(devices, "reassign_owners", devices.live):
            current = self.owners.get(oid)
            candidates = [u for u in batch.owners if u != current]
            if candidates:
                self.owners[oid] = rng.choice(candidates)
            else:
                batch.out["reassign_owners"].remove(oid)

    def _removals(self, batch: _Batch, kind: str) -> None:
        coll = self.collection(kind)
        for oid in batch.pick(coll, f"soft_delete_{kind}", coll.live):
            coll.mark(oid, SOFT)
        soft = batch.pick(coll, f"hard_delete_{kind}", lambda oid: coll.state.get(oid) == SOFT)
        live = batch.pick(
            coll, f"hard_delete_{kind}", coll.live, limit=batch.n(f"hard_delete_{kind}") - len(soft)
        )
        for oid in soft + live:
            coll.mark(oid, HARD)
            self._forget(kind, oid)
        for oid in batch.pick(coll, f"restore_{kind}", lambda oid: coll.state.get(oid) == SOFT):
            coll.mark(oid, LIVE)

    def _enabled_member(self, oid: str) -> bool:
        rec = self.users.records[oid]
        return (
            self.users.live(oid)
            and rec[_U["accountEnabled"]] is True
            and rec[_U["userType"]] == "Member"
            and rec[_U["givenName"]] is not None
        )

    def _disabled_user(self, oid: str) -> bool:
        return self.users.live(oid) and self.users.records[oid][_U["accountEnabled"]] is False

    def _owner_pool(self) -> list[str]:
        return [oid for oid in self.users.order if self._enabled_member(oid)]

    def _forget(self, kind: str, oid: str) -> None:
        """A hard-deleted device leaves its owner link and Intune for good.

        A hard-deleted user's owner links stay stored but are never shown again, because
        ``registered_owner`` only returns live users.
        """
        if kind == "devices":
            self.owners.pop(oid, None)
            self.managed.pop(oid, None)

    def dump(self, kind: str) -> dict[str, Any]:
        """Every object of a kind with all stored properties, for tests (``/_sandbox/graph/...``)."""
        with self.lock:
            coll = self.collection(kind)
            value = []
            for oid in coll.iter_live():
                item = coll.as_dict(oid)
                if kind == "devices":
                    item["registeredOwnerId"] = self.registered_owner(oid)
                    item["managedDeviceId"] = self.managed[oid][0] if oid in self.managed else None
                value.append(item)
            return {
                "value": value,
                "softDeleted": [oid for oid in coll.order if coll.state.get(oid) == SOFT],
                "hardDeleted": [oid for oid in coll.order if coll.state.get(oid) == HARD],
                "sequence": coll.sequence,
            }
