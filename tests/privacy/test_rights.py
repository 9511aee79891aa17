"""A person's rights: the pseudonym to search logs for, an export of what is held, being forgotten."""

from __future__ import annotations

import io
import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from importer.logs import configure_logging
from importer.sandbox.directory import HARD
from importer.state import SqliteStateStore
from tests.e2e.conftest import Env, make_env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path, users=40, devices=60)


def pseudonym(env: Env, value: str) -> str:
    result = env.run("privacy", "pseudonym", value)
    assert result.code == 0, result.err
    return result.out.strip()


def export(env: Env, who: str) -> dict[str, Any]:
    result = env.run("privacy", "export", who)
    assert result.code == 0, result.err
    doc: dict[str, Any] = result.json()
    return doc


def owner_with_devices(env: Env) -> tuple[dict[str, Any], list[str]]:
    """A member with one Jira account who owns devices, and the Graph ids of those devices."""
    users = {u["id"]: u for u in env.sb.directory.dump("users")["value"]}
    owned: dict[str, list[str]] = {}
    for device in env.sb.directory.dump("devices")["value"]:
        if device.get("registeredOwnerId"):
            owned.setdefault(device["registeredOwnerId"], []).append(device["id"])
    jira = {mail.casefold(): ids for mail, ids in env.sb.jira_accounts.items()}
    gid = next(g for g in owned if len(jira.get((users[g].get("mail") or "").casefold(), [])) == 1)
    return users[gid], owned[gid]


def audit_rows(env: Env) -> list[tuple[str, str, str]]:
    with sqlite3.connect(env.config.with_suffix(".db")) as conn:
        return conn.execute("SELECT action, subject, detail FROM audit").fetchall()


def test_the_printed_pseudonym_is_what_the_logs_hold_for_that_person(env: Env) -> None:
    users = env.sb.directory.dump("users")["value"]
    user = next(u for u in users if u.get("mail") and u["mail"] != u["userPrincipalName"])
    upn = user["userPrincipalName"]
    pid = pseudonym(env, upn)
    assert pid == pseudonym(env, upn.upper()) == pseudonym(env, f"  {upn.lower()} ")
    stream = io.StringIO()
    configure_logging(level="debug", stream=stream, console=False)  # keyed by the vault's pepper now
    try:
        log = structlog.get_logger("importer.test")
        log.info("looked_up", upn=upn, mail=upn.upper(), user_principal_name=upn, owner=upn, who=upn)
        log.info(f"free text naming {upn} and <{upn.lower()}>")
    finally:
        configure_logging(level="warning")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {first[k] for k in ("upn", "mail", "user_principal_name", "owner", "who")} == {pid}
    assert second["event"] == f"free text naming {pid} and <{pid}>"
    redacted = env.run("plan", "--redact", "--format", "json").out
    assert pid in redacted  # a --redact plan names them the same way


