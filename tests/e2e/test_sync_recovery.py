"""What a run that went partly wrong leaves behind: retries, untouched owners, records, retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from importer.config import load_settings
from importer.errors import FatalError
from importer.runtime import open_state
from importer.sandbox.base import SandboxRequest, SandboxResponse
from importer.sandbox.odata import graph_error_body
from importer.sandbox.testing import http_session
from importer.state import Approval, RunRecord, SqliteStateStore, StateStore
from tests.e2e.conftest import Env
from tests.resilience.conftest import Handler, Interceptor


def graph(env: Env, source: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in env.sb.directory.dump(source)["value"]}


@pytest.fixture
def state(env: Env) -> Iterator[StateStore]:
    """The importer's own state store (the SQLite file next to the config)."""
    store = open_state(load_settings(env.config))
    yield store
    store.close()


def _graph_400(request: SandboxRequest) -> SandboxResponse:
    body = graph_error_body("Request_BadRequest", "The request is invalid.", "rid-test", "crid-test")
    return SandboxResponse(status=400, body=body, route="/intercepted")


def _assets_400() -> SandboxResponse:
    body = {"errorMessages": [], "errors": {"rlabs-insight-attribute-999": "Job Title: not allowed"}}
    return SandboxResponse(status=400, body=body, route="/intercepted")


def _owners(env: Env) -> dict[str, str | None]:
    """Device Graph id -> the Assets object id its Owner attribute holds."""
    return {gid: env.value(obj, "Owner") for gid, obj in env.by_key("Entra Device").items()}


# -- 1. a reference to an object whose create failed ----------------------------------------------


def test_a_device_whose_new_owner_could_not_be_created_gets_its_owner_on_the_next_run(env: Env) -> None:
    devices = graph(env, "devices")
    device, owner = next(
        (gid, d["registeredOwnerId"]) for gid, d in sorted(devices.items()) if d.get("registeredOwnerId")
    )

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if request.path.endswith("/object/create") and owner.encode() in request.body:
            return _assets_400()
        return original(request)

    with Interceptor(env.sb, "assets", hook):
        first = env.run("sync")
    assert first.code == 1, first.out
    assert device not in env.by_key("Entra Device")  # not created without its owner
    assert "the referenced Entra User object could not be created in this run" in first.err
    again = env.run("sync")
    assert again.code == 0, again.err
    users = env.by_key("Entra User")
    assert env.value(env.by_key("Entra Device")[device], "Owner") == users[owner]["id"]
    assert env.run("plan", "--full", "--detailed-exitcode").code == 0


# -- 2. owners that could not be read -------------------------------------------------------------


def test_devices_whose_owner_could_not_be_read_keep_their_owner_even_when_nulls_clear(env: Env) -> None:
    def clear_owner_on_null(doc: dict[str, Any]) -> None:
        doc["mapping"]["object_types"][1]["attributes"]["Owner"]["clear_on_null"] = True

    env.edit_mapping(clear_owner_on_null)
    assert env.run("sync").code == 0
    before = _owners(env)
    assert sum(1 for o in before.values() if o) >= 20

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if request.path.endswith("/$batch") and interceptor.count("/$batch") == 1:
            return _graph_400(request)  # the first 20 devices' owners cannot be read
        return original(request)

    with Interceptor(env.sb, "graph", hook) as interceptor:
        plan = env.run("plan", "--full", "--format", "json")
    assert "could not be read" in " ".join(plan.json()["warnings"])
    assert [c for c in plan.json()["changes"] if "Owner" in c["diff"]] == []
    with Interceptor(env.sb, "graph", hook) as interceptor:
        synced = env.run("sync", "--full")
    assert synced.code == 1, synced.out
    assert "could not be read" in synced.err
    assert _owners(env) == before
    assert env.run("sync").code == 0
    assert _owners(env) == before


# -- 3. a full run with failures -------------------------------------------------------------------


def test_a_full_run_whose_repair_failed_is_retried_by_the_next_run(env: Env) -> None:
    assert env.run("sync").code == 0
    users = graph(env, "users")
    gid, obj = next((g, o) for g, o in sorted(env.by_key("Entra User").items()) if users[g].get("jobTitle"))
    answer = http_session(env.sb).put(
        f"{env.sb.info()['control_url']}/assets/objects/{obj['id']}",
        json={"attributes": {"Job Title": "Edited by hand"}},
    )
    assert answer.status_code == 200, answer.text

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if request.method == "PUT" and request.path.endswith(f"/object/{obj['id']}"):
            return _assets_400()
        return original(request)

    with Interceptor(env.sb, "assets", hook):
        repair = env.run("sync", "--full")
    assert repair.code == 1, repair.out
    assert "retried on the next run" in repair.err
    again = env.run("sync")  # not --full: the failed repair must not wait for the next full run
    assert again.code == 0, again.err
    assert env.value(env.by_key("Entra User")[gid], "Job Title") == users[gid]["jobTitle"]
    assert env.run("plan", "--detailed-exitcode").code == 0


