"""``importer secrets``: values never on the command line or in output; errors exit 4 without a traceback."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

from importer import secrets_cli
from importer.secrets_cli import secrets
from importer.vault import ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, Vault, VaultSettings, WrongKeyError

PASS = "correct horse battery staple"
NEW_PASS = "a completely different string"
TOKEN = "CANARY-jira-token-5d1e7a"
CLIENT_SECRET = "CANARY-client-secret-0b9c33"


@dataclass
class FakeApp:
    """Stands in for the CLI frame's context object."""

    settings: VaultSettings

    def vault_settings(self) -> VaultSettings:
        return self.settings


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PASSPHRASE, PASS)
    monkeypatch.delenv(ENV_PASSPHRASE_FILE, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never real AWS


@pytest.fixture
def settings(tmp_path: Path) -> VaultSettings:
    return VaultSettings(path=tmp_path / "vault.json", instance="cli-test")


def run(settings: VaultSettings, *args: str, input: str | None = None) -> Result:
    """Invoke ``importer secrets ARGS`` with a fake frame; output is checked for leaked values."""
    result = CliRunner().invoke(secrets, list(args), obj=FakeApp(settings), input=input)
    for value in (PASS, NEW_PASS, TOKEN, CLIENT_SECRET):
        assert value not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def initialised(settings: VaultSettings) -> VaultSettings:
    assert run(settings, "init").exit_code == 0
    assert run(settings, "set", "jira_api_token", "--stdin", input=TOKEN + "\n").exit_code == 0
    return settings


def test_help_explains_setup() -> None:
    result = CliRunner().invoke(secrets, ["--help"])
    assert result.exit_code == 0
    for text in (ENV_PASSPHRASE, ENV_PASSPHRASE_FILE, "importer secrets init", "--stdin", "docs/secrets.md"):
        assert text in result.output


def test_the_main_command_carries_the_group() -> None:
    from importer.cli import main

    result = CliRunner().invoke(main, ["secrets", "--help"])
    assert result.exit_code == 0
    assert "importer secrets set entra_tenant_id" in result.output


def test_init_creates_a_0600_vault_and_refuses_to_overwrite(settings: VaultSettings) -> None:
    result = run(settings, "init")
    assert result.exit_code == 0
    assert "log_pepper generated" in result.output
    assert stat.S_IMODE(settings.path.stat().st_mode) == 0o600
    before = settings.path.read_bytes()
    again = run(settings, "init")
    assert again.exit_code == 4
    assert "refusing to overwrite" in again.stderr
    assert "Traceback" not in again.output
    assert settings.path.read_bytes() == before


def test_init_prompts_twice_without_an_encryption_string(
    settings: VaultSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_PASSPHRASE)
    result = run(settings, "init", input=f"{PASS}\nnot the same\n{PASS}\n{PASS}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat it to confirm" in result.output
    assert Vault.open(settings, environ={ENV_PASSPHRASE: PASS}).verify() == ["log_pepper"]


def test_set_from_stdin_and_from_the_hidden_prompt(
    initialised: VaultSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Vault.open(initialised).get("jira_api_token").reveal() == TOKEN
    monkeypatch.setattr(secrets_cli, "_interactive", lambda: True)
    result = run(initialised, "set", "entra_client_secret", input=f"{CLIENT_SECRET}\n{CLIENT_SECRET}\n")
    assert result.exit_code == 0
    assert "stored entra_client_secret" in result.output
    assert Vault.open(initialised).get("entra_client_secret").reveal() == CLIENT_SECRET


def test_at_a_terminal_the_encryption_string_is_asked_for(
    initialised: VaultSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_PASSPHRASE)
    assert run(initialised, "list").exit_code == 4  # not a terminal: the error names the variables
    monkeypatch.setattr(secrets_cli, "_interactive", lambda: True)
    result = run(initialised, "list", input=f"{PASS}\n")
    assert result.exit_code == 0, result.output
    assert "jira_api_token" in result.output


def test_piped_stdin_is_read_without_the_flag(initialised: VaultSettings) -> None:
    result = run(initialised, "set", "jira_api_token", input="CANARY-piped-value\n")
    assert "replaced jira_api_token" in result.output
    assert Vault.open(initialised).get("jira_api_token").reveal() == "CANARY-piped-value"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["entra_client_secret", CLIENT_SECRET], id="positional"),
        pytest.param(["entra_client_secret", f"--value={CLIENT_SECRET}"], id="option"),
        pytest.param(["--stdin", "entra_client_secret", "--", CLIENT_SECRET], id="after-dashes"),
    ],
)
def test_set_never_takes_the_value_as_an_argument(initialised: VaultSettings, args: list[str]) -> None:
    before = initialised.path.read_bytes()
    result = run(initialised, "set", *args, input="CANARY-from-stdin\n")
    assert result.exit_code == 2
    assert "never taken from the command line" in result.output
    assert initialised.path.read_bytes() == before


