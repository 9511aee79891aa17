"""Canaries: a full sandbox sync at debug level, with faults and a failing object, leaks no person
and no secret into log files, stderr, the state file or exception text; pseudonyms are there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from importer.logs import log_write_failures
from importer.vault import Vault, VaultSettings
from tests.e2e.conftest import Env, Result, make_env
from tests.privacy.conftest import Canary, add_canaries, files_under


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from make_env(tmp_path, users=30, devices=40)


def secrets_of(env: Env) -> dict[str, str]:
    """Every credential the installation holds: sandbox credentials, encryption string, pepper."""
    info = env.sb.info()
    key_file = env.config.with_suffix(".key")
    settings = VaultSettings(
        path=env.config.with_suffix(".vault"), instance="sandbox", passphrase_file=key_file
    )
    pepper = Vault.open(settings, environ={}).get("log_pepper").reveal()
    return {
        "client secret": info["client_secret"],
        "api token": info["jira_api_token"],
        "passphrase": key_file.read_text(encoding="utf-8").strip(),
        "pepper": pepper,
        "tenant id": info["tenant_id"],
        "client id": info["client_id"],
    }


def leaks(text: str, canaries: list[Canary], secrets: dict[str, str]) -> list[str]:
    found = [f"{c.token}: {v!r}" for c in canaries for v in c.values() if v in text]
    return found + [name for name, value in secrets.items() if value in text]


def test_no_canary_and_no_secret_leaves_the_importer(env: Env) -> None:
    canaries = add_canaries(env.sb)
    rejected = next(c for c in canaries if c.rejected)
    env.sb.set_faults(
        rate_429=0.1, rate_5xx=0.05, retry_after=[0.01, 0.02], drop_rate=0.01, truncate_rate=0.01
    )
    failures_before = log_write_failures()
    runs: list[Result] = []

    first = env.run("--log-level", "debug", "sync")
    runs.append(first)
    assert first.code == 1, first.err  # the rejected mail fails that one object, the rest applies
    assert "1 failed" in first.out
    with env.sb.directory.lock:
        env.sb.directory.users.set(canaries[0].graph_id, {"jobTitle": "Canary Keeper qxk1"})
    runs.append(env.run("--log-level", "debug", "sync"))  # incremental: the changed canary, the failure again
    runs.append(env.run("--log-level", "debug", "sync", "--full"))
    env.sb.set_faults(reset=True)
    pseudonym = env.run("privacy", "pseudonym", canaries[1].upn)
    exported = env.run("--log-level", "debug", "privacy", "export", canaries[0].mail)  # non-ASCII mail
    assert canaries[0].graph_id in {a["entra_id"] for a in exported.json()["assets"]}
    debug = ("--log-level", "debug")
    forgot = env.run(*debug, "privacy", "forget", "--delete-objects", "--yes", canaries[1].upn)
    assert "1 Assets objects deleted" in forgot.out  # the #EXT# guest, found by UPN
    runs += [pseudonym, exported, forgot]
    env.sb.set_tenant(permissions=[])  # a run that fails outright: its final error message
    denied = env.run("--log-level", "debug", "sync")
    assert denied.code != 0
    runs.append(denied)

    secrets = secrets_of(env)
    log_files = files_under(env.config.parent / "importer-logs")
    state_files = files_under(env.config.parent, ".db", ".db-wal", ".db-shm")
    assert log_files
    assert state_files
    assert log_write_failures() == failures_before
    vault_file = env.config.with_suffix(".vault")  # only ciphertext: no secret in clear
    for path in [*log_files, *state_files, vault_file]:
        text = path.read_bytes().decode("utf-8", "replace")
        assert not leaks(text, canaries, secrets), path.name
    for path in log_files:  # state keys its id map by Graph id; logs never hold one
        assert not [c.token for c in canaries if c.graph_id in path.read_text(encoding="utf-8")]
    for result in runs:
        assert not leaks(result.err, canaries, secrets), result.err[-2000:]
    assert not leaks(denied.err + first.out, canaries, secrets)

    logged = "".join(p.read_text(encoding="utf-8") for p in log_files)
    assert '"level": "debug"' in logged
    pids = env.run("privacy", "pseudonym", rejected.graph_id).out.strip()
    assert f'"source_id": "{pids}"' in logged  # the failing object, findable by its person
    assert f'"person": "{pseudonym.out.strip()}"' in logged  # the forget, under their pseudonym
