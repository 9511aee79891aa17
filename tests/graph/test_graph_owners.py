"""Device owners: registeredOwners through $batch (inner 429/404/errors) and the Intune join."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from importer.errors import ApiError, ApiServerError, ApiThrottledError, RetryBudgetExceeded
from importer.graph import DeviceOwner, GraphClient, GraphPermissionError, GraphRecord
from importer.graph.auth import GraphAuth
from importer.graph.errors import BrokenPagingError
from importer.graph.models import Fields
from importer.http import Http, HttpSettings, RetryBudget

from .conftest import GRAPH, FakeClock, FakeGraph, Reply, sample

OWNER = sample("device-registeredOwners.json")
OWNER_ID = OWNER["value"][0]["id"]
BATCH = f"{GRAPH}/v1.0/$batch"


def _device_of(inner: dict[str, Any]) -> str:
    return str(inner["url"]).split("/")[2]


def _ok(inner: dict[str, Any]) -> dict[str, Any]:
    return {"id": inner["id"], "status": 200, "headers": {"Content-Type": "application/json"}, "body": OWNER}


def test_owners_come_in_batches_of_twenty(client: GraphClient, graph: FakeGraph) -> None:
    """45 devices: three $batch POSTs (20, 20, 5), each inner request GET .../registeredOwners?$select=id."""
    graph.batch = lambda reqs: [_ok(r) for r in reqs]
    devices = [f"dev-{n:02d}" for n in range(45)]
    read = client.read_owners(devices)
    assert read.complete
    assert read.error is None
    assert read.failed == ()
    assert read.owners == {d: DeviceOwner(user_id=OWNER_ID) for d in devices}
    bodies = [s.body for s in graph.requests if s.method == "POST"]
    assert sorted(len(b["requests"]) for b in bodies) == [5, 20, 20]
    inner = bodies[0]["requests"][0]
    assert inner["method"] == "GET"
    assert inner["url"].endswith("/registeredOwners?$select=id")
    assert read.requests == 3


def test_records_or_ids_and_duplicates(client: GraphClient, graph: FakeGraph) -> None:
    """Device records are accepted as well as ids; a device asked twice is read once."""
    graph.batch = lambda reqs: [_ok(r) for r in reqs]
    record = GraphRecord(id="dev-1", fields=Fields({"displayName": "x"}))
    read = client.read_owners([record, "dev-1", "dev-2"])
    assert set(read.owners) == {"dev-1", "dev-2"}
    assert len(graph.requests[0].body["requests"]) == 2


def test_inner_404_means_gone_and_no_owner(client: GraphClient, graph: FakeGraph) -> None:
    """A device deleted since the device read has no owner; that is still a complete answer."""

    def answer(reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        gone = {"error": {"code": "Request_ResourceNotFound", "message": "Resource does not exist."}}
        return [
            _ok(r) if _device_of(r) != "dev-gone" else {"id": r["id"], "status": 404, "body": gone}
            for r in reqs
        ]

    graph.batch = answer
    read = client.read_owners(["dev-1", "dev-gone"])
    assert read.complete
    assert read.owners == {"dev-1": DeviceOwner(user_id=OWNER_ID), "dev-gone": None}


def test_device_without_owner(client: GraphClient, graph: FakeGraph) -> None:
    """An empty registeredOwners collection (or only non-user owners) means no owner."""
    sp = {"@odata.type": "#microsoft.graph.servicePrincipal", "id": "sp-1"}
    graph.batch = lambda reqs: [{"id": r["id"], "status": 200, "body": {"value": [sp]}} for r in reqs]
    read = client.read_owners(["dev-1"])
    assert read.complete
    assert read.owners == {"dev-1": None}


def test_inner_429_is_retried_after_its_own_retry_after(
    client: GraphClient, graph: FakeGraph, clock: FakeClock, http: Http
) -> None:
    """Only the throttled inner requests are sent again, after the inner Retry-After, paid from the budget."""
    calls: list[int] = []

    def answer(reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls.append(len(reqs))
        if len(calls) == 1:
            throttled = {"id": reqs[1]["id"], "status": 429, "headers": {"Retry-After": "0.249"},
                         "body": sample("error-429-throttled.json")}  # fmt: skip
            return [_ok(reqs[0]), throttled, _ok(reqs[2])]
        return [_ok(r) for r in reqs]

    graph.batch = answer
    before = http.budget.tokens
    read = client.read_owners(["dev-1", "dev-2", "dev-3"])
    assert read.complete
    assert len(read.owners) == 3
    assert calls == [3, 1]
    assert len(clock.sleeps) == 1
    assert 1.0 <= clock.sleeps[0] < 1.2  # 0.249 s asked: at least 1 s (graph-api.md §4.2), a little jitter
    assert graph.requests[1].body["requests"][0]["url"].startswith("/devices/dev-2/")
    assert http.budget.tokens < before + 2  # the retry was paid for
    assert read.requests == 2


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        pytest.param(429, ApiThrottledError, id="429-throttled"),
        pytest.param(503, ApiServerError, id="503-server-error"),
        pytest.param(504, ApiServerError, id="504-server-error"),
    ],
)
def test_inner_retries_that_run_out_are_incomplete_with_the_last_inner_status(
    client: GraphClient, graph: FakeGraph, clock: FakeClock, status: int, error_type: type[Exception]
) -> None:
    """Beyond max_retries: the device's owner is unknown, the read incomplete, and the error says
    what the inner requests last answered (a 503 is not reported as throttling)."""
    graph.batch = lambda reqs: [
        {"id": r["id"], "status": status, "headers": {"retry-after": "1"}, "body": {}} for r in reqs
    ]
    read = client.read_owners(["dev-1"])
    assert not read.complete
    assert read.failed == ("dev-1",)
    assert "dev-1" not in read.owners
    assert type(read.error) is error_type
    assert isinstance(read.error, ApiError)
    assert read.error.status == status
    assert len(clock.sleeps) == 3
    assert all(1.0 <= s < 1.2 for s in clock.sleeps)


def test_inner_throttling_without_retry_after_backs_off_from_two_seconds(
    client: GraphClient, graph: FakeGraph, clock: FakeClock
) -> None:
    """No inner Retry-After: the same backoff as Http's for a throttle (1-2 s, 2-4 s, 4-8 s)."""
    graph.batch = lambda reqs: [{"id": r["id"], "status": 429, "body": {}} for r in reqs]
    read = client.read_owners(["dev-1"])
    assert not read.complete
    assert len(clock.sleeps) == 3
    for attempt, wait in enumerate(clock.sleeps, start=1):
        ceiling = 2.0 * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling


