"""Users and devices: delta rounds, paging, merge, removals, expiry, $select, and incomplete reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from importer.errors import (
    ApiAuthError,
    ApiServerError,
    ApiThrottledError,
    ConfigError,
    PagingLoopError,
    RetryBudgetExceeded,
    TransportError,
)
from importer.graph import (
    BrokenPagingError,
    DeltaLinkExpiredError,
    GraphClient,
    GraphCredentialError,
    GraphPermissionError,
    SourceRead,
    effective_select,
    select_fingerprint,
)
from importer.graph.auth import GraphAuth
from importer.http import Http, HttpSettings, RetryBudget

from .conftest import GRAPH, FakeAuthority, FakeClock, FakeGraph, Reply, sample

USER_SELECT = ["displayName", "givenName", "surname"]
USERS_FULL = f"{GRAPH}/v1.0/users/delta?$select=id,displayName,givenName,surname"
STEP2 = sample("users-delta-1-initial.json")["@odata.nextLink"]
STEP3 = sample("users-delta-2-nextlink.json")["@odata.nextLink"]
DELTA = sample("users-delta-3-final.json")["@odata.deltaLink"]


def _round(graph: FakeGraph) -> None:
    """The documented three-page initial round of users delta."""
    graph.on(USERS_FULL, sample("users-delta-1-initial.json"))
    graph.on(STEP2, sample("users-delta-2-nextlink.json"))
    graph.on(STEP3, sample("users-delta-3-final.json"))


def _ids(read: SourceRead) -> list[str]:
    return [r.id for r in read.records]


def test_full_read_is_a_delta_round_followed_verbatim(client: GraphClient, graph: FakeGraph) -> None:
    """A full read sends $select once (no $top on delta), follows nextLinks verbatim, ends on a deltaLink."""
    _round(graph)
    read = client.read("users", select=USER_SELECT)
    assert read.complete
    assert read.error is None
    assert not read.full_read_needed
    assert read.delta_link == DELTA
    assert read.pages == 3
    assert graph.urls() == [USERS_FULL, STEP2, STEP3]
    assert "$top" not in graph.urls()[0]
    assert len(read.records) == 7
    assert [(r.id, r.removed) for r in read.removed] == [("86462606-fde0-4fc4-9e0c-a20eb73e54c6", "deleted")]
    cameron = read.records[0]
    assert cameron.id == "ffff7b1a-13b6-477b-8c0c-380905cd99f7"
    assert dict(cameron.fields) == {
        "displayName": "Cameron White",
        "givenName": "Cameron",
        "surname": "White",
    }
    adams = next(r for r in read.records if r.id == "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0")
    assert dict(adams.fields) == {"displayName": "Conf Room Adams"}  # absent fields stay absent, not null
    assert read.select_fingerprint == select_fingerprint(["id", *USER_SELECT])
    assert all(s.headers["Authorization"] == "Bearer token-1" for s in graph.requests)


def test_incremental_read_without_changes(client: GraphClient, graph: FakeGraph) -> None:
    """Following a stored deltaLink with nothing new gives no records and the next deltaLink."""
    graph.on(DELTA, sample("users-delta-4-deltalink-nochanges.json"))
    read = client.read("users", select=USER_SELECT, delta_link=DELTA)
    assert read.complete
    assert read.incremental
    assert read.records == ()
    assert read.removed == ()
    assert read.delta_link == sample("users-delta-4-deltalink-nochanges.json")["@odata.deltaLink"]
    assert graph.urls() == [DELTA]


def test_incremental_read_reports_changes_and_soft_deletes(client: GraphClient, graph: FakeGraph) -> None:
    """@removed reason 'changed' is a soft delete (restorable), reported apart from the records."""
    graph.on(DELTA, sample("users-delta-5-deltalink-changes.json"))
    read = client.read("users", select=USER_SELECT, delta_link=DELTA)
    assert read.complete
    assert _ids(read) == ["25dcffff-959e-4ece-9973-e5d9b800e8cc"]
    assert read.records[0].get("displayName") == "MOD Administrator"
    assert [(r.id, r.removed) for r in read.removed] == [("8ffff70c-1c63-4860-b963-e34ec660931d", "changed")]
    assert read.removed[0].fields == {}


def test_records_merge_by_id_within_a_round(client: GraphClient, graph: FakeGraph) -> None:
    """Replays collapse; a later partial update overrides only what it sent; removal and restore in order."""
    first = f"{GRAPH}/v1.0/users/delta?$select=id,displayName,jobTitle"
    page2 = f"{GRAPH}/v1.0/users/delta?$skiptoken=p2"
    graph.on(
        first,
        {
            "@odata.nextLink": page2,
            "value": [
                {"id": "a", "displayName": "A", "jobTitle": "Engineer"},
                {"id": "b", "displayName": "B"},
                {"id": "c", "@removed": {"reason": "changed"}},
            ],
        },
    )
    graph.on(
        page2,
        {
            "@odata.deltaLink": f"{GRAPH}/v1.0/users/delta?$deltatoken=d",
            "value": [
                {"id": "a", "displayName": "A2"},
                {"id": "b", "@removed": {"reason": "deleted"}},
                {"id": "c", "displayName": "C"},
                {"id": "a", "displayName": "A2"},
            ],
        },
    )
    read = client.read("users", select=["displayName", "jobTitle"])
    assert read.complete
    assert {r.id: dict(r.fields) for r in read.records} == {
        "a": {"displayName": "A2", "jobTitle": "Engineer"},
        "c": {"displayName": "C"},
    }
    assert [(r.id, r.removed) for r in read.removed] == [("b", "deleted")]


def test_empty_pages_with_a_next_link_are_followed(client: GraphClient, graph: FakeGraph) -> None:
    """An empty page is not the end of the round."""
    first = f"{GRAPH}/v1.0/users/delta?$select=id"
    graph.on(first, {"@odata.nextLink": STEP2, "value": []})
    graph.on(STEP2, {"@odata.nextLink": STEP3, "value": []})
    graph.on(STEP3, sample("users-delta-3-final.json"))
    read = client.read("users", select=[])
    assert read.complete
    assert read.pages == 3
    assert len(read.records) == 2


def test_devices_delta_sample(client: GraphClient, graph: FakeGraph) -> None:
    """The devices delta sample: only selected fields are kept (alternativeSecurityIds is dropped)."""
    first = f"{GRAPH}/v1.0/devices/delta?$select=id,displayName,operatingSystem,deviceId"
    page = sample("devices-delta-1-initial.json")
    graph.on(first, page)
    graph.on(
        page["@odata.nextLink"],
        {"@odata.deltaLink": f"{GRAPH}/v1.0/devices/delta?$deltatoken=x", "value": []},
    )
    read = client.read("devices", select=["displayName", "operatingSystem"], intune_owners=True)
    assert read.complete
    assert graph.urls()[0] == first
    assert dict(read.records[0].fields) == {
        "deviceId": "4c299165-6e8f-4b45-a5ba-c5d250a707ff",
        "displayName": "Test device",
        "operatingSystem": "linux",
    }


def test_list_read_uses_top_and_reads_manufacturer_case_insensitively(
    client: GraphClient, graph: FakeGraph
) -> None:
    """A list read sends $top=999; the official sample spells Manufacturer/Model in PascalCase."""
    body = sample("devices-list.json")
    body["value"][0]["id"] = "dev-1"
    url = f"{GRAPH}/v1.0/devices?$select=id,displayName,manufacturer,model&$top=999"
    graph.on(url, body)
    read = client.read_list("devices", select=["displayName", "manufacturer", "model"])
    assert read.complete
    assert read.delta_link is None
    assert dict(read.records[0].fields) == {
        "displayName": "contoso_Android",
        "manufacturer": "Google",
        "model": "Pixel 3a",
    }


def test_list_read_keeps_explicit_nulls(client: GraphClient, graph: FakeGraph) -> None:
    """In a list read a null that Graph sent is a value (None); an unselected field is dropped."""
    graph.on(f"{GRAPH}/v1.0/users?$select=id,displayName,jobTitle,mail&$top=999", sample("users-list.json"))
    read = client.read_list("users", select=["displayName", "jobTitle", "mail"])
    assert read.complete
    assert dict(read.records[0].fields) == {
        "displayName": "Conf Room Adams",
        "jobTitle": None,
        "mail": "Adams@contoso.com",
    }


@pytest.mark.parametrize(
    ("source", "select", "intune", "expected"),
    [
        pytest.param("users", ["mail", "displayName"], False, ("id", "mail", "displayName"), id="id-first"),
        pytest.param("users", ["id", "mail", "mail", "Mail"], False, ("id", "mail"), id="deduplicated"),
        pytest.param("users", [], False, ("id",), id="only-id"),
        pytest.param(
            "devices", ["displayName"], True, ("id", "displayName", "deviceId"), id="intune-deviceId"
        ),
        pytest.param("devices", ["deviceId"], True, ("id", "deviceId"), id="deviceId-once"),
        pytest.param("users", ["displayName"], True, ("id", "displayName"), id="users-never-deviceId"),
    ],
)
def test_select_rules(source: Any, select: list[str], intune: bool, expected: tuple[str, ...]) -> None:
    """$select is the mapping's fields plus id (and deviceId for Intune owners), nothing more."""
    assert effective_select(source, select, intune_owners=intune) == expected


