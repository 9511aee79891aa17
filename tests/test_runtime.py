"""The composition root: the log pepper, the vault's keys, the installation record (Data Center too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from importer.cli import main
from importer.config import Settings, load_settings
from importer.errors import ConfigError, CredentialError
from importer.runtime import open_runtime, open_vault
from importer.sandbox.configfile import write_config
from importer.vault import Vault, VaultSettings

# What `importer sandbox serve` would describe; nothing listens there: these tests stop before
# any request (the installation checks come first).
INFO: dict[str, Any] = {
    "authority_host": "127.0.0.1:9",
    "graph_url": "https://127.0.0.1:9/graph",
    "site_url": "https://contoso.atlassian.net",
    "assets_api_url": "https://127.0.0.1:9/assets",
    "workspace_id": "ws-1",
    "ca_bundle": None,
    "tenant_id": "3f1c2b4a-0000-4000-8000-000000000001",
    "client_id": "client-1",
    "client_secret": "CANARY-client-secret-e41",
    "jira_email": "importer@contoso.example",
    "jira_api_token": "CANARY-api-token-e41",
}
DC = {"flavor": "datacenter", "site_url": "https://jira.contoso.example", "workspace_id": None}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(INFO, tmp_path / "importer.yaml")


def vault_of(config: Path) -> Vault:
    return Vault.open(
        VaultSettings(
            path=config.with_suffix(".vault"), instance="sandbox", passphrase_file=config.with_suffix(".key")
        ),
        environ={},
    )


def edit(config: Path, section: str, **values: Any) -> Settings:
    doc = yaml.safe_load(config.read_text())
    doc[section].update(values)
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_settings(config)


def cli(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


# -- the log pepper ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("plan",), id="plan"),
        pytest.param(("privacy", "pseudonym", "a@x.example"), id="pseudonym"),
    ],
)
def test_a_short_log_pepper_is_a_credential_error_naming_it(config: Path, args: tuple[str, ...]) -> None:
    vault_of(config).set("log_pepper", "too-short")  # as an older `secrets set` allowed
    result = cli(config, *args)
    assert result.exit_code == 4
    assert "the log_pepper in the vault" in result.stderr
    assert "at least 16 bytes" in result.stderr
    assert "Traceback" not in result.output


def test_without_a_log_pepper_the_advice_is_to_restore_it_not_to_make_a_new_one(config: Path) -> None:
    vault_of(config).delete("log_pepper")
    result = cli(config, "plan")
    assert result.exit_code == 4
    text = " ".join(result.stderr.split())
    assert "holds no log_pepper" in text
    assert "restore the vault from a backup" in text
    assert "privacy export" in text


def test_the_vault_keys_are_wiped_once_the_secrets_are_decrypted(config: Path) -> None:
    settings = load_settings(config)
    vault = open_vault(settings)
    rt = open_runtime(settings, vault=vault)
    try:
        assert rt.value("secret:jira_email") == INFO["jira_email"]
        assert not any(vault._dek)  # closed: the data key is overwritten
    finally:
        rt.close()


# -- the installation record -----------------------------------------------------------------------


def test_data_center_records_its_site_and_refuses_a_state_store_of_another(config: Path) -> None:
    settings = edit(config, "assets", **DC)
    rt = open_runtime(settings)
    try:
        rt.assets()
        inst = rt.state.get_installation()
    finally:
        rt.close()
    assert inst is not None
    assert (inst.site_url, inst.workspace_id) == (DC["site_url"], None)

    other = edit(config, "assets", site_url="https://jira2.contoso.example")
    rt = open_runtime(other)
    try:
        with pytest.raises(ConfigError) as caught:
            rt.assets()
        assert rt.state.get_installation() == inst  # nothing overwritten
    finally:
        rt.close()
    message = str(caught.value)
    assert "assets.site_url" in message
    assert "https://jira.contoso.example" in message
    assert "https://jira2.contoso.example" in message
    assert "new state store" in message


def test_data_center_refuses_a_state_store_of_another_tenant(config: Path) -> None:
    settings = edit(config, "assets", **DC)
    rt = open_runtime(settings)
    try:
        rt.assets()
    finally:
        rt.close()
    vault_of(config).set("entra_tenant_id", "3f1c2b4a-0000-4000-8000-000000000002")
    rt = open_runtime(settings)
    try:
        with pytest.raises(CredentialError, match="belongs to another Entra tenant"):
            rt.assets()
    finally:
        rt.close()


def test_a_cloud_workspace_other_than_the_recorded_one_is_refused(config: Path) -> None:
    rt = open_runtime(load_settings(config))
    try:
        rt.assets()
    finally:
        rt.close()
    rt = open_runtime(edit(config, "assets", workspace_id="ws-2"))
    try:
        with pytest.raises(ConfigError) as caught:
            rt.assets()
    finally:
        rt.close()
    assert "assets.workspace_id: this state store belongs to the Assets workspace ws-1" in str(caught.value)


def test_the_same_site_written_differently_is_the_same_site(config: Path) -> None:
    rt = open_runtime(load_settings(config))
    try:
        rt.assets()
    finally:
        rt.close()
    rt = open_runtime(edit(config, "assets", site_url="https://Contoso.Atlassian.NET/"))
    try:
        rt.assets()  # no refusal
    finally:
        rt.close()
