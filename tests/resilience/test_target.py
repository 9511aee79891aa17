"""Target trouble: schema drift, objects deleted or duplicated by hand, values Assets rejects."""

from __future__ import annotations

from typing import Any

import pytest

from importer.sandbox.base import SandboxRequest, SandboxResponse
from tests.resilience.conftest import KEY, Handler, Interceptor, Twin, snapshot

pytestmark = pytest.mark.resilience

WRITES = ("POST", "PUT", "DELETE")


def _control(twin: Twin, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    from importer.sandbox.testing import http_session

    with http_session(twin.sb) as session:
        answer = session.request(method, f"{twin.sb.info()['control_url']}/assets/{path}", json=body)
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def _object_writes(twin: Twin) -> list[dict[str, Any]]:
    return [
        r
        for r in twin.sb.stats()["requests"]
        if r["method"] in WRITES and "/object/" in r["route"] and not r["route"].endswith("/aql")
    ]


@pytest.mark.parametrize("drift", ["rename", pytest.param("delete", marks=pytest.mark.quick)])
def test_schema_drift_stops_the_run_before_any_write_and_names_the_attribute(
    synced: Twin, drift: str
) -> None:
    synced.mutate(update_users=5, add_users=2)
    before = snapshot(synced.sb)
    body = {"type": "Entra User", "attribute": "Job Title"}
    if drift == "rename":
        _control(synced, "POST", "attributes/rename", {**body, "new_name": "Role"})
    else:
        _control(synced, "POST", "attributes/delete", body)
        for values in before["Entra User"].values():
            values.pop("Job Title", None)
    synced.sb.reset_stats()
    result = synced.env.run("sync")
    assert result.code == 1, result.out
    assert "Job Title" in result.err, result.err
    assert not _object_writes(synced), "the run wrote although the schema had drifted"
    if drift == "rename":
        after = snapshot(synced.sb)
        for values in after["Entra User"].values():
            if "Role" in values:
                values["Job Title"] = values.pop("Role")
        assert after == before
        _control(
            synced,
            "POST",
            "attributes/rename",
            {"type": "Entra User", "attribute": "Role", "new_name": "Job Title"},
        )
    else:
        assert snapshot(synced.sb) == before
        assert synced.env.run("schema", "apply").code == 0  # the admin recreates the attribute
    again = synced.env.run("sync")
    assert again.code == 0, again.err
    expected = synced.expected()
    if drift == "delete":
        # A null in Entra never blanks a value, so a title cleared in Entra after the reference
        # stored it stays there, while the deleted attribute took the faulty side's copy with it.
        assert synced.sb.directory is not None
        for user in synced.sb.directory.dump("users")["value"]:
            if user.get("jobTitle") is None and user["id"] in expected["Entra User"]:
                expected["Entra User"][user["id"]].pop("Job Title", None)
    synced.check(expected=expected)


def test_an_object_deleted_by_hand_is_recreated_by_the_next_full_run(synced: Twin) -> None:
    users = synced.env.by_key("Entra User")
    devices = synced.env.by_key("Entra Device")
    victim = next(iter(users))
    _control(synced, "DELETE", f"objects/{users[victim]['id']}")
    _control(synced, "DELETE", f"objects/{next(iter(devices.values()))['id']}")
    synced.mutate(update_users=3)
    incremental = synced.env.run("sync")
    assert incremental.code in (0, 1), incremental.err
    full = synced.env.run("sync", "--full")
    assert full.code == 0, full.err
    assert victim in synced.env.by_key("Entra User")
    synced.check()


def test_a_key_duplicated_by_hand_is_reported_and_left_alone(synced: Twin) -> None:
    users = synced.env.by_key("Entra User")
    key = sorted(users)[3]
    made = _control(
        synced,
        "POST",
        "objects",
        {"type": "Entra User", "attributes": {"Name": "Copied by hand", KEY: key}, "bypass_unique": True},
    )
    synced.mutate(update_users=4)
    plan = synced.env.run("plan", "--full")
    assert "held by several objects" in plan.out, plan.out
    result = synced.env.run("sync", "--full")
    assert result.code == 0, result.err
    assert "held by several objects" in result.out + result.err
    copy = next(o for o in synced.env.objects("Entra User") if o["id"] == made["id"])
    assert copy["attributes"] == made["attributes"]  # not updated, not deleted
    synced.check(exclude_ids=frozenset({made["id"]}))


@pytest.mark.parametrize("action", ["create", pytest.param("update", marks=pytest.mark.quick)])
def test_a_value_rejected_with_400_fails_that_object_only_and_the_next_run_retries_it(
    synced: Twin, action: str
) -> None:
    touched = synced.mutate(add_users=3) if action == "create" else synced.mutate(update_users=6)
    victim = touched["add_users" if action == "create" else "update_users"][0]
    object_id = None if action == "create" else synced.env.by_key("Entra User")[victim]["id"]
    rejected: list[str] = []

    def is_victims_write(request: SandboxRequest) -> bool:
        if object_id is not None:
            return request.method == "PUT" and request.path.endswith(f"/object/{object_id}")
        return request.path.endswith("/object/create") and victim.encode() in request.body

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if is_victims_write(request) and not rejected:
            rejected.append(request.path)
            body = {"errorMessages": [], "errors": {"rlabs-insight-attribute-999": "Job Title: not allowed"}}
            return SandboxResponse(status=400, body=body, route="/intercepted")
        return original(request)

    with Interceptor(synced.sb, "assets", hook):
        first = synced.env.run("sync")
    assert rejected, "the hook never saw the victim's write"
    assert first.code == 1, first.out
    assert "1 failed" in first.out, first.out
    expected = synced.expected()
    got = snapshot(synced.sb)
    others = {k: v for k, v in expected["Entra User"].items() if k != victim}
    assert {k: v for k, v in got["Entra User"].items() if k != victim} == others  # the rest landed
    again = synced.env.run("sync")
    assert again.code == 0, again.err
    synced.check(expected=expected)
