"""Fault injection: throttling in every Retry-After format, 5xx, drops, truncation, latency."""

from __future__ import annotations

import email.utils
import re
import socket
import ssl
import time

import pytest
import requests

from importer.sandbox.app import Sandbox
from importer.sandbox.testing import GraphGet

FORMATS = {
    "seconds": r"^\d+$",
    "decimal": r"^\d+\.\d{3}$",
    "comma": r"^\d+,\d{3}$",
}


@pytest.mark.parametrize("fmt", ["seconds", "decimal", "comma", "http-date", "none"])
def test_graph_429_in_each_retry_after_format(sb: Sandbox, get: GraphGet, fmt: str) -> None:
    sb.set_faults(service="graph", rate_429=1.0, retry_after=[0.1, 2.0], retry_after_format=fmt)
    response = get("/v1.0/users", top=1)
    assert response.status_code == 429
    body = response.json()["error"]
    assert body["code"] == "TooManyRequests"
    assert body["innerError"]["status"] == "429"
    value = response.headers.get("Retry-After")
    if fmt == "none":
        assert value is None
    elif fmt == "http-date":
        assert value is not None
        assert email.utils.parsedate_to_datetime(value).timestamp() >= time.time() - 1
    else:
        assert value is not None
        assert re.match(FORMATS[fmt], value), value
        assert 0.1 <= float(value.replace(",", ".")) <= 2.0 or fmt == "seconds"


def test_mixed_cycles_through_the_formats(sb: Sandbox, get: GraphGet) -> None:
    sb.set_faults(service="graph", rate_429=1.0, retry_after=[1.5, 1.5], retry_after_format="mixed")
    values = [get("/v1.0/users", top=1).headers.get("Retry-After") for _ in range(5)]
    assert values[:3] == ["2", "1.500", "1,500"]
    assert values[3] is not None
    assert values[3].endswith("GMT")
    assert values[4] is None


