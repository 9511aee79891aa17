"""Schema: resolve by name (or list every drift), plan what is missing, apply idempotently."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
import requests
import responses

from importer.assets.client import AssetsClient
from importer.assets.schema import (
    AttributeRequirement,
    TypeRequirement,
    apply_schema,
    plan_schema,
    resolve_schema,
)
from importer.errors import SchemaDriftError

from .conftest import BASE

USER = TypeRequirement(
    name="Entra User",
    description="Users from Entra ID",
    icon="User",
    key_attribute="Entra Object ID",
    label_attribute="Name",
    statuses=("Active", "Deleted in Entra"),
    attributes=(
        AttributeRequirement(name="Entra Object ID", kind="text", unique=True, required=True),
        AttributeRequirement(name="Name", kind="text", label=True),
        AttributeRequirement(name="Mail", kind="email"),
        AttributeRequirement(name="Account Enabled", kind="boolean"),
        AttributeRequirement(name="Manager", kind="reference", reference_type="Entra User"),
        AttributeRequirement(name="Jira Account", kind="user"),
        AttributeRequirement(name="Sync State", kind="status"),
        AttributeRequirement(name="Aliases", kind="email", multi=True),
        AttributeRequirement(name="Tier", kind="select", options=("Gold", "Silver")),
    ),
)
DEVICE = TypeRequirement(
    name="Entra Device",
    icon="No Such Icon",
    key_attribute="Entra Object ID",
    label_attribute="Display Name",
    attributes=(AttributeRequirement(name="Owner", kind="reference", reference_type="Entra User"),),
)
REQUIREMENTS = (USER, DEVICE)


class FakeSchemaService:
    """A small stateful Assets for the schema endpoints (the sandbox does the full job)."""

    def __init__(self) -> None:
        self.schemas = [{"id": "6", "objectSchemaKey": "ENTRA", "name": "Entra"}]
        self.types: list[dict[str, Any]] = []
        self.attributes: list[dict[str, Any]] = []
        self.statuses = [{"id": "1", "name": "Active", "category": 1, "objectSchemaId": None}]
        self.calls: Counter[str] = Counter()
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self._next = 100

    def _id(self) -> str:
        self._next += 1
        return str(self._next)

    def add_type(self, name: str) -> str:
        type_id = self._id()
        self.types.append({"id": type_id, "name": name, "objectSchemaId": "6", "icon": {"id": "1"}})
        for attr_name, default, system, label in (
            ("Key", 0, True, False),
            ("Name", 0, False, True),
            ("Created", 6, True, False),
            ("Updated", 6, True, False),
        ):
            self.attributes.append(
                {
                    "id": self._id(),
                    "name": attr_name,
                    "type": 0,
                    "defaultType": {"id": default},
                    "system": system,
                    "label": label,
                    "objectType": {"id": type_id},
                }
            )
        return type_id

    def add_attribute(self, type_id: str, body: dict[str, Any]) -> dict[str, Any]:
        doc = {
            "id": self._id(),
            "name": body["name"],
            "type": body["type"],
            "objectType": {"id": type_id},
            "uniqueAttribute": body.get("uniqueAttribute", False),
            "label": body.get("label", False),
            "minimumCardinality": body.get("minimumCardinality", 0),
            "maximumCardinality": body.get("maximumCardinality", 1),
            "options": body.get("options", ""),
        }
        if body["type"] == 0:
            doc["defaultType"] = {"id": body["defaultTypeId"]}
        if body["type"] == 1:
            doc["referenceObjectTypeId"] = body["typeValue"]
            doc["referenceType"] = {"id": body["additionalValue"]}
        self.attributes.append(doc)
        return doc

    def __call__(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        path = (request.path_url or "").split("?")[0].split("/v1", 1)[1]
        key = f"{request.method} {re.sub(r'/[0-9]+', '/{id}', path)}"
        self.calls[key] += 1
        body = json.loads(request.body) if request.body else None
        if body is not None:
            self.bodies.append((key, body))
        result: Any
        if key == "GET /objectschema/list":
            result = {"startAt": 0, "maxResults": 100, "total": 1, "isLast": True, "values": self.schemas}
        elif key == "GET /objectschema/{id}/objecttypes/flat":
            result = self.types
        elif key == "GET /objectschema/{id}/attributes":
            result = self.attributes
        elif key == "GET /objecttype/{id}/attributes":
            type_id = path.split("/")[2]
            result = [a for a in self.attributes if a["objectType"]["id"] == type_id]
        elif key == "GET /config/statustype":
            result = self.statuses
        elif key == "POST /config/statustype":
            result = {
                "id": self._id(),
                "name": body["name"],
                "category": body["category"],
                "objectSchemaId": "6",
            }
            self.statuses.append(result)
        elif key == "GET /icon/global":
            result = [{"id": "1", "name": "Object"}, {"id": "7", "name": "User"}]
        elif key == "POST /objecttype/create":
            type_id = self.add_type(body["name"])
            result = next(t for t in self.types if t["id"] == type_id)
        elif key == "POST /objecttypeattribute/{id}":
            result = self.add_attribute(path.split("/")[2], body)
        elif key == "PUT /objecttypeattribute/{id}/{id}":
            doc = next(a for a in self.attributes if a["id"] == path.split("/")[3])
            doc.update(name=body["name"])
            result = doc
        elif key == "GET /config/referencetype":
            result = [{"id": "9", "name": "Depends on"}, {"id": "4", "name": "Reference"}]
        else:
            return 404, {}, "{}"
        return 200, {}, json.dumps(result)


@pytest.fixture
def fake() -> FakeSchemaService:
    service = FakeSchemaService()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=service)
        mock.add_callback(responses.POST, re.compile(re.escape(BASE) + r"/.*"), callback=service)
        mock.add_callback(responses.PUT, re.compile(re.escape(BASE) + r"/.*"), callback=service)
        yield service


def test_plan_on_an_empty_schema_lists_everything(fake: FakeSchemaService, client: AssetsClient) -> None:
    plan = plan_schema(client, "ENTRA", REQUIREMENTS)
    assert [t.name for t in plan.missing_types] == ["Entra User", "Entra Device"]
    assert plan.missing_statuses == ("Deleted in Entra",)
    text = plan.render()
    assert "+ object type 'Entra User' (icon User)" in text
    assert "+ attribute 'Entra Object ID' text (unique, required)" in text
    assert "+ attribute 'Manager' reference -> 'Entra User'" in text
    assert "+ status 'Deleted in Entra'" in text
    assert not any(k.startswith("POST") for k in fake.calls)


def test_resolve_on_an_empty_schema_lists_every_problem(
    fake: FakeSchemaService, client: AssetsClient
) -> None:
    with pytest.raises(SchemaDriftError) as info:
        resolve_schema(client, "ENTRA", REQUIREMENTS)
    assert info.value.problems == (
        "object type 'Entra User' is missing",
        "object type 'Entra Device' is missing",
        "status 'Deleted in Entra' is missing",
    )


def test_unknown_schema_key(fake: FakeSchemaService, client: AssetsClient) -> None:
    with pytest.raises(SchemaDriftError, match="'NOPE' not found"):
        resolve_schema(client, "NOPE", REQUIREMENTS)


def test_apply_creates_everything_then_nothing_and_resolve_succeeds(
    fake: FakeSchemaService, client: AssetsClient
) -> None:
    first = apply_schema(client, "ENTRA", REQUIREMENTS)
    assert first.created_types == ("Entra User", "Entra Device")
    assert first.created_statuses == ("Deleted in Entra",)
    assert "Entra User.Entra Object ID" in first.created_attributes
    assert "Entra User.Name" not in first.created_attributes  # Assets made the label already
    assert "Entra Device.Display Name" not in first.created_attributes
    assert first.renamed_attributes == ("Entra Device.Name -> Display Name",)
    assert "~ attribute Entra Device.Name -> Display Name" in first.render()
    assert first.conflicts == ()

    bodies = {(b["name"]): b for k, b in fake.bodies if k == "POST /objecttypeattribute/{id}"}
    assert bodies["Entra Object ID"] == {
        "name": "Entra Object ID",
        "type": 0,
        "defaultTypeId": 0,
        "minimumCardinality": 1,
        "maximumCardinality": 1,
        "uniqueAttribute": True,
    }
    user_type = next(t["id"] for t in fake.types if t["name"] == "Entra User")
    assert bodies["Owner"]["type"] == 1
    assert bodies["Owner"]["typeValue"] == user_type
    assert bodies["Owner"]["additionalValue"] == "4"  # the "Reference" reference type
    assert bodies["Jira Account"] == {
        "name": "Jira Account",
        "type": 2,
        "additionalValue": "SHOW_PROFILE",
        "minimumCardinality": 0,
        "maximumCardinality": 1,
    }
    assert bodies["Sync State"]["type"] == 7
    assert bodies["Aliases"]["maximumCardinality"] == -1
    assert bodies["Tier"]["options"] == "Gold,Silver"
    assert bodies["Tier"]["defaultTypeId"] == 10
    type_bodies = [b for k, b in fake.bodies if k == "POST /objecttype/create"]
    assert [b["iconId"] for b in type_bodies] == ["7", "1"]  # "User", then the default icon

    posts_before = sum(n for k, n in fake.calls.items() if k.startswith("POST"))
    second = apply_schema(client, "ENTRA", REQUIREMENTS)
    assert second.created == 0
    assert second.conflicts == ()
    assert sum(n for k, n in fake.calls.items() if k.startswith("POST")) == posts_before

    fake.calls.clear()
    resolved = resolve_schema(client, "ENTRA", REQUIREMENTS)
    assert sum(fake.calls.values()) == 4  # schema list, types, attributes, statuses
    user = resolved.type("Entra User")
    assert user.key_attribute.name == "Entra Object ID"
    assert user.key_attribute.unique
    assert user.attribute("Manager").reference_type_id == user.id
    assert user.label_attribute is not None
    assert user.label_attribute.name == "Name"
    assert resolved.status_id("deleted in entra") != resolved.status_id("Active")


def test_drift_lists_every_problem_and_apply_never_changes_a_conflicting_attribute(
    fake: FakeSchemaService, client: AssetsClient
) -> None:
    apply_schema(client, "ENTRA", REQUIREMENTS)
    by_name = {(a["objectType"]["id"], a["name"]): a for a in fake.attributes}
    user_id = next(t["id"] for t in fake.types if t["name"] == "Entra User")
    device_id = next(t["id"] for t in fake.types if t["name"] == "Entra Device")
    by_name[(user_id, "Account Enabled")]["defaultType"] = {"id": 0}  # now text
    by_name[(user_id, "Entra Object ID")]["uniqueAttribute"] = False
    by_name[(device_id, "Owner")]["referenceObjectTypeId"] = device_id
    by_name[(user_id, "Aliases")]["maximumCardinality"] = 1
    fake.attributes.remove(by_name[(user_id, "Mail")])
    fake.statuses = [s for s in fake.statuses if s["name"] != "Deleted in Entra"]

    with pytest.raises(SchemaDriftError) as info:
        resolve_schema(client, "ENTRA", REQUIREMENTS)
    problems = info.value.problems
    assert "object type 'Entra User': attribute 'Mail' (email) is missing" in problems
    assert "status 'Deleted in Entra' is missing" in problems
    assert (
        "object type 'Entra User': attribute 'Account Enabled' is text, the mapping needs boolean" in problems
    )
    assert (
        "object type 'Entra User': attribute 'Entra Object ID' is the key attribute but is not unique"
        in problems
    )
    assert any("'Owner' refers to object type id" in p for p in problems)
    assert any("'Aliases' holds one value" in p for p in problems)
    assert len(problems) == 6

    fake.bodies.clear()
    fake.calls.clear()
    result = apply_schema(client, "ENTRA", REQUIREMENTS)
    assert result.created_attributes == ("Entra User.Mail",)
    assert result.created_statuses == ("Deleted in Entra",)
    assert len(result.conflicts) == 4
    assert by_name[(user_id, "Account Enabled")]["defaultType"] == {"id": 0}  # untouched
    assert not any(k.startswith(("PUT", "DELETE")) for k in fake.calls)


def test_requirement_implies_key_and_label() -> None:
    bare = TypeRequirement(name="T", key_attribute="Id", label_attribute="Title")
    attrs = bare.effective_attributes()
    assert [(a.name, a.unique, a.required, a.label) for a in attrs] == [
        ("Id", True, True, False),
        ("Title", False, False, True),
    ]


def test_schema_attributes_without_object_type_fall_back_to_per_type_reads(
    fake: FakeSchemaService, client: AssetsClient
) -> None:
    """The spec's example of /objectschema/{id}/attributes has no objectType: read types one by one."""
    apply_schema(client, "ENTRA", REQUIREMENTS)
    original = fake.__call__

    def strip(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        status, headers, text = original(request)
        if "/objectschema/" in (request.path_url or "") and (request.path_url or "").endswith("/attributes"):
            text = json.dumps([{k: v for k, v in a.items() if k != "objectType"} for a in json.loads(text)])
        return status, headers, text

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=strip)
        resolved = resolve_schema(client, "ENTRA", REQUIREMENTS)
    assert resolved.type("Entra Device").attribute("Owner").kind == "reference"


def test_requirements_assets_cannot_hold_and_required_attributes_the_mapping_skips(
    fake: FakeSchemaService, client: AssetsClient
) -> None:
    """Several values on a text attribute, or a required attribute nobody writes, are reported."""
    tags = TypeRequirement(
        name="Entra Group",
        key_attribute="Entra Object ID",
        attributes=(AttributeRequirement(name="Tags", kind="text", multi=True),),
    )
    type_id = fake.add_type("Entra Group")
    fake.add_attribute(
        type_id, {"name": "Entra Object ID", "type": 0, "defaultTypeId": 0, "uniqueAttribute": True}
    )
    fake.add_attribute(type_id, {"name": "Tags", "type": 0, "defaultTypeId": 0})
    fake.add_attribute(
        type_id, {"name": "Cost Centre", "type": 0, "defaultTypeId": 0, "minimumCardinality": 1}
    )
    with pytest.raises(SchemaDriftError) as info:
        resolve_schema(client, "ENTRA", (tags,))
    problems = "\n".join(info.value.problems)
    assert "'Tags' cannot hold several values" in problems
    assert "'Cost Centre' is required in Assets but the mapping does not write it" in problems
