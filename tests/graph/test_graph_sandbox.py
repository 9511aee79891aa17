"""The Entra source against the sandbox: real HTTPS, real MSAL, the sandbox's Graph and authority.

The big test reads a 5,000-user, 5,000-device tenant with owners, changes it through the control
API, and checks that the delta read returns exactly the changed ids, with one request per page.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from importer.errors import ApiServerError, TransportError
from importer.graph import (
    ClientCertificate,
    ClientSecret,
    DeltaLinkExpiredError,
    GraphAuth,
    GraphClient,
    GraphCredentialError,
    GraphPermissionError,
)
from importer.http import Http, HttpSettings
from importer.sandbox.app import Sandbox
from importer.sandbox.testing import http_session, sandbox_fixture

from .conftest import FakeClock

USERS = ["displayName", "userPrincipalName", "mail", "jobTitle", "department", "accountEnabled"]
DEVICES = ["displayName", "operatingSystem", "operatingSystemVersion", "manufacturer", "model"]

big_sandbox = sandbox_fixture(scope="module", users=5000, devices=5000, seed=7)
_small_sandbox = sandbox_fixture(scope="module", users=60, devices=40, seed=3)


@pytest.fixture
def small_sandbox(_small_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The small tenant, back to default settings, faults and counts after each test."""
    yield _small_sandbox
    _small_sandbox.reset()


def _client(
    sb: Sandbox,
    *,
    credential: ClientSecret | ClientCertificate | None = None,
    clock: FakeClock | None = None,
    client_id: str | None = None,
    tenant_id: str | None = None,
) -> GraphClient:
    """A GraphClient configured the way the importer configures it for the sandbox."""
    info = sb.info()
    settings = HttpSettings(ca_bundle=info["ca_bundle"], max_retries=6, retry_budget=1000)
    http = Http("graph", settings, session=http_session(sb), clock=clock)
    auth = GraphAuth(
        tenant_id=tenant_id or info["tenant_id"],
        client_id=client_id or info["client_id"],
        credential=credential or ClientSecret(info["client_secret"]),
        authority_host=info["authority_host"],
        graph_url=info["graph_url"],
        http=http,
    )
    return GraphClient(http, auth)