def test_select_fingerprint_changes_only_with_the_field_set() -> None:
    """The fingerprint ignores order; a new field changes it (the caller must then run a full read)."""
    assert select_fingerprint(["mail", "displayName"]) == select_fingerprint(["id", "displayName", "mail"])
    assert select_fingerprint(["mail"]) != select_fingerprint(["mail", "department"])


def test_select_names_are_validated(client: GraphClient) -> None:
    """A field name that is not a Graph property never reaches the URL."""
    with pytest.raises(ConfigError, match="not a Graph property"):
        client.read("users", select=["displayName&$expand=manager"])


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            Reply(400, {"error": {"code": "syncStateNotFound", "message": "The sync state is not found."}}),
            id="400-syncStateNotFound",
        ),
        pytest.param(
            Reply(410, {"error": {"code": "resyncRequired", "message": "Resync required."}},
                  headers={"Location": f"{GRAPH}/v1.0/users/delta?$deltatoken="}),
            id="410-gone",
        ),
        pytest.param(Reply(400, {"error": {"code": "resyncRequired"}}), id="400-resyncRequired"),
    ],
)  # fmt: skip
def test_expired_delta_link_asks_for_a_full_read(client: GraphClient, graph: FakeGraph, reply: Reply) -> None:
    """An expired token is not an empty change set: the caller is told to run a full read."""
    graph.on(DELTA, reply)
    read = client.read("users", select=USER_SELECT, delta_link=DELTA)
    assert read.full_read_needed
    assert not read.complete
    assert read.delta_link is None
    assert isinstance(read.error, DeltaLinkExpiredError)


