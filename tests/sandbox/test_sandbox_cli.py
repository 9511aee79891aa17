"""``importer sandbox serve`` as a process: first line JSON, usable at once, clean exit on signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from importer.sandbox.cli import sandbox

KEYS = {
    "authority_host", "tenant_id", "client_id", "client_secret", "graph_url", "site_url",
    "assets_api_url", "jira_email", "jira_api_token", "ca_bundle", "control_url", "config",
    "client_certificate", "workspace_id",
}  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_prints_its_details_first_and_stops_cleanly_on_a_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    command = [
        sys.executable,
        "-m",
        "importer.sandbox.cli",
        "serve",
        "--users",
        "5",
        "--devices",
        "3",
        "--seed",
        "2",
    ]
    command += ["--state-dir", str(tmp_path / "state"), "--write-config", str(tmp_path / "config.yaml")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            info = json.loads(proc.stdout.readline())
            assert info.keys() >= KEYS
            assert info["config"] == str((tmp_path / "config.yaml").resolve())
            assert (tmp_path / "config.vault").stat().st_mode & 0o777 == 0o600
            assert Path(info["ca_bundle"]).parent == tmp_path / "state"
            assert len(users_seen_by_a_client(info)) == 5
            proc.send_signal(sig)
            assert proc.wait(timeout=10) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()


def users_seen_by_a_client(info: dict[str, Any]) -> list[dict[str, Any]]:
    with requests.Session() as session:
        session.trust_env = False
        session.verify = info["ca_bundle"]
        token = session.post(
            f"https://{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "scope": f"{info['graph_url']}/.default",
            },
        ).json()["access_token"]
        users = session.get(f"{info['graph_url']}/v1.0/users", headers={"Authorization": f"Bearer {token}"})
        return users.json()["value"]  # type: ignore[no-any-return]


def test_serve_refuses_a_non_loopback_host() -> None:
    result = CliRunner().invoke(sandbox, ["serve", "--host", "10.1.2.3"])
    assert result.exit_code == 2
    assert "loopback" in result.output
