"""AQL search on the simulated workspace: paging, isLast in both forms, attribute inclusion,
matching rules, quoting of awkward names and values, and malformed queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from importer.sandbox.aql import quote_aql
from importer.sandbox.assets import AssetsService
from importer.sandbox.assets_testing import AssetsCaller, make_service, make_type

AWKWARD = [
    pytest.param('15" Screen', id="double-quote"),
    pytest.param("C:\\Users\\anna", id="backslashes"),
    pytest.param("O'Brien", id="single-quote"),
    pytest.param("two\nlines", id="newline"),
    pytest.param("Zoë Ångström 東京 🚀", id="non-ascii"),
    pytest.param('\\"', id="backslash-then-quote"),
    pytest.param("AND OR IN", id="keywords-as-value"),
    pytest.param("  padded  ", id="surrounding-spaces"),
]


@dataclass
class Fleet:
    service: AssetsService
    api: AssetsCaller
    user_type: str
    device_type: str
    users: dict[str, str]
    devices: dict[str, str]
    user_ids: list[str]
    device_ids: list[str]

    def create(self, type_id: str, values: dict[str, Any]) -> str:
        ids = self.users if type_id == self.user_type else self.devices
        attributes = [
            {"objectTypeAttributeId": ids[name], "objectAttributeValues": [{"value": value}]}
            for name, value in values.items()
        ]
        response = self.api.post("/object/create", {"objectTypeId": type_id, "attributes": attributes})
        assert response.status == 201, response.body
        return str(response.body["id"])

    def hits(self, ql: str, **query: object) -> list[str]:
        response = self.api.aql(ql, maxResults=1000, **query)
        assert response.status == 200, response.body
        return [value["id"] for value in response.body["values"]]


@pytest.fixture
def fleet() -> Fleet:
    service = make_service()
    api = AssetsCaller(service)
    user_type, users = make_type(
        api,
        "Entra User",
        [
            {"name": "Entra Object Id", "type": 0, "defaultTypeId": 0, "uniqueAttribute": True},
            {"name": "Department", "type": 0, "defaultTypeId": 0},
            {"name": "Account", "type": 2},
            {"name": "State", "type": 7},
            {"name": "Age", "type": 0, "defaultTypeId": 3},
        ],
    )
    device_type, devices = make_type(
        api,
        "Entra Device",
        [
            {"name": "Entra Object Id", "type": 0, "defaultTypeId": 0, "uniqueAttribute": True},
            {"name": "Owner", "type": 1, "typeValue": user_type, "additionalValue": "4"},
        ],
    )
    fleet = Fleet(service, api, user_type, device_type, users, devices, [], [])
    account = service.add_jira_user("anna@contoso.com", "Anna Smith")
    for n in range(12):
        values = {"Name": f"User {n}", "Entra Object Id": f"u-{n}", "Department": "Sales" if n % 3 else "IT"}
        if n == 0:
            values.update({"Account": account, "State": "Active", "Age": "30"})
        fleet.user_ids.append(fleet.create(user_type, values))
    for n in range(18):
        owner = fleet.user_ids[n % 12]
        fleet.device_ids.append(
            fleet.create(device_type, {"Name": f"PC-{n:02d}", "Entra Object Id": f"d-{n}", "Owner": owner})
        )
    return fleet


def test_paging_through_a_type(fleet: Fleet) -> None:
    seen: list[str] = []
    start = 0
    while True:
        body = fleet.api.aql(f"objectTypeId = {fleet.device_type}", startAt=start, maxResults=5).body
        assert (body["startAt"], body["maxResults"], body["total"]) == (start, 5, 18)
        assert body["isLast"] is body["last"]
        seen += [value["id"] for value in body["values"]]
        start += len(body["values"])
        if body["isLast"]:
            break
        assert len(body["values"]) == 5
    assert seen == fleet.device_ids  # id (creation) order, each once


def test_is_last_can_be_the_string_of_the_spec_example(fleet: Fleet) -> None:
    fleet.service.configure(is_last_as_string=True)
    first = fleet.api.aql(f"objectTypeId = {fleet.device_type}", maxResults=10).body
    last = fleet.api.aql(f"objectTypeId = {fleet.device_type}", startAt=10, maxResults=10).body
    assert (first["isLast"], last["isLast"]) == ("false", "true")
    assert "last" not in first
    fleet.service.configure(is_last_as_string=False)
    assert fleet.api.aql(f"objectTypeId = {fleet.device_type}").body["isLast"] is True


def test_paging_parameters(fleet: Fleet) -> None:
    defaults = fleet.api.aql(f"objectTypeId = {fleet.device_type}").body
    assert (defaults["startAt"], defaults["maxResults"]) == (0, 25)
    capped = fleet.api.aql(f"objectTypeId = {fleet.device_type}", maxResults=5000).body
    assert capped["maxResults"] == 1000
    beyond = fleet.api.aql(f"objectTypeId = {fleet.device_type}", startAt=100).body
    assert (beyond["values"], beyond["isLast"], beyond["total"]) == ([], True, 18)
    for bad in ({"startAt": -1}, {"maxResults": 0}, {"maxResults": "ten"}, {"includeAttributes": "maybe"}):
        assert fleet.api.aql(f"objectTypeId = {fleet.device_type}", **bad).status == 400


def test_attributes_in_aql_results_carry_only_ids_and_values(fleet: Fleet) -> None:
    body = fleet.api.aql(f'Key = "ENTRA-{fleet.device_ids[0]}"').body
    (device,) = body["values"]
    for attribute in device["attributes"]:
        assert "objectTypeAttribute" not in attribute
        assert set(attribute) == {
            "workspaceId",
            "globalId",
            "id",
            "objectTypeAttributeId",
            "objectAttributeValues",
            "objectId",
        }
    by_id = {a["objectTypeAttributeId"]: a["objectAttributeValues"] for a in device["attributes"]}
    owner = by_id[fleet.devices["Owner"]][0]
    assert owner["referencedObject"]["label"] == "User 0"
    definitions = {a["id"]: a for a in body["objectTypeAttributes"]}
    assert definitions[fleet.devices["Owner"]]["name"] == "Owner"
    assert definitions[fleet.devices["Owner"]]["objectType"]["id"] == fleet.device_type
    assert set(definitions) == set(fleet.devices.values())


def test_include_attributes_false_omits_attributes(fleet: Fleet) -> None:
    body = fleet.api.aql(f"objectTypeId = {fleet.user_type}", includeAttributes=False).body
    assert body["values"]
    assert all("attributes" not in value for value in body["values"])
    assert body["values"][0]["label"] == "User 0"


@pytest.mark.parametrize(
    ("ql", "expected"),
    [
        pytest.param('objectType = "entra device"', "devices", id="type-name-any-case"),
        pytest.param("OBJECTTYPEID = {device_type}", "devices", id="keyword-any-case"),
        pytest.param("objectSchemaId = {schema}", "everything", id="schema-id"),
        pytest.param('objectSchema = "Entra ID"', "everything", id="schema-name"),
        pytest.param("objectSchema = entra", "everything", id="schema-key"),
        pytest.param("objectSchemaId = 6", "itsm", id="other-schema"),
        pytest.param('objectType = "No Such Type"', "nothing", id="unknown-type-name"),
        pytest.param("objectTypeId IN ({user_type}, {device_type})", "everything", id="type-ids-in"),
    ],
)
def test_object_property_keywords(fleet: Fleet, ql: str, expected: str) -> None:
    text = ql.format(device_type=fleet.device_type, user_type=fleet.user_type, schema=fleet.service.schema_id)
    hits = fleet.hits(text)
    wanted = {
        "devices": fleet.device_ids,
        "everything": fleet.user_ids + fleet.device_ids,
        "nothing": [],
    }.get(expected)
    if expected == "itsm":
        assert len(hits) == 5
        assert not set(hits) & set(fleet.user_ids + fleet.device_ids)
    else:
        assert hits == wanted


def test_key_and_object_id(fleet: Fleet) -> None:
    device = fleet.device_ids[3]
    assert fleet.hits(f'Key = "ENTRA-{device}"') == [device]
    assert fleet.hits(f"key = entra-{device}") == [device]
    assert fleet.hits(f"objectId = {device}") == [device]
    assert fleet.hits(f'Key IN ("ENTRA-{device}", "ENTRA-{fleet.device_ids[4]}", "ENTRA-999999")') == [
        device,
        fleet.device_ids[4],
    ]
    assert fleet.hits(f'Key = "ITSM-{device}"') == []


def test_text_equality_is_whole_value_and_case_insensitive(fleet: Fleet) -> None:
    assert fleet.hits('"Name" = "user 1"') == [fleet.user_ids[1]]
    assert fleet.hits('Name = "User"') == []
    assert fleet.hits("Department = it") == [fleet.user_ids[n] for n in (0, 3, 6, 9)]
    assert fleet.hits('Name LIKE "user 1"') == [fleet.user_ids[1], fleet.user_ids[10], fleet.user_ids[11]]


def test_unique_attribute_lookups(fleet: Fleet) -> None:
    assert fleet.hits('"Entra Object Id" = "U-5"') == [fleet.user_ids[5]]
    in_list = f'objectTypeId = {fleet.device_type} AND "Entra Object Id" IN ("d-2", "d-7", "u-1", "nope")'
    assert fleet.hits(in_list) == [fleet.device_ids[2], fleet.device_ids[7]]
    assert fleet.hits('"entra object id" IN ("u-1", "d-1")') == [fleet.user_ids[1], fleet.device_ids[1]]


def test_reference_user_status_and_number_matching(fleet: Fleet) -> None:
    owned_by_zero = [fleet.device_ids[n] for n in (0, 12)]
    assert fleet.hits('Owner = "User 0"') == owned_by_zero
    assert fleet.hits(f'Owner = "ENTRA-{fleet.user_ids[0]}"') == owned_by_zero
    assert fleet.hits('Account = "Anna Smith"') == [fleet.user_ids[0]]
    assert fleet.hits("State = active") == [fleet.user_ids[0]]
    assert fleet.hits("Age = 30") == [fleet.user_ids[0]]  # a Double stored as "30.0"


def test_and_or_and_parentheses(fleet: Fleet) -> None:
    both = f'objectTypeId = {fleet.user_type} AND (Department = IT OR Name = "User 1")'
    assert fleet.hits(both) == [fleet.user_ids[n] for n in (0, 1, 3, 6, 9)]
    either = '"Entra Object Id" = "u-1" OR "Entra Object Id" = "d-1"'
    assert fleet.hits(either) == [fleet.user_ids[1], fleet.device_ids[1]]
    mixed = f"Department = Sales OR objectTypeId = {fleet.device_type}"
    assert len(fleet.hits(mixed)) == 8 + 18


@pytest.mark.parametrize("value", AWKWARD)
def test_awkward_values_match_exactly_when_quoted(fleet: Fleet, value: str) -> None:
    object_id = fleet.create(fleet.user_type, {"Name": value, "Entra Object Id": value})
    assert fleet.hits(f'"Entra Object Id" = {quote_aql(value)}') == [object_id]
    assert fleet.hits(f"Name = {quote_aql(value)}") == [object_id]


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_attribute_names_work_when_quoted(fleet: Fleet, name: str) -> None:
    created = fleet.api.post(
        f"/objecttypeattribute/{fleet.user_type}", {"name": name, "type": 0, "defaultTypeId": 0}
    )
    assert created.status == 201
    assert created.body["name"] == name.strip()  # names are trimmed, values are not
    fleet.users[name] = created.body["id"]
    object_id = fleet.create(fleet.user_type, {"Name": "X", "Entra Object Id": "x-1", name: "v"})
    assert fleet.hits(f"{quote_aql(name.strip())} = v") == [object_id]


@pytest.mark.parametrize(
    "ql",
    [
        pytest.param('"No Such Attribute" = x', id="unknown-attribute"),
        pytest.param("Name = ", id="missing-value"),
        pytest.param("Name = 'single quoted'", id="single-quotes"),
        pytest.param('Name = "unterminated', id="unterminated"),
        pytest.param("objectTypeId = abc", id="non-numeric-id"),
        pytest.param("objectId LIKE 4", id="like-on-id"),
        pytest.param("", id="empty"),
    ],
)
def test_invalid_aql_is_400_with_an_error_message(fleet: Fleet, ql: str) -> None:
    response = fleet.api.aql(ql)
    assert response.status == 400
    assert response.body["errors"] == {}
    assert response.body["errorMessages"]
    count = fleet.api.post("/object/aql/totalcount", {"qlQuery": ql})
    assert count.status == 400


def test_the_query_must_be_in_ql_query(fleet: Fleet) -> None:
    assert fleet.api.post("/object/aql", {"iql": "Name = x"}).status == 400
    assert fleet.api.post("/object/aql", ["Name = x"]).status == 400


def test_total_count(fleet: Fleet) -> None:
    response = fleet.api.post("/object/aql/totalcount", {"qlQuery": "Department = Sales"})
    assert (response.status, response.body) == (200, {"totalCount": 8})
    types = f"objectTypeId = {fleet.device_type}"
    assert fleet.api.post("/object/aql/totalcount", {"qlQuery": types}).body == {"totalCount": 18}


def test_results_follow_deletes_and_renames(fleet: Fleet) -> None:
    fleet.api.delete(f"/object/{fleet.device_ids[0]}")
    assert fleet.hits('"Entra Object Id" = "d-0"') == []
    assert fleet.api.aql(f"objectTypeId = {fleet.device_type}").body["total"] == 17
    fleet.api.put(f"/objecttypeattribute/{fleet.user_type}/{fleet.users['Department']}", {"name": "Team"})
    assert fleet.hits("Team = IT")
    assert fleet.api.aql("Department = IT").status == 400