def test_inner_retries_stop_when_the_budget_is_empty(
    auth: GraphAuth, graph: FakeGraph, clock: FakeClock
) -> None:
    """The inner retries spend from the same run budget as Http's own retries."""
    http = Http("graph", HttpSettings(max_retries=10), clock=clock, budget=RetryBudget(5))
    client = GraphClient(http, auth)
    graph.batch = lambda reqs: [{"id": r["id"], "status": 429, "headers": {"Retry-After": "1"}} for r in reqs]
    read = client.read_owners(["dev-1"])
    assert isinstance(read.error, RetryBudgetExceeded)
    assert len(clock.sleeps) == 1


def test_answered_inner_retries_give_their_budget_back(
    auth: GraphAuth, graph: FakeGraph, clock: FakeClock
) -> None:
    """A throttling storm spread over many batches costs only the retries that never got an answer."""
    http = Http("graph", HttpSettings(max_retries=10), clock=clock, budget=RetryBudget(10))
    client = GraphClient(http, auth, max_concurrency=1)
    seen: set[str] = set()

    def answer(reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in reqs:  # every request is throttled once, then answered
            first = r["url"] not in seen
            seen.add(r["url"])
            out.append({"id": r["id"], "status": 429, "headers": {"Retry-After": "0"}} if first else _ok(r))
        return out

    graph.batch = answer
    read = client.read_owners([f"dev-{n}" for n in range(100)])  # 5 batches, 5 inner retry rounds
    assert read.complete, read.error
    assert http.budget.tokens == 10


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        pytest.param(
            403, sample("error-403-authorization-requestdenied.json"), GraphPermissionError, id="403"
        ),
        pytest.param(500, {"error": {"code": "generalException"}}, ApiServerError, id="500"),
    ],
)
def test_other_inner_errors_make_the_read_incomplete(
    client: GraphClient, graph: FakeGraph, status: int, body: Any, error_type: type[BaseException]
) -> None:
    """Other inner errors leave that device's owner unknown; the rest of the batch is still used."""

    def answer(reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            _ok(r) if _device_of(r) != "dev-bad" else {"id": r["id"], "status": status, "body": body}
            for r in reqs
        ]

    graph.batch = answer
    read = client.read_owners(["dev-1", "dev-bad"])
    assert not read.complete
    assert read.failed == ("dev-bad",)
    assert read.owners == {"dev-1": DeviceOwner(user_id=OWNER_ID)}
    assert isinstance(read.error, error_type)
    if status == 403:
        assert "Device.Read.All" in str(read.error)


