"""Write a complete importer configuration (and its vault) for a running sandbox.

``importer sandbox serve --write-config sb.yaml`` calls ``write_config``: the result works as
is (``importer --config sb.yaml plan`` needs nothing else). Next to the YAML it writes
``<stem>.key`` (a random encryption string, mode 0600, named by ``vault.passphrase_file``)
and ``<stem>.vault`` holding the sandbox's credentials; state and logs go next to it too.
The mapping is the documented default from ``config.example.yaml``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["default_config_document", "write_config"]


def default_config_document() -> dict[str, Any]:
    """The parsed ``config.example.yaml`` shipped with the package."""
    text = resources.files("importer").joinpath("config.example.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def write_config(
    info: Mapping[str, Any],
    path: Path,
    *,
    instance: str = "sandbox",
    schedule: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write config, key file and vault for the sandbox described by ``info``; return the config path.

    ``info`` is ``Sandbox.info()`` (the JSON line ``sandbox serve`` prints). Existing files are
    replaced (a sandbox's credentials change at every start), and an earlier state file there is
    removed.
    """
    from importer.vault import Vault, VaultSettings

    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    key_file = path.parent / f"{stem}.key"
    vault_file = path.parent / f"{stem}.vault"
    # The state of an earlier sandbox on this path describes a workspace that is gone (the
    # sandbox lives in memory) and was written under another log pepper: start it afresh.
    state_files = [path.parent / f"{stem}.db{suffix}" for suffix in ("", "-wal", "-shm")]
    for old in (key_file, vault_file, *state_files):
        old.unlink(missing_ok=True)
    passphrase = secrets.token_urlsafe(32)
    key_file.touch(mode=0o600)
    key_file.write_text(passphrase + "\n", encoding="utf-8")
    doc = default_config_document()
    doc["instance"] = instance
    doc["entra"].update(
        tenant_id="secret:entra_tenant_id",
        client_id="secret:entra_client_id",
        client_secret="secret:entra_client_secret",
        authority_host=info["authority_host"],
        graph_url=info["graph_url"],
    )
    doc["assets"].update(
        site_url=info["site_url"],
        api_url=info["assets_api_url"],
        workspace_id=info.get("workspace_id"),
        email="secret:jira_email",
        api_token="secret:jira_api_token",
    )
    doc["http"]["ca_bundle"] = info["ca_bundle"]
    # The sandbox enforces no Atlassian rate limit unless a fault sets one (assets_per_minute);
    # keep the importer's own limiter out of the way so demos and tests run at full speed.
    doc["http"]["requests_per_minute"] = 20_000
    doc["vault"].update(path=vault_file.name, passphrase_file=key_file.name, kms_key_id=None, require=None)
    doc["state"].update(backend="sqlite", path=f"{stem}.db")
    doc["logging"]["dir"] = f"{stem}-logs"
    doc["schedule"].update(schedule or {"incremental": "@every 1m", "full": "@every 1h"})
    for section, values in (overrides or {}).items():
        doc.setdefault(section, {}).update(values)
    settings = VaultSettings(path=vault_file, instance=instance, passphrase_file=key_file)
    vault = Vault.create(settings, environ={})
    for name, key in (
        ("entra_tenant_id", "tenant_id"),
        ("entra_client_id", "client_id"),
        ("entra_client_secret", "client_secret"),
        ("jira_email", "jira_email"),
        ("jira_api_token", "jira_api_token"),
    ):
        vault.set(name, str(info[key]))
    header = (
        "# importer configuration for a sandbox started by `importer sandbox serve`.\n"
        "# Credentials are in the vault next to this file; see config.example.yaml for every key.\n"
    )
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