def test_export_shows_what_is_held_and_forget_removes_it(env: Env, tmp_path: Path) -> None:
    assert env.run("sync").code == 0
    user, devices = owner_with_devices(env)
    gid, upn, mail = user["id"], user["userPrincipalName"], user["mail"]
    with env.sb.directory.lock:  # a failing update, so a log line names them (by pseudonym)
        env.sb.directory.users.set(gid, {"mail": "held.back@nodot"})
    assert env.run("sync").code == 1
    with env.sb.directory.lock:
        env.sb.directory.users.set(gid, {"mail": mail})
    assert env.run("sync").code == 0
    pid, gid_pid = pseudonym(env, upn), pseudonym(env, gid)

    doc = export(env, upn)
    assert doc["subject"]["pseudonym"] == pid
    assert doc["subject"]["in_entra"] == [gid]
    assert {(e["type"], e["entra_id"]) for e in doc["state"]["id_map"]} == {("users", gid)} | {
        ("devices", d) for d in devices
    }
    assert [a["account_id"] for a in doc["state"]["account_cache"]] == env.sb.jira_accounts[mail]
    assets = {a["entra_id"]: a for a in doc["assets"]}
    assert assets[gid]["attributes"]["User Principal Name"] == upn.lower()
    assert assets[gid]["attributes"]["Entra Status"] == "Active"  # statuses by name, not id
    assert {d: assets[d]["attributes"]["Owner"] for d in devices} == dict.fromkeys(
        devices, assets[gid]["object_id"]
    )
    failed = [line["entry"] for line in doc["logs"]["lines"] if line["entry"]["event"] == "object_failed"]
    assert [f["source_id"] for f in failed] == [gid_pid]
    assert export(env, mail.upper())["assets"] == doc["assets"]  # by mail, any case, the same person

    out = tmp_path / "export.json"
    assert env.run("privacy", "export", upn, "--out", str(out)).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text(encoding="utf-8"))["subject"]["pseudonym"] == pid

    declined = env.run("privacy", "forget", "--delete-objects", upn)  # no input: not confirmed
    assert declined.code == 1
    dry = env.run("privacy", "forget", "--delete-objects", "--dry-run", upn)
    assert dry.code == 0, dry.err
    assert f"- Entra User {assets[gid]['object_id']}" in dry.out
    assert dry.out.count("~ Entra Device") == len(devices)
    assert "still in Entra" in dry.out
    assert "dry run: nothing was changed" in dry.out
    assert export(env, upn)["state"] == doc["state"]
    assert audit_rows(env) == []

    forgot = env.run("privacy", "forget", "--delete-objects", "--yes", upn)
    assert forgot.code == 0, forgot.err
    assert gid not in env.by_key("Entra User")
    owned = env.by_key("Entra Device")
    assert [env.value(owned[d], "Owner") for d in devices] == [None] * len(devices)  # kept, unlinked
    ((action, subject, detail),) = audit_rows(env)
    assert (action, subject) == ("privacy_forget", pid)
    assert json.loads(detail)["objects_deleted"] == "1"
    for value in (upn, upn.lower(), mail, mail.lower(), gid, user["displayName"]):
        assert value not in detail

    after = export(env, upn)
    assert after["state"]["id_map"] == []
    assert after["state"]["account_cache"] == []
    assert after["assets"] == []
    assert [r["subject"] for r in after["state"]["audit"]] == [pid]
    events = [line["entry"]["event"] for line in after["logs"]["lines"]]
    assert "object_failed" in events  # their log lines stay until the files expire
    assert "person_forgotten" in events

    # Still in Entra: an incremental plan leaves them alone, the next full run brings them back.
    assert env.run("plan", "--detailed-exitcode").code == 0
    full = env.run("plan", "--full", "--format", "json").json()
    changes = {(c["action"], c["source_id"]) for c in full["changes"]}
    assert changes == {("create", gid)} | {("update", d) for d in devices}


def test_forgetting_someone_gone_from_entra_leaves_nothing_to_recreate(env: Env) -> None:
    assert env.run("sync").code == 0
    user, devices = owner_with_devices(env)
    gid, upn = user["id"], user["userPrincipalName"]
    with env.sb.directory.lock:
        env.sb.directory.users.mark(gid, HARD)
    assert env.run("sync").code == 0  # their object is marked "Removed from Entra"
    doc = export(env, upn)
    assert doc["subject"]["in_entra"] == []
    assert {a["entra_id"] for a in doc["assets"]} == {gid, *devices}  # found through Assets
    assert next(a for a in doc["assets"] if a["entra_id"] == gid)["attributes"]["Entra Status"] == (
        "Removed from Entra"
    )

    forgot = env.run("privacy", "forget", "--delete-objects", "--yes", upn)
    assert forgot.code == 0, forgot.err
    assert "still in Entra" not in forgot.out
    assert env.run("plan", "--full", "--detailed-exitcode").code == 0  # nothing comes back
    after = export(env, upn)
    assert (after["state"]["id_map"], after["state"]["account_cache"], after["assets"]) == ([], [], [])


def test_forget_without_delete_objects_touches_only_state(env: Env) -> None:
    assert env.run("sync").code == 0
    user, devices = owner_with_devices(env)
    before = {k: v["id"] for k, v in env.by_key("Entra User").items()}
    forgot = env.run("privacy", "forget", "--yes", user["mail"])
    assert forgot.code == 0, forgot.err
    assert {k: v["id"] for k, v in env.by_key("Entra User").items()} == before
    after = export(env, user["mail"])
    assert {e["entra_id"] for e in after["state"]["id_map"]} == set(devices)  # their devices' entries stay
    assert after["state"]["account_cache"] == []
    assert {a["entra_id"] for a in after["assets"]} == {user["id"], *devices}


def test_forget_waits_for_no_sync(env: Env) -> None:
    assert env.run("sync").code == 0
    user, _ = owner_with_devices(env)
    store = SqliteStateStore(env.config.with_suffix(".db"), instance="sandbox")
    try:
        assert store.acquire_lease("other-host:4242", duration_s=300) is not None
        held = env.run("privacy", "forget", "--delete-objects", "--yes", user["userPrincipalName"])
    finally:
        store.close()
    assert held.code == 5
    assert "other-host:4242" in held.err
    assert user["id"] in env.by_key("Entra User")
    assert audit_rows(env) == []


def test_someone_the_importer_never_saw_gets_an_empty_export(env: Env) -> None:
    doc = export(env, "nobody.here@contoso.com")
    assert doc["subject"]["in_entra"] == []
    assert (doc["state"]["id_map"], doc["state"]["account_cache"], doc["assets"]) == ([], [], [])
    assert doc["logs"]["lines"] == []
