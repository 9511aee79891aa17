"""OData pieces of the simulated Graph: property catalogs, ``$select``/``$filter``/``$top``, errors.

Property names in ``$select`` are matched case-insensitively and answered with their canonical
spelling (devices answer ``Manufacturer``/``Model`` in PascalCase, as the official samples show).
A property the real resource has but the sandbox does not store is answered as ``null`` (or
``[]`` for collections); a name the resource does not have is a 400, and the user properties
Graph can't return on collections (``skills``, ``aboutMe``...) are a 501, as in the real API.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from importer.sandbox.base import SandboxRequest, SandboxResponse
from importer.sandbox.data import DEVICE_FIELDS, USER_FIELDS

__all__ = [
    "DEVICES",
    "GRAPH_JSON",
    "USERS",
    "USER_DEFAULT",
    "Catalog",
    "GraphError",
    "IdFilter",
    "Projection",
    "dollar_params",
    "graph_error_body",
    "graph_response",
    "parse_filter",
    "parse_top",
    "request_ids",
]

GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
_DIAGNOSTIC = (
    '{"ServerInfo":{"DataCenter":"Sandbox","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SBX0"}}'
)


class GraphError(Exception):
    """A Graph error response: status, ``error.code`` and ``error.message``."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def request_ids(request: SandboxRequest) -> tuple[str, str]:
    """(request-id, client-request-id): the client's id is echoed when it sent one."""
    rid = str(uuid.uuid4())
    return rid, request.headers.get("client-request-id") or rid


def graph_error_body(code: str, message: str, rid: str, crid: str) -> dict[str, Any]:
    """The real Graph error shape (``innerError`` with date and both request ids)."""
    date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": date, "request-id": rid, "client-request-id": crid},
        }
    }


def graph_response(
    status: int, body: Any, *, route: str, rid: str, crid: str, headers: Mapping[str, str] | None = None
) -> SandboxResponse:
    """A Graph response with the headers every Graph response carries."""
    out = {
        "request-id": rid,
        "client-request-id": crid,
        "x-ms-ags-diagnostic": _DIAGNOSTIC,
        "Strict-Transport-Security": "max-age=31536000",
        "Cache-Control": "no-cache",
    }
    if status < 400:
        out["OData-Version"] = "4.0"
    out.update(headers or {})
    content_type = GRAPH_JSON if status < 400 else "application/json"
    return SandboxResponse(status=status, body=body, route=route, headers=out, content_type=content_type)


@dataclass(frozen=True, slots=True)
class Projection:
    """Which properties to answer, in order: (name, stored index or -1, constant for -1)."""

    names: tuple[str, ...]
    columns: tuple[tuple[str, int, Any], ...]
    requested: tuple[str, ...]  # the $select names (canonical spelling); empty without $select

    @property
    def selected(self) -> bool:
        """True when the projection came from ``$select``."""
        return bool(self.requested)

    def full(self, record: Sequence[Any]) -> dict[str, Any]:
        """Every projected property, nulls included (what list and get responses carry)."""
        return {name: (record[i] if i >= 0 else const) for name, i, const in self.columns}

    def non_null(self, record: Sequence[Any], only: frozenset[str] | None = None) -> dict[str, Any]:
        """Projected properties without nulls (what delta responses carry); ``only`` narrows further."""
        out: dict[str, Any] = {}
        for name, i, const in self.columns:
            if only is not None and name not in only and name != "id":
                continue
            value = record[i] if i >= 0 else const
            if value is not None:
                out[name] = value
        return out


@dataclass(slots=True)
class Catalog:
    """The properties of one Graph resource type."""

    type_name: str  # for error messages, e.g. Microsoft.DirectoryServices.User
    stored: tuple[str, ...]
    extra: Mapping[str, Any]  # real properties the sandbox does not store -> constant value
    default: tuple[str, ...]  # answered without $select
    not_implemented: frozenset[str] = frozenset()
    _lookup: dict[str, str] = field(default_factory=dict)
    _cache: dict[str | None, Projection] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (*self.stored, *self.extra, *self.not_implemented):
            self._lookup[name.lower()] = name

    def projection(self, select: str | None) -> Projection:
        """The projection for a raw ``$select`` value (None: the default property set)."""
        cached = self._cache.get(select)
        if cached is not None:
            return cached
        wanted: list[str] = []
        if select is None:
            names = self.default
        else:
            for part in select.split(","):
                raw = part.strip()
                if not raw:
                    continue
                name = self._lookup.get(raw.lower())
                if name is None:
                    raise GraphError(
                        400,
                        "Request_BadRequest",
                        f"Could not find a property named '{raw}' on type '{self.type_name}'.",
                    )
                if name in self.not_implemented:
                    raise GraphError(501, "NotImplemented", "This operation target is not yet supported.")
                if name not in wanted:
                    wanted.append(name)
            names = tuple(wanted) if "id" in wanted else (*wanted, "id")
        index = {name: i for i, name in enumerate(self.stored)}
        columns = tuple((n, index.get(n, -1), self.extra.get(n)) for n in names)
        projection = Projection(names=names, columns=columns, requested=tuple(wanted))
        if len(self._cache) < 256:
            self._cache[select] = projection
        return projection


