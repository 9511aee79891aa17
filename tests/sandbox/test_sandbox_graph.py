"""Graph lists, single objects, owners, Intune, query options, auth and permissions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from importer.sandbox.app import Sandbox
from importer.sandbox.odata import USER_DEFAULT
from importer.sandbox.testing import GraphGet as Get

SAMPLES = Path("/work/shared/reference/samples/graph")


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def dump(sb: Sandbox, kind: str) -> dict[str, Any]:
    assert sb.directory is not None
    return sb.directory.dump(kind)


def assert_graph_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    inner = error["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"}
    assert inner["request-id"] == response.headers["request-id"]
    return error  # type: ignore[no-any-return]


def test_users_without_select_carry_exactly_the_default_properties(get: Get, sb: Sandbox) -> None:
    body = get("/v1.0/users").json()
    assert body["@odata.context"] == f"{sb.base_url}/v1.0/$metadata#users"
    assert len(body["value"]) == 100  # default page size
    assert "@odata.nextLink" in body
    for user in body["value"]:
        assert set(user) == set(USER_DEFAULT)
    assert set(sample("users-list.json")["value"][0]) == set(USER_DEFAULT)


def test_select_returns_only_the_selected_properties_plus_id(get: Get, sb: Sandbox) -> None:
    fields = "accountEnabled,department,employeeId,createdDateTime,userType"
    body = get("/v1.0/users", select=fields, top=999).json()
    assert body["@odata.context"].endswith(f"#users({fields})")
    for user in body["value"]:
        assert set(user) == {*fields.split(","), "id"}
    assert {u["userType"] for u in body["value"]} == {"Member", "Guest"}


def test_select_is_case_insensitive_and_answers_canonical_names(get: Get) -> None:
    user = get("/v1.0/users", select="DisplayName,ACCOUNTENABLED", top=1).json()["value"][0]
    assert set(user) == {"displayName", "accountEnabled", "id"}
    device = get("/v1.0/devices", select="manufacturer,model,deviceId", top=5).json()["value"][0]
    assert set(device) == {"Manufacturer", "Model", "deviceId", "id"}  # PascalCase, as the sample shows


def test_devices_carry_manufacturer_and_model_in_pascal_case(get: Get) -> None:
    devices = get("/v1.0/devices", top=999).json()["value"]
    assert all("Manufacturer" in d and "Model" in d and "manufacturer" not in d for d in devices)
    assert set(sample("devices-list.json")["value"][0]) <= set(devices[0])


def test_known_but_unstored_properties_come_back_null_or_empty(get: Get) -> None:
    user = get("/v1.0/users", select="id,city,proxyAddresses", top=1).json()["value"][0]
    assert user["city"] is None
    assert user["proxyAddresses"] == []


def test_unknown_property_is_400_request_badrequest(get: Get) -> None:
    error = assert_graph_error(get("/v1.0/users", select="id,shoeSize"), 400, "Request_BadRequest")
    assert (
        error["message"]
        == "Could not find a property named 'shoeSize' on type 'Microsoft.DirectoryServices.User'."
    )


def test_collection_unsupported_property_is_501_as_documented(get: Get) -> None:
    response = get("/v1.0/users", select="id,skills")
    assert response.status_code == 501
    assert response.json()["error"]["code"] == "NotImplemented"


@pytest.mark.parametrize("top", ["0", "1000", "-1", "many"])
def test_top_outside_1_to_999_is_the_real_400(get: Get, top: str) -> None:
    error = assert_graph_error(get("/v1.0/users", top=top), 400, "Request_BadRequest")
    assert error["message"] == f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."


@pytest.mark.parametrize("top", [1, 999])
def test_top_inside_the_range_is_the_page_size(get: Get, top: int) -> None:
    assert len(get("/v1.0/users", top=top).json()["value"]) == min(top, 200)


def test_paging_200_users_with_top_50_follows_next_links_verbatim(get: Get, sb: Sandbox) -> None:
    url: str | None = None
    pages: list[list[dict[str, Any]]] = []
    body = get("/v1.0/users", top=50, select="id,displayName").json()
    while True:
        pages.append(body["value"])
        assert "@odata.deltaLink" not in body
        url = body.get("@odata.nextLink")
        if url is None:
            break
        assert "$top=50" in url
        assert "$select=id,displayName" in url
        assert "$skiptoken=" in url
        body = get(url).json()
    assert [len(p) for p in pages] == [50, 50, 50, 50]
    ids = [u["id"] for p in pages for u in p]
    assert len(set(ids)) == 200
    assert set(ids) == {u["id"] for u in dump(sb, "users")["value"]}


def test_a_next_link_works_only_verbatim(get: Get) -> None:
    link = get("/v1.0/users", top=10).json()["@odata.nextLink"]
    assert get(link).status_code == 200
    assert_graph_error(get(link + "&$select=id"), 400, "Request_BadRequest")
    assert_graph_error(get(link.replace("$top=10", "$top=11")), 400, "Request_BadRequest")
    head, _, token = link.partition("$skiptoken=")
    tampered = head + "$skiptoken=" + token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert_graph_error(get(tampered), 400, "Request_BadRequest")


def test_filter_on_account_enabled(get: Get, sb: Sandbox) -> None:
    disabled = get(
        "/v1.0/users", filter="accountEnabled eq false", select="id,accountEnabled", top=999
    ).json()
    expected = {u["id"] for u in dump(sb, "users")["value"] if u["accountEnabled"] is False}
    assert {u["id"] for u in disabled["value"]} == expected
    assert expected


def test_filter_on_id(get: Get, sb: Sandbox) -> None:
    target = dump(sb, "devices")["value"][3]["id"]
    body = get("/v1.0/devices", filter=f"id eq '{target}'").json()
    assert [d["id"] for d in body["value"]] == [target]


def test_other_filters_are_400_unsupported_query(get: Get) -> None:
    assert_graph_error(
        get("/v1.0/users", filter="startswith(displayName,'a')"), 400, "Request_UnsupportedQuery"
    )


def test_count_needs_consistency_level_eventual(get: Get, sb: Sandbox) -> None:
    error = assert_graph_error(get("/v1.0/users/$count"), 400, "Request_BadRequest")
    assert error["message"] == sample("error-400-count-without-consistencylevel.json")["error"]["message"]
    assert get("/v1.0/users/$count", headers={"ConsistencyLevel": "eventual"}).text == "200"


def test_search_without_consistency_level_is_the_sample_error(get: Get) -> None:
    error = assert_graph_error(
        get("/v1.0/users", search='"displayName:ann"'), 400, "Request_UnsupportedQuery"
    )
    assert error["message"] == sample("error-400-search-without-consistencylevel.json")["error"]["message"]


def test_get_one_user_by_id_and_by_upn(get: Get, sb: Sandbox) -> None:
    user = dump(sb, "users")["value"][0]
    by_id = get(f"/v1.0/users/{user['id']}").json()
    by_upn = get(f"/v1.0/users/{user['userPrincipalName']}").json()
    assert by_id["id"] == by_upn["id"] == user["id"]
    assert by_id["@odata.context"].endswith("#users/$entity")
    assert_graph_error(
        get("/v1.0/users/00000000-0000-4000-8000-000000000000"), 404, "Request_ResourceNotFound"
    )
    guest = next(u for u in dump(sb, "users")["value"] if u["userType"] == "Guest")
    assert get(f"/v1.0/users/{quote(guest['userPrincipalName'])}").json()["id"] == guest["id"]


def test_responses_carry_request_ids_and_echo_the_client_request_id(get: Get) -> None:
    response = get(
        "/v1.0/users", top=1, headers={"client-request-id": "11111111-2222-4333-8444-555555555555"}
    )
    assert response.headers["client-request-id"] == "11111111-2222-4333-8444-555555555555"
    assert response.headers["request-id"]
    assert response.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")


def test_registered_owners_are_one_user_or_none(get: Get, sb: Sandbox) -> None:
    devices = dump(sb, "devices")["value"]
    owned = next(d for d in devices if d["registeredOwnerId"])
    unowned = next(d for d in devices if d["registeredOwnerId"] is None)
    body = get(f"/v1.0/devices/{owned['id']}/registeredOwners").json()
    shape = sample("device-registeredOwners.json")
    assert body["@odata.context"].endswith("$metadata#directoryObjects")
    assert len(body["value"]) == 1
    owner = body["value"][0]
    assert set(shape["value"][0]) <= set(owner)
    assert owner["@odata.type"] == "#microsoft.graph.user"
    assert owner["id"] == owned["registeredOwnerId"]
    assert owner["@odata.id"].endswith(f"/directoryObjects/{owner['id']}/Microsoft.DirectoryServices.User")
    assert get(f"/v1.0/devices/{unowned['id']}/registeredOwners").json()["value"] == []
    by_device_id = get(f"/v1.0/devices(deviceId='{owned['deviceId']}')/registeredOwners").json()
    assert by_device_id["value"][0]["id"] == owner["id"]
    missing = get("/v1.0/devices/00000000-0000-4000-8000-000000000000/registeredOwners")
    assert_graph_error(missing, 404, "Request_ResourceNotFound")


def test_registered_owners_without_user_read_all_carry_only_type_and_id(get: Get, sb: Sandbox) -> None:
    sb.set_tenant(permissions=["Device.Read.All"])
    owned = next(d for d in dump(sb, "devices")["value"] if d["registeredOwnerId"])
    owner = get(f"/v1.0/devices/{owned['id']}/registeredOwners").json()["value"][0]
    assert set(owner) == {"@odata.type", "@odata.id", "id"}


def test_managed_devices_follow_the_sample_and_join_on_device_id(get: Get, sb: Sandbox) -> None:
    body = get("/v1.0/deviceManagement/managedDevices").json()
    assert body["@odata.context"].endswith("$metadata#deviceManagement/managedDevices")
    items = body["value"]
    assert items
    assert "@odata.nextLink" not in body
    assert set(sample("managedDevices-list.json")["value"][0]) <= set(items[0])
    devices = {d["deviceId"]: d for d in dump(sb, "devices")["value"]}
    users = {u["id"]: u for u in dump(sb, "users")["value"]}
    for item in items:
        device = devices[item["azureADDeviceId"]]
        assert item["deviceName"] == device["displayName"]
        assert item["id"] == device["managedDeviceId"]
        if device["registeredOwnerId"]:
            assert item["userPrincipalName"] == users[device["registeredOwnerId"]]["userPrincipalName"]
            assert item["userId"] == device["registeredOwnerId"]
        else:
            assert (item["userPrincipalName"], item["userId"]) == ("", "")


def test_managed_devices_page_with_top_and_select(get: Get) -> None:
    body = get(
        "/v1.0/deviceManagement/managedDevices", top=5, select="azureADDeviceId,userPrincipalName"
    ).json()
    assert len(body["value"]) == 5
    assert set(body["value"][0]) == {"@odata.type", "id", "azureADDeviceId", "userPrincipalName"}
    second = get(body["@odata.nextLink"]).json()
    assert {d["id"] for d in second["value"]}.isdisjoint({d["id"] for d in body["value"]})


def test_managed_devices_are_403_when_the_tenant_has_no_intune(get: Get, sb: Sandbox) -> None:
    sb.set_tenant(intune_enabled=False)
    response = get("/v1.0/deviceManagement/managedDevices")
    assert response.status_code == 403
    assert "Request not applicable" in json.loads(response.json()["error"]["message"])["Message"]


@pytest.mark.parametrize(
    ("permission", "path"),
    [
        pytest.param("User.Read.All", "/v1.0/users", id="users"),
        pytest.param("User.Read.All", "/v1.0/users/delta", id="users-delta"),
        pytest.param("Device.Read.All", "/v1.0/devices", id="devices"),
        pytest.param("Device.Read.All", "/v1.0/devices/delta", id="devices-delta"),
        pytest.param("Device.Read.All", "/v1.0/devices/{device}/registeredOwners", id="owners"),
        pytest.param(
            "DeviceManagementManagedDevices.Read.All", "/v1.0/deviceManagement/managedDevices", id="intune"
        ),
    ],
)
def test_a_missing_permission_is_403(get: Get, sb: Sandbox, permission: str, path: str) -> None:
    device = dump(sb, "devices")["value"][0]["id"]
    granted = ["User.Read.All", "Device.Read.All", "DeviceManagementManagedDevices.Read.All"]
    sb.set_tenant(permissions=[p for p in granted if p != permission])
    response = get(path.format(device=device))
    if permission.startswith("DeviceManagement"):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Forbidden"
    else:
        error = assert_graph_error(response, 403, "Authorization_RequestDenied")
        assert error["message"] == sample("error-403-authorization-requestdenied.json")["error"]["message"]
    sb.set_tenant(permissions=granted)
    assert get(path.format(device=device)).status_code == 200


def test_writes_are_403_for_a_read_only_app(sb: Sandbox, http: requests.Session, token: str) -> None:
    response = http.post(f"{sb.base_url}/v1.0/users", json={}, headers={"Authorization": f"Bearer {token}"})
    assert_graph_error(response, 403, "Authorization_RequestDenied")


def test_unknown_segment_is_400(get: Get) -> None:
    error = assert_graph_error(get("/v1.0/groupz"), 400, "BadRequest")
    assert "groupz" in error["message"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(None, "Access token is empty.", id="missing"),
        pytest.param("Bearer ", "Access token is empty.", id="empty"),
        pytest.param("Basic abc", "Access token is empty.", id="not-bearer"),
        pytest.param("Bearer opaque", "IDX14100", id="not-a-jwt"),
        pytest.param("Bearer a.b.c", "Access token validation failure.", id="forged"),
    ],
)
def test_missing_or_bad_tokens_are_401(
    sb: Sandbox, http: requests.Session, header: str | None, message: str
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = http.get(f"{sb.base_url}/v1.0/users", headers=headers)
    error = assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert error["message"].startswith(message)
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_an_expired_token_is_401_lifetime_validation_failed(sb: Sandbox, get: Get) -> None:
    assert get("/v1.0/users", top=1).status_code == 200
    sb.set_tenant(advance_clock=3600)
    error = assert_graph_error(get("/v1.0/users", top=1), 401, "InvalidAuthenticationToken")
    assert error["message"] == "Lifetime validation failed, the token is expired."


def test_a_token_with_one_character_changed_is_401(sb: Sandbox, http: requests.Session, token: str) -> None:
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    response = http.get(f"{sb.base_url}/v1.0/users", headers={"Authorization": f"Bearer {forged}"})
    assert_graph_error(response, 401, "InvalidAuthenticationToken")


def test_count_true_with_eventual_consistency_adds_odata_count(get: Get) -> None:
    body = get("/v1.0/users", top=5, count="true", headers={"ConsistencyLevel": "eventual"}).json()
    assert body["@odata.count"] == 200
    assert "@odata.count" not in get("/v1.0/users", top=5, count="true").json()  # silently ignored


def test_one_managed_device_by_its_intune_id(get: Get) -> None:
    first = get("/v1.0/deviceManagement/managedDevices", top=1).json()["value"][0]
    one = get(f"/v1.0/deviceManagement/managedDevices/{first['id']}", select="serialNumber").json()
    assert one["serialNumber"] == first["serialNumber"]
    assert one["@odata.context"].endswith("managedDevices/$entity")


def test_one_device_by_object_id_and_by_device_id(get: Get, sb: Sandbox) -> None:
    device = dump(sb, "devices")["value"][0]
    assert get(f"/v1.0/devices/{device['id']}").json()["deviceId"] == device["deviceId"]
    assert get(f"/v1.0/devices(deviceId='{device['deviceId']}')").json()["id"] == device["id"]