def test_list_shows_names_and_times_never_values(initialised: VaultSettings) -> None:
    result = run(initialised, "list")
    assert result.exit_code == 0
    assert "jira_api_token" in result.output
    assert "log_pepper" in result.output
    assert "not set: entra_tenant_id" in result.output
    pepper = Vault.open(initialised).get("log_pepper").reveal()
    assert pepper not in result.output


def test_verify_decrypts_everything(initialised: VaultSettings) -> None:
    result = run(initialised, "verify")
    assert result.exit_code == 0
    assert "all 2 secrets decrypt (jira_api_token, log_pepper)" in result.output


def test_verify_online_needs_the_whole_configuration(initialised: VaultSettings) -> None:
    result = run(initialised, "verify", "--online")
    assert result.exit_code == 4
    assert "ok:" in result.stdout
    assert "online checks need the full configuration" in result.stderr


def test_wrong_encryption_string_exits_4_with_the_message(
    initialised: VaultSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_PASSPHRASE, "wrong horse battery")
    result = run(initialised, "list")
    assert result.exit_code == 4
    assert "wrong encryption string, or the file was tampered with" in result.stderr
    assert "Traceback" not in result.output


def test_a_world_readable_vault_is_refused_with_the_fix(initialised: VaultSettings) -> None:
    initialised.path.chmod(0o644)
    result = run(initialised, "verify")
    assert result.exit_code == 4
    assert f"chmod 600 {initialised.path}" in result.stderr


def test_rotate_new_passphrase(initialised: VaultSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(initialised, "rotate", "--new-passphrase", input=f"{NEW_PASS}\n{NEW_PASS}\n")
    assert result.exit_code == 0, result.output
    assert "old encryption string no longer works" in result.output
    with pytest.raises(WrongKeyError):
        Vault.open(initialised, environ={ENV_PASSPHRASE: PASS})
    monkeypatch.setenv(ENV_PASSPHRASE, NEW_PASS)
    assert Vault.open(initialised).get("jira_api_token").reveal() == TOKEN


def test_rotate_data_key_changes_every_ciphertext(initialised: VaultSettings) -> None:
    before = json.loads(initialised.path.read_text())["secrets"]
    assert run(initialised, "rotate", "--data-key").exit_code == 0
    after = json.loads(initialised.path.read_text())["secrets"]
    assert all(after[n]["ciphertext"] != before[n]["ciphertext"] for n in before)
    assert Vault.open(initialised).get("jira_api_token").reveal() == TOKEN


def test_rotate_to_kms(tmp_path: Path, moto_endpoint: str) -> None:
    kms: Any = boto3.client("kms", region_name="eu-west-1", endpoint_url=moto_endpoint)
    key = str(kms.create_key()["KeyMetadata"]["KeyId"])
    local = {"kms_region": "eu-west-1", "kms_endpoint_url": moto_endpoint}
    settings = VaultSettings(path=tmp_path / "vault.json", instance="cli-test", **local)
    run(settings, "init")
    result = run(settings, "rotate", "--to-kms", key)
    assert result.exit_code == 0, result.output
    assert f"set vault.kms_key_id: {key}" in result.output
    with_kms = VaultSettings(path=settings.path, instance="cli-test", kms_key_id=key, **local)
    assert Vault.open(with_kms, environ={}).require == ("kms",)


def test_delete_asks_first(initialised: VaultSettings) -> None:
    declined = run(initialised, "delete", "jira_api_token", input="n\n")
    assert declined.exit_code == 1
    assert "jira_api_token" in [i.name for i in Vault.open(initialised).names()]
    assert run(initialised, "delete", "jira_api_token", "--yes").exit_code == 0
    assert "jira_api_token" not in [i.name for i in Vault.open(initialised).names()]
    missing = run(initialised, "delete", "jira_api_token", "--yes")
    assert missing.exit_code == 4
    assert "missing the secret jira_api_token" in missing.stderr


# -- the log pepper ---------------------------------------------------------------------------

NEW_PEPPER = "bmV3LXBlcHBlci0zMi1ieXRlcy1sb25nLXh4eHh4eHg="  # base64 of 32 bytes


def pepper_of(settings: VaultSettings) -> str:
    return Vault.open(settings).get("log_pepper").reveal()


def test_an_existing_log_pepper_is_replaced_only_with_force(initialised: VaultSettings) -> None:
    before = pepper_of(initialised)
    refused = run(initialised, "set", "log_pepper", "--stdin", input=NEW_PEPPER + "\n")
    assert refused.exit_code == 4
    assert "already holds a log_pepper; nothing was changed" in refused.stderr
    assert "privacy export" in refused.stderr  # says what a new pepper costs
    assert "new state store" in refused.stderr
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.output
    assert pepper_of(initialised) == before
    forced = run(initialised, "set", "log_pepper", "--stdin", "--force", input=NEW_PEPPER + "\n")
    assert forced.exit_code == 0, forced.output
    assert "replaced log_pepper" in forced.output
    assert pepper_of(initialised) == NEW_PEPPER


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("short-pepper", id="text-under-16-bytes"),
        pytest.param("c2hvcnQtcGVwcGVy", id="base64-of-12-bytes"),
    ],
)
def test_a_log_pepper_under_16_bytes_is_refused(initialised: VaultSettings, value: str) -> None:
    before = pepper_of(initialised)
    result = run(initialised, "set", "log_pepper", "--stdin", "--force", input=value + "\n")
    assert result.exit_code == 4
    assert "log_pepper must be at least 16 bytes" in result.stderr
    assert "openssl rand -base64 32" in result.stderr
    assert pepper_of(initialised) == before


