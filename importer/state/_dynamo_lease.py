"""The lease in DynamoDB: one item per instance, changed only by conditional updates.

``acquire`` is one ``UpdateItem`` whose condition admits a missing item, a released one, or one
whose expiry lies more than ``LEASE_SKEW`` in the past; it adds one to ``fence`` and returns the
new value, so two racing workers can never both win or get the same fence. ``renew``,
``release`` and the commit's ``ConditionCheck`` all require our owner and fence on an item that
is not released. The item is never deleted and carries no ``expires_at``, so neither a release
nor the table's TTL can reset the fence.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from importer.errors import LeaseLostError
from importer.state import _codec as c
from importer.state._dynamo_io import ConditionFailed, DynamoTable, Item, n, s
from importer.state._dynamo_records import Keys
from importer.state.models import LEASE_SKEW, Lease, LeaseInfo

__all__ = ["acquire", "check_fence", "held_condition", "info", "lost", "release", "renew"]

_NAMES = {
    "#pk": "pk",
    "#owner": "owner",
    "#fence": "fence",
    "#released": "released",
    "#until": "lease_until_us",
    "#rvn": "rvn",
    "#kind": "kind",
}
_HELD = "#owner = :owner AND #fence = :fence AND #released = :false"


def _key(keys: Keys) -> Item:
    return keys.key(keys.main, "lease")


def held_condition(keys: Keys, lease: Lease) -> dict[str, Any]:
    """Key and condition that hold while ``lease`` is still ours (for updates and ConditionCheck)."""
    return {
        "Key": _key(keys),
        "ConditionExpression": _HELD,
        "ExpressionAttributeNames": {k: _NAMES[k] for k in ("#owner", "#fence", "#released")},
        "ExpressionAttributeValues": {
            ":owner": s(lease.owner),
            ":fence": n(lease.fence),
            ":false": {"BOOL": False},
        },
    }


def lost(instance: str, lease: Lease | None, what: str) -> LeaseLostError:
    """The error for a lease that another worker has taken (or that was released)."""
    fence = lease.fence if lease is not None else "?"
    return LeaseLostError(
        f"lease of instance {instance!r} (fence {fence}) is no longer held by this worker; {what}"
    )


def check_fence(db: DynamoTable, keys: Keys, lease: Lease) -> None:
    """Raise ``LeaseLostError`` unless the stored lease still has our owner and fence."""
    item = db.get(_key(keys))
    if (
        item is None
        or item["owner"]["S"] != lease.owner
        or int(item["fence"]["N"]) != lease.fence
        or item["released"]["BOOL"]
    ):
        raise lost(keys.instance, lease, "nothing was written")


def acquire(
    db: DynamoTable, keys: Keys, owner: str, now: datetime, duration_s: float, *, take_over: str | None = None
) -> Lease | None:
    """Take the lease, or return None if another worker holds it.

    ``take_over`` names a holder known to be dead (a process of this host that no longer runs):
    its lease is taken at once instead of after it expires.
    """
    expires_at = now + timedelta(seconds=duration_s)
    rvn = uuid.uuid4().hex
    try:
        new = db.call(
            "update_item",
            Key=_key(keys),
            UpdateExpression=(
                "SET #owner = :owner, #rvn = :rvn, #until = :until, #released = :false, #kind = :kind"
                " ADD #fence :one"
            ),
            ConditionExpression="attribute_not_exists(#pk) OR #released = :true OR #until <= :cutoff"
            + (" OR #owner = :dead" if take_over else ""),
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":owner": s(owner),
                ":rvn": s(rvn),
                ":until": n(c.epoch_us(expires_at)),
                ":false": {"BOOL": False},
                ":true": {"BOOL": True},
                ":kind": s("lease"),
                ":one": n(1),
                ":cutoff": n(c.epoch_us(now - LEASE_SKEW)),
                **({":dead": s(take_over)} if take_over else {}),
            },
            ReturnValues="ALL_NEW",
        )
    except ConditionFailed:
        return None
    fence = int(new["Attributes"]["fence"]["N"])
    return Lease(instance=keys.instance, owner=owner, fence=fence, rvn=rvn, expires_at=expires_at)


def _update_held(db: DynamoTable, keys: Keys, lease: Lease, update: str, values: dict[str, Any]) -> None:
    """Apply ``update`` to the lease item if it is still ours; ``ConditionFailed`` otherwise."""
    held = held_condition(keys, lease)
    db.call(
        "update_item",
        Key=held["Key"],
        UpdateExpression=update,
        ConditionExpression=held["ConditionExpression"],
        ExpressionAttributeNames={
            **held["ExpressionAttributeNames"],
            "#until": "lease_until_us",
            "#rvn": "rvn",
        },
        ExpressionAttributeValues={**held["ExpressionAttributeValues"], **values},
    )


def renew(db: DynamoTable, keys: Keys, lease: Lease, now: datetime, duration_s: float) -> Lease:
    """Extend a lease that is still ours, with a new record version."""
    expires_at = now + timedelta(seconds=duration_s)
    rvn = uuid.uuid4().hex
    try:
        _update_held(
            db,
            keys,
            lease,
            "SET #rvn = :rvn, #until = :until",
            {":rvn": s(rvn), ":until": n(c.epoch_us(expires_at))},
        )
    except ConditionFailed as exc:
        raise lost(keys.instance, lease, "the lease was not renewed") from exc
    return Lease(instance=keys.instance, owner=lease.owner, fence=lease.fence, rvn=rvn, expires_at=expires_at)


def release(db: DynamoTable, keys: Keys, lease: Lease, now: datetime) -> None:
    """Mark the lease free if it is still ours; a lost lease is left to its new holder."""
    try:
        _update_held(
            db,
            keys,
            lease,
            "SET #released = :true, #until = :now, #rvn = :rvn",
            {":true": {"BOOL": True}, ":now": n(c.epoch_us(now)), ":rvn": s(uuid.uuid4().hex)},
        )
    except ConditionFailed:
        return


def info(db: DynamoTable, keys: Keys) -> LeaseInfo:
    """What the lease item says."""
    item = db.get(_key(keys))
    if item is None:
        return LeaseInfo(owner=None, expires_at=None, released=False, fence=0)
    return LeaseInfo(
        owner=item["owner"]["S"],
        expires_at=c.from_epoch_us(int(item["lease_until_us"]["N"])),
        released=bool(item["released"]["BOOL"]),
        fence=int(item["fence"]["N"]),
    )
