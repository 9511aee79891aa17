"""DynamoDB state backend: one table shared by daemons on several hosts.

Table (single-table design; several installations share it, the instance is in every key)::

    key schema    pk (S, HASH), sk (S, RANGE); billing PAY_PER_REQUEST
    TTL           attribute expires_at (N, epoch seconds)

    item          pk                            sk                     other attributes
    installation  inst#<instance>               installation           site_url, workspace_id,
                                                                         tenant_pseudonym, first_seen,
                                                                         last_seen
    delta link    inst#<instance>               delta#<source>         link, select_fingerprint, updated_at
    lease         inst#<instance>               lease                  owner, fence (N), rvn,
                                                                         lease_until_us (N), released (BOOL)
    last sweep    inst#<instance>               sweep                  swept_at_s (N)
    run record    inst#<instance>#run           <started_at>#<run_id>  run_id, started_at, finished_at, mode,
                                                                         trigger, outcome, counts (JSON),
                                                                         requests (JSON), plan_hash, error,
                                                                         holder, expires_at
    approval      inst#<instance>#approval      <plan_hash>            approved_at, approved_by, expires_at
    account       inst#<instance>#account       <key>                  account_id (S or NULL), cached_at,
                                                                         expires_at
    audit         inst#<instance>#audit         <at>#<uuid>            at, action, subject, detail (JSON)
    id map entry  inst#<instance>#idmap#<type>  <source_id>            object_id, content_hash

Instants are fixed-width UTC text (so ``sk`` order is time order); every item has ``kind``.
All reads are strongly consistent. ``list_runs`` and ``list_audit`` query their partition
newest first; ``iter_id_map``/``count_id_map`` query the type's partition; ``get_id_entries``
and ``get_accounts`` use ``BatchGetItem`` (100 keys a call). ``find_source_ids`` has no index:
it queries the whole id-map partition of that type (about 1 read unit per 8 KB, roughly 80
entries), acceptable for the occasional reverse lookup it serves.

Expiry: run records, approvals and cached accounts carry ``expires_at``. DynamoDB's TTL deletes
them in the background, usually within 48 hours, so every read also filters them out, and
``sweep`` deletes what has expired. The lease item never carries ``expires_at``: a TTL
deletion would reset its fence counter. ``sweep`` notes when it ran in the ``sweep`` item, which
``sweep_if_due`` reads, so that a sweep after every committed sync costs one read on most days.

Commit and fencing: ``commit`` (1) reads the lease item and refuses with ``LeaseLostError``
unless our owner and fence are still there, then (2) writes the id-map changes with
``BatchWriteItem`` (they can be far more than the 100 items a transaction holds), then (3)
writes the delta links, the run record and the deletion of a consumed approval in one
``TransactWriteItems`` whose first action is a ``ConditionCheck`` of the lease (owner, fence,
not released). If the lease is lost between
(1) and (3), step (3) fails, so the delta links and the run record, the watermark of the run,
are never written by a stale worker. What the stale worker may leave are id-map entries from
step (2), and they are harmless: an entry only records that a Graph id maps to an Assets
object id, which is true whoever wrote it (the objects were written by that worker's apply),
and a content hash that does not match the object only causes a re-read and an update by the
next run. With ``replace_all`` the same holds for removals: they remove mappings of objects the
full read did not find, and a missing mapping is re-found by its key attribute.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from importer.state import _codec as c
from importer.state import _dynamo_lease as lease_db
from importer.state import _dynamo_records as r
from importer.state._dynamo_io import ConditionFailed, DynamoTable, Item, n, s
from importer.state.base import check_commit, check_lease_request
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

__all__ = ["DynamoStateStore"]

_TRANSACT_MAX = 100  # TransactWriteItems' limit on actions
_NAMES = {
    "#pk": "pk",
    "#sk": "sk",
    "#exp": "expires_at",
    "#oid": "object_id",
    "#hash": "content_hash",
}


def _names(*used: str) -> dict[str, str]:
    return {alias: _NAMES[alias] for alias in used}


def _unique(values: Iterable[str]) -> list[str]:
    return [v for v in dict.fromkeys(values) if v]  # DynamoDB key values may not be empty


class DynamoStateStore:
    """State in one DynamoDB table shared by several hosts; see the module docstring."""

    def __init__(
        self,
        table: str,
        *,
        instance: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        retention_days: int = 60,
        account_ttl_days: int = 7,
        clock: c.Clock | None = None,
        client: Any = None,
    ) -> None:
        self._db = DynamoTable(table, region=region, endpoint_url=endpoint_url, client=client)
        self._instance = c.check_name("instance", instance)
        self._keys = r.Keys(instance)
        self._retention = timedelta(days=retention_days)
        self._account_ttl = timedelta(days=account_ttl_days)
        self._clock = clock or c.utc_now

    def _now_s(self) -> int:
        return c.epoch_s(c.now_from(self._clock))

    # -- table -------------------------------------------------------------------------------

    def prepare(self) -> str:
        """Create the table (on-demand) and enable TTL if needed; say what was done."""
        done = self._db.ensure(ttl_attribute="expires_at")
        return f"DynamoDB state table {self._db.name!r}: {done} (instance {self._instance})"

    def init(self) -> None:
        """Create the table and enable TTL if needed; idempotent."""
        self.prepare()

    def close(self) -> None:
        """Close the client if the store created it."""
        self._db.close()

    # -- installation, deltas ----------------------------------------------------------------

    def get_installation(self) -> Installation | None:
        """The installation record, if one was written."""
        item = self._db.get(self._keys.key(self._keys.main, "installation"))
        return r.installation_from_item(item, self._instance) if item else None

    def put_installation(self, rec: Installation) -> None:
        """Write the installation record (its ``instance`` must be the store's)."""
        if rec.instance != self._instance:
            raise ValueError(f"installation is for {rec.instance!r}, not {self._instance!r}")
        self._db.call("put_item", Item=r.installation_item(self._keys, rec))

    def get_delta(self, source: str) -> DeltaState | None:
        """The delta link stored for ``source``."""
        item = self._db.get(self._keys.key(self._keys.main, f"delta#{source}"))
        return r.delta_from_item(item, source) if item else None

    # -- id map ------------------------------------------------------------------------------

    def get_id_entries(self, object_type: str, source_ids: Collection[str]) -> dict[str, IdMapEntry]:
        """Point lookups in one type's id map, 100 keys per ``BatchGetItem``."""
        pk = self._keys.idmap(object_type)
        items = self._db.batch_get(
            [self._keys.key(pk, sid) for sid in _unique(source_ids)],
            ProjectionExpression="#sk, #oid, #hash",
            ExpressionAttributeNames=_names("#sk", "#oid", "#hash"),
        )
        return dict(r.idmap_from_item(item) for item in items)

    def iter_id_map(self, object_type: str) -> Iterator[tuple[str, IdMapEntry]]:
        """Every entry of one type's id map, a query page at a time."""
        for item in self._db.query(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames=_names("#pk"),
            ExpressionAttributeValues={":pk": s(self._keys.idmap(object_type))},
        ):
            yield r.idmap_from_item(item)

    def count_id_map(self, object_type: str) -> int:
        """How many entries one type's id map holds (a counting query)."""
        return self._db.count(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames=_names("#pk"),
            ExpressionAttributeValues={":pk": s(self._keys.idmap(object_type))},
        )

    def find_source_ids(self, object_type: str, object_ids: Collection[str]) -> dict[str, str]:
        """Reverse lookup by reading the type's whole id-map partition (see the module docstring)."""
        wanted = set(object_ids)
        found: dict[str, str] = {}
        if not wanted:
            return found
        for item in self._db.query(
            KeyConditionExpression="#pk = :pk",
            ProjectionExpression="#sk, #oid",
            ExpressionAttributeNames=_names("#pk", "#sk", "#oid"),
            ExpressionAttributeValues={":pk": s(self._keys.idmap(object_type))},
        ):
            object_id, source_id = item["object_id"]["S"], item["sk"]["S"]
            if object_id in wanted and (object_id not in found or source_id < found[object_id]):
                found[object_id] = source_id
        return found

    def delete_id_entries(self, object_type: str, source_ids: Collection[str]) -> int:
        """Remove id map entries; returns how many existed."""
        pk = self._keys.idmap(object_type)
        existing = self._db.batch_get(
            [self._keys.key(pk, sid) for sid in _unique(source_ids)],
            ProjectionExpression="#pk, #sk",
            ExpressionAttributeNames=_names("#pk", "#sk"),
        )
        self._db.batch_write(deletes=[self._keys.key(pk, item["sk"]["S"]) for item in existing])
        return len(existing)

    # -- commit and runs ---------------------------------------------------------------------

    def commit(
        self,
        lease: Lease | None,
        *,
        deltas: Mapping[str, DeltaState | None],
        id_maps: Mapping[str, IdMapChanges],
        run: RunRecord,
        consumed_approval: str | None = None,
    ) -> None:
        """Fence check, id-map batches, then delta links and run record in one fenced transaction."""
        todo = check_commit(self._instance, lease, deltas, id_maps, run, consumed_approval)
        if len(todo.deltas) + 3 > _TRANSACT_MAX:
            raise ValueError(f"too many delta sources in one commit ({len(todo.deltas)})")
        if lease is not None:
            self._check_fence(lease)
        for object_type, write in todo.id_maps.items():
            pk = self._keys.idmap(object_type)
            upserts, deletes = write.upserts, set(write.deletes)
            if write.replace_all:
                existing = dict(self.iter_id_map(object_type))
                deletes = existing.keys() - upserts.keys()
                upserts = {sid: e for sid, e in upserts.items() if existing.get(sid) != e}
            self._db.batch_write(
                puts=[r.idmap_item(pk, sid, entry) for sid, entry in upserts.items()],
                deletes=[self._keys.key(pk, sid) for sid in deletes],
            )
        actions: list[dict[str, Any]] = []
        if lease is not None:
            actions.append({"ConditionCheck": lease_db.held_condition(self._keys, lease)})
        for source, delta in todo.deltas.items():
            if delta is None:
                actions.append({"Delete": {"Key": self._keys.key(self._keys.main, f"delta#{source}")}})
            else:
                actions.append({"Put": {"Item": r.delta_item(self._keys, delta)}})
        if todo.consumed_approval is not None:
            key = self._keys.key(self._keys.part("approval"), todo.consumed_approval)
            actions.append({"Delete": {"Key": key}})
        actions.append({"Put": {"Item": self._run_item(todo.run)}})
        try:
            self._db.transact(actions)
        except ConditionFailed as exc:
            raise lease_db.lost(self._instance, lease, "delta links and run record were not written") from exc

    def _check_fence(self, lease: Lease) -> None:
        lease_db.check_fence(self._db, self._keys, lease)

    def _run_item(self, run: RunRecord) -> Item:
        return r.run_item(self._keys, run, c.epoch_s(run.started_at + self._retention))

    def record_run(self, run: RunRecord) -> None:
        """Write the record of a run that ends without a commit."""
        if run.instance != self._instance:
            raise ValueError(f"run record is for {run.instance!r}, not {self._instance!r}")
        self._db.call("put_item", Item=self._run_item(run))

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest unexpired run records, newest first (expired ones filtered before TTL)."""
        runs: list[RunRecord] = []
        if limit <= 0:
            return runs
        for item in self._db.query(
            KeyConditionExpression="#pk = :pk",
            FilterExpression="#exp > :now",
            ExpressionAttributeNames=_names("#pk", "#exp"),
            ExpressionAttributeValues={":pk": s(self._keys.part("run")), ":now": n(self._now_s())},
            ScanIndexForward=False,
            Limit=limit,
        ):
            runs.append(r.run_from_item(item, self._instance))
            if len(runs) == limit:
                break
        return runs

    # -- approvals, accounts, audit ----------------------------------------------------------

    def add_approval(self, a: Approval) -> None:
        """Store an approval for one plan hash (it expires after ``retention_days``)."""
        expires = c.epoch_s(a.approved_at + self._retention)
        self._db.call("put_item", Item=r.approval_item(self._keys, a, expires))

    def get_approval(self, plan_hash: str) -> Approval | None:
        """The unexpired approval for ``plan_hash``, if any."""
        item = self._db.get(self._keys.key(self._keys.part("approval"), plan_hash)) if plan_hash else None
        if item is None or r.expires_s(item) <= self._now_s():
            return None
        return r.approval_from_item(item)

    def get_accounts(self, keys: Collection[str]) -> dict[str, CachedAccount]:
        """Unexpired cached account lookups for these keys."""
        pk, now_s = self._keys.part("account"), self._now_s()
        items = self._db.batch_get([self._keys.key(pk, key) for key in _unique(keys)])
        found = [r.account_from_item(item) for item in items if r.expires_s(item) > now_s]
        return {rec.key: rec for rec in found}

    def put_accounts(self, recs: Iterable[CachedAccount]) -> None:
        """Cache account lookups; each expires ``account_ttl_days`` after it was cached."""
        latest = {rec.key: rec for rec in recs}
        self._db.batch_write(
            puts=[
                r.account_item(self._keys, rec, c.epoch_s(rec.cached_at + self._account_ttl))
                for rec in latest.values()
            ]
        )

    def delete_accounts(self, keys: Collection[str]) -> None:
        """Forget cached account lookups."""
        pk = self._keys.part("account")
        self._db.batch_write(deletes=[self._keys.key(pk, key) for key in _unique(keys)])

    def add_audit(self, rec: AuditRecord) -> None:
        """Append an audit record (audit records carry no TTL; they are kept)."""
        self._db.call("put_item", Item=r.audit_item(self._keys, rec))

    def list_audit(self, limit: int) -> list[AuditRecord]:
        """The newest audit records, newest first."""
        records: list[AuditRecord] = []
        if limit <= 0:
            return records
        for item in self._db.query(
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames=_names("#pk"),
            ExpressionAttributeValues={":pk": s(self._keys.part("audit"))},
            ScanIndexForward=False,
            Limit=limit,
        ):
            records.append(r.audit_from_item(item))
            if len(records) == limit:
                break
        return records

    def sweep(self, now: datetime | None = None) -> int:
        """Delete this instance's expired run records, approvals and cached accounts."""
        now_s = c.epoch_s(now if now is not None else c.now_from(self._clock))
        expired: list[Item] = []
        for kind in ("run", "approval", "account"):
            expired += self._db.query(
                KeyConditionExpression="#pk = :pk",
                FilterExpression="#exp <= :now",
                ProjectionExpression="#pk, #sk",
                ExpressionAttributeNames=_names("#pk", "#sk", "#exp"),
                ExpressionAttributeValues={":pk": s(self._keys.part(kind)), ":now": n(now_s)},
            )
        self._db.batch_write(deletes=expired)
        self._db.call("put_item", Item=r.sweep_item(self._keys, now_s))
        return len(expired)

    def sweep_if_due(self, *, every: timedelta, now: datetime | None = None) -> int | None:
        """Sweep unless the ``sweep`` item says the last sweep was less than ``every`` ago."""
        now_s = c.epoch_s(now if now is not None else c.now_from(self._clock))
        last = self._db.get(self._keys.key(self._keys.main, "sweep"))
        if last is not None and now_s - r.swept_at_s(last) < every.total_seconds():
            return None
        return self.sweep(now)

    # -- lease (conditional updates in _dynamo_lease.py) ------------------------------------

    def acquire_lease(self, owner: str, *, duration_s: float, take_over: str | None = None) -> Lease | None:
        """Take the lease with a conditional update unless another worker holds an unexpired one."""
        check_lease_request(owner, duration_s)
        return lease_db.acquire(
            self._db, self._keys, owner, c.now_from(self._clock), duration_s, take_over=take_over
        )

    def renew_lease(self, lease: Lease, *, duration_s: float) -> Lease:
        """Extend a lease we still hold; ``LeaseLostError`` if another worker took it."""
        check_lease_request(lease.owner, duration_s, lease=lease, instance=self._instance)
        return lease_db.renew(self._db, self._keys, lease, c.now_from(self._clock), duration_s)

    def release_lease(self, lease: Lease) -> None:
        """Mark the lease free if we still hold it (a lost lease is left alone); never deletes it."""
        check_lease_request(lease.owner, 1, lease=lease, instance=self._instance)
        lease_db.release(self._db, self._keys, lease, c.now_from(self._clock))

    def lease_info(self) -> LeaseInfo:
        """What the lease item says now."""
        return lease_db.info(self._db, self._keys)