def test_the_help_of_set_and_delete_explains_what_a_new_pepper_costs() -> None:
    for verb in ("set", "delete"):
        result = CliRunner().invoke(secrets, [verb, "--help"])
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        assert "--force" in text
        assert "new pseudonyms" in text
        assert "privacy export" in text


def test_log_pepper_is_deleted_only_with_force(initialised: VaultSettings) -> None:
    refused = run(initialised, "delete", "log_pepper", "--yes")
    assert refused.exit_code == 4
    assert "refusing to delete log_pepper" in refused.stderr
    assert "does not start without it" in refused.stderr
    assert "log_pepper" in [i.name for i in Vault.open(initialised).names()]
    assert run(initialised, "delete", "log_pepper", "--yes", "--force").exit_code == 0
    assert "log_pepper" not in [i.name for i in Vault.open(initialised).names()]
    again = run(initialised, "set", "log_pepper", "--stdin", input=NEW_PEPPER + "\n")
    assert again.exit_code == 0  # no pepper to lose: a new installation may set one
    assert pepper_of(initialised) == NEW_PEPPER


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["set", "delete"])
def test_an_invalid_name_is_refused_before_any_prompt_and_never_echoed(
    initialised: VaultSettings, monkeypatch: pytest.MonkeyPatch, verb: str
) -> None:
    monkeypatch.setattr(secrets_cli, "_interactive", lambda: True)
    monkeypatch.delenv(ENV_PASSPHRASE)  # a prompt for the encryption string would come first
    before = initialised.path.read_bytes()
    typo = "CANARY-Pasted-Value-77"  # a value typed where the name goes
    result = run(initialised, verb, typo, input=f"{PASS}\nx\nx\ny\n")
    assert result.exit_code == 4
    assert "invalid secret name" in result.stderr
    assert typo not in result.output
    assert "Encryption string" not in result.output
    assert "Value for" not in result.output
    assert "Delete" not in result.output
    assert initialised.path.read_bytes() == before


# -- errors ---------------------------------------------------------------------------------------


def test_a_multi_line_error_keeps_its_line_breaks(tmp_path: Path) -> None:
    from importer.cli import main

    config = tmp_path / "config.yaml"
    config.write_text("instance: ok\nnot_a_key: 1\nalso_not_a_key: 2\n")
    result = CliRunner().invoke(main, ["--config", str(config), "secrets", "list"])
    assert result.exit_code == 4
    assert "\\u000a" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) > 2
    assert any("not_a_key" in line for line in lines[1:])


# -- a vault weaker than the configuration requires -------------------------------------------


def test_the_require_mismatch_names_a_rotate_command_that_works(tmp_path: Path, moto_endpoint: str) -> None:
    kms: Any = boto3.client("kms", region_name="eu-west-1", endpoint_url=moto_endpoint)
    key = str(kms.create_key()["KeyMetadata"]["KeyId"])
    local = {"kms_region": "eu-west-1", "kms_endpoint_url": moto_endpoint}
    passphrase_only = VaultSettings(path=tmp_path / "vault.json", instance="cli-test", **local)
    assert run(passphrase_only, "init").exit_code == 0
    with_kms = VaultSettings(path=passphrase_only.path, instance="cli-test", kms_key_id=key, **local)

    refused = run(with_kms, "list")
    assert refused.exit_code == 4
    assert "is protected by passphrase but the configuration requires kms" in refused.stderr
    command = refused.stderr.split("run `", 1)[1].split("`", 1)[0]
    assert command == "importer secrets rotate --require kms"
    assert run(with_kms, "rotate").exit_code == 4  # the plain rotate would drop the passphrase
    rotated = run(with_kms, *command.split()[2:])
    assert rotated.exit_code == 0, rotated.output
    assert run(with_kms, "list").exit_code == 0
    assert Vault.open(with_kms, environ={}).require == ("kms",)