def test_delta_link_for_another_endpoint_needs_a_full_read(client: GraphClient, graph: FakeGraph) -> None:
    """A stored link from another Graph root (e.g. a changed graph_url) is never followed."""
    read = client.read(
        "users", select=USER_SELECT, delta_link="https://evil.example/v1.0/users/delta?$deltatoken=x"
    )
    assert read.full_read_needed
    assert not graph.requests


def _assert_incomplete(read: SourceRead, error_type: type[BaseException]) -> None:
    assert not read.complete
    assert read.delta_link is None
    assert not read.full_read_needed
    assert isinstance(read.error, error_type), read.error


def test_truncated_json_makes_the_read_incomplete(
    client: GraphClient, graph: FakeGraph, clock: FakeClock
) -> None:
    """A truncated body on page 2 is retried, then reported: records from page 1 are kept, no delta link."""
    _round(graph)
    graph.routes[("GET", STEP2)].clear()
    graph.on(STEP2, Reply(raw=json.dumps(sample("users-delta-2-nextlink.json"))[:120]))
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, TransportError)
    assert len(read.records) == 3
    assert read.pages == 1
    assert len(clock.sleeps) == 3  # retried on the fake clock, never slept for real


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        pytest.param(503, ApiServerError, id="503-exhausted"),
        pytest.param(429, ApiThrottledError, id="429-exhausted"),
        pytest.param(500, ApiServerError, id="500"),
    ],
)
def test_a_chain_failing_halfway_is_incomplete(
    client: GraphClient, graph: FakeGraph, status: int, error_type: type[BaseException]
) -> None:
    """5xx or 429 after the retries, on page 3 of 3: incomplete, never 'these objects are gone'."""
    _round(graph)
    graph.routes[("GET", STEP3)].clear()
    graph.on(STEP3, Reply(status, sample("error-429-throttled.json"), headers={"Retry-After": "2.128"}))
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, error_type)
    assert len(read.records) == 5
    assert len(read.removed) == 1


