"""`importer sandbox serve --write-config` gives a config that works as is, in another process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import msal
import requests


def test_serve_writes_a_config_that_plan_can_use_with_nothing_else(tmp_path: Path) -> None:
    config = tmp_path / "sb.yaml"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer",
            "sandbox",
            "serve",
            "--users",
            "200",
            "--devices",
            "300",
            "--write-config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        assert info["config"] == str(config.resolve())
        for key in (
            "authority_host",
            "tenant_id",
            "client_id",
            "client_secret",
            "graph_url",
            "site_url",
            "assets_api_url",
            "jira_email",
            "jira_api_token",
            "ca_bundle",
            "control_url",
        ):
            assert info[key], key
        session = requests.Session()
        session.trust_env = False
        session.verify = info["ca_bundle"]
        app = msal.ConfidentialClientApplication(
            info["client_id"],
            client_credential=info["client_secret"],
            authority=f"https://{info['authority_host']}/{info['tenant_id']}",
            instance_discovery=False,
            http_client=session,
        )
        token = app.acquire_token_for_client([info["graph_url"] + "/.default"])
        assert "access_token" in token
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        url: str | None = f"{info['graph_url']}/v1.0/users?$top=50"
        users = 0
        while url:
            page = session.get(url, headers=headers, timeout=10).json()
            users += len(page["value"])
            url = page.get("@odata.nextLink")
        assert users == 200
        for args in (["schema", "apply"], ["plan", "--detailed-exitcode"]):
            done = subprocess.run(
                [sys.executable, "-m", "importer", "--config", str(config), *args],
                check=False,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode in (0, 2), done.stderr
        assert "Plan: 500 to create" in done.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert server.returncode == 0
