"""Against the sandbox's Assets workspace: bootstrap, bulk read cost, every kind round-trips.

The client stack runs unchanged down to ``requests``; a transport adapter hands each request to
the sandbox's ``AssetsService`` in-process (``sandbox_bridge``), so these tests need no socket.
``test_assets_sandbox_server.py`` runs the same client against the HTTPS server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

pytest.importorskip("importer.sandbox.assets_testing")

from importer.assets.client import AssetsClient, BasicAuth, discover_workspace
from importer.assets.models import NormValue, ResolvedSchema
from importer.assets.objects import AssetsObjects
from importer.assets.schema import AttributeRequirement, TypeRequirement, apply_schema, resolve_schema
from importer.assets.users import AccountResolver
from importer.assets.values import normalize
from importer.errors import ApiClientError
from importer.sandbox.assets import AssetsService
from importer.sandbox.assets_objects import create_object, inputs_by_name
from importer.sandbox.assets_testing import TEST_EMAIL, TEST_TOKEN, TEST_WORKSPACE, make_service
from importer.sandbox.base import SandboxRequest, SandboxResponse

from .conftest import make_http
from .sandbox_bridge import ORIGIN, SandboxBridge

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
        AttributeRequirement(name="Notes", kind="textarea"),
        AttributeRequirement(name="Employee Number", kind="integer"),
        AttributeRequirement(name="Score", kind="double"),
        AttributeRequirement(name="Account Enabled", kind="boolean"),
        AttributeRequirement(name="Hire Date", kind="date"),
        AttributeRequirement(name="Shift Start", kind="time"),
        AttributeRequirement(name="Last Sign-in", kind="datetime"),
        AttributeRequirement(name="Profile", kind="url"),
        AttributeRequirement(name="Mail", kind="email"),
        AttributeRequirement(name="Aliases", kind="email", multi=True),
        AttributeRequirement(name="Tier", kind="select", options=("Gold", "Silver")),
        AttributeRequirement(name="Last IP", kind="ipaddress"),
        AttributeRequirement(name="Manager", kind="reference", reference_type="Entra User"),
        AttributeRequirement(name="Jira Account", kind="user"),
        AttributeRequirement(name="Sync State", kind="status"),
    ),
)
DEVICE = TypeRequirement(
    name="Entra Device",
    icon="Laptop",
    key_attribute="Entra Object ID",
    label_attribute="Display Name",
    attributes=(
        AttributeRequirement(name="Owners", kind="reference", reference_type="Entra User", multi=True),
    ),
)
REQUIREMENTS = (USER, DEVICE)


@dataclass
class Sandbox:
    service: AssetsService
    bridge: SandboxBridge
    client: AssetsClient

    def resolved(self) -> ResolvedSchema:
        apply_schema(self.client, "ENTRA", REQUIREMENTS)
        return resolve_schema(self.client, "ENTRA", REQUIREMENTS)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    service = make_service()
    bridge = SandboxBridge(service)
    http = make_http()
    http.session.mount("https://", bridge)
    auth = BasicAuth(TEST_EMAIL, TEST_TOKEN)
    yield Sandbox(
        service, bridge, AssetsClient.cloud(http, workspace_id=TEST_WORKSPACE, api_url=ORIGIN, auth=auth)
    )
    http.close()


def test_workspace_discovery(sandbox: Sandbox) -> None:
    assert (
        discover_workspace(sandbox.client.http, ORIGIN, auth=BasicAuth(TEST_EMAIL, TEST_TOKEN))
        == TEST_WORKSPACE
    )


def test_apply_on_the_empty_schema_creates_types_then_nothing(sandbox: Sandbox) -> None:
    first = apply_schema(sandbox.client, "ENTRA", REQUIREMENTS)
    assert first.created_types == ("Entra User", "Entra Device")
    assert first.created_statuses == ("Deleted in Entra",)
    assert len(first.created_attributes) == 18  # 16 for users, 2 for devices (Name came with each type)
    assert first.renamed_attributes == ("Entra Device.Name -> Display Name",)
    assert first.conflicts == ()
    posts = sandbox.bridge.count("POST", "")
    second = apply_schema(sandbox.client, "ENTRA", REQUIREMENTS)
    assert second.created == 0
    assert second.conflicts == ()
    assert sandbox.bridge.count("POST", "") == posts  # a second apply sends no write at all

    sandbox.bridge.routes.clear()
    resolved = resolve_schema(sandbox.client, "ENTRA", REQUIREMENTS)
    assert sum(sandbox.bridge.routes.values()) == 4
    user = resolved.type("Entra User")
    assert user.key_attribute.unique
    assert user.key_attribute.min_cardinality == 1
    assert user.attribute("Manager").reference_type_id == user.id
    assert resolved.type("Entra Device").label_attribute is not None
    assert resolved.type("Entra Device").attribute("Owners").multi


def _desired(resolved: ResolvedSchema, manager_id: str, account: str, variant: int) -> dict[str, NormValue]:
    user = resolved.type("Entra User")
    raw: dict[str, Any] = {
        "Entra Object ID": "0b7c6c6e-0000-4000-8000-00000000000" + str(variant),
        "Name": ["Zoë Ñandú  ", "Grace O'Hara"][variant],
        "Notes": ["line 1\nline 2", "rewritten"][variant],
        "Employee Number": ["42", 7][variant],
        "Score": [2.5, "1e3"][variant],
        "Account Enabled": [True, "false"][variant],
        "Hire Date": ["2024-02-29", "2020-01-01T23:00:00-05:00"][variant],
        "Shift Start": ["09:30", "17:05:09"][variant],
        "Last Sign-in": ["2021-02-16T21:04:41.527+01:00", "2024-06-01T00:00:00Z"][variant],
        "Profile": ["https://contoso.test/u/1", "https://contoso.test/u/2"][variant],
        "Mail": ["zoe@contoso.test", "grace@contoso.test"][variant],
        "Aliases": [["b@contoso.test", "a@contoso.test"], ["c@contoso.test"]][variant],
        "Tier": ["gold", "Silver"][variant],
        "Last IP": ["10.0.0.1", "2001:DB8::1"][variant],
        "Manager": manager_id,
        "Jira Account": account,
        "Sync State": resolved.status_id(["Active", "Deleted in Entra"][variant]),
    }
    return {name: normalize(user.attribute(name), value) for name, value in raw.items()}


def test_writes_of_every_kind_round_trip(sandbox: Sandbox) -> None:
    resolved = sandbox.resolved()
    user = resolved.type("Entra User")
    objects = AssetsObjects(sandbox.client)
    boss = objects.create_object(user, {"Entra Object ID": "boss", "Name": "Boss"})
    account = sandbox.service.add_jira_user("zoe@contoso.test", "Zoë")
    desired = _desired(resolved, boss, account, 0)
    object_id = objects.create_object(user, desired)

    read = objects.read_objects(user)
    assert read.objects[str(desired["Entra Object ID"])].values == desired
    assert read.objects["boss"].id == boss

    changed = _desired(resolved, object_id, account, 1)
    changed.pop("Entra Object ID")
    echoed = objects.update_object(object_id, user, changed)
    assert echoed is not None
    after = objects.find_by_keys(user, [str(desired["Entra Object ID"])])[str(desired["Entra Object ID"])]
    assert {k: after.values[k] for k in changed} == changed

    cleared = {name: None for name in changed if name != "Name"}
    objects.update_object(object_id, user, cleared)
    final = objects.find_by_keys(user, [str(desired["Entra Object ID"])])[str(desired["Entra Object ID"])]
    assert {k: final.values.get(k) for k in cleared} == cleared

    device = resolved.type("Entra Device")
    device_id = objects.create_object(
        device, {"Entra Object ID": "d-1", "Display Name": "PC-1", "Owners": (boss, object_id)}
    )
    assert objects.read_objects(device).objects["d-1"].values["Owners"] == tuple(sorted((boss, object_id)))
    assert objects.delete_object(device_id) is True
    assert objects.delete_object(device_id) is False


def test_account_resolution_against_the_sandbox(sandbox: Sandbox) -> None:
    account = sandbox.service.add_jira_user("ada@contoso.test", "Ada")
    sandbox.service.add_jira_user("ada.lovelace@contoso.test", "Ada L")
    resolver = AccountResolver(sandbox.client.http, ORIGIN, auth=BasicAuth(TEST_EMAIL, TEST_TOKEN))
    assert resolver.resolve("ADA@contoso.test") == account
    assert resolver.resolve("nobody@contoso.test") is None


def test_a_duplicate_key_is_refused_by_the_unique_attribute_and_named(sandbox: Sandbox) -> None:
    user = sandbox.resolved().type("Entra User")
    objects = AssetsObjects(sandbox.client)
    objects.create_object(user, {"Entra Object ID": "k-1", "Name": "One"})
    with pytest.raises(ApiClientError) as info:
        objects.create_object(user, {"Entra Object ID": "k-1", "Name": "Two"})
    assert "Entra Object ID" in info.value.fields


def _land_then_time_out(req: SandboxRequest, answer: Any) -> SandboxResponse:
    answer()
    raise requests.exceptions.ReadTimeout("the answer never came")


def _unavailable(req: SandboxRequest, answer: Any) -> SandboxResponse:
    return SandboxResponse(status=503, body={"errorMessages": ["unavailable"]}, route="fault")


def test_create_retry_never_duplicates(sandbox: Sandbox) -> None:
    user = sandbox.resolved().type("Entra User")
    objects = AssetsObjects(sandbox.client)
    sandbox.service.configure(enforce_unique=False)  # so a duplicate *could* happen

    sandbox.bridge.fail_next("POST", "/object/create", _land_then_time_out)
    first = objects.create_object(user, {"Entra Object ID": "landed", "Name": "x"})
    sandbox.bridge.fail_next("POST", "/object/create", _unavailable)
    second = objects.create_object(user, {"Entra Object ID": "not-landed", "Name": "y"})

    dumped = sandbox.service.dump_objects("Entra User")
    keys = sorted(o["attributes"]["Entra Object ID"] for o in dumped)
    assert keys == ["landed", "not-landed"]
    assert {o["id"] for o in dumped} == {first, second}
    assert sandbox.service.snapshot_stats()["duplicate_keys"]["Entra User"] == 0


def _seed(service: AssetsService, type_name: str, count: int) -> None:
    store = service.store
    with store.lock:
        type_rec = store.find_type(type_name, int(service.schema_id))
        assert type_rec is not None
        for i in range(count):
            values = {"Entra Object ID": f"00000000-0000-4000-8000-{i:012d}", "Name": f"User {i}"}
            create_object(store, type_rec.id, inputs_by_name(store, type_rec.id, values))


def test_string_is_last_and_unkeyed_objects(sandbox: Sandbox) -> None:
    user = sandbox.resolved().type("Entra User")
    _seed(sandbox.service, "Entra User", 1200)
    store = sandbox.service.store
    with store.lock:
        type_rec = store.find_type("Entra User", int(sandbox.service.schema_id))
        assert type_rec is not None
        values = {"Name": "hand-made", "Entra Object ID": "temporary"}
        hand_made = create_object(store, type_rec.id, inputs_by_name(store, type_rec.id, values))
        key_attr = store.attr_by_name(type_rec.id, "Entra Object ID")
        assert key_attr is not None
        store.set_values(hand_made, key_attr, [])  # an object someone made by hand, without our key
    sandbox.service.configure(is_last_as_string=True)
    sandbox.bridge.routes.clear()
    result = AssetsObjects(sandbox.client).read_objects(user)
    assert len(result.objects) == 1200
    assert len(result.unkeyed) == 1
    assert result.unkeyed[0].startswith("ENTRA-")
    assert sandbox.bridge.count("POST", "/object/aql") == 3


@pytest.mark.slow
def test_bulk_read_of_20000_objects_takes_40_requests(sandbox: Sandbox) -> None:
    user = sandbox.resolved().type("Entra User")
    _seed(sandbox.service, "Entra User", 20_000)
    sandbox.bridge.routes.clear()
    result = AssetsObjects(sandbox.client).read_objects(user)
    assert len(result.objects) == 20_000
    assert not result.unkeyed
    assert not result.duplicates
    assert sandbox.bridge.count("POST", "/object/aql") == 40
    assert sum(sandbox.bridge.routes.values()) == 40