def test_exhausted_retry_budget_is_incomplete(auth: GraphAuth, graph: FakeGraph, clock: FakeClock) -> None:
    """When the run's retry budget is empty, the read stops as incomplete."""
    http = Http("graph", HttpSettings(max_retries=5), clock=clock, budget=RetryBudget(10))
    client = GraphClient(http, auth)
    _round(graph)
    graph.routes[("GET", STEP2)].clear()
    graph.on(STEP2, Reply(503, {"error": {"code": "serviceUnavailable"}}))
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, RetryBudgetExceeded)


def test_repeated_next_link_is_a_paging_loop(client: GraphClient, graph: FakeGraph) -> None:
    """A server that hands back a link it already gave would never end the round."""
    graph.on(USERS_FULL, sample("users-delta-1-initial.json"))
    graph.on(STEP2, {"@odata.nextLink": STEP2, "value": []})
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, PagingLoopError)
    assert read.pages == 2


@pytest.mark.parametrize(
    ("last_page", "error_type"),
    [
        pytest.param({"value": []}, BrokenPagingError, id="no-delta-link"),
        pytest.param({"values": []}, BrokenPagingError, id="not-a-collection"),
        pytest.param({"value": [{"displayName": "x"}]}, BrokenPagingError, id="item-without-id"),
        pytest.param({"@odata.nextLink": "https://elsewhere.example/x", "value": []}, BrokenPagingError,
                     id="foreign-next-link"),
    ],
)  # fmt: skip
def test_broken_chains_are_incomplete(
    client: GraphClient, graph: FakeGraph, last_page: dict[str, Any], error_type: type[BaseException]
) -> None:
    """A delta round that ends without a deltaLink, or with an unusable page, is not complete."""
    graph.on(USERS_FULL, sample("users-delta-1-initial.json"))
    graph.on(STEP2, last_page)
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, error_type)
    assert len(read.records) == 3


@pytest.mark.parametrize(
    ("source", "permission"),
    [
        pytest.param("users", "User.Read.All", id="users"),
        pytest.param("devices", "Device.Read.All", id="devices"),
    ],
)
def test_403_names_the_missing_permission(
    client: GraphClient, graph: FakeGraph, source: str, permission: str
) -> None:
    """Authorization_RequestDenied: incomplete, 'grant the application permission X and admin consent'."""
    fields = "id,displayName"
    graph.on(
        f"{GRAPH}/v1.0/{source}/delta?$select={fields}",
        Reply(403, sample("error-403-authorization-requestdenied.json")),
    )
    read = client.read(source, select=["displayName"])  # type: ignore[arg-type]
    _assert_incomplete(read, GraphPermissionError)
    assert f"grant the application permission {permission} and admin consent" in str(read.error)
    assert "93b6f17e-c05d-4f45-ad2a-6665c708d8a0" in str(read.error)  # the request id, for support
    assert "Insufficient privileges" not in str(read.error)  # never the body