_USER_NULLS = (
    "ageGroup", "city", "consentProvidedForMinor", "country", "creationType", "deletedDateTime",
    "employeeHireDate", "employeeLeaveDateTime", "employeeOrgData", "externalUserState",
    "externalUserStateChangeDateTime", "faxNumber", "isResourceAccount", "lastPasswordChangeDateTime",
    "legalAgeGroupClassification", "mailNickname", "onPremisesDistinguishedName", "onPremisesDomainName",
    "onPremisesExtensionAttributes", "onPremisesImmutableId", "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesUserPrincipalName",
    "passwordPolicies", "passwordProfile", "postalCode", "preferredDataLocation", "securityIdentifier",
    "showInAddressList", "signInActivity", "signInSessionsValidFromDateTime", "state", "streetAddress",
)  # fmt: skip
_USER_LISTS = (
    "assignedLicenses", "assignedPlans", "identities", "imAddresses", "licenseAssignmentStates", "otherMails",
    "provisionedPlans", "proxyAddresses", "onPremisesProvisioningErrors",
)  # fmt: skip
_USER_NOT_IMPLEMENTED = (
    "aboutMe", "birthday", "hireDate", "interests", "mySite", "pastProjects", "preferredName",
    "responsibilities", "schools", "skills", "mailboxSettings",
)  # fmt: skip
_DEVICE_NULLS = (
    "complianceExpirationDateTime", "deletedDateTime", "deviceCategory", "deviceMetadata", "domainName",
    "enrollmentType", "externalSourceName", "isRooted", "managementType", "onPremisesLastSyncDateTime",
    "onPremisesSecurityIdentifier", "sourceType",
)  # fmt: skip
_USER_EXTRA: dict[str, Any] = {**dict.fromkeys(_USER_NULLS), **{name: [] for name in _USER_LISTS}}
_DEVICE_EXTRA: dict[str, Any] = {
    **dict.fromkeys(_DEVICE_NULLS),
    "alternativeSecurityIds": [],
    "physicalIds": [],
    "systemLabels": [],
    "extensionAttributes": {f"extensionAttribute{i}": None for i in range(1, 16)},
}
USER_DEFAULT = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
    "preferredLanguage", "surname", "userPrincipalName", "id",
)  # fmt: skip

USERS = Catalog(
    type_name="Microsoft.DirectoryServices.User",
    stored=USER_FIELDS,
    extra=_USER_EXTRA,
    default=USER_DEFAULT,
    not_implemented=frozenset(_USER_NOT_IMPLEMENTED),
)
DEVICES = Catalog(
    type_name="Microsoft.DirectoryServices.Device",
    stored=DEVICE_FIELDS,
    extra=_DEVICE_EXTRA,
    default=("id", *[f for f in DEVICE_FIELDS if f != "id"], *_DEVICE_EXTRA),
)


def dollar_params(request: SandboxRequest) -> dict[str, str]:
    """The ``$``-prefixed query options (first value of each; names lower-cased)."""
    return {k.lower(): v[0] for k, v in request.query.items() if k.startswith("$") and v}


@dataclass(frozen=True, slots=True)
class IdFilter:
    """``$filter`` reduced to what the sandbox supports: ids, accountEnabled, or property equality.

    ``equals`` holds ``(property, value)`` clauses joined by ``or`` (``userPrincipalName eq 'x'``,
    ``mail eq 'x'`` on users lists), compared case-insensitively as Graph does.
    """

    ids: tuple[str, ...] | None = None
    enabled: bool | None = None
    equals: tuple[tuple[str, str], ...] = ()


_ENABLED = re.compile(r"^\s*accountEnabled\s+eq\s+(true|false)\s*$", re.IGNORECASE)
_ID_EQ = re.compile(r"^\s*id\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_PROPERTY_EQ = re.compile(r"^\s*([A-Za-z]+)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_PROPERTY = re.compile(r"^\s*\(?\s*(?:not\s+)?(?:[a-z]+\()?\s*([A-Za-z_/]+)")


def parse_filter(
    raw: str | None,
    *,
    resource: str,
    allow_enabled: bool,
    max_ids: int = 0,
    properties: tuple[str, ...] = (),
) -> IdFilter | None:
    """Parse the supported ``$filter`` forms; anything else is 400 ``Request_UnsupportedQuery``.

    ``properties`` names the properties that may be compared with ``eq`` besides ``id``.
    """
    if raw is None:
        return None
    if allow_enabled and (match := _ENABLED.match(raw)):
        return IdFilter(enabled=match.group(1).lower() == "true")
    ids: list[str] = []
    equals: list[tuple[str, str]] = []
    by_name = {p.lower(): p for p in properties}
    for clause in re.split(r"\s+or\s+", raw, flags=re.IGNORECASE):
        match = _ID_EQ.match(clause)
        other = _PROPERTY_EQ.match(clause) if match is None else None
        if other is not None and other.group(1).lower() in by_name:
            equals.append((by_name[other.group(1).lower()], other.group(2).replace("''", "'")))
            continue
        if match is None:
            prop = _PROPERTY.match(raw)
            name = prop.group(1) if prop else raw
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause specified for property "
                f"'{name}' of resource '{resource}'.",
            )
        ids.append(match.group(1).lower())
    if max_ids and len(ids) > max_ids:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            f"The number of ids in the filter exceeds the maximum of {max_ids}.",
        )
    if equals:
        return IdFilter(ids=tuple(dict.fromkeys(ids)) if ids else None, equals=tuple(equals))
    return IdFilter(ids=tuple(dict.fromkeys(ids)))


def parse_top(raw: str | None, *, default: int, maximum: int) -> int:
    """``$top`` as a page size; outside 1..maximum is the real 400."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{raw}'. Must be between 1 and {maximum} inclusive.",
        )
    return value
