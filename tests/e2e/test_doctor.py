"""importer doctor and secrets verify --online against the sandbox."""

from __future__ import annotations

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
