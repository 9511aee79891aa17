"""The HTTPS server: keep-alive, robustness against bad clients, stats, the control API, quiet."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from importer.sandbox.app import Sandbox
from importer.sandbox.testing import GraphGet


def tls_context(sb: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=sb.info()["ca_bundle"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_certificate_is_valid_for_ip_and_name(sb: Sandbox, host: str) -> None:
    with (
        socket.create_connection(("127.0.0.1", sb.port)) as raw,
        tls_context(sb).wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_one_connection_serves_many_requests(sb: Sandbox, token: str) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", sb.port, context=tls_context(sb))
    try:
        for _ in range(20):  # http.client never reconnects: a closed connection would raise here
            conn.request("GET", "/v1.0/users?$top=2", headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == len(response.read())
    finally:
        conn.close()


def test_bad_clients_do_not_hurt_the_server(
    sb: Sandbox, get: GraphGet, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection(("127.0.0.1", sb.port)):
        pass  # connect and leave before the TLS handshake
    with socket.create_connection(("127.0.0.1", sb.port)) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP on the TLS port
    with (
        socket.create_connection(("127.0.0.1", sb.port)) as raw,
        tls_context(sb).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"POST /v1.0/$batch HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{")  # half a request
    with (
        socket.create_connection(("127.0.0.1", sb.port)) as raw,
        tls_context(sb).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"NONSENSE\r\n\r\n")
        tls.recv(1000)
    time.sleep(0.1)
    assert get("/v1.0/users", top=1).status_code == 200
    assert capfd.readouterr().err == ""  # quiet by default
    assert sb.server is not None
    assert sb.server.errors == []


def test_parallel_clients_are_served(sb: Sandbox, token: str) -> None:
    def one(_: int) -> int:
        with requests.Session() as session:
            session.trust_env = False
            session.verify = sb.info()["ca_bundle"]
            response = session.get(
                f"{sb.base_url}/v1.0/devices", headers={"Authorization": f"Bearer {token}"}
            )
            return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(one, range(32))) == {200}


def test_stats_count_by_route_template_not_by_id(sb: Sandbox, get: GraphGet, http: requests.Session) -> None:
    assert sb.directory is not None
    devices = sb.directory.dump("devices")["value"][:3]
    sb.reset_stats()
    for device in devices:
        get(f"/v1.0/devices/{device['id']}/registeredOwners")
    get("/v1.0/users", top=1)
    get("/v1.0/users", select="nope")
    http.get(f"{sb.base_url}/_sandbox/tenant")  # control calls are never counted
    stats = http.get(f"{sb.base_url}/_sandbox/stats").json()
    rows = {(r["service"], r["method"], r["route"], r["status"]): r["count"] for r in stats["requests"]}
    assert rows == {
        ("graph", "GET", "/v1.0/devices/{id}/registeredOwners", 200): 3,
        ("graph", "GET", "/v1.0/users", 200): 1,
        ("graph", "GET", "/v1.0/users", 400): 1,
    }
    assert set(stats) == {"requests", "objects", "duplicate_keys"}
    assert http.post(f"{sb.base_url}/_sandbox/stats/reset").status_code == 200
    assert http.get(f"{sb.base_url}/_sandbox/stats").json()["requests"] == []


def test_stats_count_the_authority(sb: Sandbox, token: str) -> None:
    rows = sb.stats()["requests"]
    assert {
        "service": "authority",
        "method": "POST",
        "route": "/{id}/oauth2/v2.0/token",
        "status": 200,
        "count": 1,
    } in rows


def test_unknown_paths_are_404_json(sb: Sandbox, http: requests.Session) -> None:
    response = http.get(f"{sb.base_url}/nothing/here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_control_info_matches_the_in_process_info(sb: Sandbox, http: requests.Session) -> None:
    remote = http.get(f"{sb.base_url}/_sandbox/info").json()
    assert remote == sb.info()
    required = {
        "authority_host", "tenant_id", "client_id", "client_secret", "graph_url", "site_url",
        "assets_api_url", "jira_email", "jira_api_token", "ca_bundle", "control_url", "config",
        "client_certificate", "workspace_id",
    }  # fmt: skip
    assert required <= remote.keys()
    assert sb.tenant_id == remote["tenant_id"]  # the same values as attributes


def test_control_mutate_over_http(sb: Sandbox, http: requests.Session) -> None:
    bad = http.post(f"{sb.base_url}/_sandbox/mutate", json={"explode_users": 1})
    assert bad.status_code == 400
    assert http.post(f"{sb.base_url}/_sandbox/mutate", json={"add_users": -1}).status_code == 400
    assert http.post(f"{sb.base_url}/_sandbox/mutate", data="[1]").status_code == 400


def test_control_tenant_settings(sb: Sandbox, http: requests.Session) -> None:
    before = http.get(f"{sb.base_url}/_sandbox/tenant").json()
    after = http.post(
        f"{sb.base_url}/_sandbox/tenant", json={"advance_clock": 60, "intune_enabled": False}
    ).json()
    assert after["clock_offset"] == before["clock_offset"] + 60
    assert after["intune_enabled"] is False
    for body in (
        {"permissions": ["Mail.Read"]},
        {"token_lifetime": 0},
        {"nope": 1},
        {"delta_expiry_mode": "x"},
    ):
        assert http.post(f"{sb.base_url}/_sandbox/tenant", json=body).status_code == 400


def test_control_dumps_for_tests(sb: Sandbox, http: requests.Session) -> None:
    users = http.get(f"{sb.base_url}/_sandbox/graph/users").json()
    devices = http.get(f"{sb.base_url}/_sandbox/graph/devices").json()
    managed = http.get(f"{sb.base_url}/_sandbox/graph/managedDevices").json()
    assert len(users["value"]) >= 200 - len(users["softDeleted"]) - len(users["hardDeleted"])
    assert {"registeredOwnerId", "managedDeviceId", "Manufacturer"} <= devices["value"][0].keys()
    assert managed["value"][0]["@odata.type"] == "#microsoft.graph.managedDevice"
    assert json.dumps(users)  # plain JSON values only


def test_only_loopback_addresses_are_allowed() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(host="0.0.0.0")  # noqa: S104 - the point of the test
