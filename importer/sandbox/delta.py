"""Delta queries for ``/users/delta`` and ``/devices/delta``, exact to the change.

A round is (kind, from-sequence, to-sequence, $select, id filter). The first request of a
round (no token) reads every object that existed when it started; a deltaLink request reads the
change log between the token's sequence and the current one. Pages are O(page): the initial
round walks a prefix of the creation-order list, an incremental round walks a change window
computed once (O(changes)) and cached. Page and delta tokens are opaque and tamper-evident and
carry the whole state, so every link works verbatim, and only verbatim.

Like the real service: ``@removed`` ``changed`` (soft delete) / ``deleted`` (hard delete);
null-valued properties are omitted; ``Prefer: return=minimal`` returns only changed
properties; only changes to selected properties make an object appear; ``registeredOwners`` is
not tracked; an object may appear twice in one round; some pages are empty but still carry a
nextLink; ``$deltatoken=latest`` returns only a deltaLink; old tokens expire (400
``syncStateNotFound`` or 410 Gone with ``Location``, per tenant setting).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import Any, Protocol
from urllib.parse import quote

from importer.sandbox.base import SandboxRequest
from importer.sandbox.directory import (
    HARD,
    OP_CREATE,
    OP_HARD,
    OP_RESTORE,
    OP_SOFT,
    SOFT,
    Collection,
    Directory,
)
from importer.sandbox.odata import (
    DEVICES,
    USERS,
    Catalog,
    GraphError,
    Projection,
    dollar_params,
    parse_filter,
)
from importer.sandbox.tenant import SimClock, TenantSettings
from importer.sandbox.tokens import TokenCodec

__all__ = ["DeltaEngine"]

_REPLAY_GAP = 5  # a replayed object shows up again this many positions later
_STRUCTURAL = OP_CREATE | OP_SOFT | OP_HARD | OP_RESTORE
_Item = tuple[str, int, frozenset[str]]  # (id, OP_* bits, changed property names)
_Window = list[_Item]


class _Items(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, i: int, /) -> _Item: ...


class DeltaEngine:
    """Serves delta pages for both kinds over one ``Directory``."""

    def __init__(
        self, directory: Directory, settings: TenantSettings, clock: SimClock, codec: TokenCodec
    ) -> None:
        self._dir = directory
        self._settings = settings
        self._clock = clock
        self._codec = codec
        self._windows: OrderedDict[tuple[Any, ...], _Window] = OrderedDict()

    def page(self, kind: str, request: SandboxRequest) -> tuple[dict[str, Any], dict[str, str]]:
        """One delta page: (body, extra response headers)."""
        params = dollar_params(request)
        minimal = "return=minimal" in request.headers.get("prefer", "").lower()
        headers = {"Preference-Applied": "return=minimal"} if minimal else {}
        skiptoken, deltatoken = params.get("$skiptoken"), params.get("$deltatoken")
        catalog = USERS if kind == "users" else DEVICES
        with self._dir.lock:
            coll = self._dir.collection(kind)
            if skiptoken is not None:
                state = self._decode(kind, skiptoken, "ds", params, request)
                return self._page(coll, catalog, state, request, minimal, first=False), headers
            if deltatoken:
                if deltatoken.lower() == "latest":
                    state = self._start(kind, coll, params, since=coll.sequence)
                    return self._delta_link_only(coll, state, request), headers
                token = self._decode(kind, deltatoken, "dt", params, request)
                state = dict(token, t="ds", a=token["b"], b=coll.sequence, p=0, e=0, ts=self._clock.now())
                return self._page(coll, catalog, state, request, minimal, first=False), headers
            state = self._start(kind, coll, params, since=-1)
            return self._page(coll, catalog, state, request, minimal, first=True), headers

    def _start(self, kind: str, coll: Collection, params: dict[str, str], *, since: int) -> dict[str, Any]:
        for option in ("$expand", "$orderby", "$search", "$count", "$skip"):
            if option in params:
                raise GraphError(
                    400,
                    "Request_UnsupportedQuery",
                    f"The query option '{option}' is not supported with delta queries.",
                )
        catalog = USERS if kind == "users" else DEVICES
        select = params.get("$select")
        catalog.projection(select)  # validates the names now
        resource = "User" if kind == "users" else "Device"
        flt = parse_filter(
            params.get("$filter"),
            resource=resource,
            allow_enabled=False,
            max_ids=50 if kind == "users" else 0,
        )
        ids = list(flt.ids) if flt is not None and flt.ids is not None else None
        return {
            "t": "ds",
            "k": kind,
            "a": since,
            "b": coll.sequence,
            "s": select,
            "i": ids,
            "p": 0,
            "e": 0,
            "g": self._settings.delta_generation,
            "ts": self._clock.now(),
        }

    def _decode(
        self, kind: str, token: str, expected: str, params: dict[str, str], request: SandboxRequest
    ) -> dict[str, Any]:
        others = set(params) - {"$skiptoken", "$deltatoken"}
        state = self._codec.decode(token)
        if others or state is None or state.get("t") != expected or state.get("k") != kind:
            raise GraphError(400, "Request_BadRequest", "The specified delta or page token is not valid.")
        age = self._clock.now() - float(state["ts"])
        if state["g"] != self._settings.delta_generation or age > self._settings.delta_token_max_age:
            self._expired(kind, state, request)
        return state

    def _expired(self, kind: str, state: dict[str, Any], request: SandboxRequest) -> None:
        if self._settings.delta_expiry_mode == "gone":
            select = f"$select={quote(state['s'], safe=',')}&" if state.get("s") else ""
            location = f"{request.base_url}/v1.0/{kind}/delta?{select}$deltatoken="
            raise GraphError(
                410,
                "resyncRequired",
                "The delta token is no longer valid, and the app must reset the sync state.",
                headers={"Location": location},
            )
        raise GraphError(
            400,
            "syncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data must be "
            "synchronized again.",
        )

    def _candidates(self, coll: Collection, state: dict[str, Any], projection: Projection) -> _Items:
        since, until, ids = state["a"], state["b"], state["i"]
        if since < 0:
            count = coll.created_before(until)
            if ids is not None:
                present = {oid for oid in ids if oid in coll.records}
                return [(oid, OP_CREATE, frozenset()) for oid in coll.order[:count] if oid in present]
            return _InitialView(coll.order, count)
        key = (coll.kind, since, until, projection.names, tuple(ids) if ids is not None else None)
        window = self._windows.get(key)
        if window is None:
            window = self._window(coll, since, until, frozenset(projection.names), ids)
            self._windows[key] = window
            if len(self._windows) > 64:
                self._windows.popitem(last=False)
        return window

    @staticmethod
    def _window(
        coll: Collection, since: int, until: int, tracked: frozenset[str], ids: list[str] | None
    ) -> _Window:
        merged: dict[str, tuple[int, frozenset[str]]] = {}
        wanted = set(ids) if ids is not None else None
        for oid, op, props in coll.log[since:until]:
            if wanted is not None and oid not in wanted:
                continue
            previous = merged.pop(oid, None)  # re-insert: order of last change
            merged[oid] = (op, props) if previous is None else (previous[0] | op, previous[1] | props)
        return [
            (oid, ops, props) for oid, (ops, props) in merged.items() if ops & _STRUCTURAL or props & tracked
        ]

    def _page(
        self,
        coll: Collection,
        catalog: Catalog,
        state: dict[str, Any],
        request: SandboxRequest,
        minimal: bool,
        *,
        first: bool,
    ) -> dict[str, Any]:
        projection = catalog.projection(state["s"])
        items = self._candidates(coll, state, projection)
        context = f"{request.base_url}/v1.0/$metadata#{coll.kind}"
        if first and projection.selected:
            context += "(" + ",".join(projection.requested) + ")"
        pos, total, until = state["p"], len(items), state["b"]
        every = self._settings.empty_page_every
        if (
            every
            and not state["e"]
            and pos < total
            and _hash(f"empty:{coll.kind}:{until}:{pos}") % every == 0
        ):
            link = self._codec.encode(dict(state, e=1))
            return {
                "@odata.context": context,
                "@odata.nextLink": self._link(request, coll, "$skiptoken", link),
                "value": [],
            }
        end = min(pos + self._settings.delta_page_size, total)
        value: list[dict[str, Any]] = []
        replay = self._settings.replay_every
        incremental = state["a"] >= 0
        for i in range(pos, end):
            value.append(self._emit(coll, projection, items[i], minimal and incremental))
            j = i - _REPLAY_GAP
            if replay and j >= 0 and _hash(f"replay:{until}:{items[j][0]}") % replay == 0:
                value.append(self._emit(coll, projection, items[j], minimal and incremental))
        body: dict[str, Any] = {"@odata.context": context}
        if end < total:
            body["@odata.nextLink"] = self._link(
                request, coll, "$skiptoken", self._codec.encode(dict(state, p=end, e=0))
            )
        else:
            body["@odata.deltaLink"] = self._link(
                request, coll, "$deltatoken", self._delta_token(state, until)
            )
        body["value"] = value
        return body

    def _delta_link_only(
        self, coll: Collection, state: dict[str, Any], request: SandboxRequest
    ) -> dict[str, Any]:
        return {
            "@odata.context": f"{request.base_url}/v1.0/$metadata#{coll.kind}",
            "@odata.deltaLink": self._link(
                request, coll, "$deltatoken", self._delta_token(state, state["b"])
            ),
            "value": [],
        }

    def _delta_token(self, state: dict[str, Any], sequence: int) -> str:
        return self._codec.encode(
            {
                "t": "dt",
                "k": state["k"],
                "b": sequence,
                "s": state["s"],
                "i": state["i"],
                "g": self._settings.delta_generation,
                "ts": self._clock.now(),
            }
        )

    @staticmethod
    def _link(request: SandboxRequest, coll: Collection, name: str, token: str) -> str:
        return f"{request.base_url}/v1.0/{coll.kind}/delta?{name}={token}"

    @staticmethod
    def _emit(coll: Collection, projection: Projection, item: _Item, minimal: bool) -> dict[str, Any]:
        oid, ops, props = item
        state = coll.state.get(oid)
        if state == HARD:
            return {"id": oid, "@removed": {"reason": "deleted"}}
        if state == SOFT:
            return {"id": oid, "@removed": {"reason": "changed"}}
        record = coll.records[oid]
        if minimal and not ops & (OP_CREATE | OP_RESTORE):
            return projection.non_null(record, props)
        return projection.non_null(record)


class _InitialView:
    """The first ``count`` ids of the creation order, as round items, without copying."""

    __slots__ = ("_count", "_order")

    def __init__(self, order: list[str], count: int) -> None:
        self._order, self._count = order, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int, /) -> _Item:
        return (self._order[i], OP_CREATE, _EMPTY)


_EMPTY: frozenset[str] = frozenset()


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))
