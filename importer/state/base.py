"""The ``StateStore`` protocol that both backends implement, and the checks they share.

What a sync run needs from state, and the rules every backend keeps:

- ``commit`` is the only way a run writes its results (delta links, id map, run record), and it
  happens after apply succeeded ("watermark last"). Given a ``Lease``, it first checks the
  fencing token: if another worker has acquired the lease since (higher fence, other owner) or
  the lease was released, it raises ``LeaseLostError`` and writes nothing. ``lease=None`` is
  for single-host admin commands (``importer state init``, privacy tools) that run while no
  daemon is writing; a sync run always passes its lease.
- Leases are taken with conditional writes; ``fence`` grows by one on every acquisition and
  the record is never deleted (a release only marks it free), so fences never repeat.
  ``renew_lease`` and ``commit`` need our owner and fence on an unreleased record (a holder past
  its expiry whom nobody replaced still qualifies); ``rvn`` changes on every acquire, renew and
  release, for observers. Expiry is an absolute time from the store's clock; another worker may
  take over only ``LEASE_SKEW`` after it, to tolerate small clock differences between hosts.
  Nobody re-enters a held lease, not even the same owner string.
- Run records and approvals expire ``retention_days`` after their own timestamp (the run's
  start, the approval's time); cached accounts ``account_ttl_days`` after they were cached.
  Reads never return an expired record, and ``sweep`` deletes them and notes when it ran, so
  that ``sweep_if_due`` (called after every committed sync) sweeps at most once a day.
- An approval is one-shot: the commit of the run that applied the approved plan deletes it
  (``consumed_approval``), in the same fenced write as the run's watermark.
- Every method is synchronous and safe to call from several threads.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from importer.state._codec import check_name
from importer.state.models import (
    Approval,
    AuditRecord,
    CachedAccount,
    DeltaState,
    IdMapChanges,
    IdMapEntry,
    Installation,
    Lease,
    LeaseInfo,
    RunRecord,
)

__all__ = ["CommitInput", "IdMapWrite", "ReportsInit", "StateStore", "check_commit", "check_lease_request"]


class StateStore(Protocol):
    """Durable state of one importer installation (see the module docstring for the rules)."""

    def init(self) -> None:
        """Create the file or table if needed, and check it; safe to call again."""

    def close(self) -> None:
        """Release connections; the store reopens them if used again."""

    def get_installation(self) -> Installation | None:
        """The installation record, if one was written."""

    def put_installation(self, rec: Installation) -> None:
        """Write the installation record (its ``instance`` must be the store's)."""

    def get_delta(self, source: str) -> DeltaState | None:
        """The delta link stored for ``source`` ("users", "devices")."""

    def get_id_entries(self, object_type: str, source_ids: Collection[str]) -> dict[str, IdMapEntry]:
        """Point lookups in one type's id map; ids that are not mapped are absent from the result."""

    def iter_id_map(self, object_type: str) -> Iterator[tuple[str, IdMapEntry]]:
        """Every (source id, entry) of one type's id map, streamed in pages."""

    def count_id_map(self, object_type: str) -> int:
        """How many entries one type's id map holds."""

    def find_source_ids(self, object_type: str, object_ids: Collection[str]) -> dict[str, str]:
        """Reverse lookup: Assets object id -> source id, for the ids that are mapped."""

    def commit(
        self,
        lease: Lease | None,
        *,
        deltas: Mapping[str, DeltaState | None],
        id_maps: Mapping[str, IdMapChanges],
        run: RunRecord,
        consumed_approval: str | None = None,
    ) -> None:
        """Write a finished run's results, fenced by ``lease``; ``None`` in ``deltas`` deletes one.

        ``consumed_approval`` names the plan hash whose approval this run used up: the stored
        approval, if any, is deleted with the rest.
        """

    def record_run(self, run: RunRecord) -> None:
        """Write the record of a run that ends without a commit (failed, refused, interrupted)."""

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest unexpired run records, newest first."""

    def add_approval(self, a: Approval) -> None:
        """Store an approval for one plan hash."""

    def get_approval(self, plan_hash: str) -> Approval | None:
        """The unexpired approval for ``plan_hash``, if any."""

    def get_accounts(self, keys: Collection[str]) -> dict[str, CachedAccount]:
        """Unexpired cached account lookups for these pseudonymous keys."""

    def put_accounts(self, recs: Iterable[CachedAccount]) -> None:
        """Cache account lookups (a ``None`` account id caches "no unique match")."""

    def delete_accounts(self, keys: Collection[str]) -> None:
        """Forget cached account lookups."""

    def delete_id_entries(self, object_type: str, source_ids: Collection[str]) -> int:
        """Remove id map entries (privacy "forget"); returns how many existed."""

    def add_audit(self, rec: AuditRecord) -> None:
        """Append an audit record."""

    def list_audit(self, limit: int) -> list[AuditRecord]:
        """The newest audit records, newest first."""

    def acquire_lease(self, owner: str, *, duration_s: float, take_over: str | None = None) -> Lease | None:
        """Take the lease for ``duration_s`` seconds; ``None`` if someone else holds it.

        ``take_over`` names a holder the caller knows is dead (a process of this host that no
        longer exists): a lease it holds is taken at once rather than after it expires.
        """

    def renew_lease(self, lease: Lease, *, duration_s: float) -> Lease:
        """Extend a held lease (heartbeat); raises ``LeaseLostError`` if it was taken over."""

    def release_lease(self, lease: Lease) -> None:
        """Mark the lease free if we still hold it; the record stays, so fences keep growing."""

    def lease_info(self) -> LeaseInfo:
        """What the lease record says now."""

    def sweep(self, now: datetime | None = None) -> int:
        """Delete expired run records, approvals and cached accounts; returns how many."""

    def sweep_if_due(self, *, every: timedelta, now: datetime | None = None) -> int | None:
        """``sweep`` unless the last sweep was less than ``every`` ago; ``None`` when not due."""


@runtime_checkable
class ReportsInit(Protocol):
    """A store whose initialisation can say what it did (both built-in backends)."""

    def prepare(self) -> str:
        """Do what ``init`` does and return a one-line description of it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdMapWrite:
    """One type's id-map changes, materialised and checked: ``deletes`` never overlaps ``upserts``."""

    upserts: dict[str, IdMapEntry]
    deletes: frozenset[str]
    replace_all: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitInput:
    """Everything a commit writes, materialised before the first write."""

    deltas: dict[str, DeltaState | None]
    id_maps: dict[str, IdMapWrite]
    run: RunRecord
    consumed_approval: str | None = None


def check_commit(
    instance: str,
    lease: Lease | None,
    deltas: Mapping[str, DeltaState | None],
    id_maps: Mapping[str, IdMapChanges],
    run: RunRecord,
    consumed_approval: str | None = None,
) -> CommitInput:
    """Materialise and validate a commit's input, so that a bad value fails before any write."""
    if consumed_approval == "":
        raise ValueError("consumed_approval must be a plan hash, not empty")
    if lease is not None and lease.instance != instance:
        raise ValueError(f"lease is for instance {lease.instance!r}, not {instance!r}")
    if run.instance != instance:
        raise ValueError(f"run record is for instance {run.instance!r}, not {instance!r}")
    checked_deltas: dict[str, DeltaState | None] = {}
    for source, delta in deltas.items():
        check_name("delta source", source)
        if delta is not None and delta.source != source:
            raise ValueError(f"delta state for {delta.source!r} given under {source!r}")
        checked_deltas[source] = delta
    checked_maps: dict[str, IdMapWrite] = {}
    for object_type, changes in id_maps.items():
        check_name("object type", object_type)
        if isinstance(changes.deletes, str):  # a str is a Collection[str] of its characters
            raise TypeError(f"deletes of {object_type!r} must be a collection of ids, not a string")
        upserts: dict[str, IdMapEntry] = {}
        for source_id, entry in changes.upserts.items():
            if not source_id or not isinstance(entry, IdMapEntry) or not entry.object_id:
                raise ValueError(f"invalid id map entry for {object_type!r}: {source_id!r}")
            upserts[source_id] = entry
        deletes = frozenset() if changes.replace_all else frozenset(changes.deletes) - upserts.keys()
        if "" in deletes:
            raise ValueError(f"empty source id in the deletes of {object_type!r}")
        checked_maps[object_type] = IdMapWrite(
            upserts=upserts, deletes=deletes, replace_all=changes.replace_all
        )
    return CommitInput(
        deltas=checked_deltas, id_maps=checked_maps, run=run, consumed_approval=consumed_approval
    )


def check_lease_request(
    owner: str, duration_s: float, *, lease: Lease | None = None, instance: str | None = None
) -> None:
    """Refuse lease calls that could never be right: no owner, no duration, another instance's lease."""
    if not owner or duration_s <= 0:
        raise ValueError("a lease needs an owner and a positive duration")
    if lease is not None and lease.instance != instance:
        raise ValueError(f"lease is for instance {lease.instance!r}, not {instance!r}")
