"""importer doctor and secrets verify --online against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from importer.sandbox.app import Sandbox
from importer.sandbox.configfile import write_config
from importer.state import SqliteStateStore
from tests.e2e.conftest import Env


def test_doctor_passes_every_check_on_a_working_setup(env: Env) -> None:
    result = env.run("doctor")
    assert result.code == 0, result.out
    for name in (
        "config",
        "vault",
        "state",
        "entra_token",
        "graph_users",
        "graph_devices",
        "assets_access",
        "assets_schema",
        "jira_accounts",
    ):
        assert any(
            line.split()[1:2] == [name] and line.split()[0] == "ok" for line in result.out.splitlines()
        ), name


def test_doctor_names_the_missing_permission_and_the_fix(env: Env) -> None:
    env.sb.set_tenant(permissions=["User.Read.All"])  # Device.Read.All not granted
    result = env.run("doctor")
    assert result.code == 1
    assert "FAILED  graph_devices" in result.out
    assert "fix: add the application permission Device.Read.All and grant admin consent" in result.out


def test_doctor_explains_an_expired_client_secret(env: Env) -> None:
    env.sb.set_tenant(secret_expired=True)
    result = env.run("doctor")
    assert result.code == 1
    assert "FAILED  entra_token" in result.out
    assert "7000222" in result.out
    assert env.sb.info()["client_secret"] not in result.out + result.err


def test_doctor_reports_schema_drift(tmp_path: object) -> None:
    from pathlib import Path

    from tests.e2e.conftest import make_env

    for env in make_env(Path(str(tmp_path))):
        env.edit_mapping(
            lambda doc: doc["mapping"]["object_types"][0]["attributes"].update({"Country": "country"})
        )
        result = env.run("doctor")
        assert result.code == 1
        assert "FAILED  assets_schema" in result.out
        assert "Country" in result.out


def test_secrets_verify_online_tries_the_credentials(env: Env) -> None:
    result = env.run("secrets", "verify", "--online")
    assert result.code == 0, result.out + result.err
    assert "ok: entra_token" in result.out
    assert "ok: jira_accounts" in result.out


# -- doctor writes nothing ----------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Env]:
    """A sandbox and a config for it, and nothing run yet: no state store exists."""
    with Sandbox(users=5, devices=5, seed=3) as sb:
        yield Env(sb=sb, config=write_config(sb.info(), tmp_path / "importer.yaml"))


def test_doctor_reports_a_missing_state_file_and_does_not_create_it(fresh: Env) -> None:
    state = fresh.config.with_suffix(".db")
    result = fresh.run("doctor")
    assert result.code == 1
    assert f"FAILED  state          missing: SQLite state file {state} does not exist yet" in result.out
    assert "fix: run `importer state init`" in result.out
    assert "ok  assets_access" in result.out  # the other checks still run
    assert not state.exists()
    verify = fresh.run("secrets", "verify", "--online")
    assert verify.code == 0, verify.err
    assert not state.exists()
    assert fresh.run("state", "init").code == 0
    assert "ok  state" in fresh.run("doctor").out


def test_doctor_reports_a_missing_dynamodb_table_and_does_not_create_it(
    fresh: Env, moto_endpoint: str
) -> None:
    table = "doctor-missing-table"
    fresh.edit_mapping(
        lambda doc: doc["state"].update(
            backend="dynamodb", table=table, region="eu-west-1", endpoint_url=moto_endpoint
        )
    )
    result = fresh.run("doctor")
    assert result.code == 1
    assert f"FAILED  state          missing: DynamoDB table {table!r} does not exist yet" in result.out
    assert "fix: run `importer state init`" in result.out
    dynamodb: Any = boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=moto_endpoint)
    assert table not in dynamodb.list_tables()["TableNames"]


def test_doctor_leaves_the_installation_record_as_it_was(env: Env) -> None:
    store = SqliteStateStore(env.config.with_suffix(".db"), instance="sandbox")
    try:
        before = store.get_installation()
        assert before is not None  # written by `schema apply`
        assert env.run("doctor").code == 0
        assert store.get_installation() == before  # not even last_seen moved
    finally:
        store.close()


def test_doctor_names_a_state_store_of_another_site(env: Env) -> None:
    env.edit_mapping(lambda doc: doc["assets"].update(site_url="https://other-site.atlassian.net"))
    result = env.run("doctor")
    assert result.code == 1
    assert "FAILED  assets_access" in result.out
    assert "belongs to the Assets site" in result.out
