"""SQLite state backend: one file on one host (the default).

The file is created 0600 and kept in WAL mode with a busy timeout. One connection serves the
store, guarded by a lock, so threads of one process take turns; processes coordinate through
SQLite itself: every write, lease operations included, is one ``BEGIN IMMEDIATE`` transaction,
which holds the file's write lock from its first statement. Two workers racing for the lease
therefore see each other's result, and a ``commit`` whose fencing check fails rolls back
completely: delta links, id map and run record are written together or not at all.

The time of the last sweep is kept in the ``meta`` table, one row per instance
(``last_sweep:<instance>``, epoch seconds), so ``sweep_if_due`` needs no schema change.

The file and its schema are created on first use (``init`` does it explicitly and also runs an
integrity check); a damaged or foreign file is a ``FatalError`` naming it, never overwritten.
Instances share nothing but the file: every row carries its ``instance``. Timestamps are stored
as fixed-width UTC text; expiry times as epoch numbers, compared in SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from os import PathLike
from pathlib import Path

from importer.state import _codec as c
from importer.state import _sqlite_lease as lease_sql
from importer.state import _sqlite_schema as schema
from importer.state._sqlite_schema import SCHEMA_VERSION, connect, quick_check, translate_errors
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

__all__ = ["SqliteStateStore"]

_PAGE = 1000  # rows per page when streaming the id map
_SWEEPS = (
    "DELETE FROM run WHERE instance = ? AND expires_at <= ?",
    "DELETE FROM approval WHERE instance = ? AND expires_at <= ?",
    "DELETE FROM account WHERE instance = ? AND expires_at <= ?",
)


def _ids(values: Collection[str]) -> str:
    # A set of ids is bound as one JSON array and unpacked by json_each(): the SQL text stays
    # fixed, and the number of ids is not limited by SQLite's cap on bound parameters.
    return json.dumps(list(dict.fromkeys(values)))


class SqliteStateStore:
    """State in one SQLite file; see the module docstring."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        instance: str,
        retention_days: int = 60,
        account_ttl_days: int = 7,
        clock: c.Clock | None = None,
        busy_timeout_s: float = 30.0,
    ) -> None:
        self._path = Path(path)
        self._instance = c.check_name("instance", instance)
        self._retention = timedelta(days=retention_days)
        self._account_ttl = timedelta(days=account_ttl_days)
        self._clock = clock or c.utc_now
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._opened = ""

    # -- connection and transactions -------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn, self._opened = connect(self._path, busy_timeout_s=self._busy_timeout_s)
        return self._conn

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` for writes, a consistent snapshot for reads."""
        with self._lock, translate_errors(self._path):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def prepare(self) -> str:
        """Create the file and schema if needed, check the file's integrity, and say what was done."""
        with self._lock:
            conn = self._connection()
            quick_check(conn, self._path)
            opened, self._opened = self._opened, "opened"  # report a creation once
        what = {"created": "created", "initialised": "schema created"}.get(opened, "exists")
        return (
            f"SQLite state file {self._path}: {what}; schema version {SCHEMA_VERSION}, "
            f"integrity ok (instance {self._instance})"
        )

    def init(self) -> None:
        """Create the file and schema if needed and check the file's integrity; idempotent."""
        self.prepare()

    def close(self) -> None:
        """Close the connection; the next call opens it again."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- installation, deltas ----------------------------------------------------------------

    def get_installation(self) -> Installation | None:
        """The installation record, if one was written."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT site_url, workspace_id, tenant_pseudonym, first_seen, last_seen"
                " FROM installation WHERE instance = ?",
                (self._instance,),
            ).fetchone()
        if row is None:
            return None
        return Installation(
            instance=self._instance,
            site_url=row[0],
            workspace_id=row[1],
            tenant_pseudonym=row[2],
            first_seen=c.from_iso(row[3]),
            last_seen=c.from_iso(row[4]),
        )

    def put_installation(self, rec: Installation) -> None:
        """Write the installation record (its ``instance`` must be the store's)."""
        if rec.instance != self._instance:
            raise ValueError(f"installation is for {rec.instance!r}, not {self._instance!r}")
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO installation VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self._instance,
                    rec.site_url,
                    rec.workspace_id,
                    rec.tenant_pseudonym,
                    c.to_iso(rec.first_seen),
                    c.to_iso(rec.last_seen),
                ),
            )

    def get_delta(self, source: str) -> DeltaState | None:
        """The delta link stored for ``source``."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT link, select_fingerprint, updated_at FROM delta WHERE instance = ? AND source = ?",
                (self._instance, source),
            ).fetchone()
        if row is None:
            return None
        return DeltaState(
            source=source, link=row[0], select_fingerprint=row[1], updated_at=c.from_iso(row[2])
        )

    # -- id map ------------------------------------------------------------------------------

    def get_id_entries(self, object_type: str, source_ids: Collection[str]) -> dict[str, IdMapEntry]:
        """Point lookups in one type's id map, in one indexed query."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT source_id, object_id, content_hash FROM id_map"
                " WHERE instance = ? AND object_type = ? AND source_id IN (SELECT value FROM json_each(?))",
                (self._instance, object_type, _ids(source_ids)),
            ).fetchall()
        return {r[0]: IdMapEntry(object_id=r[1], content_hash=r[2]) for r in rows}

    def iter_id_map(self, object_type: str) -> Iterator[tuple[str, IdMapEntry]]:
        """Every entry of one type's id map in source-id order, a page per short read."""
        after = ""
        while True:
            with self._tx(write=False) as conn:
                rows = conn.execute(
                    "SELECT source_id, object_id, content_hash FROM id_map"
                    " WHERE instance = ? AND object_type = ? AND source_id > ?"
                    " ORDER BY source_id LIMIT ?",
                    (self._instance, object_type, after, _PAGE),
                ).fetchall()
            for row in rows:
                yield row[0], IdMapEntry(object_id=row[1], content_hash=row[2])
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def count_id_map(self, object_type: str) -> int:
        """How many entries one type's id map holds."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM id_map WHERE instance = ? AND object_type = ?",
                (self._instance, object_type),
            ).fetchone()
        return int(row[0])

    def find_source_ids(self, object_type: str, object_ids: Collection[str]) -> dict[str, str]:
        """Reverse lookup through an index on object id (the smallest source id wins on a tie)."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT object_id, MIN(source_id) FROM id_map WHERE instance = ? AND object_type = ?"
                " AND object_id IN (SELECT value FROM json_each(?)) GROUP BY object_id",
                (self._instance, object_type, _ids(object_ids)),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def delete_id_entries(self, object_type: str, source_ids: Collection[str]) -> int:
        """Remove id map entries; returns how many existed."""
        with self._tx(write=True) as conn:
            cur = conn.execute(
                "DELETE FROM id_map WHERE instance = ? AND object_type = ?"
                " AND source_id IN (SELECT value FROM json_each(?))",
                (self._instance, object_type, _ids(source_ids)),
            )
            return cur.rowcount

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
        """Write a run's results in one transaction, after checking the fencing token."""
        todo = check_commit(self._instance, lease, deltas, id_maps, run, consumed_approval)
        with self._tx(write=True) as conn:
            if lease is not None:
                lease_sql.check_fence(conn, self._instance, lease)
            for source, delta in todo.deltas.items():
                if delta is None:
                    conn.execute(
                        "DELETE FROM delta WHERE instance = ? AND source = ?", (self._instance, source)
                    )
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO delta VALUES (?, ?, ?, ?, ?)",
                        (
                            self._instance,
                            source,
                            delta.link,
                            delta.select_fingerprint,
                            c.to_iso(delta.updated_at),
                        ),
                    )
            for object_type, write in todo.id_maps.items():
                scope = (self._instance, object_type)
                if write.replace_all:
                    conn.execute("DELETE FROM id_map WHERE instance = ? AND object_type = ?", scope)
                conn.executemany(
                    "DELETE FROM id_map WHERE instance = ? AND object_type = ? AND source_id = ?",
                    ((*scope, source_id) for source_id in write.deletes),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO id_map VALUES (?, ?, ?, ?, ?)",
                    ((*scope, sid, e.object_id, e.content_hash) for sid, e in write.upserts.items()),
                )
            if todo.consumed_approval is not None:
                conn.execute(
                    "DELETE FROM approval WHERE instance = ? AND plan_hash = ?",
                    (self._instance, todo.consumed_approval),
                )
            self._write_run(conn, todo.run)

    def _write_run(self, conn: sqlite3.Connection, run: RunRecord) -> None:
        expires = c.epoch_s(run.started_at + self._retention)
        conn.execute(schema.INSERT_RUN, schema.run_values(self._instance, run, expires))

    def record_run(self, run: RunRecord) -> None:
        """Write the record of a run that ends without a commit."""
        if run.instance != self._instance:
            raise ValueError(f"run record is for {run.instance!r}, not {self._instance!r}")
        with self._tx(write=True) as conn:
            self._write_run(conn, run)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest unexpired run records, newest first."""
        if limit <= 0:
            return []
        now_s = c.epoch_s(c.now_from(self._clock))
        with self._tx(write=False) as conn:
            rows = conn.execute(
                schema.SELECT_RUN
                + " WHERE instance = ? AND expires_at > ? ORDER BY started_at DESC, run_id DESC LIMIT ?",
                (self._instance, now_s, limit),
            ).fetchall()
        return [schema.run_from_row(self._instance, row) for row in rows]

    # -- approvals, accounts, audit ----------------------------------------------------------

    def add_approval(self, a: Approval) -> None:
        """Store an approval for one plan hash (it expires after ``retention_days``)."""
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO approval VALUES (?, ?, ?, ?, ?)",
                (
                    self._instance,
                    a.plan_hash,
                    c.to_iso(a.approved_at),
                    a.approved_by,
                    c.epoch_s(a.approved_at + self._retention),
                ),
            )

    def get_approval(self, plan_hash: str) -> Approval | None:
        """The unexpired approval for ``plan_hash``, if any."""
        now_s = c.epoch_s(c.now_from(self._clock))
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT approved_at, approved_by FROM approval"
                " WHERE instance = ? AND plan_hash = ? AND expires_at > ?",
                (self._instance, plan_hash, now_s),
            ).fetchone()
        if row is None:
            return None
        return Approval(plan_hash=plan_hash, approved_at=c.from_iso(row[0]), approved_by=row[1])

    def get_accounts(self, keys: Collection[str]) -> dict[str, CachedAccount]:
        """Unexpired cached account lookups for these keys."""
        now_s = c.epoch_s(c.now_from(self._clock))
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT account_key, account_id, cached_at FROM account WHERE instance = ?"
                " AND expires_at > ? AND account_key IN (SELECT value FROM json_each(?))",
                (self._instance, now_s, _ids(keys)),
            ).fetchall()
        return {r[0]: CachedAccount(key=r[0], account_id=r[1], cached_at=c.from_iso(r[2])) for r in rows}

    def put_accounts(self, recs: Iterable[CachedAccount]) -> None:
        """Cache account lookups; each expires ``account_ttl_days`` after it was cached."""
        rows = [
            (
                self._instance,
                r.key,
                r.account_id,
                c.to_iso(r.cached_at),
                c.epoch_s(r.cached_at + self._account_ttl),
            )
            for r in recs
        ]
        with self._tx(write=True) as conn:
            conn.executemany("INSERT OR REPLACE INTO account VALUES (?, ?, ?, ?, ?)", rows)

    def delete_accounts(self, keys: Collection[str]) -> None:
        """Forget cached account lookups."""
        with self._tx(write=True) as conn:
            conn.executemany(
                "DELETE FROM account WHERE instance = ? AND account_key = ?",
                ((self._instance, key) for key in keys),
            )

    def add_audit(self, rec: AuditRecord) -> None:
        """Append an audit record (audit records are kept; they do not expire with runs)."""
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT INTO audit (instance, at, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                (self._instance, c.to_iso(rec.at), rec.action, rec.subject, c.dump_strs(rec.detail)),
            )

    def list_audit(self, limit: int) -> list[AuditRecord]:
        """The newest audit records, newest first."""
        if limit <= 0:
            return []
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT at, action, subject, detail FROM audit WHERE instance = ?"
                " ORDER BY at DESC, seq DESC LIMIT ?",
                (self._instance, limit),
            ).fetchall()
        return [
            AuditRecord(at=c.from_iso(r[0]), action=r[1], subject=r[2], detail=c.load_strs(r[3]))
            for r in rows
        ]

    def sweep(self, now: datetime | None = None) -> int:
        """Delete expired run records, approvals and cached accounts of this instance."""
        now_s = c.epoch_s(now if now is not None else c.now_from(self._clock))
        with self._tx(write=True) as conn:
            return self._sweep(conn, now_s)

    def sweep_if_due(self, *, every: timedelta, now: datetime | None = None) -> int | None:
        """Sweep unless the last sweep was less than ``every`` ago; None if not due.

        Most days this is one read; the check is made again inside the write transaction.
        """
        now_s = c.epoch_s(now if now is not None else c.now_from(self._clock))

        def due(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (self._sweep_key,)).fetchone()
            return row is None or not str(row[0]).isdigit() or now_s - int(row[0]) >= every.total_seconds()

        with self._tx(write=False) as conn:
            if not due(conn):
                return None
        with self._tx(write=True) as conn:
            return self._sweep(conn, now_s) if due(conn) else None

    @property
    def _sweep_key(self) -> str:
        return f"last_sweep:{self._instance}"

    def _sweep(self, conn: sqlite3.Connection, now_s: int) -> int:
        deleted = 0
        for statement in _SWEEPS:
            deleted += conn.execute(statement, (self._instance, now_s)).rowcount
        conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (self._sweep_key, str(now_s)))
        return deleted

    # -- lease (the SQL is in _sqlite_lease.py) ---------------------------------------------

    def acquire_lease(self, owner: str, *, duration_s: float, take_over: str | None = None) -> Lease | None:
        """Take the lease unless another worker holds an unexpired one."""
        check_lease_request(owner, duration_s)
        with self._tx(write=True) as conn:
            return lease_sql.acquire(
                conn, self._instance, owner, c.now_from(self._clock), duration_s, take_over=take_over
            )

    def renew_lease(self, lease: Lease, *, duration_s: float) -> Lease:
        """Extend a lease we still hold; ``LeaseLostError`` if another worker took it."""
        check_lease_request(lease.owner, duration_s, lease=lease, instance=self._instance)
        with self._tx(write=True) as conn:
            return lease_sql.renew(conn, self._instance, lease, c.now_from(self._clock), duration_s)

    def release_lease(self, lease: Lease) -> None:
        """Mark the lease free if we still hold it (a lost lease is left alone)."""
        check_lease_request(lease.owner, 1, lease=lease, instance=self._instance)
        with self._tx(write=True) as conn:
            lease_sql.release(conn, self._instance, lease, c.now_from(self._clock))

    def lease_info(self) -> LeaseInfo:
        """What the lease record says now."""
        with self._tx(write=False) as conn:
            return lease_sql.info(conn, self._instance)