def test_401_refreshes_the_token_and_retries_once(
    client: GraphClient, graph: FakeGraph, authority: FakeAuthority
) -> None:
    """An expired token mid-read: drop it, get a new one, repeat that request once."""
    expired = Reply(
        401, {"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed"}}
    )
    graph.on(USERS_FULL, sample("users-delta-1-initial.json"))
    graph.on(STEP2, expired, sample("users-delta-2-nextlink.json"))
    graph.on(STEP3, sample("users-delta-3-final.json"))
    read = client.read("users", select=USER_SELECT)
    assert read.complete
    assert len(authority.token_posts) == 2
    assert [s.headers["Authorization"] for s in graph.requests] == [
        "Bearer token-1", "Bearer token-1", "Bearer token-2", "Bearer token-2",
    ]  # fmt: skip


def test_401_twice_is_incomplete(client: GraphClient, graph: FakeGraph, authority: FakeAuthority) -> None:
    """A fresh token refused too: one retry only, then an incomplete read naming the likely cause."""
    graph.on(USERS_FULL, Reply(401, {"error": {"code": "InvalidAuthenticationToken", "message": "x"}}))
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, ApiAuthError)
    assert "entra.cloud" in str(read.error)
    assert len(graph.requests) == 2
    assert len(authority.token_posts) == 2


def test_token_refusal_is_raised_not_reported(
    client: GraphClient, graph: FakeGraph, authority: FakeAuthority
) -> None:
    """No token at all is a credential problem (exit 4), raised to the caller."""
    authority.refuse({"error": "invalid_client", "error_codes": [7000222], "correlation_id": "c"})
    with pytest.raises(GraphCredentialError, match="expired"):
        client.read("users", select=USER_SELECT)
    assert not graph.requests


def test_authority_outage_mid_read_is_incomplete(
    client: GraphClient, graph: FakeGraph, authority: FakeAuthority
) -> None:
    """The authority failing (5xx after retries) for a token: incomplete, not a credential error."""
    client.auth.token()
    client.auth.invalidate()
    authority.refuse({"error": "temporarily_unavailable"}, status=503)
    for _ in range(5):
        authority.refuse({"error": "temporarily_unavailable"}, status=503)
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, ApiServerError)
    assert read.error is not None
    assert "authority" in str(read.error)


def test_logs_hold_counts_and_routes_never_personal_values(client: GraphClient, graph: FakeGraph) -> None:
    """Log events carry counts and route templates: no names, ids or links with tokens."""
    _round(graph)
    with capture_logs() as logs:
        client.read("users", select=USER_SELECT)
    text = json.dumps(logs, default=str)
    for needle in ("Cameron", "White", "ffff7b1a", "skiptoken", "deltatoken", "token-1"):
        assert needle not in text
    finished = [e for e in logs if e["event"] == "read_finished"]
    assert finished
    assert finished[0]["records"] == 7
    assert finished[0]["pages"] == 3


def test_undecodable_body_is_incomplete(client: GraphClient, graph: FakeGraph) -> None:
    """A gzip body cut short is a transport error (retried, then incomplete), not a crash."""
    graph.on(USERS_FULL, sample("users-delta-1-initial.json"))
    graph.on(STEP2, Reply(raw="\x1f\x8b\x08 not really gzip", headers={"Content-Encoding": "gzip"}))
    read = client.read("users", select=USER_SELECT)
    _assert_incomplete(read, TransportError)
    assert len(read.records) == 3
