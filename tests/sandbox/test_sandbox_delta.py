"""Delta queries: full rounds, exact incremental rounds after mutations, removals, expiry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from importer.sandbox.app import Sandbox
from importer.sandbox.testing import GraphGet, get_token, graph_getter, http_session, sandbox_fixture

tenant = sandbox_fixture(scope="module", users=60, devices=40, seed=11)


@pytest.fixture
def sbx(tenant: Sandbox) -> Iterator[Sandbox]:
    """The module's own tenant (mutated by the tests), with small delta pages; settings reset after."""
    tenant.set_tenant(delta_page_size=7)
    yield tenant
    tenant.reset()


@pytest.fixture
def get(sbx: Sandbox) -> Iterator[GraphGet]:
    with http_session(sbx) as session:
        yield graph_getter(sbx, session, get_token(sbx, session))


@dataclass
class Round:
    items: list[dict[str, Any]] = field(default_factory=list)
    pages: list[dict[str, Any]] = field(default_factory=list)
    delta_link: str = ""

    @property
    def ids(self) -> set[str]:
        return {item["id"] for item in self.items}

    @property
    def present(self) -> set[str]:
        """Ids of objects returned whole (not ``@removed``)."""
        return {item["id"] for item in self.items if "@removed" not in item}

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {item["id"]: item for item in self.items}


def run_round(get: GraphGet, first: str, *, headers: dict[str, str] | None = None, **options: Any) -> Round:
    """Follow nextLinks verbatim until a page carries the deltaLink."""
    result = Round()
    response = get(first, headers=headers, **options)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        result.pages.append(body)
        result.items.extend(body["value"])
        assert ("@odata.nextLink" in body) != ("@odata.deltaLink" in body), "a page carries exactly one link"
        if "@odata.deltaLink" in body:
            result.delta_link = body["@odata.deltaLink"]
            return result
        response = get(body["@odata.nextLink"], headers=headers)


def dump(sb: Sandbox, kind: str) -> dict[str, Any]:
    assert sb.directory is not None
    return sb.directory.dump(kind)


USER_SELECT = "id,displayName,mail,jobTitle,department,accountEnabled,userType"


def test_a_full_round_returns_every_object_with_selected_non_null_properties(
    get: GraphGet, sbx: Sandbox
) -> None:
    r = run_round(get, "/v1.0/users/delta", select=USER_SELECT)
    users = {u["id"]: u for u in dump(sbx, "users")["value"]}
    assert r.present == set(users)
    assert r.pages[0]["@odata.context"].endswith(f"$metadata#users({USER_SELECT})")
    assert all(page["@odata.context"].endswith("$metadata#users") for page in r.pages[1:])
    assert len(r.pages) >= 60 // 7
    for item in r.items:
        if "@removed" in item:
            continue
        expected = {
            k: v for k, v in users[item["id"]].items() if k in USER_SELECT.split(",") and v is not None
        }
        assert item == expected  # null-valued properties are omitted
    assert "$deltatoken=" in r.delta_link
    assert all("$skiptoken=" in page["@odata.nextLink"] for page in r.pages[:-1])


def test_rounds_replay_some_objects_and_have_empty_pages(get: GraphGet, sbx: Sandbox) -> None:
    sbx.set_tenant(replay_every=4, empty_page_every=3)
    r = run_round(get, "/v1.0/devices/delta", select="id,displayName")
    assert len(r.items) > len(r.ids)  # the same object twice in one round
    assert any(not page["value"] and "@odata.nextLink" in page for page in r.pages)
    assert r.present == {d["id"] for d in dump(sbx, "devices")["value"]}


