"""The lease in SQLite: each function runs inside the caller's ``BEGIN IMMEDIATE`` transaction.

The write lock that ``BEGIN IMMEDIATE`` takes makes read-check-write one atomic step across
threads and processes, which is what a conditional write is in DynamoDB. The row is never
deleted; a release sets ``released``, so ``fence`` keeps growing across acquisitions.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta

from importer.errors import LeaseLostError
from importer.state import _codec as c
from importer.state.models import LEASE_SKEW, Lease, LeaseInfo

__all__ = ["acquire", "check_fence", "info", "release", "renew"]


def acquire(
    conn: sqlite3.Connection,
    instance: str,
    owner: str,
    now: datetime,
    duration_s: float,
    *,
    take_over: str | None = None,
) -> Lease | None:
    """Take the lease unless it is held: not released and not expired by more than the skew margin.

    A lease held by ``take_over`` (a holder known to be dead) is taken at once.
    """
    row = conn.execute(
        "SELECT fence, until_us, released, owner FROM lease WHERE instance = ?", (instance,)
    ).fetchone()
    held = row is not None and not row[2] and c.epoch_us(now - LEASE_SKEW) < row[1]
    if held and not (take_over and row[3] == take_over):
        return None
    lease = Lease(
        instance=instance,
        owner=owner,
        fence=(row[0] if row else 0) + 1,
        rvn=uuid.uuid4().hex,
        expires_at=now + timedelta(seconds=duration_s),
    )
    conn.execute(
        "INSERT OR REPLACE INTO lease (instance, owner, fence, rvn, until_us, released)"
        " VALUES (?, ?, ?, ?, ?, 0)",
        (instance, owner, lease.fence, lease.rvn, c.epoch_us(lease.expires_at)),
    )
    return lease


def check_fence(conn: sqlite3.Connection, instance: str, lease: Lease) -> None:
    """Raise ``LeaseLostError`` unless ``lease`` (owner and fence) is still the one on record."""
    row = conn.execute("SELECT owner, fence, released FROM lease WHERE instance = ?", (instance,)).fetchone()
    if row is None or row[0] != lease.owner or row[1] != lease.fence or row[2]:
        raise LeaseLostError(
            f"lease of instance {instance!r} (fence {lease.fence}) is no longer held by this worker; "
            "nothing was written"
        )


def renew(conn: sqlite3.Connection, instance: str, lease: Lease, now: datetime, duration_s: float) -> Lease:
    """Extend a lease that is still ours, with a new record version."""
    check_fence(conn, instance, lease)
    renewed = Lease(
        instance=instance,
        owner=lease.owner,
        fence=lease.fence,
        rvn=uuid.uuid4().hex,
        expires_at=now + timedelta(seconds=duration_s),
    )
    conn.execute(
        "UPDATE lease SET rvn = ?, until_us = ? WHERE instance = ?",
        (renewed.rvn, c.epoch_us(renewed.expires_at), instance),
    )
    return renewed


def release(conn: sqlite3.Connection, instance: str, lease: Lease, now: datetime) -> None:
    """Mark the lease free if it is still ours; otherwise leave the new holder's record alone."""
    conn.execute(
        "UPDATE lease SET released = 1, until_us = ?"
        " WHERE instance = ? AND owner = ? AND fence = ? AND released = 0",
        (c.epoch_us(now), instance, lease.owner, lease.fence),
    )


def info(conn: sqlite3.Connection, instance: str) -> LeaseInfo:
    """What the lease row says."""
    row = conn.execute(
        "SELECT owner, fence, until_us, released FROM lease WHERE instance = ?", (instance,)
    ).fetchone()
    if row is None:
        return LeaseInfo(owner=None, expires_at=None, released=False, fence=0)
    return LeaseInfo(
        owner=row[0], fence=int(row[1]), expires_at=c.from_epoch_us(int(row[2])), released=bool(row[3])
    )
