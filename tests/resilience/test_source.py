"""Source trouble: expiring tokens, lost permissions, expired delta links, broken paging, mass vanishing."""

from __future__ import annotations

from typing import Any

import pytest

from importer.sandbox.base import SandboxRequest, SandboxResponse
from importer.sandbox.odata import graph_error_body
from tests.resilience.conftest import Handler, Interceptor, Twin, clean_sync, snapshot

pytestmark = pytest.mark.resilience

REMOVED = ("status", "Removed from Entra")


def _graph_400(request: SandboxRequest, code: str = "Request_BadRequest") -> SandboxResponse:
    body = graph_error_body(code, "The request is invalid.", "rid-test", "crid-test")
    return SandboxResponse(status=400, body=body, route="/intercepted")


def test_a_token_that_expires_mid_run_is_renewed_and_the_run_completes(twin: Twin) -> None:
    """Short-lived tokens (400 s) and the tenant's clock jumping past them twice during one run."""
    twin.sb.set_tenant(token_lifetime=400, delta_page_size=10)
    twin.ref.sb.set_tenant(delta_page_size=10)
    clean_sync(twin.env)
    clean_sync(twin.ref)
    synced = twin
    synced.mutate(update_users=5, update_devices=5, add_devices=2)

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if interceptor.count("GET /v1.0/") in (2, 4):
            synced.sb.set_tenant(advance_clock=401)  # every token issued so far is now expired
        return original(request)

    with Interceptor(synced.sb, "graph", hook) as interceptor:
        result = synced.env.run("sync", "--full")
    assert result.code == 0, result.err
    expired = [r for r in synced.sb.stats()["requests"] if r["service"] == "graph" and r["status"] == 401]
    assert expired, "the token never expired during the run"
    synced.check()


def _marked(sb: Any) -> set[str]:
    return {k for k, v in snapshot(sb)["Entra User"].items() if v.get("Entra Status") == REMOVED}


@pytest.mark.quick
def test_a_lost_device_permission_syncs_users_leaves_devices_alone_and_names_the_permission(
    synced: Twin,
) -> None:
    touched = synced.mutate(update_users=4, update_devices=4, add_devices=2)
    devices_before = snapshot(synced.sb)["Entra Device"]
    synced.sb.set_tenant(permissions=["User.Read.All"])
    result = synced.env.run("sync")
    assert result.code == 1, result.out
    assert "Device.Read.All" in result.err, result.err
    after = snapshot(synced.sb)
    assert after["Entra Device"] == devices_before  # untouched: no creates, updates or marks
    expected = synced.expected()
    for gid in touched["update_users"]:
        assert after["Entra User"][gid] == expected["Entra User"][gid]  # the users' changes landed
    synced.sb.set_tenant(permissions=["User.Read.All", "Device.Read.All"])
    again = synced.env.run("sync")
    assert again.code == 0, again.err
    synced.check(expected=expected)


def test_a_device_permission_lost_after_users_were_read_names_it_and_the_next_run_completes(
    synced: Twin,
) -> None:
    """Revoked between the reads and the owners ($batch): owners unknown, exit 1 naming the permission."""
    synced.mutate(update_users=3, add_devices=4, update_devices=3)

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if request.path.endswith("/users/delta") and interceptor.count("/users/delta") == 1:
            answer = original(request)
            synced.sb.set_tenant(permissions=["User.Read.All"])  # users were read; devices before
            return answer
        return original(request)

    with Interceptor(synced.sb, "graph", hook) as interceptor:
        result = synced.env.run("sync")
    assert result.code == 1, result.out
    assert "Device.Read.All" in result.err, result.err
    synced.sb.set_tenant(permissions=["User.Read.All", "Device.Read.All"])
    again = synced.env.run("sync")
    assert again.code == 0, again.err
    synced.check()


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("sync_state_not_found", id="400-syncStateNotFound"),
        pytest.param("gone", id="410-gone", marks=pytest.mark.quick),
    ],
)
def test_an_expired_delta_link_turns_into_a_full_run_by_itself(synced: Twin, mode: str) -> None:
    synced.mutate(update_users=3, soft_delete_devices=1, add_users=2)
    synced.sb.set_tenant(delta_expiry_mode=mode, expire_delta_tokens=True)
    result = synced.env.run("sync")
    assert result.code == 0, result.err
    assert "(full)" in result.out, result.out
    assert "delta link had expired" in result.err, result.err
    expired = {r["status"] for r in synced.sb.stats()["requests"] if r["route"].endswith("/delta")}
    assert (410 if mode == "gone" else 400) in expired, expired
    synced.check()


@pytest.mark.parametrize("full", [True, False], ids=["full-read", "incremental-read"])
def test_a_paging_chain_that_breaks_halfway_removes_nothing_and_the_next_run_completes(
    synced: Twin, full: bool
) -> None:
    synced.sb.set_tenant(delta_page_size=8)
    synced.ref.sb.set_tenant(delta_page_size=8)
    touched = synced.mutate(update_users=12, hard_delete_users=1, soft_delete_users=1)
    gone = set(touched["hard_delete_users"] + touched["soft_delete_users"])

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if request.path.endswith("/users/delta") and interceptor.count("/users/delta") == 2:
            return _graph_400(request)  # the second page's link is refused: the chain is broken
        return original(request)

    with Interceptor(synced.sb, "graph", hook) as interceptor:
        broken = synced.env.run("sync", *(["--full"] if full else []))
    assert broken.code == 1, broken.out
    assert _marked(synced.sb) <= gone, "a user was marked although the read never saw all users"
    again = synced.env.run("sync")
    assert again.code == 0, again.err
    synced.check()


@pytest.mark.quick
def test_when_30_percent_of_users_vanish_the_guard_refuses_and_nothing_changes(synced: Twin) -> None:
    before = snapshot(synced.sb)
    synced.mutate(hard_delete_users=12)  # 30% of 40
    refused = synced.env.run("sync")
    assert refused.code == 3, refused.out
    assert "deletion guard" in refused.out
    assert snapshot(synced.sb) == before
    writes = [r for r in synced.sb.stats()["requests"] if r["method"] in ("PUT", "DELETE")]
    assert not writes, writes
    assert synced.env.run("plan", "--detailed-exitcode").code == 3  # still refused, still nothing done
    plan = synced.env.run("plan", "--format", "json").json()
    assert synced.env.run("sync", "--approve", plan["plan_hash"]).code == 0
    synced.check()


@pytest.mark.quick
def test_devices_whose_owner_could_not_be_read_get_it_on_the_next_run(synced: Twin) -> None:
    """A $batch of owners fails: those devices are not committed as done, so the next run reads them again."""
    synced.mutate(add_devices=25, reassign_owners=0)

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if request.path.endswith("/$batch") and interceptor.count("/$batch") == 1:
            return _graph_400(request)
        return original(request)

    with Interceptor(synced.sb, "graph", hook) as interceptor:
        first = synced.env.run("sync")
    assert first.code == 1, first.out
    assert "owner" in first.err, first.err
    again = synced.env.run("sync")
    assert again.code == 0, again.err
    synced.check()