# -- 4. plan from an incomplete read ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_a_plan_from_an_incomplete_read_exits_1_and_says_why(env: Env, fmt: str) -> None:
    assert env.run("sync").code == 0
    env.sb.set_tenant(delta_page_size=8)

    def hook(request: SandboxRequest, original: Handler) -> SandboxResponse | None:
        if request.path.endswith("/users/delta") and interceptor.count("/users/delta") == 2:
            return _graph_400(request)  # the second page of the round is refused
        return original(request)

    with Interceptor(env.sb, "graph", hook) as interceptor:
        plan = env.run("plan", "--full", "--format", fmt, "--detailed-exitcode")
    assert plan.code == 1, plan.out
    assert "the read from Entra did not complete" in plan.out
    assert "this plan is incomplete" in plan.out
    assert "exits 1" in plan.out


# -- 5. the account cache after the commit ---------------------------------------------------------


def test_a_failed_account_cache_write_after_the_commit_leaves_the_run_committed(
    env: Env, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: SqliteStateStore, recs: Any) -> None:
        raise FatalError("state file: disk I/O error")

    monkeypatch.setattr(SqliteStateStore, "put_accounts", refuse)
    result = env.run("sync")
    assert result.code == 0, result.err
    assert state.list_runs(limit=1)[0].outcome == "success"
    logs = "".join(p.read_text() for p in env.config.parent.rglob("*.json*") if p.is_file())
    assert "account_cache_write_failed" in logs
    monkeypatch.undo()
    assert env.run("plan", "--detailed-exitcode").code == 0  # committed: nothing left to do


# -- 6. run records of runs that did nothing -------------------------------------------------------


def test_a_refused_run_is_recorded_and_shown_as_having_done_nothing(env: Env, state: StateStore) -> None:
    assert env.run("sync").code == 0
    env.sb.mutate(hard_delete_users=10)
    assert env.run("sync").code == 3
    last = state.list_runs(limit=1)[0]
    assert (last.outcome, dict(last.counts)) == ("refused", {})
    status = env.run("status", "--json")
    assert status.code == 0, status.err
    run = status.json()["runs"][0]
    assert run["outcome"] == "refused"
    assert run["changes"] == {"create": 0, "update": 0, "mark": 0, "delete": 0, "failed": 0}


# -- 7. retention without a daemon -----------------------------------------------------------------


def _old_run(run_id: str) -> RunRecord:
    started = datetime.now(UTC) - timedelta(days=70)
    return RunRecord(
        run_id=run_id,
        instance="sandbox",
        started_at=started,
        finished_at=started,
        mode="incremental",
        trigger="ci",
        outcome="success",
    )


def _stored_runs(env: Env) -> set[str]:
    path = load_settings(env.config).state.path
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT run_id FROM run")}


def test_a_committed_sync_deletes_expired_records_at_most_once_a_day(env: Env, state: StateStore) -> None:
    state.init()
    state.record_run(_old_run("expired-1"))
    assert env.run("sync").code == 0
    assert "expired-1" not in _stored_runs(env)
    state.record_run(_old_run("expired-2"))
    assert env.run("sync").code == 0
    assert "expired-2" in _stored_runs(env)  # swept less than a day ago


def test_a_failed_sweep_is_a_warning_not_a_failed_run(
    env: Env, state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: SqliteStateStore, **kwargs: Any) -> int:
        raise FatalError("state file: database disk image is malformed")

    monkeypatch.setattr(SqliteStateStore, "sweep_if_due", broken)
    result = env.run("sync")
    assert result.code == 0, result.err
    assert state.list_runs(limit=1)[0].outcome == "success"


# -- 8. approvals are one-shot ---------------------------------------------------------------------


def test_an_approval_is_used_up_by_the_run_that_applied_it(env: Env, state: StateStore) -> None:
    assert env.run("sync").code == 0
    env.sb.mutate(hard_delete_users=10)
    plan_hash = env.run("plan", "--format", "json").json()["plan_hash"]
    assert env.run("sync", "--approve", plan_hash).code == 0
    assert state.get_approval(plan_hash) is None


def test_a_stored_approval_of_an_unapplied_plan_lets_the_next_run_apply_it_once(
    env: Env, state: StateStore
) -> None:
    assert env.run("sync").code == 0
    env.sb.mutate(hard_delete_users=10)
    plan_hash = env.run("plan", "--format", "json").json()["plan_hash"]
    state.add_approval(Approval(plan_hash=plan_hash, approved_at=datetime.now(UTC), approved_by="manual"))
    applied = env.run("sync")  # no --approve: the stored approval (of a run that stopped) opens the guard
    assert applied.code == 0, applied.out
    assert "10 marked" in applied.out
    assert state.get_approval(plan_hash) is None