def test_the_next_round_holds_exactly_the_changes(get: GraphGet, sbx: Sandbox) -> None:
    first = run_round(get, "/v1.0/users/delta", select=USER_SELECT)
    assert run_round(get, first.delta_link).items == []  # nothing changed yet
    with http_session(sbx) as session:  # through the control API, as a test in another process would
        counts = {"add_users": 2, "update_users": 4, "soft_delete_users": 2, "hard_delete_users": 1}
        response = session.post(f"{sbx.control_url}/mutate", json=counts)
    assert response.status_code == 200
    changed = response.json()
    assert {k: len(v) for k, v in changed.items()} == counts
    second = run_round(get, first.delta_link)
    touched = {oid for ids in changed.values() for oid in ids}
    assert second.ids == touched
    items = second.by_id()
    users = {u["id"]: u for u in dump(sbx, "users")["value"]}
    for oid in changed["add_users"]:
        assert items[oid]["displayName"] == users[oid]["displayName"]
        assert "@removed" not in items[oid]
    cleared = [oid for oid in changed["update_users"] if users[oid]["jobTitle"] is None]
    assert cleared, "every 4th update clears the job title"
    for oid in changed["update_users"]:
        item = items[oid]
        assert item["department"] == users[oid]["department"]
        assert ("jobTitle" in item) == (users[oid]["jobTitle"] is not None)  # nulls omitted
        assert item["displayName"] == users[oid]["displayName"]  # unchanged selected properties too
    for oid in changed["soft_delete_users"]:
        assert items[oid] == {"id": oid, "@removed": {"reason": "changed"}}
    for oid in changed["hard_delete_users"]:
        assert items[oid] == {"id": oid, "@removed": {"reason": "deleted"}}
    third_changes = sbx.mutate(hard_delete_users=1)
    third = run_round(get, second.delta_link)
    assert third_changes["hard_delete_users"][0] in changed["soft_delete_users"]  # recycle bin first
    assert third.items == [{"id": third_changes["hard_delete_users"][0], "@removed": {"reason": "deleted"}}]


def test_prefer_return_minimal_returns_only_changed_properties(get: GraphGet, sbx: Sandbox) -> None:
    minimal = {"Prefer": "return=minimal"}
    first = run_round(get, "/v1.0/users/delta", select=USER_SELECT)
    changed = sbx.mutate(update_users=3, disable_users=1)
    response = get(first.delta_link, headers=minimal)
    assert response.headers["Preference-Applied"] == "return=minimal"
    second = run_round(get, first.delta_link, headers=minimal)
    for oid in changed["update_users"]:
        assert set(second.by_id()[oid]) <= {"id", "jobTitle", "department"}
    assert second.by_id()[changed["disable_users"][0]] == {
        "id": changed["disable_users"][0],
        "accountEnabled": False,
    }


def test_changes_to_unselected_properties_do_not_appear(get: GraphGet, sbx: Sandbox) -> None:
    first = run_round(get, "/v1.0/users/delta", select="id,displayName,mail")
    sbx.mutate(update_users=5)
    assert run_round(get, first.delta_link).items == []


def test_owner_changes_are_not_tracked_by_devices_delta(get: GraphGet, sbx: Sandbox) -> None:
    first = run_round(get, "/v1.0/devices/delta", select="id,displayName,operatingSystemVersion")
    moved = sbx.mutate(reassign_owners=3)["reassign_owners"]
    assert moved
    assert run_round(get, first.delta_link).items == []
    owner = get(f"/v1.0/devices/{moved[0]}/registeredOwners").json()["value"][0]["id"]
    assert owner == next(d for d in dump(sbx, "devices")["value"] if d["id"] == moved[0])["registeredOwnerId"]


def test_device_changes_removals_and_additions_appear(get: GraphGet, sbx: Sandbox) -> None:
    first = run_round(get, "/v1.0/devices/delta", select="id,displayName,operatingSystemVersion")
    changed = sbx.mutate(add_devices=2, update_devices=2, soft_delete_devices=1, hard_delete_devices=1)
    second = run_round(get, first.delta_link).by_id()
    devices = {d["id"]: d for d in dump(sbx, "devices")["value"]}
    for oid in changed["update_devices"]:
        assert second[oid]["operatingSystemVersion"] == devices[oid]["operatingSystemVersion"]
    assert set(changed["add_devices"]) <= set(second)
    assert second[changed["soft_delete_devices"][0]]["@removed"] == {"reason": "changed"}
    assert second[changed["hard_delete_devices"][0]]["@removed"] == {"reason": "deleted"}


def test_restored_objects_come_back_whole(get: GraphGet, sbx: Sandbox) -> None:
    first = run_round(get, "/v1.0/users/delta", select="id,displayName")
    gone = sbx.mutate(soft_delete_users=1)["soft_delete_users"][0]
    middle = run_round(get, first.delta_link)
    sbx.mutate(restore_users=5)
    last = run_round(get, middle.delta_link).by_id()
    assert "@removed" not in last[gone]
    assert "displayName" in last[gone]