def test_unanswered_inner_requests_are_incomplete(client: GraphClient, graph: FakeGraph) -> None:
    """A batch answer that skips a request does not turn that device into 'no owner'."""
    graph.batch = lambda reqs: [_ok(reqs[0])]
    read = client.read_owners(["dev-1", "dev-2"])
    assert not read.complete
    assert read.failed == ("dev-2",)
    assert isinstance(read.error, BrokenPagingError)


def test_outer_batch_failure_fails_its_devices(client: GraphClient, graph: FakeGraph) -> None:
    """The $batch POST itself failing after Http's retries: those devices' owners are unknown."""
    graph.on(BATCH, Reply(503, {"error": {"code": "serviceUnavailable"}}), method="POST")
    read = client.read_owners(["dev-1", "dev-2"])
    assert not read.complete
    assert set(read.failed) == {"dev-1", "dev-2"}
    assert isinstance(read.error, ApiServerError)
    assert read.owners == {}


def test_batches_run_with_bounded_concurrency(http: Http, auth: GraphAuth, graph: FakeGraph) -> None:
    """Batches go out max_concurrency at a time: three meet at a barrier, a fourth never joins them."""
    client = GraphClient(http, auth, max_concurrency=3)
    client.auth.token()  # so the threads do not all meet at the token endpoint
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(3, timeout=5)

    def answer(reqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        barrier.wait()  # returns only when three batches are in flight together
        with lock:
            in_flight -= 1
        return [_ok(r) for r in reqs]

    graph.batch = answer
    read = client.read_owners([f"dev-{n}" for n in range(120)])  # 6 batches
    assert read.complete
    assert len(read.owners) == 120
    assert peak == 3


def _managed(device_key: str, user_id: str | None, upn: str | None = None) -> dict[str, Any]:
    return {"azureADDeviceId": device_key, "userId": user_id, "userPrincipalName": upn}


def test_intune_owners_join_on_device_id(client: GraphClient, graph: FakeGraph) -> None:
    """managedDevices is one paged list; azureADDeviceId joins the Entra deviceId, not the object id."""
    listing = f"{GRAPH}/v1.0/deviceManagement/managedDevices?$select=azureADDeviceId,userId,userPrincipalName"
    page2 = f"{GRAPH}/v1.0/deviceManagement/managedDevices?$skiptoken=2"
    official = sample("managedDevices-list.json")["value"][0]
    graph.on(listing, {"@odata.nextLink": page2, "value": [official]})
    graph.on(
        page2,
        {"value": [_managed("DEV-B", "00000000-0000-0000-0000-000000000000"), _managed("dev-z", "u-z")]},
    )
    devices = [
        GraphRecord(id="obj-a", fields=Fields({"deviceId": "Azure ADDevice Id value"})),
        GraphRecord(id="obj-b", fields=Fields({"deviceId": "dev-b"})),
        GraphRecord(id="obj-c", fields=Fields({"deviceId": "dev-c"})),
        GraphRecord(id="obj-d", fields=Fields({"displayName": "no deviceId sent"})),
    ]
    read = client.read_owners(devices, intune=True)
    assert read.complete
    assert read.owners == {
        "obj-a": DeviceOwner(user_id="User Id value", user_principal_name="User Principal Name value"),
        "obj-b": None,  # enrolled without a primary user
        "obj-c": None,  # not managed by Intune
        "obj-d": None,  # no deviceId: cannot be enrolled
    }
    assert graph.urls() == [listing, page2]


def test_intune_403_names_the_permission(client: GraphClient, graph: FakeGraph) -> None:
    """Without DeviceManagementManagedDevices.Read.All the read is incomplete and says what to grant."""
    listing = f"{GRAPH}/v1.0/deviceManagement/managedDevices?$select=azureADDeviceId,userId,userPrincipalName"
    graph.on(listing, Reply(403, sample("error-403-authorization-requestdenied.json")))
    devices = [GraphRecord(id="obj-a", fields=Fields({"deviceId": "d"}))]
    read = client.read_owners(devices, intune=True)
    assert not read.complete
    assert read.owners == {}
    assert read.failed == ("obj-a",)
    assert "DeviceManagementManagedDevices.Read.All" in str(read.error)


def test_intune_needs_device_ids(client: GraphClient) -> None:
    """Intune joins on deviceId, so plain object ids cannot be used."""
    with pytest.raises(ValueError, match="deviceId"):
        client.read_owners(["obj-a"], intune=True)
