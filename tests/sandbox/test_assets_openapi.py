"""Every Assets route's answers (success and error) against the official Assets Cloud OpenAPI document.

Success bodies go through openapi-core. Error statuses must be declared for the operation (or be
listed in ``UNDECLARED`` with the reason) and error bodies must match the spec's ``Errors``
schema, which the spec defines but never attaches to its error traits.

The spec is wrong or silent in a few places; each is patched here, explicitly, and nowhere else:

- ``ObjectAttributeValue.value`` is ``oneOf: [string, string(date-time)]``: every ISO date-time
  matches both branches, so ``oneOf`` rejects every DateTime value (the spec's own examples fail).
  Patched to ``anyOf``.
- ``ObjectAQLTotalCountResult`` requires ``self``, which is not even a property (its example is
  ``{"totalCount": 5}``). Patched to require ``totalCount``.
- ``Status.objectSchemaId`` and ``ReferenceType.objectSchemaId`` are plain strings, but the spec's
  examples answer ``null`` for global statuses and reference types, as the sandbox does. Patched
  to ``nullable``.
- ``ObjectListInclTypeAttributesEntryResult.isLast`` is a boolean and ``last`` is required, but the
  example answers ``"isLast": "false"`` without ``last``. The sandbox's string mode copies the
  example; only that mode is checked against a copy where ``isLast`` may be a string and ``last``
  optional.
- The spec fails its own validation (path parameter ``importSourceId`` of the Imports API), so
  openapi-core runs with spec validation off.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from importer.sandbox.assets import AssetsService
from importer.sandbox.assets_testing import AssetsCaller, make_service, make_type
from importer.sandbox.base import SandboxResponse

SPEC_PATH = (
    Path(__file__).resolve().parents[1]
    / "reference"
    / "assets-spec"
    / "assets-cloud-openapi.v3.1.135.77.json"
)
SERVER = "https://api.atlassian.com"
SERVER_PATH = "/ex/jira/cloud-id/jsm/assets/workspace/{workspace}/v1"

# (method, spec path, status) answered by the sandbox but absent from the spec, and why
UNDECLARED: dict[tuple[str, str, int], str] = {
    ("DELETE", "/object/{id}", 204): "the spec declares no success answer for DELETE /object/{id}",
    (
        "GET",
        "/objectschema/list",
        404,
    ): "a wrong workspace id is a 404 (reference notes §10); not in the spec",
    ("GET", "/objectschema/list", 429): "the sandbox limits every route; the spec lists 429 on a few only",
    ("POST", "/objectschema/list", 405): "a wrong method: the spec describes only existing methods",
    ("POST", "/object/aql", 415): "Content-Type must be application/json (the notes: Assets is particular)",
}


@dataclass(frozen=True)
class Exchange:
    name: str
    method: str
    path: str  # below /v1, as sent
    response: SandboxResponse
    string_is_last: bool = False


def _patched_spec(*, string_is_last: bool) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    value = schemas["ObjectAttributeValue"]["properties"]["value"]
    value["anyOf"] = value.pop("oneOf")
    schemas["ObjectAQLTotalCountResult"]["required"] = ["totalCount"]
    schemas["Status"]["properties"]["objectSchemaId"]["nullable"] = True
    schemas["ReferenceType"]["properties"]["objectSchemaId"]["nullable"] = True
    if string_is_last:
        result = schemas["ObjectListInclTypeAttributesEntryResult"]
        result["properties"]["isLast"] = {"type": "string", "enum": ["true", "false"]}
        result["required"] = [name for name in result["required"] if name != "last"]
    return spec


@cache
def _openapi(string_is_last: bool) -> OpenAPI:
    return OpenAPI.from_dict(
        _patched_spec(string_is_last=string_is_last), config=Config(spec_validator_cls=None)
    )


@cache
def _operations() -> list[tuple[re.Pattern[str], str, str, dict[str, Any]]]:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    out = []
    for path, item in spec["paths"].items():
        pattern = re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path))
        for method, operation in item.items():
            if method != "parameters":
                out.append((pattern, method.upper(), path, operation["responses"]))
    # literal paths first, so /object/create is not taken for /object/{id}
    return sorted(out, key=lambda entry: entry[2].count("{"))


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """(spec path, declared responses); a method the path does not have declares nothing."""
    other_method: str | None = None
    for pattern, op_method, template, responses in _operations():
        if pattern.fullmatch(path):
            if op_method == method:
                return template, responses
            other_method = other_method or template
    if other_method is None:
        raise AssertionError(f"{method} {path} is not a path of the spec")
    return other_method, {}


def _scenario() -> list[Exchange]:
    """Drive every Assets route once or more, success and error, on a fresh workspace."""
    service: AssetsService = make_service()
    api = AssetsCaller(service)
    account = service.add_jira_user("anna@contoso.com", "Anna Smith")
    exchanges: list[Exchange] = []

    def call(name: str, method: str, path: str, body: Any = None, **kwargs: Any) -> SandboxResponse:
        if body is not None:
            kwargs["json_body"] = body
        response = api.request(method, path, **kwargs)
        exchanges.append(
            Exchange(name, method, path.split("?", maxsplit=1)[0], response, service.store.is_last_as_string)
        )
        return response

    schema = service.schema_id
    call("schema list", "GET", "/objectschema/list", query={"includeCounts": True})
    call("schema get", "GET", f"/objectschema/{schema}")
    call("schema get 404", "GET", "/objectschema/999")
    user_type, users = make_type(
        api,
        "Entra User",
        [
            {"name": "Entra Object Id", "type": "0", "defaultTypeId": "0", "uniqueAttribute": True},
            *({"name": f"Kind {n}", "type": 0, "defaultTypeId": n, "options": "A,B"} for n in range(1, 12)),
            {"name": "Account", "type": 2, "additionalValue": "SHOW_PROFILE"},
            {"name": "State", "type": 7},
        ],
    )
    call(
        "type create",
        "POST",
        "/objecttype/create",
        {"name": "Entra Device", "iconId": "2", "objectSchemaId": schema},
    )
    call("type create 400", "POST", "/objecttype/create", {"name": "No icon", "objectSchemaId": schema})
    device_type = exchanges[-2].response.body["id"]
    owner = call(
        "reference attribute create",
        "POST",
        f"/objecttypeattribute/{device_type}",
        {
            "name": "Owner",
            "type": "1",
            "typeValue": user_type,
            "additionalValue": "4",
            "maximumCardinality": -1,
        },
    ).body["id"]
    call("attribute create 400", "POST", f"/objecttypeattribute/{device_type}", {"name": "Owner", "type": 2})
    call("attribute create 404", "POST", "/objecttypeattribute/999", {"name": "X", "type": 7})
    call("attribute update", "PUT", f"/objecttypeattribute/{device_type}/{owner}", {"description": "Who"})
    call(
        "attribute update 400",
        "PUT",
        f"/objecttypeattribute/{device_type}/{owner}",
        {"type": 0, "defaultTypeId": 1},
    )
    call("attribute update 404", "PUT", f"/objecttypeattribute/{device_type}/999", {"name": "X"})
    call("schema types", "GET", f"/objectschema/{schema}/objecttypes")
    call("schema types 404", "GET", "/objectschema/999/objecttypes")
    call(
        "schema types flat",
        "GET",
        f"/objectschema/{schema}/objecttypes/flat",
        query={"includeObjectCounts": True},
    )
    call("schema attributes", "GET", f"/objectschema/{schema}/attributes", query={"extended": True})
    call("type get", "GET", f"/objecttype/{user_type}")
    call("type get 404", "GET", "/objecttype/999")
    call("type attributes", "GET", f"/objecttype/{device_type}/attributes")
    call("type attributes 404", "GET", "/objecttype/999/attributes")
    call("status list", "GET", "/config/statustype", query={"objectSchemaId": schema})
    call(
        "status create",
        "POST",
        "/config/statustype",
        {"name": "Stale", "category": 0, "objectSchemaId": schema},
    )
    call("status create 400", "POST", "/config/statustype", {"name": "Odd", "category": 9})
    call("reference types", "GET", "/config/referencetype", query={"objectSchemaId": schema})
    call("icons", "GET", "/icon/global")

    values = {
        "Name": "Anna Smith",
        "Entra Object Id": "u-1",
        "Kind 1": "42",
        "Kind 2": "true",
        "Kind 3": "2.5",
        "Kind 4": "2024-02-29",
        "Kind 5": "09:30",
        "Kind 6": "2024-05-01T10:00:00Z",
        "Kind 7": "https://contoso.example",
        "Kind 8": "anna@contoso.com",
        "Kind 9": "long text",
        "Kind 10": "A",
        "Kind 11": "10.0.0.1",
        "Account": account,
        "State": "Active",
    }
    attributes = [
        {"objectTypeAttributeId": users[name], "objectAttributeValues": [{"value": value}]}
        for name, value in values.items()
    ]
    anna = call(
        "object create", "POST", "/object/create", {"objectTypeId": user_type, "attributes": attributes}
    )
    anna_id = anna.body["id"]
    call("object create 400", "POST", "/object/create", {"objectTypeId": user_type, "attributes": attributes})
    device = call(
        "object create with reference",
        "POST",
        "/object/create",
        {
            "objectTypeId": device_type,
            "attributes": [
                {"objectTypeAttributeId": str(int(owner) - 3), "objectAttributeValues": [{"value": "PC-1"}]},
                {"objectTypeAttributeId": owner, "objectAttributeValues": [{"value": anna_id}]},
            ],
        },
    ).body["id"]
    call("object get", "GET", f"/object/{anna_id}")
    call("object get with reference", "GET", f"/object/{device}")
    call("object get 404", "GET", "/object/999999")
    call("object attributes", "GET", f"/object/{anna_id}/attributes")
    kind1 = {"objectTypeAttributeId": users["Kind 1"], "objectAttributeValues": [{"value": "43"}]}
    call("object update", "PUT", f"/object/{anna_id}", {"objectTypeId": user_type, "attributes": [kind1]})
    bad = {"objectTypeAttributeId": users["Kind 1"], "objectAttributeValues": [{"value": "x"}]}
    call("object update 400", "PUT", f"/object/{anna_id}", {"objectTypeId": user_type, "attributes": [bad]})
    call("object update 404", "PUT", "/object/999999", {"objectTypeId": user_type, "attributes": [kind1]})
    aql = {"qlQuery": f"objectSchemaId = {schema}"}
    call("aql", "POST", "/object/aql", aql, query={"maxResults": 1})
    call("aql without attributes", "POST", "/object/aql", aql, query={"includeAttributes": False})
    call("aql 400", "POST", "/object/aql", {"qlQuery": '"Nope" = 1'})
    service.configure(is_last_as_string=True)
    call("aql string isLast", "POST", "/object/aql", aql, query={"maxResults": 1})
    service.configure(is_last_as_string=False)
    call("aql count", "POST", "/object/aql/totalcount", aql)
    call("aql count 400", "POST", "/object/aql/totalcount", {"qlQuery": "Name = 'x'"})
    call("object delete", "DELETE", f"/object/{device}")
    call("object delete 404", "DELETE", f"/object/{device}")
    call("attribute delete", "DELETE", f"/objecttypeattribute/{users['Kind 9']}")
    call("attribute delete 400", "DELETE", f"/objecttypeattribute/{users['Key']}")
    call("attribute delete 404", "DELETE", "/objecttypeattribute/999")
    call("unauthenticated", "GET", f"/object/{anna_id}", auth=None)
    call("wrong workspace", "GET", "/jsm/assets/workspace/nope/v1/objectschema/list")
    call("wrong method", "POST", "/objectschema/list", {})
    call("no content type", "POST", "/object/aql", raw_body=b'{"qlQuery": "Key = ENTRA-1"}')
    service.set_rate_limit(0)
    call("rate limited declared", "POST", "/object/aql", aql)
    call("rate limited undeclared", "GET", "/objectschema/list")
    return exchanges


@cache
def _exchanges() -> dict[str, Exchange]:
    return {exchange.name: exchange for exchange in _scenario()}


NAMES = [
    "schema list", "schema get", "schema get 404", "type create", "type create 400",
    "reference attribute create", "attribute create 400", "attribute create 404", "attribute update",
    "attribute update 400", "attribute update 404", "schema types", "schema types 404",
    "schema types flat", "schema attributes", "type get", "type get 404", "type attributes",
    "type attributes 404", "status list", "status create", "status create 400", "reference types",
    "icons", "object create", "object create 400", "object create with reference", "object get",
    "object get with reference", "object get 404", "object attributes", "object update",
    "object update 400", "object update 404", "aql", "aql without attributes", "aql 400",
    "aql string isLast", "aql count", "aql count 400", "object delete", "object delete 404",
    "attribute delete", "attribute delete 400", "attribute delete 404", "unauthenticated",
    "wrong workspace", "wrong method", "no content type", "rate limited declared",
    "rate limited undeclared",
]  # fmt: skip


def test_the_scenario_covers_every_name() -> None:
    assert sorted(_exchanges()) == sorted(NAMES)


def _sub_path(exchange: Exchange) -> str:
    path = exchange.path
    if path.startswith("/jsm/"):
        path = "/" + path.split("/v1/", 1)[1]
    return path


@pytest.mark.parametrize("name", NAMES)
def test_answers_match_the_openapi_document(name: str) -> None:
    exchange = _exchanges()[name]
    response = exchange.response
    path = _sub_path(exchange)
    template, responses = _operation(exchange.method, path)
    declared = responses.get(str(response.status))
    if declared is None:
        assert (exchange.method, template, response.status) in UNDECLARED, (
            f"{exchange.method} {template} answered {response.status}, which the spec does not declare"
        )
    if response.status == 401:
        assert response.body is None
        return
    if response.status >= 400:
        errors_schema = _patched_spec(string_is_last=False)["components"]["schemas"]["Errors"]
        jsonschema.validate(response.body, errors_schema)
        return
    if declared is None or "content" not in declared:
        assert response.body is None, "the spec declares no body for this answer"
        return
    request = MockRequest(SERVER, exchange.method.lower(), SERVER_PATH.format(workspace="ws") + path)
    body = json.dumps(response.body).encode("utf-8")
    mock = MockResponse(body, status_code=response.status, content_type=response.content_type)
    _openapi(exchange.string_is_last).validate_response(request, mock)


def test_the_patches_are_needed_the_spec_examples_fail_unpatched() -> None:
    """If Atlassian fixes the spec, these patches (and their docs) can go."""
    raw = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    value_schema = raw["components"]["schemas"]["ObjectAttributeValue"]["properties"]["value"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            "2021-02-16T20:04:41.527Z", value_schema, format_checker=jsonschema.FormatChecker()
        )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"totalCount": 5}, raw["components"]["schemas"]["ObjectAQLTotalCountResult"])
    status_id = raw["components"]["schemas"]["Status"]["properties"]["objectSchemaId"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(None, status_id)


def _shape_of(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape_of(value[0])] if value else []
    return type(value).__name__


@pytest.mark.parametrize(
    ("fixture", "build"),
    [
        pytest.param(
            "servicedesk_assets_workspace_response.illustrative.json",
            lambda api: api.get("/rest/servicedeskapi/assets/workspace").body,
            id="workspace-discovery",
        ),
    ],
)
def test_site_routes_match_their_reference_fixture(
    fixture: str, build: Callable[[AssetsCaller], Any]
) -> None:
    """The Jira platform routes are not in the Assets spec: compare with the reference fixture's shape."""
    expected = json.loads((SPEC_PATH.parent / "fixtures" / fixture).read_text(encoding="utf-8"))
    assert _shape_of(build(AssetsCaller(make_service()))) == _shape_of(expected)


