"""Values the Entra source hands to the rest of the importer, parsed at the client boundary.

Records are compact on purpose: a 100,000-user read keeps every record in memory until the
plan is built, so a record holds its id, a tuple of the selected values (the field names are
shared by every record with the same shape) and a removal reason, never the raw JSON.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Check",
    "DeviceOwner",
    "Fields",
    "GraphRecord",
    "GraphSource",
    "OwnersRead",
    "Page",
    "RecordParser",
    "RemovalReason",
    "SourceRead",
    "effective_select",
    "merge_records",
    "select_fingerprint",
]

GraphSource = Literal["users", "devices"]
RemovalReason = Literal["changed", "deleted"]

# Field names read case-insensitively: the official device samples spell them "Manufacturer"/"Model".
_CASE_INSENSITIVE = True
# Strings up to this length are deduplicated per read ("Windows", "AzureAd", "Member", "10.0"...).
_INTERN_MAX_LEN = 24
_INTERN_MAX_ENTRIES = 8192
_LAYOUT_MAX = 4096


class _Layout:
    """The field names of a record shape, shared by every record with that shape."""

    __slots__ = ("index", "keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.index = {k: i for i, k in enumerate(keys)}


_layouts: dict[tuple[str, ...], _Layout] = {}
_layouts_lock = threading.Lock()


def _layout(keys: tuple[str, ...]) -> _Layout:
    found = _layouts.get(keys)
    if found is not None:
        return found
    with _layouts_lock:
        found = _layouts.get(keys)
        if found is None:
            found = _Layout(keys)
            if len(_layouts) < _LAYOUT_MAX:  # a hostile server cannot grow this without bound
                _layouts[keys] = found
        return found


class Fields(Mapping[str, object]):
    """A read-only mapping of field name to value, stored as a shared key layout plus a value tuple."""

    __slots__ = ("_layout", "_values")

    def __init__(self, items: Mapping[str, object] | Iterable[tuple[str, object]] = ()) -> None:
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        self._layout = _layout(tuple(k for k, _ in pairs))
        self._values = tuple(v for _, v in pairs)

    @classmethod
    def _of(cls, keys: tuple[str, ...], values: tuple[object, ...]) -> Fields:
        new = cls.__new__(cls)
        new._layout = _layout(keys)
        new._values = values
        return new

    def __getitem__(self, key: str) -> object:
        return self._values[self._layout.index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.keys)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._layout.index

    def __repr__(self) -> str:
        return f"Fields({dict(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Fields) and other._layout is self._layout:
            return self._values == other._values
        return Mapping.__eq__(self, other)

    def __hash__(self) -> int:
        # Values are frozen by the parser (lists become tuples, objects become Fields).
        return hash(frozenset(zip(self._layout.keys, self._values, strict=True)))

    def merged(self, later: Mapping[str, object]) -> Fields:
        """Return these fields overridden by ``later``; keys absent from ``later`` keep their values."""
        values = dict(zip(self._layout.keys, self._values, strict=True))
        values.update(later)
        return Fields._of(tuple(values), tuple(values.values()))


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphRecord:
    """One user or device as Graph returned it: the selected fields that were present.

    ``removed`` is ``"changed"`` for a soft-deleted object (restorable for 30 days),
    ``"deleted"`` for a permanently deleted one, and None otherwise; removed records carry
    no fields. A field that is absent was not sent (delta omits unchanged and null values):
    it does not mean null.
    """

    id: str
    fields: Mapping[str, object] = field(default_factory=Fields)
    removed: RemovalReason | None = None

    def get(self, name: str, default: object = None) -> object:
        """The value of ``name``, or ``default`` when Graph did not send it."""
        return self.fields.get(name, default)


def merge_records(earlier: GraphRecord, later: GraphRecord) -> GraphRecord:
    """Merge two occurrences of one object within a round: the later one wins field by field.

    A removal replaces the record; a record after a removal (a restore) starts afresh; a partial
    update never blanks fields it did not send.
    """
    if later.removed is not None or earlier.removed is not None:
        return later
    base = earlier.fields if isinstance(earlier.fields, Fields) else Fields(earlier.fields)
    return GraphRecord(id=later.id, fields=base.merged(later.fields), removed=None)


def effective_select(
    source: GraphSource, select: Iterable[str], *, intune_owners: bool = False
) -> tuple[str, ...]:
    """The ``$select`` list actually sent: ``id`` first, then the asked fields, deduplicated.

    Devices also get ``deviceId`` when owners come from Intune (the join key there).
    """
    wanted: dict[str, str] = {"id": "id"}  # folded name -> name as asked
    for raw in select:
        name = raw.strip()
        if name:
            wanted.setdefault(name.lower(), name)
    if source == "devices" and intune_owners:
        wanted.setdefault("deviceid", "deviceId")
    return tuple(wanted.values())


def select_fingerprint(select: Iterable[str]) -> str:
    """A stable fingerprint of a ``$select`` list (order and case of duplicates do not matter).

    A delta link only tracks the properties of the ``$select`` it was started with, so the caller
    stores this next to the delta link and forces a full read when it changes. Store the
    ``SourceRead.select_fingerprint`` of the read (it covers fields added implicitly, such as
    ``deviceId`` for Intune owners) and compare it with ``select_fingerprint(effective_select(...))``.
    """
    names = sorted({n.strip() for n in select if n.strip()} | {"id"})
    return "sha256:" + hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:32]


class RecordParser:
    """Turn raw Graph items into ``GraphRecord`` values, keeping only the selected fields."""

    def __init__(self, select: Sequence[str]) -> None:
        self._exact = {name: name for name in select if name != "id"}
        self._folded = {name.lower(): name for name in self._exact}
        self._strings: dict[str, str] = {}

    def parse(self, item: Any) -> GraphRecord | None:
        """Parse one item; None when it has no usable id (such items are counted, not guessed at)."""
        if not isinstance(item, dict):
            return None
        object_id = item.get("id")
        if not isinstance(object_id, str) or not object_id:
            return None
        removed = item.get("@removed")
        if removed is not None:
            reason = removed.get("reason") if isinstance(removed, dict) else None
            # An unknown reason is read as the reversible one: mark, never delete, on a guess.
            return GraphRecord(id=object_id, removed="deleted" if reason == "deleted" else "changed")
        keys: list[str] = []
        values: list[object] = []
        for key, value in item.items():
            name = self._exact.get(key)
            if name is None and _CASE_INSENSITIVE:
                name = self._folded.get(key.lower())
            if name is None or name in keys:
                continue
            keys.append(name)
            values.append(self._freeze(value))
        return GraphRecord(id=object_id, fields=Fields._of(tuple(keys), tuple(values)))

    def _freeze(self, value: object) -> object:
        if isinstance(value, str):
            if len(value) > _INTERN_MAX_LEN:
                return value
            known = self._strings.get(value)
            if known is not None:
                return known
            if len(self._strings) < _INTERN_MAX_ENTRIES:
                self._strings[value] = value
            return value
        if isinstance(value, list):
            return tuple(self._freeze(v) for v in value)
        if isinstance(value, dict):
            return Fields((str(k), self._freeze(v)) for k, v in value.items())
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of a Graph collection: its raw items and where the round goes next."""

    items: Sequence[Any]
    next_link: str | None
    delta_link: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceRead:
    """The outcome of reading one source (users or devices), complete or not.

    Attributes:
        source: ``users`` or ``devices``.
        records: present objects, merged by id within the round, in first-seen order.
        removed: objects reported by delta as ``@removed`` (``removed`` is set on each).
        delta_link: the link to store for the next incremental read; None unless the round
            completed.
        complete: True only when the round ended normally (a deltaLink for delta reads, a last
            page without nextLink for list reads). An incomplete read must never produce removals.
        error: the exception that made the read incomplete, or None.
        full_read_needed: the stored delta link expired; run a full read instead.
        pages: pages fetched.
        select_fingerprint: fingerprint of the ``$select`` actually sent (store it with the link).
        incremental: the read followed a stored delta link (only changes came back).
    """

    source: GraphSource
    records: tuple[GraphRecord, ...] = ()
    removed: tuple[GraphRecord, ...] = ()
    delta_link: str | None = None
    complete: bool = False
    error: BaseException | None = None
    full_read_needed: bool = False
    pages: int = 0
    select_fingerprint: str = ""
    incremental: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceOwner:
    """A device's owner: the Entra user id, and the UPN when Intune reported it."""

    user_id: str
    user_principal_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnersRead:
    """Owners of the devices asked for.

    Attributes:
        owners: device object id -> owner, or None when the device has no owner (or is gone).
            Devices whose owner could not be read are absent and listed in ``failed``.
        complete: True when every device's owner is known (possibly None).
        error: the first exception that made the read incomplete, or None.
        failed: device object ids whose owner could not be read.
        requests: HTTP requests made for this read (batches, retries of inner requests, pages).
    """

    owners: Mapping[str, DeviceOwner | None]
    complete: bool
    error: BaseException | None = None
    failed: tuple[str, ...] = ()
    requests: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One result of ``importer doctor``: what was checked, whether it passed, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
