"""Object CRUD on the simulated Assets workspace: write validation per attribute type, read shapes,
required and unique attributes, references, and PUT semantics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from importer.sandbox.assets import AssetsService
from importer.sandbox.assets_testing import AssetsCaller, make_service, make_type

ATTRIBUTES: list[dict[str, Any]] = [
    {
        "name": "Entra Object Id",
        "type": 0,
        "defaultTypeId": 0,
        "uniqueAttribute": True,
        "minimumCardinality": 1,
    },
    {"name": "Notes", "type": 0, "defaultTypeId": 9},
    {"name": "Age", "type": 0, "defaultTypeId": 1},
    {"name": "Enabled", "type": 0, "defaultTypeId": 2},
    {"name": "Score", "type": 0, "defaultTypeId": 3},
    {"name": "Hired", "type": 0, "defaultTypeId": 4},
    {"name": "Shift Start", "type": 0, "defaultTypeId": 5},
    {"name": "Last Sign-in", "type": 0, "defaultTypeId": 6},
    {"name": "Profile", "type": 0, "defaultTypeId": 7},
    {"name": "Mail", "type": 0, "defaultTypeId": 8, "maximumCardinality": -1},
    {"name": "Tier", "type": 0, "defaultTypeId": 10, "options": "Gold,Silver,Bronze"},
    {"name": "Address", "type": 0, "defaultTypeId": 11},
    {"name": "Account", "type": 2},
    {"name": "State", "type": 7},
]


@dataclass
class World:
    service: AssetsService
    api: AssetsCaller
    user_type: str
    device_type: str
    users: dict[str, str]  # attribute name -> id on the user type
    devices: dict[str, str]
    account_id: str

    def create(self, type_id: str, values: dict[str, Any]) -> Any:
        """POST /object/create with values by attribute name (lists for several values)."""
        ids = self.users if type_id == self.user_type else self.devices
        attributes = [
            {
                "objectTypeAttributeId": ids[name],
                "objectAttributeValues": [
                    {"value": v} for v in (value if isinstance(value, list) else [value])
                ],
            }
            for name, value in values.items()
        ]
        return self.api.post("/object/create", {"objectTypeId": type_id, "attributes": attributes})

    def user(self, entra_id: str, name: str = "Anna", **values: Any) -> Any:
        return self.create(self.user_type, {"Name": name, "Entra Object Id": entra_id, **values})

    def values_of(self, object_id: str) -> dict[str, list[dict[str, Any]]]:
        """GET /object/{id}; attribute values by attribute name."""
        body = self.api.get(f"/object/{object_id}").body
        return {a["objectTypeAttribute"]["name"]: a["objectAttributeValues"] for a in body["attributes"]}


@pytest.fixture
def world() -> World:
    service = make_service()
    api = AssetsCaller(service)
    user_type, users = make_type(api, "Entra User", ATTRIBUTES)
    device_type, devices = make_type(
        api,
        "Entra Device",
        [
            {"name": "Entra Object Id", "type": 0, "defaultTypeId": 0, "uniqueAttribute": True},
            {"name": "Owner", "type": 1, "typeValue": user_type, "additionalValue": "4"},
            {
                "name": "Users",
                "type": 1,
                "typeValue": user_type,
                "additionalValue": "4",
                "maximumCardinality": -1,
            },
        ],
    )
    account_id = service.add_jira_user("anna@contoso.com", "Anna Smith")
    return World(service, api, user_type, device_type, users, devices, account_id)


VALID = [
    pytest.param("Name", "x" * 255, "x" * 255, id="text-255-chars"),
    pytest.param("Name", 'Zoë "Q" O\'Brien \\ 東京', 'Zoë "Q" O\'Brien \\ 東京', id="text-any-characters"),
    pytest.param(
        "Notes", "line one\nline two " + "y" * 5000, "line one\nline two " + "y" * 5000, id="textarea"
    ),
    pytest.param("Age", "42", "42", id="integer"),
    pytest.param("Age", 42, "42", id="integer-as-json-number"),
    pytest.param("Age", "-7", "-7", id="negative-integer"),
    pytest.param("Enabled", "TRUE", "true", id="boolean-any-case"),
    pytest.param("Enabled", False, "false", id="boolean-json"),
    pytest.param("Score", "3", "3.0", id="double-canonical"),
    pytest.param("Score", "2.5", "2.5", id="double"),
    pytest.param("Hired", "2024-02-29", "2024-02-29", id="date"),
    pytest.param("Shift Start", "09:30", "09:30", id="time"),
    pytest.param(
        "Last Sign-in", "2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00.000Z", id="datetime-offset"
    ),
    pytest.param("Last Sign-in", "2024-05-01T08:00:00.123Z", "2024-05-01T08:00:00.123Z", id="datetime-z"),
    pytest.param(
        "Last Sign-in", "2024-05-01T08:00:00", "2024-05-01T08:00:00.000Z", id="datetime-naive-is-utc"
    ),
    pytest.param("Profile", "https://contoso.example/u/1", "https://contoso.example/u/1", id="url"),
    pytest.param("Mail", "anna@contoso.com", "anna@contoso.com", id="email"),
    pytest.param("Tier", "gold", "Gold", id="select-option-any-case"),
    pytest.param("Address", "10.0.0.1", "10.0.0.1", id="ipv4"),
    pytest.param("Address", "2001:DB8::1", "2001:db8::1", id="ipv6"),
    pytest.param("State", "2", "2", id="status-by-id"),
    pytest.param("State", "closed", "3", id="status-by-name"),
]


@pytest.mark.parametrize(("attribute", "sent", "stored"), VALID)
def test_valid_values_are_stored_in_canonical_form(
    world: World, attribute: str, sent: Any, stored: str
) -> None:
    values = {"Name": "Anna", "Entra Object Id": "u-1", attribute: sent}
    created = world.create(world.user_type, values)
    assert created.status == 201, created.body
    read = world.values_of(created.body["id"])[attribute]
    assert read[0].get("value", read[0]["searchValue"]) == stored


INVALID = [
    pytest.param("Name", "x" * 256, id="text-256-chars"),
    pytest.param("Age", "4.2", id="integer-with-fraction"),
    pytest.param("Age", "99999999999", id="integer-overflow"),
    pytest.param("Age", "forty", id="integer-word"),
    pytest.param("Enabled", "yes", id="boolean-yes"),
    pytest.param("Score", "abc", id="double-word"),
    pytest.param("Score", "nan", id="double-nan"),
    pytest.param("Hired", "2024-02-30", id="date-impossible"),
    pytest.param("Hired", "2024-02-29T10:00:00Z", id="date-with-time"),
    pytest.param("Hired", "29/02/2024", id="date-not-iso"),
    pytest.param("Shift Start", "25:00", id="time-impossible"),
    pytest.param("Last Sign-in", "yesterday", id="datetime-word"),
    pytest.param("Profile", "contoso.example", id="url-without-scheme"),
    pytest.param("Profile", "ftp://contoso.example", id="url-ftp"),
    pytest.param("Mail", "not-an-email", id="email"),
    pytest.param("Tier", "Platinum", id="select-not-an-option"),
    pytest.param("Address", "10.0.0.256", id="ip"),
    pytest.param("Account", "557058:00000000-0000-0000-0000-000000000000", id="user-unknown"),
    pytest.param("State", "Nope", id="status-unknown-name"),
    pytest.param("State", "999", id="status-unknown-id"),
    pytest.param("Name", {"nested": True}, id="value-not-a-string"),
]


@pytest.mark.parametrize(("attribute", "sent"), INVALID)
def test_invalid_values_are_400_keyed_by_the_attribute(world: World, attribute: str, sent: Any) -> None:
    response = world.create(world.user_type, {"Name": "Anna", "Entra Object Id": "u-1", attribute: sent})
    assert response.status == 400
    assert response.body["errorMessages"] == []
    assert list(response.body["errors"]) == [f"rlabs-insight-attribute-{world.users[attribute]}"]
    assert world.service.snapshot_stats()["objects"]["Entra User"] == 0


def test_every_invalid_attribute_is_reported_at_once(world: World) -> None:
    response = world.create(
        world.user_type, {"Name": "A", "Entra Object Id": "u", "Age": "x", "Enabled": "x"}
    )
    assert set(response.body["errors"]) == {
        f"rlabs-insight-attribute-{world.users['Age']}",
        f"rlabs-insight-attribute-{world.users['Enabled']}",
    }


def test_a_status_of_another_schema_is_refused(world: World) -> None:
    other = world.api.post("/config/statustype", {"name": "ITSM only", "category": 1, "objectSchemaId": "6"})
    assert world.user("u-1", State=other.body["id"]).status == 400


def test_user_and_status_read_shapes(world: World) -> None:
    created = world.user("u-1", Account=world.account_id, State="Active")
    values = world.values_of(created.body["id"])
    (user,) = values["Account"]
    assert "value" not in user
    assert user["user"]["key"] == world.account_id
    assert user["user"]["displayName"] == user["displayValue"] == "Anna Smith"
    assert user["user"]["emailAddress"] == "anna@contoso.com"
    assert (user["searchValue"], user["referencedType"]) == (world.account_id, False)
    (status,) = values["State"]
    assert status["status"] == {"id": "2", "name": "Active", "category": 1}
    assert (status["displayValue"], status["searchValue"]) == ("Active", "2")


def test_system_values_and_dates_read_as_iso_strings(world: World) -> None:
    created = world.user("u-1", **{"Last Sign-in": "2024-05-01T20:04:41.527Z", "Hired": "2021-02-16"})
    values = world.values_of(created.body["id"])
    assert values["Key"][0]["value"] == created.body["objectKey"]
    assert values["Created"][0]["value"] == created.body["created"]
    assert values["Last Sign-in"][0] == {
        "value": "2024-05-01T20:04:41.527Z",
        "displayValue": "01/May/24 8:04 PM",
        "searchValue": "2024-05-01T20:04:41.527Z",
        "referencedType": False,
    }
    assert values["Hired"][0]["value"] == "2021-02-16"


def test_create_answers_201_with_the_object_without_attributes(world: World) -> None:
    created = world.user("u-1", name="Anna Smith")
    assert created.status == 201
    body = created.body
    assert "attributes" not in body
    assert (body["label"], body["name"]) == ("Anna Smith", "Anna Smith")
    assert body["objectKey"] == f"ENTRA-{body['id']}"
    assert body["globalId"] == f"{world.service.workspace_id}:{body['id']}"
    assert body["objectType"]["id"] == world.user_type
    assert body["_links"]["self"].endswith(f"/v1/object/{body['id']}")
    assert body["timestamp"] > 0


def _walk_ids(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "defaultType":  # DefaultType.id is an integer in the spec
                continue
            if key in ("id", "objectTypeId", "objectTypeAttributeId", "objectId", "referenceObjectTypeId"):
                yield f"{path}.{key}", value
            if key == "objectSchemaId" and value is not None:
                yield f"{path}.{key}", value
            yield from _walk_ids(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk_ids(item, f"{path}[{index}]")


def test_ids_are_strings_in_every_response(world: World) -> None:
    anna = world.user("u-1", Account=world.account_id, State="Active").body["id"]
    device = world.create(world.device_type, {"Name": "PC", "Owner": anna})
    bodies = [
        device.body,
        world.api.get(f"/object/{anna}").body,
        world.api.get(f"/object/{device.body['id']}").body,
        world.api.aql(f"objectTypeId = {world.device_type}").body,
        world.api.get(f"/objecttype/{world.device_type}/attributes").body,
        world.api.get("/config/statustype").body,
    ]
    for body in bodies:
        for where, value in _walk_ids(body):
            assert isinstance(value, str), where


def test_references_by_id_or_key_and_their_read_shape(world: World) -> None:
    anna = world.user("u-1", name="Anna Smith").body
    by_id = world.create(world.device_type, {"Name": "PC-1", "Owner": anna["id"]})
    by_key = world.create(world.device_type, {"Name": "PC-2", "Owner": anna["objectKey"]})
    assert (by_id.status, by_key.status) == (201, 201)
    (value,) = world.values_of(by_key.body["id"])["Owner"]
    assert "value" not in value
    assert value["referencedType"] is True
    assert (value["displayValue"], value["searchValue"]) == ("Anna Smith", anna["objectKey"])
    referenced = value["referencedObject"]
    assert (referenced["id"], referenced["label"], referenced["objectKey"]) == (
        anna["id"],
        "Anna Smith",
        anna["objectKey"],
    )
    assert referenced["objectType"]["name"] == "Entra User"
    assert "attributes" not in referenced


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("999999", id="missing-id"),
        pytest.param("ENTRA-999999", id="missing-key"),
        pytest.param("ITSM-81", id="object-of-another-type"),
        pytest.param("not a ref", id="garbage"),
    ],
)
def test_a_reference_must_exist_and_be_of_the_referenced_type(world: World, target: str) -> None:
    response = world.create(world.device_type, {"Name": "PC", "Owner": target})
    assert response.status == 400
    assert f"rlabs-insight-attribute-{world.devices['Owner']}" in response.body["errors"]


def test_cardinality_is_enforced(world: World) -> None:
    anna = world.user("u-1").body["id"]
    bob = world.user("u-2", name="Bob").body["id"]
    several = world.create(world.device_type, {"Name": "PC", "Users": [anna, bob, anna]})
    assert several.status == 201
    assert [v["referencedObject"]["id"] for v in world.values_of(several.body["id"])["Users"]] == [anna, bob]
    too_many = world.create(world.device_type, {"Name": "PC2", "Owner": [anna, bob]})
    assert too_many.status == 400
    mails = world.user("u-3", Mail=["a@contoso.com", "b@contoso.com"])
    assert len(world.values_of(mails.body["id"])["Mail"]) == 2


def test_required_attributes_must_be_present_on_create(world: World) -> None:
    response = world.create(world.user_type, {"Age": "3"})
    assert response.status == 400
    assert set(response.body["errors"]) == {
        f"rlabs-insight-attribute-{world.users['Name']}",
        f"rlabs-insight-attribute-{world.users['Entra Object Id']}",
    }
    empty = world.create(world.user_type, {"Name": "", "Entra Object Id": "u-1"})
    assert empty.status == 400


@pytest.mark.parametrize(
    ("attribute_id", "message"),
    [
        pytest.param("Key", "system attribute", id="system-attribute"),
        pytest.param("9999", "not found", id="unknown-attribute"),
        pytest.param("device:Owner", "not found", id="attribute-of-another-type"),
    ],
)
def test_attributes_that_cannot_be_written(world: World, attribute_id: str, message: str) -> None:
    if attribute_id == "Key":
        attribute_id = world.users["Key"]
    elif attribute_id.startswith("device:"):
        attribute_id = world.devices["Owner"]
    attributes = [
        {"objectTypeAttributeId": world.users["Name"], "objectAttributeValues": [{"value": "A"}]},
        {"objectTypeAttributeId": world.users["Entra Object Id"], "objectAttributeValues": [{"value": "u"}]},
        {"objectTypeAttributeId": attribute_id, "objectAttributeValues": [{"value": "x"}]},
    ]
    response = world.api.post("/object/create", {"objectTypeId": world.user_type, "attributes": attributes})
    assert response.status == 400
    assert message in response.body["errors"][f"rlabs-insight-attribute-{attribute_id}"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"attributes": []}, id="no-object-type"),
        pytest.param({"objectTypeId": "999", "attributes": []}, id="unknown-object-type"),
        pytest.param({"objectTypeId": "21"}, id="no-attributes"),
        pytest.param(
            {"objectTypeId": "21", "attributes": [{"objectAttributeValues": []}]}, id="no-attribute-id"
        ),
        pytest.param(
            {
                "objectTypeId": "21",
                "attributes": [{"objectTypeAttributeId": "149", "objectAttributeValues": "x"}],
            },
            id="values-not-a-list",
        ),
        pytest.param([], id="not-an-object"),
    ],
)
def test_malformed_object_in_bodies_are_400(world: World, body: Any) -> None:
    response = world.api.post("/object/create", body)
    assert response.status == 400
    assert set(response.body) == {"errorMessages", "errors"}


def test_unique_attributes_refuse_a_value_another_object_holds(world: World) -> None:
    first = world.user("u-1")
    duplicate = world.user("U-1", name="Other")  # uniqueness ignores case, like AQL's equality
    key = f"rlabs-insight-attribute-{world.users['Entra Object Id']}"
    assert duplicate.status == 400
    assert list(duplicate.body["errors"]) == [key]
    assert first.body["objectKey"] in duplicate.body["errors"][key]
    second = world.user("u-2", name="Bob").body["id"]
    update = world.api.put(
        f"/object/{second}",
        {
            "attributes": [
                {
                    "objectTypeAttributeId": world.users["Entra Object Id"],
                    "objectAttributeValues": [{"value": "u-1"}],
                }
            ]
        },
    )
    assert update.status == 400
    keep_own = world.api.put(
        f"/object/{first.body['id']}",
        {
            "attributes": [
                {
                    "objectTypeAttributeId": world.users["Entra Object Id"],
                    "objectAttributeValues": [{"value": "u-1"}],
                }
            ]
        },
    )
    assert keep_own.status == 200


def test_unique_enforcement_can_be_switched_off_for_tests(world: World) -> None:
    world.user("u-1")
    world.service.configure(enforce_unique=False)
    assert world.user("u-1", name="Twin").status == 201
    assert world.user("u-1", name="Triplet").status == 201
    assert world.service.snapshot_stats()["duplicate_keys"]["Entra User"] == 1
    world.service.configure(enforce_unique=True)
    assert world.user("u-1", name="Quad").status == 400
    twins = world.api.aql('"Entra Object Id" = "u-1"').body
    assert twins["total"] == 3


def test_unique_values_are_free_again_after_a_change_or_delete(world: World) -> None:
    anna = world.user("u-1").body["id"]
    world.api.put(
        f"/object/{anna}",
        {
            "attributes": [
                {
                    "objectTypeAttributeId": world.users["Entra Object Id"],
                    "objectAttributeValues": [{"value": "u-9"}],
                }
            ]
        },
    )
    assert world.user("u-1", name="New").status == 201
    assert world.api.delete(f"/object/{anna}").status == 204
    assert world.user("u-9", name="Newer").status == 201


def test_put_changes_only_the_attributes_sent(world: World) -> None:
    created = world.user("u-1", name="Anna", Age="30", Tier="Gold")
    object_id = created.body["id"]
    before = world.api.get(f"/object/{object_id}").body
    response = world.api.put(
        f"/object/{object_id}",
        {
            "objectTypeId": world.user_type,
            "attributes": [
                {"objectTypeAttributeId": world.users["Age"], "objectAttributeValues": [{"value": "31"}]}
            ],
        },
    )
    assert response.status == 200
    assert response.body["updated"] >= before["updated"]
    assert response.body["timestamp"] > before["timestamp"]
    assert all("objectTypeAttribute" in attribute for attribute in response.body["attributes"])
    values = world.values_of(object_id)
    assert (values["Age"][0]["value"], values["Tier"][0]["value"], values["Name"][0]["value"]) == (
        "31",
        "Gold",
        "Anna",
    )


def test_put_without_object_type_id_and_clearing_with_an_empty_list(world: World) -> None:
    object_id = world.user("u-1", Age="30", Tier="Gold").body["id"]
    cleared = world.api.put(
        f"/object/{object_id}",
        {"attributes": [{"objectTypeAttributeId": world.users["Age"], "objectAttributeValues": []}]},
    )
    assert cleared.status == 200
    values = world.values_of(object_id)
    assert "Age" not in values
    assert values["Tier"][0]["value"] == "Gold"


def test_put_refusals(world: World) -> None:
    object_id = world.user("u-1").body["id"]
    name = world.users["Name"]
    clear_required = {"attributes": [{"objectTypeAttributeId": name, "objectAttributeValues": []}]}
    assert world.api.put(f"/object/{object_id}", clear_required).status == 400
    move = {"objectTypeId": world.device_type, "attributes": []}
    assert world.api.put(f"/object/{object_id}", move).status == 400
    assert world.api.put("/object/999999", {"attributes": []}).status == 404
    label = world.api.put(
        f"/object/{object_id}",
        {"attributes": [{"objectTypeAttributeId": name, "objectAttributeValues": [{"value": "Renamed"}]}]},
    )
    assert label.body["label"] == "Renamed"


def test_get_by_id_or_key_and_unknown_objects(world: World) -> None:
    created = world.user("u-1").body
    assert world.api.get(f"/object/{created['objectKey']}").body["id"] == created["id"]
    assert world.api.get(f"/object/{created['objectKey'].lower()}").status == 200
    body = world.api.get(f"/object/{created['id']}").body
    assert body["extendedInfo"] == {"openIssuesExists": False, "attachmentsExists": False}
    assert world.api.get("/object/999999").status == 404
    assert world.api.get("/object/ITSM-999999").status == 404
    attributes = world.api.get(f"/object/{created['id']}/attributes").body
    assert [a["objectTypeAttribute"]["name"] for a in attributes][:4] == ["Key", "Name", "Created", "Updated"]


def test_delete_removes_the_object_and_references_to_it(world: World) -> None:
    anna = world.user("u-1").body["id"]
    bob = world.user("u-2", name="Bob").body["id"]
    device = world.create(world.device_type, {"Name": "PC", "Owner": anna, "Users": [anna, bob]}).body["id"]
    response = world.api.delete(f"/object/{anna}")
    assert (response.status, response.body) == (204, None)
    assert world.api.get(f"/object/{anna}").status == 404
    assert world.api.delete(f"/object/{anna}").status == 404
    values = world.values_of(device)
    assert "Owner" not in values
    assert [v["referencedObject"]["id"] for v in values["Users"]] == [bob]


def test_deleting_an_attribute_drops_its_values(world: World) -> None:
    object_id = world.user("u-1", Age="30").body["id"]
    assert world.api.delete(f"/objecttypeattribute/{world.users['Age']}").status == 200
    assert "Age" not in world.values_of(object_id)


def test_making_an_attribute_unique_checks_existing_values(world: World) -> None:
    world.user("u-1", Age="30")
    world.user("u-2", name="Bob", Age="30")
    path = f"/objecttypeattribute/{world.user_type}/{world.users['Age']}"
    assert world.api.put(path, {"uniqueAttribute": True}).status == 400
    assert world.api.put(path, {"uniqueAttribute": False}).status == 200


def test_hidden_emails_and_unknown_users_in_user_values(world: World) -> None:
    hidden = world.service.add_jira_user("hidden@contoso.com", "Hidden Person", email_visible=False)
    object_id = world.user("u-1", Account=hidden).body["id"]
    (value,) = world.values_of(object_id)["Account"]
    assert "emailAddress" not in value["user"]
    assert value["user"]["displayName"] == "Hidden Person"
