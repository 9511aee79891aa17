"""Workspace discovery, auth, and the schema side of the simulated Assets API."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from importer.sandbox.assets import AssetsService
from importer.sandbox.assets_model import DEFAULT_TYPE_NAMES
from importer.sandbox.assets_testing import (
    TEST_EMAIL,
    TEST_TOKEN,
    TEST_WORKSPACE,
    AssetsCaller,
    basic_auth,
    make_service,
    make_type,
)
from importer.sandbox.base import SandboxRequest


@pytest.fixture
def service() -> AssetsService:
    return make_service()


@pytest.fixture
def api(service: AssetsService) -> AssetsCaller:
    return AssetsCaller(service)


@pytest.mark.parametrize(
    "path", ["/rest/servicedeskapi/assets/workspace", "/rest/servicedeskapi/insight/workspace"]
)
def test_workspace_discovery_returns_the_one_workspace(api: AssetsCaller, path: str) -> None:
    response = api.get(path)
    assert response.status == 200
    assert response.route == path
    body = response.body
    assert body["values"] == [{"workspaceId": TEST_WORKSPACE}]
    assert (body["size"], body["start"], body["limit"], body["isLastPage"]) == (1, 0, 50, True)
    assert body["_links"]["self"] == f"https://127.0.0.1:8443{path}"


def test_paths_of_other_services_are_not_answered(service: AssetsService) -> None:
    other = SandboxRequest(method="GET", path="/v1.0/users", raw_path="/v1.0/users", query={}, headers={})
    assert service.handle(other) is None


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(None, id="missing"),
        pytest.param(basic_auth(TEST_EMAIL, "wrong-token"), id="wrong-token"),
        pytest.param(basic_auth("someone@else.example", TEST_TOKEN), id="wrong-email"),
        pytest.param("Basic !!!not-base64!!!", id="malformed-base64"),
        pytest.param("Basic " + base64.b64encode(b"no-colon").decode(), id="no-colon"),
        pytest.param(f"Bearer {TEST_TOKEN}", id="bearer-scheme"),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        "/rest/servicedeskapi/assets/workspace",
        "/rest/api/3/user/search?query=a",
        "/objectschema/list",
        f"/jsm/assets/workspace/{TEST_WORKSPACE}/v1/object/81",
        "/jsm/assets/workspace/wrong-workspace/v1/objectschema/list",
    ],
)
def test_every_route_needs_basic_auth_with_email_and_api_token(
    api: AssetsCaller, auth: str | None, path: str
) -> None:
    route, _, query = path.partition("?")
    response = api.get(route, auth=auth, query=dict([query.split("=")]) if query else None)
    assert response.status == 401
    assert response.body is None
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_the_email_part_of_basic_auth_is_case_insensitive(api: AssetsCaller) -> None:
    assert api.get("/objectschema/list", auth=basic_auth(TEST_EMAIL.upper(), TEST_TOKEN)).status == 200


def test_a_wrong_workspace_id_is_404(api: AssetsCaller) -> None:
    response = api.get("/jsm/assets/workspace/00000000-0000-0000-0000-000000000000/v1/objectschema/list")
    assert response.status == 404
    assert response.route == "/jsm/assets/workspace/{id}/v1/objectschema/list"
    assert set(response.body) == {"errorMessages", "errors"}


def test_unknown_paths_wrong_methods_and_bodies_are_refused(api: AssetsCaller) -> None:
    assert api.get("/nothing/here").status == 404
    assert api.get(f"/jsm/assets/workspace/{TEST_WORKSPACE}/v2/objectschema/list").status == 404
    assert api.post("/objectschema/list", {}).status == 405
    assert api.request("DELETE", "/object/aql").status == 404  # an object called "aql" does not exist
    no_type = api.request("POST", "/object/aql", raw_body=b'{"qlQuery": "Key = X-1"}')
    assert no_type.status == 415
    bad_json = api.request(
        "POST", "/object/aql", raw_body=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400
    assert bad_json.body["errorMessages"]


def test_content_type_with_charset_is_accepted(api: AssetsCaller) -> None:
    response = api.request(
        "POST",
        "/object/aql/totalcount",
        raw_body=b'{"qlQuery": "objectSchemaId = 6"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 200


def test_schema_list_pages_and_counts_only_when_asked(api: AssetsCaller, service: AssetsService) -> None:
    body = api.get("/objectschema/list").body
    assert [s["objectSchemaKey"] for s in body["values"]] == ["ITSM", "ENTRA"]
    assert (body["startAt"], body["maxResults"], body["total"], body["isLast"], body["last"]) == (
        0,
        25,
        2,
        True,
        True,
    )
    assert body["values"][0]["objectCount"] == 0  # includeCounts defaults to false
    counted = api.get("/objectschema/list", query={"includeCounts": True}).body["values"][0]
    assert (counted["objectCount"], counted["objectTypeCount"]) == (5, 2)
    first = api.get("/objectschema/list", query={"maxResults": 1}).body
    assert (len(first["values"]), first["isLast"]) == (1, False)
    second = api.get("/objectschema/list", query={"startAt": 1, "maxResults": 1}).body
    assert second["values"][0]["id"] == service.schema_id
    assert second["isLast"] is True
    assert api.get("/objectschema/list", query={"maxResults": "x"}).status == 400


def test_schema_get_and_unknown_schema(api: AssetsCaller, service: AssetsService) -> None:
    body = api.get(f"/objectschema/{service.schema_id}").body
    assert (body["name"], body["objectSchemaKey"], body["status"]) == ("Entra ID", "ENTRA", "Ok")
    assert body["globalId"] == f"{TEST_WORKSPACE}:{service.schema_id}"
    assert api.get("/objectschema/999").status == 404


def test_schema_key_is_configurable() -> None:
    api = AssetsCaller(make_service(schema_key="IDM"))
    keys = [s["objectSchemaKey"] for s in api.get("/objectschema/list").body["values"]]
    assert keys == ["ITSM", "IDM"]


def test_creating_a_type_adds_key_name_created_updated(api: AssetsCaller, service: AssetsService) -> None:
    created = api.post(
        "/objecttype/create",
        {
            "name": "Entra User",
            "description": "From Entra",
            "iconId": "15",
            "objectSchemaId": service.schema_id,
        },
    )
    assert created.status == 201
    assert created.body["name"] == "Entra User"
    assert created.body["icon"]["name"] == "User"
    assert created.body["objectSchemaId"] == service.schema_id
    attributes = api.get(f"/objecttype/{created.body['id']}/attributes").body
    shape = [
        (a["name"], a["position"], a["system"], a["label"], a["editable"], a["defaultType"]["name"])
        for a in attributes
    ]
    assert shape == [
        ("Key", 0, True, False, False, "Text"),
        ("Name", 1, False, True, True, "Text"),
        ("Created", 2, True, False, False, "DateTime"),
        ("Updated", 3, True, False, False, "DateTime"),
    ]
    assert attributes[1]["minimumCardinality"] == 1
    assert all(a["objectType"]["id"] == created.body["id"] for a in attributes)
    editable = api.get(f"/objecttype/{created.body['id']}/attributes", query={"onlyValueEditable": True}).body
    assert [a["name"] for a in editable] == ["Name"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"iconId": "1", "objectSchemaId": "7"}, "name", id="no-name"),
        pytest.param({"name": "X", "objectSchemaId": "7"}, "iconId", id="no-icon"),
        pytest.param({"name": "X", "iconId": "1"}, "objectSchemaId", id="no-schema"),
        pytest.param({"name": "X", "iconId": "999", "objectSchemaId": "7"}, "iconId", id="unknown-icon"),
        pytest.param(
            {"name": "X", "iconId": "1", "objectSchemaId": "99"}, "objectSchemaId", id="unknown-schema"
        ),
        pytest.param({"name": "Office", "iconId": "1", "objectSchemaId": "6"}, "name", id="duplicate-name"),
        pytest.param(
            {"name": "X", "iconId": "1", "objectSchemaId": "abc"}, "objectSchemaId", id="non-numeric"
        ),
    ],
)
def test_object_type_create_validates_object_type_in(
    api: AssetsCaller, body: dict[str, Any], field: str
) -> None:
    response = api.post("/objecttype/create", body)
    assert response.status == 400
    assert field in response.body["errors"]


def test_types_list_flat_filters_and_counts(api: AssetsCaller) -> None:
    types = api.get("/objectschema/6/objecttypes").body
    assert [(t["name"], t["objectCount"]) for t in types] == [("Office", 3), ("Business Service", 2)]
    flat = api.get("/objectschema/6/objecttypes/flat").body
    assert [t["objectCount"] for t in flat] == [0, 0]
    counted = api.get("/objectschema/6/objecttypes/flat", query={"includeObjectCounts": True}).body
    assert [t["objectCount"] for t in counted] == [3, 2]
    assert [t["name"] for t in api.get("/objectschema/6/objecttypes/flat", query={"query": "serv"}).body] == [
        "Business Service"
    ]
    assert [
        t["name"] for t in api.get("/objectschema/6/objecttypes/flat", query={"exclude": "Office"}).body
    ] == ["Business Service"]
    assert api.get("/objectschema/99/objecttypes").status == 404
    assert api.get("/objecttype/19").body["name"] == "Office"
    assert api.get("/objecttype/999").status == 404


def test_schema_attributes_lists_every_type_attribute(api: AssetsCaller) -> None:
    attributes = api.get("/objectschema/6/attributes").body
    assert sorted(a["name"] for a in attributes).count("Name") == 2
    assert "objectType" not in attributes[0]
    assert "objectType" in api.get("/objectschema/6/attributes", query={"extended": True}).body[0]
    assert [a["name"] for a in api.get("/objectschema/6/attributes", query={"query": "cit"}).body] == ["City"]
    editable = api.get("/objectschema/6/attributes", query={"onlyValueEditable": True}).body
    assert not any(a["system"] for a in editable)


@pytest.mark.parametrize(
    ("default_type", "name"),
    list(DEFAULT_TYPE_NAMES.items()),
)
@pytest.mark.parametrize("as_string", [True, False], ids=["string-codes", "int-codes"])
def test_every_default_attribute_type_can_be_created(
    api: AssetsCaller, service: AssetsService, default_type: int, name: str, as_string: bool
) -> None:
    type_id, _ = make_type(api, "Thing", [])
    code: object = str(default_type) if as_string else default_type
    body = {"name": f"My {name}", "type": "0" if as_string else 0, "defaultTypeId": code, "options": "A,B"}
    response = api.post(f"/objecttypeattribute/{type_id}", body)
    assert response.status == 201, response.body
    assert response.body["defaultType"] == {"id": default_type, "name": name}
    assert (response.body["type"], response.body["label"], response.body["system"]) == (0, False, False)
    assert response.body["position"] == 4
    assert isinstance(response.body["id"], str)


def test_reference_user_and_status_attributes(api: AssetsCaller) -> None:
    user_type, _ = make_type(api, "Entra User", [])
    device_type, _ = make_type(api, "Entra Device", [])
    reference = api.post(
        f"/objecttypeattribute/{device_type}",
        {
            "name": "Owner",
            "type": "1",
            "typeValue": user_type,
            "additionalValue": "4",
            "maximumCardinality": -1,
        },
    ).body
    assert reference["type"] == 1
    assert reference["referenceObjectTypeId"] == user_type
    assert reference["referenceObjectType"]["name"] == "Entra User"
    assert reference["referenceType"]["name"] == "Reference"
    assert reference["maximumCardinality"] == -1
    user = api.post(
        f"/objecttypeattribute/{device_type}",
        {"name": "Account", "type": 2, "additionalValue": "SHOW_PROFILE"},
    ).body
    assert (user["type"], user["additionalValue"]) == (2, "SHOW_PROFILE")
    status = api.post(f"/objecttypeattribute/{device_type}", {"name": "Sync State", "type": 7}).body
    assert status["type"] == 7
    assert "defaultType" not in status


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"type": 0, "defaultTypeId": 0}, "name", id="no-name"),
        pytest.param({"name": "A", "defaultTypeId": 0}, "type", id="no-type"),
        pytest.param({"name": "A", "type": 0}, "defaultTypeId", id="default-without-default-type"),
        pytest.param(
            {"name": "A", "type": 0, "defaultTypeId": 12}, "defaultTypeId", id="unknown-default-type"
        ),
        pytest.param({"name": "A", "type": 4}, "type", id="group-unsupported"),
        pytest.param({"name": "A", "type": 1, "additionalValue": "4"}, "typeValue", id="reference-no-type"),
        pytest.param({"name": "A", "type": 1, "typeValue": "19"}, "additionalValue", id="reference-no-kind"),
        pytest.param(
            {"name": "A", "type": 1, "typeValue": "999", "additionalValue": "4"},
            "typeValue",
            id="ref-unknown",
        ),
        pytest.param(
            {"name": "A", "type": 1, "typeValue": "19", "additionalValue": "99"},
            "additionalValue",
            id="ref-kind",
        ),
        pytest.param({"name": "name", "type": 0, "defaultTypeId": 0}, "name", id="duplicate-name-any-case"),
        pytest.param({"name": "A", "type": "zero", "defaultTypeId": 0}, "type", id="non-numeric-type"),
        pytest.param(
            {"name": "A", "type": 0, "defaultTypeId": 0, "minimumCardinality": -1},
            "minimumCardinality",
            id="neg-min",
        ),
        pytest.param(
            {"name": "A", "type": 0, "defaultTypeId": 0, "regexValidation": "("},
            "regexValidation",
            id="bad-regex",
        ),
        pytest.param(
            {"name": "A", "type": 2, "additionalValue": "LOUD"}, "additionalValue", id="bad-additional"
        ),
    ],
)
def test_attribute_create_validates_its_body(api: AssetsCaller, body: dict[str, Any], field: str) -> None:
    type_id, _ = make_type(api, "Thing", [])
    response = api.post(f"/objecttypeattribute/{type_id}", body)
    assert response.status == 400
    assert field in response.body["errors"]


def test_attribute_create_on_unknown_type_is_404(api: AssetsCaller) -> None:
    assert api.post("/objecttypeattribute/999", {"name": "A", "type": 0, "defaultTypeId": 0}).status == 404


def test_text_attributes_are_single_valued_whatever_is_asked(api: AssetsCaller) -> None:
    type_id, _ = make_type(api, "Thing", [])
    text = api.post(
        f"/objecttypeattribute/{type_id}",
        {"name": "Tags", "type": 0, "defaultTypeId": 0, "maximumCardinality": 5},
    ).body
    email = api.post(
        f"/objecttypeattribute/{type_id}",
        {"name": "Mails", "type": 0, "defaultTypeId": 8, "maximumCardinality": 5},
    ).body
    assert (text["maximumCardinality"], email["maximumCardinality"]) == (1, 5)


def test_attribute_update_renames_and_flags(api: AssetsCaller) -> None:
    type_id, ids = make_type(api, "Thing", [{"name": "Serial", "type": 0, "defaultTypeId": 0}])
    updated = api.put(
        f"/objecttypeattribute/{type_id}/{ids['Serial']}",
        {"name": "Serial Number", "description": "Vendor serial", "uniqueAttribute": True, "label": True},
    )
    assert updated.status == 200
    assert (updated.body["name"], updated.body["uniqueAttribute"], updated.body["label"]) == (
        "Serial Number",
        True,
        True,
    )
    names = {a["name"]: a["label"] for a in api.get(f"/objecttype/{type_id}/attributes").body}
    assert names["Name"] is False  # one label per type
    unlabel = api.put(f"/objecttypeattribute/{type_id}/{ids['Serial']}", {"label": False})
    assert unlabel.status == 400  # a type always has a label


@pytest.mark.parametrize(
    ("target", "body", "status"),
    [
        pytest.param("Key", {"name": "K"}, 400, id="system-attribute"),
        pytest.param("Serial", {"name": "name"}, 400, id="name-clash"),
        pytest.param("Serial", {"type": 0, "defaultTypeId": 1}, 400, id="type-change"),
        pytest.param("missing", {"name": "X"}, 404, id="unknown-attribute"),
    ],
)
def test_attribute_update_refusals(api: AssetsCaller, target: str, body: dict[str, Any], status: int) -> None:
    type_id, ids = make_type(api, "Thing", [{"name": "Serial", "type": 0, "defaultTypeId": 0}])
    assert api.put(f"/objecttypeattribute/{type_id}/{ids.get(target, '9999')}", body).status == status


def test_attribute_delete_removes_it_and_refuses_system_and_label(api: AssetsCaller) -> None:
    type_id, ids = make_type(api, "Thing", [{"name": "Serial", "type": 0, "defaultTypeId": 0}])
    response = api.delete(f"/objecttypeattribute/{ids['Serial']}")
    assert (response.status, response.body) == (200, None)
    assert "Serial" not in [a["name"] for a in api.get(f"/objecttype/{type_id}/attributes").body]
    assert api.delete(f"/objecttypeattribute/{ids['Serial']}").status == 404
    assert api.delete(f"/objecttypeattribute/{ids['Key']}").status == 400
    assert api.delete(f"/objecttypeattribute/{ids['Name']}").status == 400


def test_status_types_global_and_per_schema(api: AssetsCaller, service: AssetsService) -> None:
    global_statuses = api.get("/config/statustype").body
    assert [s["name"] for s in global_statuses][:3] == ["Action Needed", "Active", "Closed"]
    assert all(s["objectSchemaId"] is None for s in global_statuses)
    created = api.post(
        "/config/statustype", {"name": "Stale", "category": "0", "objectSchemaId": service.schema_id}
    )
    assert created.status == 201
    assert (created.body["name"], created.body["category"], created.body["objectSchemaId"]) == (
        "Stale",
        0,
        service.schema_id,
    )
    mine = api.get("/config/statustype", query={"objectSchemaId": service.schema_id}).body
    assert mine[-1]["name"] == "Stale"
    assert "Stale" not in [
        s["name"] for s in api.get("/config/statustype", query={"objectSchemaId": "6"}).body
    ]
    assert api.post("/config/statustype", {"name": "Odd", "category": 5}).status == 400
    assert api.post("/config/statustype", {"category": 1}).status == 400


def test_reference_types_and_icons(api: AssetsCaller) -> None:
    reference_types = api.get("/config/referencetype", query={"objectSchemaId": "7"}).body
    assert {"id": "4", "name": "Reference"}.items() <= reference_types[3].items()
    assert all(isinstance(t["id"], str) for t in reference_types)
    icons = api.get("/icon/global").body
    assert {"id": "14", "name": "Building"}.items() <= icons[13].items()
    assert icons[0]["url16"].endswith("/icon/1/icon.png?size=16")


def test_route_templates_never_contain_ids(api: AssetsCaller) -> None:
    assert (
        api.get("/objecttype/19/attributes").route
        == "/jsm/assets/workspace/{id}/v1/objecttype/{id}/attributes"
    )
    assert api.get("/object/81").route == "/jsm/assets/workspace/{id}/v1/object/{id}"
    assert api.put("/objecttypeattribute/19/134", {}).route == (
        "/jsm/assets/workspace/{id}/v1/objecttypeattribute/{id}/{id}"
    )
    assert api.get("/whatever/1").route == "/jsm/assets/workspace/{id}/v1/{unknown}"
