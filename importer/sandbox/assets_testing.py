"""Call an ``AssetsService`` in-process as an HTTP client would: for unit tests (no server).

``AssetsCaller`` builds ``SandboxRequest`` objects with Basic auth and JSON bodies; a path that
starts with ``/`` but not with ``/rest/``, ``/jsm/`` or ``/_sandbox/`` is taken as relative to the
workspace's ``/v1`` base. ``make_type`` bootstraps an object type with attributes through the API.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from importer.sandbox.assets import AssetsService
from importer.sandbox.base import SandboxRequest, SandboxResponse

__all__ = [
    "TEST_EMAIL",
    "TEST_TOKEN",
    "TEST_WORKSPACE",
    "AssetsCaller",
    "basic_auth",
    "make_service",
    "make_type",
]

TEST_WORKSPACE = "f1668d0c-828c-470c-b7d1-8c4f48cd345a"
TEST_EMAIL = "sync@contoso.example"
TEST_TOKEN = "ATATT-sandbox-token"
_NO_BODY = object()


def basic_auth(email: str, token: str) -> str:
    """The ``Authorization`` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode("ascii")


def make_service(**overrides: Any) -> AssetsService:
    """An ``AssetsService`` with the test credentials (keyword overrides pass through)."""
    options: dict[str, Any] = {"workspace_id": TEST_WORKSPACE, "email": TEST_EMAIL, "api_token": TEST_TOKEN}
    options.update(overrides)
    return AssetsService(**options)


class AssetsCaller:
    """A tiny in-process client for one ``AssetsService``."""

    def __init__(
        self,
        service: AssetsService,
        *,
        email: str = TEST_EMAIL,
        api_token: str = TEST_TOKEN,
        base_url: str = "https://127.0.0.1:8443",
    ) -> None:
        self.service = service
        self.base_url = base_url
        self.auth = basic_auth(email, api_token)
        self.v1 = f"/jsm/assets/workspace/{service.workspace_id}/v1"

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _NO_BODY,
        query: Mapping[str, object] | None = None,
        auth: str | bool | None = True,
        headers: Mapping[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> SandboxResponse:
        """Send one request; ``auth`` True = the caller's credentials, a string = that header, None = none."""
        if not path.startswith(("/rest/", "/jsm/", "/_sandbox/")):
            path = self.v1 + path
        params = {key: _query_text(value) for key, value in (query or {}).items()}
        all_headers = {"accept": "application/json"}
        body = b""
        if raw_body is not None:
            body = raw_body
        elif json_body is not _NO_BODY:
            body = json.dumps(json_body).encode("utf-8")
            all_headers["content-type"] = "application/json"
        if auth is True:
            all_headers["authorization"] = self.auth
        elif isinstance(auth, str):
            all_headers["authorization"] = auth
        all_headers.update({key.lower(): value for key, value in (headers or {}).items()})
        raw_path = quote(path) + (f"?{urlencode(params)}" if params else "")
        request = SandboxRequest(
            method=method,
            path=path,
            raw_path=raw_path,
            query={key: [value] for key, value in params.items()},
            headers=all_headers,
            body=body,
            base_url=self.base_url,
        )
        response = self.service.handle(request)
        if response is None:
            raise AssertionError(f"AssetsService does not serve {method} {path}")
        return response

    def get(self, path: str, **kwargs: Any) -> SandboxResponse:
        """GET ``path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json_body: Any = _NO_BODY, **kwargs: Any) -> SandboxResponse:
        """POST ``json_body`` to ``path``."""
        return self.request("POST", path, json_body=json_body, **kwargs)

    def put(self, path: str, json_body: Any = _NO_BODY, **kwargs: Any) -> SandboxResponse:
        """PUT ``json_body`` to ``path``."""
        return self.request("PUT", path, json_body=json_body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> SandboxResponse:
        """DELETE ``path``."""
        return self.request("DELETE", path, **kwargs)

    def aql(self, ql: str, **query: object) -> SandboxResponse:
        """POST /object/aql with ``qlQuery`` and paging parameters."""
        return self.post("/object/aql", {"qlQuery": ql}, query=query)


def make_type(
    api: AssetsCaller, name: str, attributes: list[dict[str, Any]], *, schema_id: str | None = None
) -> tuple[str, dict[str, str]]:
    """Create an object type and its attributes; returns (type id, {attribute name: id}) incl. system ones."""
    schema = schema_id or api.service.schema_id
    created = api.post("/objecttype/create", {"name": name, "iconId": "2", "objectSchemaId": schema})
    if created.status != 201:
        raise AssertionError(f"creating type {name} failed: {created.status} {created.body}")
    type_id = str(created.body["id"])
    for attribute in attributes:
        response = api.post(f"/objecttypeattribute/{type_id}", attribute)
        if response.status != 201:
            raise AssertionError(f"creating attribute {attribute} failed: {response.status} {response.body}")
    listed = api.get(f"/objecttype/{type_id}/attributes").body
    return type_id, {item["name"]: item["id"] for item in listed}


def _query_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