def test_objects_have_every_field_the_spec_example_has() -> None:
    """Beyond the schema: the example's keys (minus the media JWT block) are all present."""
    example = json.loads(
        (SPEC_PATH.parent / "fixtures" / "object_get_response.json").read_text(encoding="utf-8")
    )
    ours = _exchanges()["object get with reference"].response.body
    example["avatar"].pop("mediaClientConfig")
    assert set(example) <= set(ours)
    assert set(example["avatar"]) <= set(ours["avatar"])
    # an object type without a description has none, like "Employee" in the spec's type list
    assert set(example["objectType"]) - {"description"} <= set(ours["objectType"])
    example_attr = example["attributes"][-1]
    our_attr = next(a for a in ours["attributes"] if a["objectTypeAttribute"]["name"] == "Owner")
    assert set(example_attr) <= set(our_attr)
    assert set(example_attr["objectTypeAttribute"]) <= set(our_attr["objectTypeAttribute"])
    assert set(example_attr["objectAttributeValues"][0]) <= set(our_attr["objectAttributeValues"][0])
    deep = copy.deepcopy(example_attr["objectAttributeValues"][0]["referencedObject"])
    deep["avatar"].pop("mediaClientConfig")
    assert set(deep) <= set(our_attr["objectAttributeValues"][0]["referencedObject"])


def test_the_validator_does_catch_a_wrong_shape() -> None:
    """A guard on the guard: an integer id or a missing label fails openapi-core's validation."""
    exchange = _exchanges()["object get"]
    for broken in (
        {**exchange.response.body, "id": 88},
        {k: v for k, v in exchange.response.body.items() if k != "label"},
    ):
        request = MockRequest(SERVER, "get", SERVER_PATH.format(workspace="ws") + _sub_path(exchange))
        mock = MockResponse(json.dumps(broken).encode(), status_code=200, content_type="application/json")
        with pytest.raises(Exception, match=r"(?i)invalid|required|type"):
            _openapi(False).validate_response(request, mock)