def test_deltatoken_latest_returns_only_a_delta_link(get: GraphGet, sbx: Sandbox) -> None:
    body = get("/v1.0/users/delta", select="id,jobTitle,department", deltatoken="latest").json()
    assert body["value"] == []
    assert "@odata.deltaLink" in body
    assert "@odata.nextLink" not in body
    changed = sbx.mutate(update_users=1)["update_users"]
    assert run_round(get, body["@odata.deltaLink"]).ids == set(changed)


def test_filter_by_id_limits_the_round(get: GraphGet, sbx: Sandbox) -> None:
    ids = [u["id"] for u in dump(sbx, "users")["value"][:2]]
    flt = " or ".join(f"id eq '{i}'" for i in ids)
    assert run_round(get, "/v1.0/users/delta", select="id", filter=flt).ids == set(ids)
    response = get("/v1.0/users/delta", filter="accountEnabled eq true")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_an_old_delta_token_is_400_sync_state_not_found(sbx: Sandbox) -> None:
    with http_session(sbx) as session:
        get = graph_getter(sbx, session, get_token(sbx, session))
        link = run_round(get, "/v1.0/users/delta", select="id").delta_link
        sbx.set_tenant(advance_clock=8 * 86400)  # the default limit is 7 days of simulated time
        get = graph_getter(sbx, session, get_token(sbx, session))  # the clock expired the old token too
        response = get(link)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "syncStateNotFound"
    assert error["message"] == (
        "The sync state generation is not found. The delta token is expired and data must be "
        "synchronized again."
    )


def test_expired_tokens_can_be_410_gone_with_a_location_to_restart(get: GraphGet, sbx: Sandbox) -> None:
    link = run_round(get, "/v1.0/devices/delta", select="id,displayName").delta_link
    sbx.set_tenant(delta_expiry_mode="gone", expire_delta_tokens=True)
    response = get(link)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "resyncRequired"
    location = response.headers["Location"]
    assert location.endswith("$deltatoken=")
    assert "$select=id,displayName" in location
    restarted = run_round(get, location)
    devices = dump(sbx, "devices")
    assert restarted.present == {d["id"] for d in devices["value"]}
    assert restarted.ids - restarted.present == set(devices["softDeleted"]) | set(devices["hardDeleted"])


def test_a_next_link_of_an_expired_round_fails_too(get: GraphGet, sbx: Sandbox) -> None:
    next_link = get("/v1.0/users/delta", select="id").json()["@odata.nextLink"]
    sbx.set_tenant(expire_delta_tokens=True)
    assert get(next_link).json()["error"]["code"] == "syncStateNotFound"


def test_tampered_or_extended_delta_links_are_400(get: GraphGet, sbx: Sandbox) -> None:
    link = run_round(get, "/v1.0/users/delta", select="id").delta_link
    assert get(link + "&$select=displayName").status_code == 400
    head, _, token = link.partition("$deltatoken=")
    assert get(head + "$deltatoken=" + token[:10] + token[11:]).status_code == 400
    devices_link = link.replace("/users/delta", "/devices/delta")
    assert get(devices_link).status_code == 400


def test_expand_and_orderby_are_refused_on_delta(get: GraphGet) -> None:
    assert get("/v1.0/users/delta", expand="manager").status_code == 400
    assert get("/v1.0/users/delta", orderby="displayName").status_code == 400


def test_delta_pages_are_served_while_another_client_reads_a_list(sbx: Sandbox) -> None:
    with http_session(sbx) as one, http_session(sbx) as two:
        token = get_token(sbx, one)
        first, second = graph_getter(sbx, one, token), graph_getter(sbx, two, token)
        page = first("/v1.0/users/delta", select="id").json()
        assert second("/v1.0/users", top=5).status_code == 200
        assert first(page["@odata.nextLink"]).status_code == 200


def test_session_reuse_keeps_working_after_a_400(get: GraphGet) -> None:
    assert get("/v1.0/users/delta", filter="nonsense").status_code == 400
    assert get("/v1.0/users/delta", select="id").status_code == 200


def test_dump_reports_soft_and_hard_deleted_objects(sbx: Sandbox) -> None:
    changed = sbx.mutate(soft_delete_devices=1, hard_delete_devices=1)
    devices = dump(sbx, "devices")
    assert changed["soft_delete_devices"][0] in devices["softDeleted"]
    assert changed["hard_delete_devices"][0] in devices["hardDeleted"]