def _control(sb: Sandbox, method: str, path: str, body: Any = None) -> Any:
    """Call the sandbox's control API over HTTPS, as a test harness outside the process would."""
    response = http_session(sb).request(method, f"{sb.info()['control_url']}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json() if response.text else None


def _graph_counts(sb: Sandbox) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for row in _control(sb, "GET", "/stats")["requests"]:
        key = (row["service"], row["method"], row["route"])
        counts[key] = counts.get(key, 0) + row["count"]
    return counts


def test_full_read_then_delta_returns_exactly_the_mutated_ids(big_sandbox: Sandbox) -> None:
    """5,000 users and devices with owners, one request per page; then only what was changed."""
    sb = big_sandbox
    _control(sb, "POST", "/stats/reset")
    client = _client(sb)
    users = client.read("users", select=USERS)
    devices = client.read("devices", select=DEVICES)
    owners = client.read_owners(devices.records)
    assert users.complete
    assert devices.complete
    assert owners.complete
    assert len(users.records) == 5000
    assert len(devices.records) == 5000
    assert users.delta_link
    assert devices.delta_link
    assert len(owners.owners) == 5000
    assert any(o is not None for o in owners.owners.values())
    counts = _graph_counts(sb)
    assert counts[("graph", "GET", "/v1.0/users/delta")] == users.pages
    assert counts[("graph", "GET", "/v1.0/devices/delta")] == devices.pages
    assert counts[("graph", "POST", "/v1.0/$batch")] == math.ceil(5000 / 20)
    assert users.pages < 5000 / 100
    assert devices.pages < 5000 / 100
    assert sum(n for (service, _, _), n in counts.items() if service == "authority") == 2  # OIDC + 1 token
    print(f"\nsandbox request counts (full read): {counts}")

    changed = _control(
        sb,
        "POST",
        "/mutate",
        {
            "update_users": 5, "disable_users": 3, "add_users": 2, "soft_delete_users": 2,
            "hard_delete_users": 1, "update_devices": 4, "add_devices": 2, "hard_delete_devices": 1,
        },
    )  # fmt: skip
    _control(sb, "POST", "/stats/reset")
    user_delta = client.read("users", select=USERS, delta_link=users.delta_link)
    device_delta = client.read("devices", select=DEVICES, delta_link=devices.delta_link)
    assert user_delta.complete
    assert device_delta.complete
    assert {r.id for r in user_delta.records} == {
        *changed["update_users"],
        *changed["disable_users"],
        *changed["add_users"],
    }
    assert {(r.id, r.removed) for r in user_delta.removed} == {
        *((i, "changed") for i in changed["soft_delete_users"]),
        *((i, "deleted") for i in changed["hard_delete_users"]),
    }
    assert {r.id for r in device_delta.records} == {*changed["update_devices"], *changed["add_devices"]}
    assert {(r.id, r.removed) for r in device_delta.removed} == {
        (i, "deleted") for i in changed["hard_delete_devices"]
    }
    for record in user_delta.records:
        if record.id in changed["disable_users"]:
            assert record.get("accountEnabled") is False
    counts = _graph_counts(sb)
    assert counts[("graph", "GET", "/v1.0/users/delta")] == user_delta.pages == 1
    assert counts[("graph", "GET", "/v1.0/devices/delta")] == device_delta.pages == 1
    print(f"sandbox request counts (delta read): {counts}")

    again = client.read("users", select=USERS, delta_link=user_delta.delta_link)
    assert again.complete
    assert again.records == ()
    assert again.removed == ()


def test_intune_owners_against_the_sandbox(big_sandbox: Sandbox) -> None:
    """Intune owners: one paged managedDevices list (not one call per device), joined on deviceId."""
    sb = big_sandbox
    client = _client(sb)
    devices = client.read("devices", select=["displayName"], intune_owners=True)
    _control(sb, "POST", "/stats/reset")
    owners = client.read_owners(devices.records, intune=True)
    assert owners.complete
    assert len(owners.owners) == len(devices.records)
    assert any(o is not None and o.user_principal_name for o in owners.owners.values())
    counts = _graph_counts(sb)
    assert counts == {("graph", "GET", "/v1.0/deviceManagement/managedDevices"): owners.requests}
    assert owners.requests <= math.ceil(len(devices.records) / 1000) + 1


def test_certificate_login(small_sandbox: Sandbox) -> None:
    """The registered certificate (PEM with key and certificate) logs in through MSAL."""
    client = _client(small_sandbox, credential=ClientCertificate(small_sandbox.info()["client_certificate"]))
    read = client.read("users", select=["displayName"])
    assert read.complete
    assert len(read.records) == 60


@pytest.mark.parametrize(
    ("change", "aadsts"),
    [
        pytest.param({"secret": "not-the-secret"}, 7000215, id="wrong-secret"),
        pytest.param({"client_id": "00000000-0000-0000-0000-00000000dead"}, 700016, id="unknown-app"),
        pytest.param({"tenant_id": "00000000-0000-0000-0000-00000000beef"}, 90002, id="unknown-tenant"),
        pytest.param({"expire": True}, 7000222, id="expired-secret"),
    ],
)
def test_login_failures_are_credential_errors(
    small_sandbox: Sandbox, change: dict[str, Any], aadsts: int
) -> None:
    """The sandbox authority's AADSTS answers become precise CredentialErrors, raised by read()."""
    if change.get("expire"):
        small_sandbox.set_tenant(secret_expired=True)
    secret = change.get("secret")
    client = _client(
        small_sandbox,
        credential=ClientSecret(secret) if secret else None,
        client_id=change.get("client_id"),
        tenant_id=change.get("tenant_id"),
    )
    with pytest.raises(GraphCredentialError) as caught:
        client.read("users", select=["displayName"])
    assert caught.value.aadsts == aadsts
    assert small_sandbox.info()["client_secret"] not in str(caught.value)


def test_missing_permission_is_incomplete_and_named(small_sandbox: Sandbox) -> None:
    """Without User.Read.All the users read is incomplete and says what to grant; doctor says it too."""
    small_sandbox.set_tenant(permissions=["Device.Read.All"])
    client = _client(small_sandbox)
    read = client.read("users", select=["displayName"])
    assert not read.complete
    assert read.records == ()
    assert isinstance(read.error, GraphPermissionError)
    assert "User.Read.All" in str(read.error)
    checks = {c.name: c for c in client.probe(intune=True)}
    assert checks["entra_token"].ok
    assert checks["graph_devices"].ok
    assert not checks["graph_users"].ok
    assert checks["graph_users"].fix is not None
    assert "User.Read.All" in checks["graph_users"].fix
    assert not checks["graph_intune"].ok


@pytest.mark.parametrize(
    "mode", [pytest.param("sync_state_not_found", id="400"), pytest.param("gone", id="410")]
)
def test_expired_delta_tokens_ask_for_a_full_read(small_sandbox: Sandbox, mode: str) -> None:
    """An expired delta link (either form) comes back as full_read_needed."""
    small_sandbox.set_tenant(delta_expiry_mode=mode)
    client = _client(small_sandbox)
    first = client.read("users", select=["displayName"])
    assert first.delta_link is not None
    small_sandbox.set_tenant(expire_delta_tokens=True)
    read = client.read("users", select=["displayName"], delta_link=first.delta_link)
    assert read.full_read_needed
    assert isinstance(read.error, DeltaLinkExpiredError)


def test_throttling_and_dropped_connections_are_ridden_out(small_sandbox: Sandbox) -> None:
    """429s with decimal Retry-After, 5xx, drops and truncated bodies: retried (on a fake clock), complete."""
    small_sandbox.set_tenant(delta_page_size=10)
    small_sandbox.set_faults(
        service="graph", rate_429=0.15, retry_after=[0.1, 2.0], retry_after_format="decimal",
        rate_5xx=0.1, drop_rate=0.05, truncate_rate=0.05,
    )  # fmt: skip
    clock = FakeClock()
    client = _client(small_sandbox, clock=clock)
    read = client.read("users", select=["displayName"])
    owners = client.read_owners([f"dev-{n}" for n in range(40)])
    assert read.complete
    assert len(read.records) == 60
    assert owners.complete
    assert clock.sleeps  # every wait was on the fake clock


def test_a_failing_service_gives_an_incomplete_read(small_sandbox: Sandbox) -> None:
    """When every request fails, the read ends incomplete after the retries, never empty and complete."""
    small_sandbox.set_faults(service="graph", rate_5xx=1.0, statuses_5xx=[503])
    read = _client(small_sandbox, clock=FakeClock()).read("users", select=["displayName"])
    assert not read.complete
    assert read.delta_link is None
    assert isinstance(read.error, ApiServerError | TransportError)


def test_sessions_never_trust_the_environment(small_sandbox: Sandbox) -> None:
    """The helper session ignores REQUESTS_CA_BUNDLE and proxies (traffic stays on 127.0.0.1)."""
    session = http_session(small_sandbox)
    assert session.trust_env is False
    assert isinstance(session, requests.Session)