def test_faults_are_deterministic_for_a_seed(sb: Sandbox, get: GraphGet) -> None:
    runs = []
    for _ in range(2):
        sb.set_faults(service="graph", rate_429=0.3, rate_5xx=0.2, statuses_5xx=[503], seed=42)
        runs.append([get("/v1.0/users", top=1).status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert {200, 429, 503} <= set(runs[0])


@pytest.mark.parametrize(
    ("status", "content_type", "retry_after"),
    [
        pytest.param(503, "application/json", True, id="503-json-retry-after"),
        pytest.param(504, "application/json", False, id="504-json"),
        pytest.param(502, "text/html", False, id="502-html-gateway-page"),
    ],
)
def test_5xx_in_the_shape_each_status_really_has(
    sb: Sandbox, get: GraphGet, status: int, content_type: str, retry_after: bool
) -> None:
    sb.set_faults(service="graph", rate_5xx=1.0, statuses_5xx=[status])
    response = get("/v1.0/devices", top=1)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith(content_type)
    assert ("Retry-After" in response.headers) == retry_after


def test_a_dropped_connection_gets_no_response_and_the_server_lives_on(
    sb: Sandbox, get: GraphGet, http: requests.Session
) -> None:
    sb.set_faults(service="graph", drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        get("/v1.0/users", top=1)
    sb.set_faults(service="graph", drop_rate=0)
    assert get("/v1.0/users", top=1).status_code == 200
    dropped = [r for r in sb.stats()["requests"] if r["status"] == 0]
    assert [r["route"] for r in dropped] == ["/v1.0/users"]


def test_a_truncated_body_is_shorter_than_its_content_length(sb: Sandbox, token: str) -> None:
    sb.set_faults(service="graph", truncate_rate=1.0)
    context = ssl.create_default_context(cafile=sb.info()["ca_bundle"])
    with (
        socket.create_connection(("127.0.0.1", sb.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            "GET /v1.0/users?$top=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    assert head.startswith(b"HTTP/1.1 200")
    assert 0 < len(body) < length


def test_requests_reports_a_truncated_body_as_a_broken_connection(sb: Sandbox, get: GraphGet) -> None:
    sb.set_faults(service="graph", truncate_rate=1.0)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        get("/v1.0/users", top=5)


def test_latency_delays_answers(sb: Sandbox, get: GraphGet) -> None:
    sb.set_faults(service="graph", latency_ms=150)
    started = time.perf_counter()
    assert get("/v1.0/users", top=1).status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_faults_never_touch_the_authority_or_the_control_api(sb: Sandbox, http: requests.Session) -> None:
    sb.set_faults(rate_429=1.0)
    info = sb.info()
    token = http.post(
        f"{info['authority']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "scope": info["graph_scope"],
        },
    )
    assert token.status_code == 200
    assert http.get(f"{info['control_url']}/stats").status_code == 200


def test_faults_for_one_service_leave_the_other_alone(
    sb: Sandbox, get: GraphGet, http: requests.Session
) -> None:
    sb.set_faults(service="assets", rate_429=1.0)
    assert get("/v1.0/users", top=1).status_code == 200
    response = http.get(f"{sb.base_url}/rest/servicedeskapi/assets/workspace")
    if sb.assets is None:
        pytest.skip("the Assets service has not landed")
    assert response.status_code == 429
    assert response.json()["errorMessages"] == ["The request has been rate-limited. Please try again later."]


def test_assets_per_minute_sets_the_assets_rate_limit(sb: Sandbox, http: requests.Session) -> None:
    pytest.importorskip("importer.sandbox.assets")
    sb.set_faults(assets_per_minute=2)
    auth = (sb.jira_email, sb.jira_api_token)
    url = f"{sb.base_url}/jsm/assets/workspace/{sb.workspace_id}/v1/objectschema/list"
    assert [http.get(url, auth=auth).status_code for _ in range(3)] == [200, 200, 429]
    sb.set_faults(assets_per_minute=0)
    assert http.get(url, auth=auth).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"rate_429": 2}, id="rate-above-1"),
        pytest.param({"retry_after_format": "roman"}, id="unknown-format"),
        pytest.param({"service": "mail"}, id="unknown-service"),
        pytest.param({"rate_429": 0.6, "rate_5xx": 0.6}, id="rates-sum-above-1"),
        pytest.param({"colour": "red"}, id="unknown-knob"),
    ],
)
def test_bad_fault_settings_are_400(sb: Sandbox, http: requests.Session, body: dict[str, object]) -> None:
    response = http.post(f"{sb.base_url}/_sandbox/faults", json=body)
    assert response.status_code == 400
    assert "error" in response.json()


def test_a_delayed_answer_outlives_the_read_timeout_but_the_write_landed(
    sb: Sandbox, http: requests.Session
) -> None:
    pytest.importorskip("importer.sandbox.assets")
    sb.set_faults(
        service="assets",
        delay_answer_ms=800,
        delay_answer_match="POST /config/statustype",
        delay_answer_count=1,
    )
    auth = (sb.jira_email, sb.jira_api_token)
    url = f"{sb.base_url}/jsm/assets/workspace/{sb.workspace_id}/v1/config/statustype"
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(url, json={"name": "Landed late", "category": 1}, auth=auth, timeout=(5, 0.3))
    time.sleep(0.6)  # the server finishes holding the answer
    names = [s["name"] for s in http.get(url, auth=auth, timeout=5).json()]
    assert "Landed late" in names  # processed although the client never heard of it
    started = time.perf_counter()
    second = http.post(url, json={"name": "Answered at once", "category": 1}, auth=auth, timeout=(5, 0.3))
    assert second.status_code in (200, 201)  # delay_answer_count=1: only the first match was held
    assert time.perf_counter() - started < 0.3


def test_a_delayed_answer_applies_only_to_matching_requests(sb: Sandbox, get: GraphGet) -> None:
    sb.set_faults(service="graph", delay_answer_ms=400, delay_answer_match="GET /v1.0/devices")
    started = time.perf_counter()
    assert get("/v1.0/users", top=1).status_code == 200
    assert time.perf_counter() - started < 0.4
    started = time.perf_counter()
    assert get("/v1.0/devices", top=1).status_code == 200
    assert time.perf_counter() - started >= 0.4
    assert sb.set_faults(service="graph", delay_answer_ms=0)["graph"]["delay_answer_ms"] == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"delay_answer_ms": -1}, id="negative-delay"),
        pytest.param({"delay_answer_match": 5}, id="match-not-a-string"),
        pytest.param({"delay_answer_count": 1.5}, id="count-not-an-integer"),
    ],
)
def test_bad_delayed_answer_settings_are_400(
    sb: Sandbox, http: requests.Session, body: dict[str, object]
) -> None:
    assert http.post(f"{sb.base_url}/_sandbox/faults", json=body).status_code == 400
