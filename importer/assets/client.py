"""REST access to Assets (Cloud and Data Center): URLs, auth headers, paging, JSON shapes.

Cloud: ``{api_url}/jsm/assets/workspace/{workspace_id}/v1`` with Basic auth (Atlassian account
email + API token); the workspace id comes from ``{site_url}/rest/servicedeskapi/assets/workspace``
(``discover_workspace``) when it is not configured, and the caller records it in state.
Data Center: ``{site_url}/rest/assets/1.0`` with Basic auth or a personal access token (Bearer);
ids are integers on the wire there (``"objectTypeId": 1``), strings on Cloud. Every call sends
``Accept`` and ``Content-Type: application/json`` (Assets Cloud is particular about both).

Searching: Cloud ``POST /object/aql?startAt=&maxResults=&includeAttributes=`` with
``{"qlQuery": ...}`` (idempotent, so retried like a GET); Data Center
``GET /aql/objects?qlQuery=&page=&resultPerPage=`` (``objectEntries``, ``pageNumber``,
``pageSize`` = number of pages, ``totalFilterCount``). Both are generators (``iter_aql_pages``)
and raise ``PagingLoopError`` when the server serves the same page twice. They stop on an empty
page or on the last page by the server's word (Cloud: ``isLast``, or a page shorter than the
``maxResults`` the server echoes; Data Center: ``pageNumber`` reaching ``pageSize``, or
``totalFilterCount`` objects seen). A page shorter than what we asked for is no proof of the end
by itself (assets-api.md §5): a server may cap the page size without saying so, so without
those fields the search goes on to an empty page.

Rate limits (assets-api.md §9): the spec gives 1000 requests/min per API key for
``POST /object/aql`` and 2000/min for ``POST /object/create``, ``GET /object/{id}`` and
``GET /objecttype/{id}/attributes``; the instance as a whole is limited too (1000/min per
endpoint, 10,000/min in total, shared with every other integration). The caller gives the
``Http`` one shared ``RateLimiter`` for the whole instance, set by ``http.requests_per_minute``
(``HttpConfig``; 900 unless configured), which keeps us under the tightest limit we use (AQL,
1000/min); ``Http`` honours ``Retry-After`` (or ``X-RateLimit-Reset``) on 429 and 503 and
retries nothing itself beyond that policy.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from importer.assets.models import (
    AssetsAttribute,
    AssetsIcon,
    AssetsObjectType,
    AssetsReferenceType,
    AssetsSchema,
    AssetsStatus,
    as_id,
    parse_attribute,
    parse_icon,
    parse_object_type,
    parse_reference_type,
    parse_schema,
    parse_status,
)
from importer.errors import ConfigError, PagingLoopError
from importer.http import Http

__all__ = [
    "AqlPage",
    "AssetsAuth",
    "AssetsClient",
    "BasicAuth",
    "BearerAuth",
    "Flavor",
    "Revealable",
    "SecretValue",
    "discover_workspace",
    "request_headers",
]

Flavor = Literal["cloud", "datacenter"]
_JSON_HEADERS: Mapping[str, str] = {"Accept": "application/json", "Content-Type": "application/json"}
_log = structlog.get_logger("importer.assets.client")


class Revealable(Protocol):
    """A secret wrapper (the vault's ``Secret``): ``repr`` hides it, ``reveal`` gives it."""

    def reveal(self) -> str:
        """The secret's plain text."""


SecretValue = str | Revealable


def _reveal(value: SecretValue) -> str:
    return value if isinstance(value, str) else value.reveal()


class AssetsAuth(Protocol):
    """Gives the ``Authorization`` header for each request."""

    def headers(self) -> Mapping[str, str]:
        """Headers to add to a request."""


class BasicAuth:
    """HTTP Basic with an Atlassian account email and an API token (or a DC user and password)."""

    __slots__ = ("_email", "_token")

    def __init__(self, email: SecretValue, token: SecretValue) -> None:
        self._email = email
        self._token = token

    def headers(self) -> Mapping[str, str]:
        """``Authorization: Basic base64(email:token)``, built per request (the secret is not cached)."""
        raw = f"{_reveal(self._email)}:{_reveal(self._token)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def __repr__(self) -> str:
        return "BasicAuth(***)"


class BearerAuth:
    """A Data Center personal access token."""

    __slots__ = ("_token",)

    def __init__(self, token: SecretValue) -> None:
        self._token = token

    def headers(self) -> Mapping[str, str]:
        """``Authorization: Bearer <token>``."""
        return {"Authorization": f"Bearer {_reveal(self._token)}"}

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def request_headers(auth: AssetsAuth | None) -> dict[str, str]:
    """The JSON headers plus the auth header, for one request."""
    merged = dict(_JSON_HEADERS)
    if auth is not None:
        merged.update(auth.headers())
    return merged


def discover_workspace(http: Http, site_url: str, *, auth: AssetsAuth | None = None) -> str:
    """The site's Assets workspace id (``GET {site}/rest/servicedeskapi/assets/workspace``).

    Raises:
        ConfigError: the site has no Assets workspace (JSM Premium/Enterprise is needed) or the
            account cannot see it.
    """
    url = site_url.rstrip("/") + "/rest/servicedeskapi/assets/workspace"
    body = http.get_json(url, headers=request_headers(auth), route="/rest/servicedeskapi/assets/workspace")
    values = _list(body, "values")
    for item in values:
        workspace = as_id(item.get("workspaceId"))
        if workspace:
            _log.info("workspace_discovered", workspaces=len(values))
            return workspace
    raise ConfigError(
        "assets.workspace_id: the site lists no Assets workspace; Assets needs Jira Service Management "
        "Premium or Enterprise and an account with access to it (or set assets.workspace_id)"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AqlPage:
    """One page of an AQL search: raw object documents and the attribute definitions sent with them."""

    objects: Sequence[Mapping[str, Any]]
    attributes: Sequence[Mapping[str, Any]] = ()


def _truthy(value: object) -> bool:
    """``isLast`` arrives as a boolean or as the string ``"true"``/``"false"``."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _int(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _ends_short(body: Mapping[str, Any], count: int) -> bool:
    """A page shorter than the ``maxResults`` the server echoes (its own cap) is the last; without
    an echo a short page proves nothing, since the server may cap what we asked for silently."""
    echoed = _int(body.get("maxResults"), 0)
    return echoed > 0 and count < echoed


def _list(body: Any, *keys: str) -> list[Mapping[str, Any]]:
    """A bare list, or the list under one of ``keys`` (clients must accept both, assets-api.md §3)."""
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                body = body[key]
                break
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


class AssetsClient:
    """Typed calls to the Assets REST API; all HTTP goes through the shared ``Http``."""

    def __init__(
        self, http: Http, base_url: str, *, flavor: Flavor = "cloud", auth: AssetsAuth | None = None
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.flavor: Flavor = flavor
        self._auth = auth

    @classmethod
    def cloud(
        cls,
        http: Http,
        *,
        workspace_id: str,
        api_url: str = "https://api.atlassian.com",
        auth: AssetsAuth | None = None,
    ) -> AssetsClient:
        """A Cloud client for one workspace."""
        return cls(
            http, f"{api_url.rstrip('/')}/jsm/assets/workspace/{workspace_id}/v1", flavor="cloud", auth=auth
        )

    @classmethod
    def datacenter(cls, http: Http, *, site_url: str, auth: AssetsAuth | None = None) -> AssetsClient:
        """A Data Center client (``/rest/assets/1.0``)."""
        return cls(http, f"{site_url.rstrip('/')}/rest/assets/1.0", flavor="datacenter", auth=auth)

    def __repr__(self) -> str:
        return f"AssetsClient({self.flavor}, {self.base_url})"

    # -- plumbing ------------------------------------------------------------------------------

    def wire_id(self, value: str) -> str | int:
        """An id as this flavour expects it in a request body (integers on Data Center)."""
        if self.flavor == "datacenter" and value.isascii() and value.isdigit():
            return int(value)
        return value

    def get(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        """GET ``path`` (relative to the base URL) and return the JSON body."""
        return self.http.get_json(self.base_url + path, params=params, headers=request_headers(self._auth))

    def post(
        self,
        path: str,
        body: Any,
        *,
        params: Mapping[str, str] | None = None,
        idempotent: bool = False,
        landed: Callable[[], Any] | None = None,
    ) -> Any:
        """POST a JSON body and return the JSON answer (``landed``: see ``Http.request``)."""
        return self.http.request(
            "POST",
            self.base_url + path,
            json_body=body,
            params=params,
            headers=request_headers(self._auth),
            idempotent=idempotent,
            landed=landed,
        ).body

    def put(self, path: str, body: Any) -> Any:
        """PUT a JSON body and return the JSON answer."""
        return self.http.request(
            "PUT", self.base_url + path, json_body=body, headers=request_headers(self._auth)
        ).body

    def delete(self, path: str) -> bool:
        """DELETE ``path``; False when it was already gone (404)."""
        response = self.http.request(
            "DELETE",
            self.base_url + path,
            headers=request_headers(self._auth),
            expect_json=False,
            accept_statuses=frozenset({404}),
        )
        return response.status != 404

    # -- schema reads --------------------------------------------------------------------------

    def list_schemas(self) -> list[AssetsSchema]:
        """Every object schema (``GET /objectschema/list``, all pages)."""
        schemas: list[AssetsSchema] = []
        start = 0
        while True:
            body = self.get("/objectschema/list", params={"startAt": str(start), "maxResults": "100"})
            page = _list(body, "values", "objectschemas")
            schemas.extend(parse_schema(raw) for raw in page)
            # Data Center answers {"objectschemas": [...]} in one go; Cloud pages like AQL does.
            if not page or not isinstance(body, dict) or "values" not in body:
                return schemas
            if _truthy(body.get("isLast", body.get("last", False))) or _ends_short(body, len(page)):
                return schemas
            start += len(page)

    def list_object_types(self, schema_id: str) -> list[AssetsObjectType]:
        """The schema's object types (``GET /objectschema/{id}/objecttypes/flat``)."""
        return [
            parse_object_type(raw)
            for raw in _list(self.get(f"/objectschema/{schema_id}/objecttypes/flat"), "values")
        ]

    def list_schema_attributes(self, schema_id: str) -> list[AssetsAttribute]:
        """Every attribute of every type in the schema, each with its object type (``extended=true``)."""
        body = self.get(f"/objectschema/{schema_id}/attributes", params={"extended": "true"})
        return [parse_attribute(raw) for raw in _list(body, "values")]

    def list_type_attributes(self, type_id: str) -> list[AssetsAttribute]:
        """One type's attributes (``GET /objecttype/{id}/attributes``)."""
        body = self.get(f"/objecttype/{type_id}/attributes")
        return [parse_attribute(raw, object_type_id=type_id) for raw in _list(body, "values")]

    def list_statuses(self, schema_id: str) -> list[AssetsStatus]:
        """Global statuses and the schema's own (``GET /config/statustype?objectSchemaId=``)."""
        body = self.get("/config/statustype", params={"objectSchemaId": schema_id})
        return [parse_status(raw) for raw in _list(body, "values")]

    def list_reference_types(self, schema_id: str) -> list[AssetsReferenceType]:
        """Reference types usable in the schema (``GET /config/referencetype``)."""
        body = self.get("/config/referencetype", params={"objectSchemaId": schema_id, "includeAll": "true"})
        return [parse_reference_type(raw) for raw in _list(body, "values")]

    def list_global_icons(self) -> list[AssetsIcon]:
        """Icons usable for object types (``GET /icon/global``)."""
        # The spec's example is an object of named examples ({"Icons": [...]}); the schema says array.
        return [parse_icon(raw) for raw in _list(self.get("/icon/global"), "values", "Icons", "icons")]

    # -- schema writes -------------------------------------------------------------------------

    def create_object_type(
        self, *, schema_id: str, name: str, description: str, icon_id: str
    ) -> AssetsObjectType:
        """``POST /objecttype/create``."""
        body = {
            "name": name,
            "description": description,
            "iconId": self.wire_id(icon_id),
            "objectSchemaId": self.wire_id(schema_id),
            "inherited": False,
            "abstractObjectType": False,
        }
        return parse_object_type(self.post("/objecttype/create", body))

    def create_attribute(self, type_id: str, body: Mapping[str, Any]) -> AssetsAttribute:
        """``POST /objecttypeattribute/{objectTypeId}`` with an ``ObjectTypeAttributeCreate`` body."""
        return parse_attribute(
            self.post(f"/objecttypeattribute/{type_id}", dict(body)), object_type_id=type_id
        )

    def update_attribute(self, type_id: str, attribute_id: str, body: Mapping[str, Any]) -> AssetsAttribute:
        """``PUT /objecttypeattribute/{objectTypeId}/{id}`` (used only on types apply just created)."""
        answer = self.put(f"/objecttypeattribute/{type_id}/{attribute_id}", dict(body))
        return parse_attribute(answer if isinstance(answer, dict) else {}, object_type_id=type_id)

    def create_status(self, *, schema_id: str, name: str, category: int) -> AssetsStatus:
        """``POST /config/statustype`` (a status of this schema)."""
        body = {"name": name, "category": category, "objectSchemaId": self.wire_id(schema_id)}
        return parse_status(self.post("/config/statustype", body))

    # -- objects -------------------------------------------------------------------------------

    def iter_aql_pages(
        self, ql: str, *, page_size: int = 500, include_attributes: bool = True
    ) -> Iterator[AqlPage]:
        """Every page of an AQL search, in order (see the module docstring for when it stops)."""
        if self.flavor == "datacenter":
            yield from self._iter_dc_pages(ql, page_size=page_size, include_attributes=include_attributes)
            return
        start = 0
        previous_first: str | None = None
        flag = "true" if include_attributes else "false"
        while True:
            params = {"startAt": str(start), "maxResults": str(page_size), "includeAttributes": flag}
            body = self.post("/object/aql", {"qlQuery": ql}, params=params, idempotent=True)
            body = body if isinstance(body, dict) else {}
            objects = _list(body.get("values"))
            yield AqlPage(objects=objects, attributes=_list(body.get("objectTypeAttributes")))
            if not objects or _truthy(body.get("isLast", body.get("last", False))):
                return
            if _ends_short(body, len(objects)):
                return
            first = as_id(objects[0].get("id"))
            if first is not None and first == previous_first:
                raise PagingLoopError("POST /object/aql")
            previous_first = first
            start += len(objects)

    def _iter_dc_pages(self, ql: str, *, page_size: int, include_attributes: bool) -> Iterator[AqlPage]:
        page = 1
        seen = 0
        previous_first: str | None = None
        while True:
            params = {
                "qlQuery": ql,
                "page": str(page),
                "resultPerPage": str(page_size),
                "includeAttributes": "true" if include_attributes else "false",
            }
            body = self.get("/aql/objects", params=params)
            body = body if isinstance(body, dict) else {}
            objects = _list(body.get("objectEntries"))
            yield AqlPage(objects=objects, attributes=_list(body.get("objectTypeAttributes")))
            seen += len(objects)
            number = _int(body.get("pageNumber"), page)
            pages = _int(body.get("pageSize"), -1)  # Insight's pageSize is the number of pages
            total = _int(body.get("totalFilterCount"), -1)
            if not objects or (pages >= 0 and number >= pages) or (total >= 0 and seen >= total):
                return
            first = as_id(objects[0].get("id"))
            if number < page or (first is not None and first == previous_first):
                raise PagingLoopError("GET /aql/objects")
            previous_first = first
            page = number + 1

    def get_object(self, object_id: str) -> Mapping[str, Any] | None:
        """``GET /object/{id}``; None when it does not exist."""
        response = self.http.request(
            "GET",
            f"{self.base_url}/object/{object_id}",
            headers=request_headers(self._auth),
            accept_statuses=frozenset({404}),
        )
        return response.body if response.status != 404 and isinstance(response.body, dict) else None

    def create_object(
        self,
        type_id: str,
        attributes: Sequence[Mapping[str, Any]],
        *,
        landed: Callable[[], Mapping[str, Any] | None] | None = None,
    ) -> Mapping[str, Any]:
        """``POST /object/create``. Not idempotent: once an attempt may have reached the server it is
        retried only when ``landed`` (a lookup by key) finds nothing; what it finds is returned."""
        body = {"objectTypeId": self.wire_id(type_id), "attributes": self._wire_attributes(attributes)}
        answer = self.post("/object/create", body, landed=landed)
        return answer if isinstance(answer, dict) else {}

    def update_object(
        self, object_id: str, type_id: str, attributes: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """``PUT /object/{id}`` with only the given attributes (``objectTypeId`` as the spec requires)."""
        body = {"objectTypeId": self.wire_id(type_id), "attributes": self._wire_attributes(attributes)}
        answer = self.put(f"/object/{object_id}", body)
        return answer if isinstance(answer, dict) else {}

    def delete_object(self, object_id: str) -> bool:
        """``DELETE /object/{id}``; False when it was already gone."""
        return self.delete(f"/object/{object_id}")

    def _wire_attributes(self, attributes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in attributes:
            entry = dict(item)
            entry["objectTypeAttributeId"] = self.wire_id(str(entry["objectTypeAttributeId"]))
            out.append(entry)
        return out
