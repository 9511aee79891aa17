"""Records kept in the state store: plain frozen values, the same for every backend.

Every datetime must be timezone-aware (stores hand them back in UTC); a naive datetime is
rejected when the record is built, because a state file shared by hosts in different time
zones would otherwise compare wall clocks that mean different instants.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = [
    "LEASE_SKEW",
    "RUN_MODES",
    "RUN_OUTCOMES",
    "RUN_TRIGGERS",
    "Approval",
    "AuditRecord",
    "CachedAccount",
    "DeltaState",
    "IdMapChanges",
    "IdMapEntry",
    "Installation",
    "Lease",
    "LeaseInfo",
    "RunRecord",
]

RUN_MODES = frozenset({"full", "incremental"})
RUN_TRIGGERS = frozenset({"schedule", "manual", "ci"})
RUN_OUTCOMES = frozenset({"success", "partial", "failed", "refused", "interrupted"})

# Another host may take a lease over only this long after its expiry time: clocks of two
# hosts disagree by a little, and a holder must never lose a lease it still believes valid.
LEASE_SKEW = timedelta(seconds=5)


def _require_aware(owner: object, **values: datetime | None) -> None:
    for name, value in values.items():
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{type(owner).__name__}.{name} must be timezone-aware")


@dataclass(frozen=True, slots=True, kw_only=True)
class Installation:
    """Which Assets site and Entra tenant this instance syncs (the tenant only as a pseudonym)."""

    instance: str
    site_url: str
    workspace_id: str | None
    tenant_pseudonym: str
    first_seen: datetime
    last_seen: datetime

    def __post_init__(self) -> None:
        _require_aware(self, first_seen=self.first_seen, last_seen=self.last_seen)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaState:
    """The Graph delta link of one source, and the ``$select`` it was issued for."""

    source: str
    link: str
    select_fingerprint: str
    updated_at: datetime

    def __post_init__(self) -> None:
        _require_aware(self, updated_at=self.updated_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdMapEntry:
    """Where one source record lives in Assets, and the hash of what was last written there."""

    object_id: str
    content_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IdMapChanges:
    """Changes to one object type's id map, keyed by source (Graph) id.

    ``deletes`` are applied before ``upserts``, so an id in both ends up mapped. With
    ``replace_all`` (after a full run) the map becomes exactly ``upserts`` and ``deletes`` is
    not needed.
    """

    upserts: Mapping[str, IdMapEntry]
    deletes: Collection[str] = ()
    replace_all: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One sync run as it ended: what it did, how many requests it made, and why it stopped."""

    run_id: str
    instance: str
    started_at: datetime
    finished_at: datetime | None = None
    mode: str
    trigger: str
    outcome: str
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # type -> action -> n
    requests: Mapping[str, int] = field(default_factory=dict)  # service -> n
    plan_hash: str | None = None
    error: str | None = None
    holder: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self, started_at=self.started_at, finished_at=self.finished_at)
        if not self.run_id:
            raise ValueError("RunRecord.run_id must not be empty")
        for name, value, allowed in (
            ("mode", self.mode, RUN_MODES),
            ("trigger", self.trigger, RUN_TRIGGERS),
            ("outcome", self.outcome, RUN_OUTCOMES),
        ):
            if value not in allowed:
                raise ValueError(f"RunRecord.{name} must be one of {sorted(allowed)}, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """An operator's one-shot approval of the plan with this hash (deletion guard).

    ``importer sync --approve HASH`` applies that plan once. If the run stops before its commit
    (failed, interrupted), the approval is stored so that the next run whose plan has the same
    hash (nothing was applied yet) may still apply it; the commit of the run that applied the
    plan deletes it (``StateStore.commit(consumed_approval=...)``), so the same removals planned
    again later are refused again. A stored approval also expires after ``retention_days``.
    """

    plan_hash: str
    approved_at: datetime
    approved_by: str

    def __post_init__(self) -> None:
        _require_aware(self, approved_at=self.approved_at)
        if not self.plan_hash:
            raise ValueError("Approval.plan_hash must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedAccount:
    """An Atlassian account id looked up for a mail pseudonym; ``None`` means no unique match."""

    key: str
    account_id: str | None
    cached_at: datetime

    def __post_init__(self) -> None:
        _require_aware(self, cached_at=self.cached_at)
        if not self.key:
            raise ValueError("CachedAccount.key must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """An audited action (approval, forget, refusal); ``subject`` is a pseudonym, never an identity."""

    at: datetime
    action: str
    subject: str
    detail: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware(self, at=self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A held lease: ``fence`` is the fencing token that every commit is checked against."""

    instance: str
    owner: str
    fence: int
    rvn: str
    expires_at: datetime

    def __post_init__(self) -> None:
        _require_aware(self, expires_at=self.expires_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseInfo:
    """What the lease record says now (for `status` and `doctor`); ``fence`` is 0 if never taken."""

    owner: str | None
    expires_at: datetime | None
    released: bool
    fence: int

    def is_held(self, now: datetime) -> bool:
        """Whether another worker asking at ``now`` would be refused the lease."""
        if self.owner is None or self.expires_at is None or self.released:
            return False
        return now < self.expires_at + LEASE_SKEW
