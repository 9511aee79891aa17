"""Keys and items of the DynamoDB state table (the layout is drawn in ``dynamodb.py``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from importer.state import _codec as c
from importer.state._dynamo_io import Item, n, opt_s, s
from importer.state.models import (
    Approval,
    AuditRecord,
    CachedAccount,
    DeltaState,
    IdMapEntry,
    Installation,
    RunRecord,
)

__all__ = [
    "Keys",
    "account_from_item",
    "account_item",
    "approval_from_item",
    "approval_item",
    "audit_from_item",
    "audit_item",
    "delta_from_item",
    "delta_item",
    "expires_s",
    "idmap_from_item",
    "idmap_item",
    "installation_from_item",
    "installation_item",
    "run_from_item",
    "run_item",
    "sweep_item",
    "swept_at_s",
]


@dataclass(frozen=True, slots=True)
class Keys:
    """Partition and sort keys of one instance's items."""

    instance: str

    @property
    def main(self) -> str:
        """The partition of the installation, delta links and lease."""
        return f"inst#{self.instance}"

    def part(self, kind: str) -> str:
        """The partition of one kind of item: ``run``, ``approval``, ``account``, ``audit``."""
        return f"inst#{self.instance}#{kind}"

    def idmap(self, object_type: str) -> str:
        """The partition of one object type's id map."""
        return f"inst#{self.instance}#idmap#{object_type}"

    @staticmethod
    def key(pk: str, sk: str) -> Item:
        """A primary key in attribute-value form."""
        return {"pk": s(pk), "sk": s(sk)}


def _str(item: Item, name: str) -> str:
    return str(item[name]["S"])


def _opt(item: Item, name: str) -> str | None:
    value: dict[str, Any] | None = item.get(name)
    return None if value is None or "NULL" in value else str(value["S"])


def expires_s(item: Item) -> int:
    """The item's TTL attribute (epoch seconds)."""
    return int(item["expires_at"]["N"])


def installation_item(keys: Keys, rec: Installation) -> Item:
    """The installation item."""
    return {
        **keys.key(keys.main, "installation"),
        "kind": s("installation"),
        "site_url": s(rec.site_url),
        "workspace_id": opt_s(rec.workspace_id),
        "tenant_pseudonym": s(rec.tenant_pseudonym),
        "first_seen": s(c.to_iso(rec.first_seen)),
        "last_seen": s(c.to_iso(rec.last_seen)),
    }


def installation_from_item(item: Item, instance: str) -> Installation:
    """Parse the installation item."""
    return Installation(
        instance=instance,
        site_url=_str(item, "site_url"),
        workspace_id=_opt(item, "workspace_id"),
        tenant_pseudonym=_str(item, "tenant_pseudonym"),
        first_seen=c.from_iso(_str(item, "first_seen")),
        last_seen=c.from_iso(_str(item, "last_seen")),
    )


def delta_item(keys: Keys, delta: DeltaState) -> Item:
    """One source's delta-link item."""
    return {
        **keys.key(keys.main, f"delta#{delta.source}"),
        "kind": s("delta"),
        "link": s(delta.link),
        "select_fingerprint": s(delta.select_fingerprint),
        "updated_at": s(c.to_iso(delta.updated_at)),
    }


def delta_from_item(item: Item, source: str) -> DeltaState:
    """Parse a delta-link item."""
    return DeltaState(
        source=source,
        link=_str(item, "link"),
        select_fingerprint=_str(item, "select_fingerprint"),
        updated_at=c.from_iso(_str(item, "updated_at")),
    )


def idmap_item(pk: str, source_id: str, entry: IdMapEntry) -> Item:
    """One id-map entry."""
    return {
        **Keys.key(pk, source_id),
        "kind": s("idmap"),
        "object_id": s(entry.object_id),
        "content_hash": s(entry.content_hash),
    }


def idmap_from_item(item: Item) -> tuple[str, IdMapEntry]:
    """Parse an id-map entry into (source id, entry)."""
    return _str(item, "sk"), IdMapEntry(
        object_id=_str(item, "object_id"), content_hash=_str(item, "content_hash")
    )


