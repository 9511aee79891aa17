"""The sync engine end to end: real HTTPS, real MSAL, the sandbox's Entra tenant and Assets workspace."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from importer.sandbox.testing import http_session
from tests.e2e.conftest import Env, make_env


def graph(env: Env, source: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in env.sb.directory.dump(source)["value"]}


def test_first_sync_creates_exactly_the_mapped_objects(env: Env) -> None:
    result = env.run("sync")
    assert result.code == 0, result.err
    users, devices = graph(env, "users"), graph(env, "devices")
    synced_users, synced_devices = env.by_key("Entra User"), env.by_key("Entra Device")
    assert set(synced_users) == set(users)
    assert set(synced_devices) == set(devices)
    object_id_of_user = {gid: obj["id"] for gid, obj in synced_users.items()}
    jira = {mail.casefold(): ids for mail, ids in env.sb.jira_accounts.items()}
    for gid, device in devices.items():
        obj = synced_devices[gid]
        assert env.value(obj, "Name") == device["displayName"]
        assert env.value(obj, "Device ID") == device["deviceId"]
        owner = device.get("registeredOwnerId")
        assert env.value(obj, "Owner") == (object_id_of_user[owner] if owner else None)
    for gid, user in users.items():
        obj = synced_users[gid]
        assert env.value(obj, "Name") == (user.get("displayName") or "(no display name)")
        assert env.value(obj, "User Principal Name") == user["userPrincipalName"].lower()
        accounts = jira.get((user.get("mail") or "").casefold(), [])
        assert env.value(obj, "Jira User") == (accounts[0] if len(accounts) == 1 else None)
    assert set(env.sb.stats()["duplicate_keys"].values()) == {0}


def test_a_second_plan_is_empty_and_an_idle_incremental_run_is_cheap(env: Env) -> None:
    assert env.run("sync").code == 0
    env.sb.reset_stats()
    plan = env.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.out
    assert "No changes." in plan.out
    assert env.requests() <= 10
    assert env.run("plan", "--full", "--detailed-exitcode").code == 0


def test_the_plan_lists_exactly_the_mutated_objects_and_fields(env: Env) -> None:
    assert env.run("sync").code == 0
    touched = env.sb.mutate(update_users=3, update_devices=2, soft_delete_users=1, hard_delete_users=1)
    plan = env.run("plan", "--format", "json", "--detailed-exitcode")
    assert plan.code == 2
    doc = plan.json()
    changes = {(c["action"], c["source_id"]): c for c in doc["changes"]}
    expected = {("update", i) for i in touched["update_users"] + touched["update_devices"]}
    expected |= {("mark", i) for i in touched["soft_delete_users"] + touched["hard_delete_users"]}
    assert set(changes) == expected
    for gid in touched["update_users"]:
        assert set(changes[("update", gid)]["diff"]) <= {"Job Title", "Department"}
    for gid in touched["update_devices"]:
        assert set(changes[("update", gid)]["diff"]) == {"OS Version"}
    marked = changes[("mark", touched["soft_delete_users"][0])]
    assert marked["diff"]["Entra Status"]["desired"] == "Removed from Entra"
    assert "soft-deleted" in marked["reason"]
    assert doc["summary"]["update"] == 5
    assert doc["format_version"] == 1
    assert env.run("sync").code == 0
    assert env.run("plan", "--detailed-exitcode").code == 0
    users = env.by_key("Entra User")
    assert env.value(users[touched["hard_delete_users"][0]], "Entra Status") is not None


def test_a_restored_user_is_unmarked(env: Env) -> None:
    assert env.run("sync").code == 0
    gone = env.sb.mutate(soft_delete_users=1)["soft_delete_users"][0]
    assert env.run("sync").code == 0
    env.sb.mutate(restore_users=1)
    plan = env.run("plan", "--format", "json").json()
    (change,) = plan["changes"]
    assert (change["action"], change["source_id"]) == ("update", gone)
    assert change["diff"]["Entra Status"] == {"current": "Removed from Entra", "desired": "Active"}


def test_owner_changes_relink_the_device_on_a_full_run(env: Env) -> None:
    assert env.run("sync").code == 0
    moved = env.sb.mutate(reassign_owners=2)["reassign_owners"]
    # Graph delta does not report registeredOwners changes (navigation property): only --full sees them.
    assert env.run("plan", "--detailed-exitcode").code == 0
    plan = env.run("plan", "--full", "--format", "json").json()
    assert {(c["action"], c["source_id"]) for c in plan["changes"]} == {("update", d) for d in moved}
    assert all(set(c["diff"]) == {"Owner"} for c in plan["changes"])
    assert env.run("sync", "--full").code == 0
    users, devices = env.by_key("Entra User"), graph(env, "devices")
    for gid in moved:
        owner = devices[gid]["registeredOwnerId"]
        assert env.value(env.by_key("Entra Device")[gid], "Owner") == users[owner]["id"]


def test_hard_delete_with_missing_delete_removes_the_object(env: Env) -> None:
    def delete_devices(doc: dict[str, Any]) -> None:
        doc["mapping"]["object_types"][1]["missing"] = "delete"

    assert env.run("sync").code == 0
    env.edit_mapping(delete_devices)
    assert env.run("sync").code == 0  # the mapping changed: a full run, nothing to do
    touched = env.sb.mutate(hard_delete_devices=1, soft_delete_devices=1)
    plan = env.run("plan", "--format", "json").json()
    actions = {c["source_id"]: c["action"] for c in plan["changes"]}
    assert actions == {touched["hard_delete_devices"][0]: "delete", touched["soft_delete_devices"][0]: "mark"}
    assert env.run("sync").code == 0
    devices = env.by_key("Entra Device")
    assert touched["hard_delete_devices"][0] not in devices
    assert touched["soft_delete_devices"][0] in devices


def test_a_mass_removal_is_refused_and_changes_nothing_until_approved(env: Env) -> None:
    assert env.run("sync").code == 0
    before = env.objects("Entra User")
    env.sb.mutate(hard_delete_users=10)  # 25% of 40 users, over delete_max_percent=5
    refused = env.run("sync")
    assert refused.code == 3
    assert "deletion guard" in refused.out
    assert env.objects("Entra User") == before
    plan = env.run("plan", "--format", "json")
    assert plan.code == 3
    doc = plan.json()
    assert doc["guard"]["refused"] is True
    assert doc["summary"]["mark"] == 10
    approved = env.run("sync", "--approve", doc["plan_hash"])
    assert approved.code == 0, approved.err
    assert "10 marked" in approved.out
    assert env.run("plan", "--detailed-exitcode").code == 0


def test_an_approval_for_another_plan_does_not_open_the_guard(env: Env) -> None:
    assert env.run("sync").code == 0
    env.sb.mutate(hard_delete_users=10)
    assert env.run("sync", "--approve", "0000000000000000").code == 3


def test_a_hand_edit_in_assets_is_repaired_by_a_full_run(env: Env) -> None:
    assert env.run("sync").code == 0
    users = graph(env, "users")
    gid, obj = next((g, o) for g, o in env.by_key("Entra User").items() if users[g].get("jobTitle"))
    answer = http_session(env.sb).put(
        f"{env.sb.info()['control_url']}/assets/objects/{obj['id']}",
        json={"attributes": {"Job Title": "Edited by hand"}},
    )
    assert answer.status_code == 200, answer.text
    assert env.run("plan", "--detailed-exitcode").code == 0  # incremental runs trust the state
    plan = env.run("plan", "--full", "--format", "json").json()
    (change,) = plan["changes"]
    assert (change["source_id"], change["diff"]["Job Title"]["current"]) == (gid, "Edited by hand")
    assert env.run("sync", "--full").code == 0
    assert env.value(env.by_key("Entra User")[gid], "Job Title") == users[gid]["jobTitle"]


def test_redacted_plans_hold_no_personal_values(env: Env) -> None:
    users = graph(env, "users")
    for fmt in ("text", "markdown", "json"):
        out = env.run("plan", "--redact", "--format", fmt).out
        assert "pid:" in out
        for user in users.values():
            for field in ("displayName", "userPrincipalName", "mail", "id"):
                value = user.get(field)
                if value:
                    assert value not in out, (fmt, field)


@pytest.mark.slow
def test_kill_9_in_the_middle_of_apply_leaves_no_duplicates(tmp_path: Path) -> None:
    for env in make_env(tmp_path, users=150, devices=150):
        env.sb.assets.configure(enforce_unique=False)  # only the importer's own care prevents duplicates
        env.sb.set_faults(latency_ms=15, service="assets")
        child = env.spawn("sync")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(env.sb.stats()["objects"].values()) < 60:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.communicate()
        created = sum(env.sb.stats()["objects"].values())
        assert 0 < created < 300, "the kill should land in the middle of apply"
        env.sb.set_faults(latency_ms=0)
        again = env.run("sync")
        assert again.code == 0, again.err
        stats = env.sb.stats()
        assert stats["objects"] == {"Entra User": 150, "Entra Device": 150}
        assert set(stats["duplicate_keys"].values()) == {0}
        assert env.run("plan", "--detailed-exitcode").code == 0


def test_a_sync_that_stops_on_schema_drift_is_recorded_as_failed(env: Env) -> None:
    assert env.run("sync").code == 0
    answer = http_session(env.sb).post(
        f"{env.sb.info()['control_url']}/assets/attributes/delete",
        json={"type": "Entra User", "attribute": "Job Title"},
    )
    assert answer.status_code == 200, answer.text
    before = env.objects("Entra User")
    result = env.run("sync")
    assert result.code == 1
    assert "Job Title" in result.err
    assert env.objects("Entra User") == before
    from importer.config import load_settings
    from importer.runtime import open_state

    store = open_state(load_settings(env.config))
    try:
        last = store.list_runs(limit=1)[0]
    finally:
        store.close()
    assert last.outcome == "failed"
    assert last.error is not None
    assert "SchemaDriftError" in last.error
