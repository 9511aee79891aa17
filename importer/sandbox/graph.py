"""The simulated Microsoft Graph v1.0: users, devices, owners, Intune devices, delta and $batch.

Every request needs a bearer token from the sandbox's authority (401 ``InvalidAuthenticationToken``
otherwise, with the real messages for a missing, malformed or expired token) and the tenant's
permission for the resource (403 ``Authorization_RequestDenied``). Permissions are checked
against the tenant's settings at request time, not against the token's roles (see README).

Lists page with opaque ``$skiptoken``s; the nextLink keeps the first request's query options,
as the real service does, and a token only works with exactly those options. Delta lives in
``delta.py``; property catalogs and query parsing in ``odata.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from importer.sandbox import odata
from importer.sandbox.base import SandboxRequest, SandboxResponse
from importer.sandbox.batch import run_batch
from importer.sandbox.data import DEVICE_FIELDS, USER_FIELDS
from importer.sandbox.delta import DeltaEngine
from importer.sandbox.directory import Collection, Directory
from importer.sandbox.faults import Faults
from importer.sandbox.intune import get_managed, list_managed
from importer.sandbox.odata import DEVICES, USERS, GraphError, dollar_params
from importer.sandbox.tenant import SimClock, TenantIdentity, TenantSettings
from importer.sandbox.tokens import AccessTokenCodec, TokenCodec

__all__ = ["GraphService"]

_USER_READ, _DEVICE_READ = "User.Read.All", "Device.Read.All"
_Result = tuple[int, Any, dict[str, str]]
_ROUTES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(p), route, name)
    for p, route, name in (
        (r"^/users$", "/v1.0/users", "users"),
        (r"^/users/delta$", "/v1.0/users/delta", "users_delta"),
        (r"^/users/\$count$", "/v1.0/users/$count", "users_count"),
        (r"^/users/([^/]+)$", "/v1.0/users/{id}", "user"),
        (r"^/devices$", "/v1.0/devices", "devices"),
        (r"^/devices/delta$", "/v1.0/devices/delta", "devices_delta"),
        (r"^/devices/\$count$", "/v1.0/devices/$count", "devices_count"),
        (r"^/devices\(deviceId='([^']*)'\)/registeredOwners$",
         "/v1.0/devices(deviceId='{id}')/registeredOwners", "owners_alt"),
        (r"^/devices\(deviceId='([^']*)'\)$", "/v1.0/devices(deviceId='{id}')", "device_alt"),
        (r"^/devices/([^/]+)/registeredOwners$", "/v1.0/devices/{id}/registeredOwners", "owners"),
        (r"^/devices/([^/]+)$", "/v1.0/devices/{id}", "device"),
        (r"^/deviceManagement/managedDevices$", "/v1.0/deviceManagement/managedDevices", "managed"),
        (r"^/deviceManagement/managedDevices/([^/]+)$", "/v1.0/deviceManagement/managedDevices/{id}",
         "managed_one"),
        (r"^/\$batch$", "/v1.0/$batch", "batch"),
    )
]  # fmt: skip
_NOT_FOUND = "Resource '{}' does not exist or one of its queried reference-property objects are not present."
_DENIED = "Insufficient privileges to complete the operation."
_SAFE = ",'()$:@/"  # left unescaped in nextLinks, as Graph writes them


class GraphService:
    """``/v1.0/...`` over one ``Directory``."""

    name = "graph"

    def __init__(
        self,
        *,
        directory: Directory,
        identity: TenantIdentity,
        settings: TenantSettings,
        clock: SimClock,
        access_tokens: AccessTokenCodec,
        page_tokens: TokenCodec,
        faults: Faults | None = None,
    ) -> None:
        self._dir = directory
        self._identity = identity
        self._settings = settings
        self._clock = clock
        self._access = access_tokens
        self._pages = page_tokens
        self._faults = faults
        self.delta = DeltaEngine(directory, settings, clock, page_tokens)
        self._handlers: dict[str, Callable[..., _Result]] = {
            "users": lambda r: self._list(r, "users"),
            "devices": lambda r: self._list(r, "devices"),
            "users_delta": lambda r: self._delta(r, "users"),
            "devices_delta": lambda r: self._delta(r, "devices"),
            "users_count": lambda r: self._count(r, "users"),
            "devices_count": lambda r: self._count(r, "devices"),
            "user": lambda r, key: self._get(r, "users", key),
            "device": lambda r, key: self._get(r, "devices", key),
            "device_alt": lambda r, key: self._get(r, "devices", self._by_device_id(key)),
            "owners": self._owners,
            "owners_alt": lambda r, key: self._owners(r, self._by_device_id(key)),
            "managed": self._managed,
            "managed_one": self._managed_one,
            "batch": self._batch,
        }
        self._upns: dict[str, str] = {}
        self._device_ids: dict[str, str] = {}

    def handle(self, request: SandboxRequest) -> SandboxResponse | None:
        """Answer ``/v1.0/...``; None for other paths."""
        if request.path != "/v1.0" and not request.path.startswith("/v1.0/"):
            return None
        return self._dispatch(request)

    def route_for(self, path: str) -> str:
        """The route template a path counts under (also for requests that never reach a handler)."""
        sub = path[len("/v1.0") :]
        for pattern, route, _ in _ROUTES:
            if pattern.match(sub):
                return route
        return "/v1.0/{unknown}"

    def _dispatch(self, request: SandboxRequest) -> SandboxResponse:
        rid, crid = odata.request_ids(request)
        sub = request.path[len("/v1.0") :]
        route, name = "/v1.0/{unknown}", ""
        args: tuple[str | Any, ...] = ()
        for pattern, candidate, handler in _ROUTES:
            if match := pattern.match(sub):
                route, name, args = candidate, handler, match.groups()
                break
        try:
            if not name:
                segment = sub.strip("/").split("/")[0] or "v1.0"
                raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
            self._authenticate(request)
            if (request.method == "POST") != (name == "batch"):
                if name == "batch":
                    raise GraphError(
                        405, "BadRequest", "Specified HTTP method is not allowed for the request target."
                    )
                raise GraphError(403, "Authorization_RequestDenied", _DENIED)
            status, body, headers = self._handlers[name](request, *args)
        except GraphError as exc:
            body = odata.graph_error_body(exc.code, exc.message, rid, crid)
            return odata.graph_response(
                exc.status, body, route=route, rid=rid, crid=crid, headers=exc.headers
            )
        response = odata.graph_response(status, body, route=route, rid=rid, crid=crid, headers=headers)
        if isinstance(body, bytes):
            response.content_type = "text/plain"
        return response

    def _authenticate(self, request: SandboxRequest) -> None:
        challenge = {
            "WWW-Authenticate": 'Bearer realm="", '
            f'authorization_uri="{request.base_url}/common/oauth2/authorize", '
            'client_id="00000003-0000-0000-c000-000000000000"'
        }
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", headers=challenge)
        if token.count(".") != 2:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed, there are no dots (.).\n"
                "The token needs to be in JWS or JWE Compact Serialization Format.",
                headers=challenge,
            )
        claims = self._access.check(token)
        if claims is None:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token validation failure.", headers=challenge
            )
        if claims.get("aud") != request.base_url or claims.get("tid") != self._identity.tenant_id:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
                headers=challenge,
            )
        if float(claims.get("exp", 0)) <= self._clock.now():
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                headers=challenge,
            )

    def _require(self, permission: str) -> None:
        if permission not in self._settings.permissions:
            raise GraphError(403, "Authorization_RequestDenied", _DENIED)

    def _list(self, request: SandboxRequest, kind: str) -> _Result:
        self._require(_USER_READ if kind == "users" else _DEVICE_READ)
        params = dollar_params(request)
        catalog = USERS if kind == "users" else DEVICES
        position = 0
        if "$skiptoken" in params:
            state = self._pages.decode(params.pop("$skiptoken"))
            if state is None or state.get("t") != "l" or state.get("k") != kind or state.get("q") != params:
                raise GraphError(400, "Request_BadRequest", "The specified page token value is not valid.")
            position = int(state["p"])
        _check_options(request, params)
        projection = catalog.projection(params.get("$select"))
        resource = "User" if kind == "users" else "Device"
        flt = odata.parse_filter(
            params.get("$filter"),
            resource=resource,
            allow_enabled=True,
            properties=("userPrincipalName", "mail") if kind == "users" else (),
        )
        top = odata.parse_top(params.get("$top"), default=self._settings.list_page_size, maximum=999)
        with self._dir.lock:
            coll = self._dir.collection(kind)
            ids = flt.ids if flt is not None else None
            if flt is not None and flt.equals:
                ids = tuple(dict.fromkeys((*(ids or ()), *_matching(coll, flt.equals))))
            sequence: list[str] | tuple[str, ...] = ids if ids is not None else coll.order
            enabled = flt.enabled if flt is not None else None
            match = _matcher(coll, enabled)
            value: list[dict[str, Any]] = []
            index = position
            while index < len(sequence) and len(value) < top:
                oid = sequence[index]
                index += 1
                if match(oid):
                    value.append(projection.full(coll.records[oid]))
            while index < len(sequence) and not match(sequence[index]):
                index += 1
            body: dict[str, Any] = {"@odata.context": _context(request, kind, projection.requested)}
            if position == 0 and params.get("$count", "").lower() == "true" and _eventual(request):
                body["@odata.count"] = sum(1 for oid in sequence if match(oid))
            if index < len(sequence):
                token = self._pages.encode({"t": "l", "k": kind, "p": index, "q": params})
                query = "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in params.items())
                body["@odata.nextLink"] = (
                    f"{request.base_url}/v1.0/{kind}?{query}{'&' if query else ''}$skiptoken={token}"
                )
            body["value"] = value
        return 200, body, {}

    def _delta(self, request: SandboxRequest, kind: str) -> _Result:
        self._require(_USER_READ if kind == "users" else _DEVICE_READ)
        body, headers = self.delta.page(kind, request)
        return 200, body, headers

    def _count(self, request: SandboxRequest, kind: str) -> _Result:
        self._require(_USER_READ if kind == "users" else _DEVICE_READ)
        if not _eventual(request):
            raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
        with self._dir.lock:
            count = sum(1 for _ in self._dir.collection(kind).iter_live())
        return 200, str(count).encode(), {}

    def _get(self, request: SandboxRequest, kind: str, key: str) -> _Result:
        self._require(_USER_READ if kind == "users" else _DEVICE_READ)
        params = dollar_params(request)
        _check_options(request, params)
        catalog = USERS if kind == "users" else DEVICES
        projection = catalog.projection(params.get("$select"))
        with self._dir.lock:
            coll = self._dir.collection(kind)
            oid = self._by_upn(key) if kind == "users" and "@" in key else key.lower()
            if not coll.live(oid):
                raise GraphError(404, "Request_ResourceNotFound", _NOT_FOUND.format(key))
            body = {"@odata.context": f"{request.base_url}/v1.0/$metadata#{kind}/$entity"}
            body.update(projection.full(coll.records[oid]))
        return 200, body, {}

    def _by_upn(self, upn: str) -> str:
        users = self._dir.users
        if len(self._upns) != len(users.order):
            column = USER_FIELDS.index("userPrincipalName")
            self._upns = {users.records[oid][column].lower(): oid for oid in users.order}
        return self._upns.get(upn.lower(), upn)

    def _by_device_id(self, device_id: str) -> str:
        devices = self._dir.devices
        with self._dir.lock:
            if len(self._device_ids) != len(devices.order):
                column = DEVICE_FIELDS.index("deviceId")
                self._device_ids = {devices.records[oid][column]: oid for oid in devices.order}
        return self._device_ids.get(device_id.lower(), device_id)

    def _owners(self, request: SandboxRequest, device: str) -> _Result:
        self._require(_DEVICE_READ)
        params = dollar_params(request)
        projection = USERS.projection(params.get("$select"))
        base, tenant = request.base_url, self._identity.tenant_id
        with self._dir.lock:
            oid = device.lower()
            if not self._dir.devices.live(oid):
                raise GraphError(404, "Request_ResourceNotFound", _NOT_FOUND.format(device))
            owner = self._dir.registered_owner(oid)
            value = []
            if owner is not None:
                item: dict[str, Any] = {
                    "@odata.type": "#microsoft.graph.user",
                    "@odata.id": f"{base}/v2/{tenant}/directoryObjects/{owner}/"
                    "Microsoft.DirectoryServices.User",
                }
                if _USER_READ in self._settings.permissions:
                    item.update(projection.full(self._dir.users.records[owner]))
                else:
                    item["id"] = owner  # without User.Read.All only the type and id come back
                value.append(item)
        return 200, {"@odata.context": f"{base}/v1.0/$metadata#directoryObjects", "value": value}, {}

    def _managed(self, request: SandboxRequest) -> _Result:
        with self._dir.lock:
            return 200, list_managed(self._dir, self._settings, self._pages, request), {}

    def _managed_one(self, request: SandboxRequest, key: str) -> _Result:
        with self._dir.lock:
            return 200, get_managed(self._dir, self._settings, request, key), {}

    def _batch(self, request: SandboxRequest) -> _Result:
        return 200, run_batch(request, self._dispatch, self._faults), {}


def _matching(coll: Collection, equals: tuple[tuple[str, str], ...]) -> list[str]:
    """Ids whose property equals one of the values (case-insensitive, as Graph compares them)."""
    wanted = [(coll.index[name], value.casefold()) for name, value in equals]

    def hit(record: list[Any]) -> bool:
        return any(isinstance(record[i], str) and record[i].casefold() == v for i, v in wanted)

    return [oid for oid in coll.order if hit(coll.records[oid])]


def _matcher(coll: Collection, enabled: bool | None) -> Callable[[str], bool]:
    records, state = coll.records, coll.state
    column = coll.index["accountEnabled"]
    if enabled is None:
        return lambda oid: oid in records and oid not in state
    return lambda oid: oid in records and oid not in state and records[oid][column] is enabled


def _context(request: SandboxRequest, kind: str, requested: tuple[str, ...]) -> str:
    suffix = f"({','.join(requested)})" if requested else ""
    return f"{request.base_url}/v1.0/$metadata#{kind}{suffix}"


def _eventual(request: SandboxRequest) -> bool:
    return request.headers.get("consistencylevel", "").lower() == "eventual"


def _check_options(request: SandboxRequest, params: dict[str, str]) -> None:
    if "$skip" in params:
        raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
    if "$search" in params:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: "
            "'ConsistencyLevel: eventual'"
            if not _eventual(request)
            else "The sandbox does not support $search.",
        )
    for option in ("$expand", "$orderby"):
        if option in params:
            raise GraphError(400, "Request_UnsupportedQuery", f"The sandbox does not support {option}.")