def run_item(keys: Keys, run: RunRecord, expires: int) -> Item:
    """A run-record item, sorted by start time within its partition."""
    return {
        **keys.key(keys.part("run"), f"{c.to_iso(run.started_at)}#{run.run_id}"),
        "kind": s("run"),
        "run_id": s(run.run_id),
        "started_at": s(c.to_iso(run.started_at)),
        "finished_at": opt_s(c.to_iso(run.finished_at) if run.finished_at else None),
        "mode": s(run.mode),
        "trigger": s(run.trigger),
        "outcome": s(run.outcome),
        "counts": s(c.dump_counts(run.counts)),
        "requests": s(c.dump_strs(run.requests)),
        "plan_hash": opt_s(run.plan_hash),
        "error": opt_s(run.error),
        "holder": opt_s(run.holder),
        "expires_at": n(expires),
    }


def run_from_item(item: Item, instance: str) -> RunRecord:
    """Parse a run-record item."""
    finished = _opt(item, "finished_at")
    return RunRecord(
        run_id=_str(item, "run_id"),
        instance=instance,
        started_at=c.from_iso(_str(item, "started_at")),
        finished_at=c.from_iso(finished) if finished else None,
        mode=_str(item, "mode"),
        trigger=_str(item, "trigger"),
        outcome=_str(item, "outcome"),
        counts=c.load_counts(_str(item, "counts")),
        requests=c.load_ints(_str(item, "requests")),
        plan_hash=_opt(item, "plan_hash"),
        error=_opt(item, "error"),
        holder=_opt(item, "holder"),
    )


def sweep_item(keys: Keys, swept_at_s: int) -> Item:
    """The item noting when this instance's records were last swept (no TTL: it is kept)."""
    return {**keys.key(keys.main, "sweep"), "kind": s("sweep"), "swept_at_s": n(swept_at_s)}


def swept_at_s(item: Item) -> int:
    """When the last sweep ran (epoch seconds)."""
    return int(item["swept_at_s"]["N"])


def approval_item(keys: Keys, a: Approval, expires: int) -> Item:
    """An approval item."""
    return {
        **keys.key(keys.part("approval"), a.plan_hash),
        "kind": s("approval"),
        "approved_at": s(c.to_iso(a.approved_at)),
        "approved_by": s(a.approved_by),
        "expires_at": n(expires),
    }


def approval_from_item(item: Item) -> Approval:
    """Parse an approval item."""
    return Approval(
        plan_hash=_str(item, "sk"),
        approved_at=c.from_iso(_str(item, "approved_at")),
        approved_by=_str(item, "approved_by"),
    )


def account_item(keys: Keys, rec: CachedAccount, expires: int) -> Item:
    """A cached-account item."""
    return {
        **keys.key(keys.part("account"), rec.key),
        "kind": s("account"),
        "account_id": opt_s(rec.account_id),
        "cached_at": s(c.to_iso(rec.cached_at)),
        "expires_at": n(expires),
    }


def account_from_item(item: Item) -> CachedAccount:
    """Parse a cached-account item."""
    return CachedAccount(
        key=_str(item, "sk"),
        account_id=_opt(item, "account_id"),
        cached_at=c.from_iso(_str(item, "cached_at")),
    )


def audit_item(keys: Keys, rec: AuditRecord) -> Item:
    """An audit item; a random suffix keeps records made in the same microsecond apart."""
    return {
        **keys.key(keys.part("audit"), f"{c.to_iso(rec.at)}#{uuid.uuid4().hex}"),
        "kind": s("audit"),
        "at": s(c.to_iso(rec.at)),
        "action": s(rec.action),
        "subject": s(rec.subject),
        "detail": s(c.dump_strs(rec.detail)),
    }


def audit_from_item(item: Item) -> AuditRecord:
    """Parse an audit item."""
    return AuditRecord(
        at=c.from_iso(_str(item, "at")),
        action=_str(item, "action"),
        subject=_str(item, "subject"),
        detail=c.load_strs(_str(item, "detail")),
    )
