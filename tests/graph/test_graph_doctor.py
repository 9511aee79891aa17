"""``importer doctor`` for Entra: token, users, devices and (when asked) Intune, each with a fix."""

from __future__ import annotations

from importer.graph import GraphClient

from .conftest import GRAPH, FakeAuthority, FakeGraph, Reply, sample

USERS = f"{GRAPH}/v1.0/users?$top=1&$select=id"
DEVICES = f"{GRAPH}/v1.0/devices?$top=1&$select=id"
INTUNE = f"{GRAPH}/v1.0/deviceManagement/managedDevices?$top=1&$select=id"
DENIED = Reply(403, sample("error-403-authorization-requestdenied.json"))


def test_everything_readable(client: GraphClient, graph: FakeGraph) -> None:
    """A healthy setup: four passing checks, one small request each."""
    for url in (USERS, DEVICES, INTUNE):
        graph.on(url, {"value": [{"id": "x"}]})
    checks = client.probe(intune=True)
    assert [(c.name, c.ok) for c in checks] == [
        ("entra_token", True), ("graph_users", True), ("graph_devices", True), ("graph_intune", True),
    ]  # fmt: skip
    assert graph.urls() == [USERS, DEVICES, INTUNE]


def test_missing_permissions_say_what_to_grant(client: GraphClient, graph: FakeGraph) -> None:
    """A 403 names the exact application permission and the admin-consent step."""
    graph.on(USERS, DENIED)
    graph.on(DEVICES, DENIED)
    graph.on(INTUNE, DENIED)
    checks = {c.name: c for c in client.probe(intune=True)}
    assert checks["entra_token"].ok
    for name, permission in [
        ("graph_users", "User.Read.All"),
        ("graph_devices", "Device.Read.All"),
        ("graph_intune", "DeviceManagementManagedDevices.Read.All"),
    ]:
        check = checks[name]
        assert not check.ok
        assert check.fix is not None
        assert permission in check.fix
        assert "admin consent" in check.fix
        assert "Authorization_RequestDenied" in check.detail


def test_token_refused_explains_the_aadsts_code(
    client: GraphClient, graph: FakeGraph, authority: FakeAuthority
) -> None:
    """No token: the AADSTS meaning and its fix; the reads are skipped, not attempted."""
    authority.refuse({"error": "invalid_client", "error_codes": [7000222], "correlation_id": "c-1"})
    checks = client.probe(intune=False)
    assert [c.ok for c in checks] == [False, False, False]
    assert "expired" in checks[0].detail
    assert checks[0].fix is not None
    assert "Certificates & secrets" in checks[0].fix
    assert checks[1].detail == "skipped: no token"
    assert not graph.requests


def test_intune_not_checked_unless_asked(client: GraphClient, graph: FakeGraph) -> None:
    """Without Intune owners no managedDevices request is made."""
    graph.on(USERS, {"value": []})
    graph.on(DEVICES, {"value": []})
    assert [c.name for c in client.probe(intune=False)] == ["entra_token", "graph_users", "graph_devices"]
    assert INTUNE not in graph.urls()
