"""The simulated Jira Service Management Assets Cloud workspace, and Jira's user search.

Answers, with HTTP Basic auth (email + API token) on every route:

- on the site host: ``GET /rest/servicedeskapi/assets/workspace`` (and its deprecated twin
  ``.../insight/workspace``) and ``GET /rest/api/3/user/search``;
- under ``/jsm/assets/workspace/{workspaceId}/v1``: schemas, object types, attributes, statuses,
  reference types, icons, object CRUD and AQL search (see ``assets_routes``);
- test-only control routes under ``/_sandbox/assets/`` (see ``assets_control``; no auth).

Request flow: auth (401, no body) -> workspace id (404) -> rate limit, shared by every Assets
route (429 + ``Retry-After``) -> ``Content-Type: application/json`` on bodies (415) -> the
route, under the store lock. The server counts requests under the returned route template and
applies fault injection itself. At start the workspace holds the managed schema ("Entra ID",
key ``schema_key``, empty) and an unrelated "ITSM" schema with a few objects.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
from typing import Any

from importer.sandbox.assets_control import PREFIX as CONTROL_PREFIX
from importer.sandbox.assets_control import dump_objects, handle_control, snapshot_stats
from importer.sandbox.assets_model import ApiFailure, IconRec, RefTypeRec, StatusRec
from importer.sandbox.assets_objects import create_object, inputs_by_name
from importer.sandbox.assets_ratelimit import RATE_LIMITED_BODY, SlidingWindowLimiter
from importer.sandbox.assets_render import Renderer
from importer.sandbox.assets_routes import find_route
from importer.sandbox.assets_schema import TypeIn, parse_attribute_in
from importer.sandbox.assets_store import AssetsStore
from importer.sandbox.base import SandboxRequest, SandboxResponse, json_error
from importer.sandbox.jira_users import JiraUserDirectory

__all__ = ["AssetsService"]

ASSETS_PREFIX = "/jsm/assets/workspace/"
_WORKSPACE_PATHS = ("/rest/servicedeskapi/assets/workspace", "/rest/servicedeskapi/insight/workspace")
_USER_SEARCH = "/rest/api/3/user/search"
_USERS_ALL = "/rest/api/3/users/search"  # "Get all users": paged, every account
_GLOBAL_STATUSES = [
    ("Action Needed", 2),
    ("Active", 1),
    ("Closed", 0),
    ("In Service", 2),
    ("Running", 1),
    ("Stopped", 0),
    ("Support Requested", 2),
]
_REFERENCE_TYPES = [
    (1, "Dependency", "Depends on", "f2b33d"),
    (2, "Link", "Linked to", "707070"),
    (3, "Installed", "Installed on", "61a6d2"),
    (4, "Reference", "Reference", "49a6ed"),
    (5, "Location", "Located at", "6b778c"),
    (6, "Ownership", "Owned by", "ff8b00"),
]
_ICONS = [
    "Server", "Laptop", "Desktop", "Phone", "Tablet", "Printer", "Router", "Network", "Cloud",
    "Database", "Application", "License", "Folder", "Building", "User", "Users", "Key", "Shield",
    "Service", "Cottage",
]  # fmt: skip
_ITSM_OFFICES = ["Sydney", "New York", "London", "Berlin", "Tokyo", "Nairobi", "São Paulo", "Montréal"]


class AssetsService:
    """The Assets workspace + Jira user search; plain object for the sandbox server (thread-safe)."""

    name = "assets"

    def __init__(
        self, *, workspace_id: str, email: str, api_token: str, schema_key: str = "ENTRA", seed: int = 0
    ) -> None:
        self.workspace_id = workspace_id
        self._email = email
        self._api_token = api_token
        self.users = JiraUserDirectory(seed=seed)
        self.store = AssetsStore(workspace_id=workspace_id, users=self.users)
        self.limiter = SlidingWindowLimiter()
        self._managed_schema_id = self._seed_workspace(schema_key, seed)

    # ---- helpers for the rest of the sandbox and for tests ---------------------------------

    @property
    def schema_id(self) -> str:
        """The managed schema's id (as the API spells ids: a string)."""
        return str(self._managed_schema_id)

    def add_jira_user(
        self, email: str, display_name: str, *, active: bool = True, email_visible: bool = True
    ) -> str:
        """Add an Atlassian account; returns its deterministic accountId (``557058:<uuid>``)."""
        return self.users.add(email, display_name, active=active, email_visible=email_visible)

    def snapshot_stats(self) -> dict[str, Any]:
        """``{"objects": {type: n}, "duplicate_keys": {type: n}, "other_schemas": {...}}``."""
        with self.store.lock:
            return snapshot_stats(self.store, managed_schema_id=self._managed_schema_id)

    def dump_objects(self, type_name: str, *, schema_key: str | None = None) -> list[dict[str, Any]]:
        """The objects of a type of the managed schema (or ``schema_key``), values by attribute name."""
        with self.store.lock:
            return dump_objects(
                self.store, type_name, managed_schema_id=self._managed_schema_id, schema_key=schema_key
            )

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Allow ``per_minute`` Assets requests per sliding 60 s window (None: unlimited)."""
        self.limiter.set(per_minute)

    def reset_rate_window(self) -> None:
        """Forget past requests, so the budget is whole again."""
        self.limiter.reset()

    def configure(self, *, enforce_unique: bool | None = None, is_last_as_string: bool | None = None) -> None:
        """Flip the test switches: unique enforcement, and ``isLast`` as ``"true"``/``"false"``."""
        with self.store.lock:
            if enforce_unique is not None:
                self.store.enforce_unique = enforce_unique
            if is_last_as_string is not None:
                self.store.is_last_as_string = is_last_as_string

    # ---- the Service protocol ---------------------------------------------------------------

    def handle(self, req: SandboxRequest) -> SandboxResponse | None:
        """Answer a request on one of our paths, or return None."""
        path = req.path
        if path.startswith(CONTROL_PREFIX):
            return handle_control(self.store, self.limiter, req, managed_schema_id=self._managed_schema_id)
        if path in _WORKSPACE_PATHS or path in (_USER_SEARCH, _USERS_ALL):
            return self._site(req, path)
        if not path.startswith(ASSETS_PREFIX):
            return None
        workspace, _, rest = path[len(ASSETS_PREFIX) :].partition("/")
        sub = rest[len("v1") :] if rest == "v1" or rest.startswith("v1/") else None
        method = req.method.upper()
        route, ids, template = find_route(method, sub) if sub is not None else (None, (), None)
        route_name = ASSETS_PREFIX + "{id}/v1" + (template or "/{unknown}")
        if not self._authenticated(req):
            return _unauthorized(route_name)
        if workspace != self.workspace_id:
            return json_error(404, ApiFailure(404, "Workspace not found").body(), route=route_name)
        wait_s = self.limiter.check()
        if wait_s is not None:
            return json_error(429, RATE_LIMITED_BODY, route=route_name, headers=self.limiter.headers(wait_s))
        if template is None:
            return json_error(404, ApiFailure(404, f"No such resource: {path}").body(), route=route_name)
        if route is None:
            return json_error(
                405, ApiFailure(405, f"Method {method} is not allowed").body(), route=route_name
            )
        if method in ("POST", "PUT") and not _is_json(req):
            body = ApiFailure(415, "Content-Type must be application/json").body()
            return json_error(415, body, route=route_name)
        renderer = Renderer(self.store, req.base_url)
        try:
            with self.store.lock:
                status, body = route[3](self.store, req, ids, renderer)
        except ApiFailure as failure:
            return json_error(failure.status, failure.body(), route=route_name)
        return SandboxResponse(status=status, body=body, route=route_name)

    def _authenticated(self, req: SandboxRequest) -> bool:
        scheme, _, encoded = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, token = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            bool(sep)
            and user.casefold() == self._email.casefold()
            and hmac.compare_digest(token.encode(), self._api_token.encode())
        )

    def _site(self, req: SandboxRequest, path: str) -> SandboxResponse:
        route_name = path
        if not self._authenticated(req):
            return _unauthorized(route_name)
        if req.method.upper() != "GET":
            return json_error(405, ApiFailure(405, "Method not allowed").body(), route=route_name)
        site = req.base_url or "https://your-domain.atlassian.net"
        if path not in (_USER_SEARCH, _USERS_ALL):
            body = {
                "size": 1,
                "start": 0,
                "limit": 50,
                "isLastPage": True,
                "values": [{"workspaceId": self.workspace_id}],
                "_links": {"base": f"{site}/rest/servicedeskapi", "context": "", "self": f"{site}{path}"},
            }
            return SandboxResponse(status=200, body=body, route=route_name)
        query, account_id = req.arg("query"), req.arg("accountId")
        try:
            start = int(req.arg("startAt") or 0)
            limit = min(int(req.arg("maxResults") or 50), 1000)
        except ValueError:
            return json_error(
                400, ApiFailure(400, "startAt and maxResults must be integers").body(), route=route_name
            )
        if path == _USERS_ALL:
            everyone = self.users.all()[max(start, 0) : max(start, 0) + limit]
            return SandboxResponse(
                status=200, body=[self.users.render(u, site) for u in everyone], route=route_name
            )
        if not query and not account_id:
            message = "One of 'accountId', 'query' or 'property' query parameters must be provided."
            return json_error(400, ApiFailure(400, message).body(), route=route_name)
        if query:
            users = self.users.search(query)
        else:
            found = self.users.get(account_id or "")
            users = [found] if found else []
        body_list = [self.users.render(user, site) for user in users[max(start, 0) : max(start, 0) + limit]]
        return SandboxResponse(status=200, body=body_list, route=route_name)

    # ---- initial workspace ------------------------------------------------------------------

    def _seed_workspace(self, schema_key: str, seed: int) -> int:
        """Icons, reference types, global statuses, the ITSM schema with a few objects, our schema."""
        store = self.store
        with store.lock:
            for index, name in enumerate(_ICONS, start=1):
                store.icons[str(index)] = IconRec(id=str(index), name=name)
            for ref_id, name, description, color in _REFERENCE_TYPES:
                store.ref_types[ref_id] = RefTypeRec(
                    id=ref_id, name=name, description=description, color=color
                )
            for status_id, (name, category) in enumerate(_GLOBAL_STATUSES, start=1):
                store.statuses[status_id] = StatusRec(id=status_id, name=name, category=category)
            itsm = store.add_schema(name="ITSM", key="ITSM", description="IT service management")
            managed = store.add_schema(
                name="Entra ID", key=schema_key, description="Users and devices from Microsoft Entra ID"
            )
            office = store.add_type(
                TypeIn(
                    name="Office",
                    description="",
                    icon_id="14",
                    schema_id=itsm.id,
                    parent_id=None,
                    inherited=False,
                    abstract=False,
                )
            )
            store.add_attribute(
                office.id, parse_attribute_in({"name": "City", "type": 0, "defaultTypeId": 0}, partial=False)
            )
            service = store.add_type(
                TypeIn(
                    name="Business Service",
                    description="Services the business runs on",
                    icon_id="19",
                    schema_id=itsm.id,
                    parent_id=None,
                    inherited=False,
                    abstract=False,
                )
            )
            store.add_attribute(
                service.id,
                parse_attribute_in(
                    {"name": "Office", "type": 1, "typeValue": office.id, "additionalValue": 5}, partial=False
                ),
            )
            rng = random.Random(seed)
            cities = rng.sample(_ITSM_OFFICES, 3)
            offices = [
                create_object(
                    store, office.id, inputs_by_name(store, office.id, {"Name": f"{c} HQ", "City": c})
                )
                for c in cities
            ]
            for name in ("Payroll", "Email"):
                site = rng.choice(offices)
                values = {"Name": name, "Office": str(site.id)}
                create_object(store, service.id, inputs_by_name(store, service.id, values))
        return managed.id


def _unauthorized(route: str) -> SandboxResponse:
    return SandboxResponse(
        status=401, body=None, route=route, headers={"WWW-Authenticate": 'Basic realm="atlassian"'}
    )


def _is_json(req: SandboxRequest) -> bool:
    return req.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
