"""The HTTP layer: retries, Retry-After, budget, timeouts, idempotency, rate limit, stats."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from structlog.testing import capture_logs

from importer.errors import (
    ApiAuthError,
    ApiClientError,
    ApiNotFoundError,
    ApiServerError,
    ApiThrottledError,
    RetriableError,
    RetryBudgetExceeded,
    TransportError,
)
from importer.http import (
    Http,
    HttpSettings,
    RateLimiter,
    RetryBudget,
    parse_rate_limit_reset,
    parse_retry_after,
    route_template,
)
from tests.fakes import FakeClock

URL = "https://api.example.test/v1/things"


def make_http(clock: FakeClock | None = None, **kw: object) -> Http:
    settings = HttpSettings(**kw)  # type: ignore[arg-type]
    return Http("assets", settings, clock=clock or FakeClock())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("3", 3.0, id="integer"),
        pytest.param("2.128", 2.128, id="decimal"),
        pytest.param("0,120", 0.12, id="comma-decimal"),
        pytest.param("Sun, 29 Nov 2026 12:00:05 GMT", 5.0, id="http-date"),
        pytest.param("Sun, 29 Nov 2026 11:00:00 GMT", 0.0, id="http-date-in-past"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("", None, id="empty"),
    ],
)
def test_retry_after_forms_are_parsed(header: str, expected: float | None) -> None:
    now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
    assert (
        parse_retry_after(header, now=now) == pytest.approx(expected)
        if expected is not None
        else (parse_retry_after(header, now=now) is None)
    )


@pytest.mark.parametrize(
    ("header", "minimum"),
    [
        pytest.param("2", 2.0, id="integer"),
        pytest.param("2.128", 2.128, id="decimal"),
        pytest.param("0,120", 1.0, id="comma-below-a-second-is-one-second"),
        pytest.param("0.124", 1.0, id="batch-style-below-a-second-is-one-second"),
        pytest.param("0", 1.0, id="zero-is-one-second"),
        pytest.param("http-date", 7.0, id="http-date"),
    ],
)
@responses.activate
def test_each_retry_after_form_is_waited_at_least(header: str, minimum: float) -> None:
    clock = FakeClock()
    if header == "http-date":
        header = format_datetime(clock.now() + timedelta(seconds=7), usegmt=True)
    responses.get(URL, status=429, headers={"Retry-After": header}, json={})
    responses.get(URL, status=200, json={"ok": True})
    http = make_http(clock)
    assert http.get_json(URL) == {"ok": True}
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= minimum
    assert clock.sleeps[0] < minimum + 1.5  # jitter is small and only added on top


@responses.activate
def test_a_passing_error_backs_off_quickly_exponential_with_jitter_and_capped() -> None:
    """A 502 (like a dropped connection) is no throttle: full jitter from backoff_base_s."""
    clock = FakeClock()
    for _ in range(5):
        responses.get(URL, status=502)
    responses.get(URL, status=200, json={})
    http = make_http(clock, backoff_base_s=1.0, backoff_cap_s=4.0, max_retries=6)
    http.get_json(URL)
    assert len(clock.sleeps) == 5
    for attempt, wait in enumerate(clock.sleeps, start=1):
        assert 0 <= wait <= min(4.0, 1.0 * 2 ** (attempt - 1))


@pytest.mark.parametrize("status", [pytest.param(429, id="429"), pytest.param(503, id="503")])
@responses.activate
def test_a_throttle_without_retry_after_backs_off_from_two_seconds_up_to_a_minute(status: int) -> None:
    """assets-api.md §14.6: no header -> exponential backoff with jitter, start 2 s, cap 60 s;
    never the near-immediate retry a 0.5 s full jitter gave."""
    clock = FakeClock()
    for _ in range(7):
        responses.get(URL, status=status, json={})
    responses.get(URL, status=200, json={"ok": True})
    http = make_http(clock, max_retries=7)
    assert http.get_json(URL) == {"ok": True}
    assert len(clock.sleeps) == 7
    for attempt, wait in enumerate(clock.sleeps, start=1):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling, (attempt, wait)
    assert clock.sleeps[0] >= 1.0
    assert max(clock.sleeps) <= 60.0


@responses.activate
def test_x_ratelimit_reset_is_waited_for_when_retry_after_is_absent() -> None:
    """Jira's 429 may carry only X-RateLimit-Reset (an ISO timestamp, assets-api.md §9)."""
    clock = FakeClock()
    reset = (clock.now() + timedelta(seconds=7)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    responses.get(URL, status=429, headers={"X-RateLimit-Reset": reset}, json={})
    responses.get(URL, status=200, json={"ok": True})
    assert make_http(clock).get_json(URL) == {"ok": True}
    assert len(clock.sleeps) == 1
    assert 7.0 <= clock.sleeps[0] < 8.5


@responses.activate
def test_retry_after_wins_over_x_ratelimit_reset() -> None:
    clock = FakeClock()
    reset = (clock.now() + timedelta(seconds=30)).isoformat()
    responses.get(URL, status=429, headers={"Retry-After": "3", "X-RateLimit-Reset": reset}, json={})
    responses.get(URL, status=200, json={})
    make_http(clock).get_json(URL)
    assert 3.0 <= clock.sleeps[0] < 4.0


@responses.activate
def test_a_reset_time_beyond_the_maximum_wait_fails_at_once_naming_the_header() -> None:
    clock = FakeClock()
    reset = (clock.now() + timedelta(hours=1)).isoformat()
    responses.get(URL, status=429, headers={"X-RateLimit-Reset": reset}, json={})
    with pytest.raises(RetryBudgetExceeded, match=r"asked to wait 3600 s \(X-RateLimit-Reset\)"):
        make_http(clock, max_retry_wait_s=120).get_json(URL)
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("2026-11-29T12:00:05.500Z", 5.5, id="iso-ms-z"),
        pytest.param("2026-11-29T12:01Z", 60.0, id="iso-minutes-z"),
        pytest.param("2026-11-29T13:00:05+01:00", 5.0, id="iso-offset"),
        pytest.param("2026-11-29T12:00:05", 5.0, id="naive-is-utc"),
        pytest.param("2026-11-29T11:00:00Z", 0.0, id="past"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("", None, id="empty"),
    ],
)
def test_rate_limit_reset_forms_are_parsed(header: str, expected: float | None) -> None:
    now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
    got = parse_rate_limit_reset(header, now=now)
    assert got == (pytest.approx(expected) if expected is not None else None)


@responses.activate
def test_a_429_storm_ends_in_a_clear_error_when_the_budget_runs_out() -> None:
    responses.get(URL, status=429, headers={"Retry-After": "1"}, json={})
    clock = FakeClock()
    http = Http("graph", HttpSettings(max_retries=1000), clock=clock, budget=RetryBudget(50))
    with pytest.raises(RetryBudgetExceeded, match="retry budget exhausted"):
        http.get_json(URL)
    assert len(responses.calls) == 11  # the first try plus 10 retries at 5 tokens each
    assert sum(clock.sleeps) >= 10


@responses.activate
def test_a_retry_after_beyond_the_maximum_wait_fails_at_once() -> None:
    responses.get(URL, status=429, headers={"Retry-After": "3600"}, json={})
    clock = FakeClock()
    http = make_http(clock, max_retry_wait_s=120)
    with pytest.raises(RetryBudgetExceeded, match="asked to wait 3600 s"):
        http.get_json(URL)
    assert clock.sleeps == []


@responses.activate
def test_max_retries_ends_with_the_typed_error() -> None:
    responses.get(URL, status=502, json={"error": {"code": "BadGateway"}})
    http = make_http(max_retries=2)
    with pytest.raises(ApiServerError) as info:
        http.get_json(URL)
    assert len(responses.calls) == 3
    assert info.value.status == 502


@responses.activate
def test_success_refunds_the_budget() -> None:
    budget = RetryBudget(20)
    responses.get(URL, status=503)
    responses.get(URL, status=200, json={})
    http = Http("assets", HttpSettings(), clock=FakeClock(), budget=budget)
    http.get_json(URL)
    assert budget.tokens == 20


@responses.activate
def test_post_is_not_retried_unless_marked_idempotent() -> None:
    responses.post(URL, status=503)
    responses.post(URL, status=200, json={"id": "1"})
    http = make_http()
    with pytest.raises(ApiServerError):
        http.post_json(URL, {"a": 1})
    assert len(responses.calls) == 1
    assert http.post_json(URL, {"a": 1}, idempotent=True) == {"id": "1"}


@responses.activate
def test_a_passing_500_is_retried_for_idempotent_requests_only() -> None:
    responses.get(URL, status=500, body="<html>Internal Server Error</html>")
    responses.get(URL, status=200, json={"value": []})
    assert make_http().get_json(URL) == {"value": []}
    responses.reset()
    responses.post(URL, status=500)
    responses.post(URL, status=201, json={"id": "1"})
    with pytest.raises(ApiServerError):
        make_http().post_json(URL, {})  # a create may have landed: only the caller may decide
    assert len(responses.calls) == 1


@responses.activate
def test_a_post_that_may_have_acted_is_retried_only_when_landed_finds_nothing() -> None:
    responses.post(URL, status=503)
    responses.post(URL, body=requests.exceptions.ReadTimeout("slow"))
    responses.post(URL, status=201, json={"id": "never sent"})
    checks: list[str] = []

    def landed() -> dict[str, str] | None:
        checks.append("looked")
        return {"id": "9"} if len(checks) == 2 else None

    assert make_http().request("POST", URL, json_body={}, landed=landed).body == {"id": "9"}
    assert len(responses.calls) == 2  # 503, looked (nothing), timeout, looked (found): no third POST
    assert checks == ["looked", "looked"]


@responses.activate
def test_post_is_retried_after_429_because_the_server_did_not_act_on_it() -> None:
    responses.post(URL, status=429, headers={"Retry-After": "0"})
    responses.post(URL, status=201, json={"id": "7"})
    assert make_http().post_json(URL, {}) == {"id": "7"}
    assert len(responses.calls) == 2


@responses.activate
def test_truncated_json_is_retried_for_idempotent_requests_then_reported() -> None:
    responses.get(URL, status=200, body='{"value": [1, 2')
    responses.get(URL, status=200, json={"value": [1, 2]})
    assert make_http().get_json(URL) == {"value": [1, 2]}
    responses.reset()
    responses.get(URL, status=200, body='{"value": [')
    with pytest.raises(TransportError, match="truncated or non-JSON"):
        make_http(max_retries=1).get_json(URL)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(400, ApiClientError, id="400"),
        pytest.param(401, ApiAuthError, id="401"),
        pytest.param(403, ApiAuthError, id="403"),
        pytest.param(404, ApiNotFoundError, id="404"),
    ],
)
@responses.activate
def test_client_errors_are_typed_and_not_retried(status: int, error: type[Exception]) -> None:
    responses.get(
        URL, status=status, json={"errorMessages": [], "errors": {"rlabs-insight-attribute-9": "bad"}}
    )
    with pytest.raises(error) as info:
        make_http().get_json(URL)
    assert len(responses.calls) == 1
    assert "rlabs-insight-attribute-9" in str(info.value)
    assert "bad" not in str(info.value)  # server messages may echo personal values


@responses.activate
def test_graph_error_code_and_request_id_are_kept_but_not_the_message() -> None:
    body = {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges for jane.doe@contoso.com",
            "innerError": {"request-id": "3f1e-req", "date": "2026-11-29T12:00:00"},
        }
    }
    responses.get("https://graph.example.test/v1.0/users", status=403, json=body)
    with pytest.raises(ApiAuthError) as info:
        Http("graph", clock=FakeClock()).get_json("https://graph.example.test/v1.0/users")
    text = str(info.value)
    assert "Authorization_RequestDenied" in text
    assert "3f1e-req" in text
    assert "jane.doe" not in text


@responses.activate
def test_stats_count_route_templates_without_ids_or_queries() -> None:
    url = "https://api.example.test/jsm/assets/workspace/0f3c6a9e-1111-2222-3333-444455556666/v1/object/5186"
    responses.get(url, status=200, json={})
    http = make_http()
    http.get_json(url, params={"q": "jane@contoso.com"})
    ((key, count),) = http.stats.counts.items()
    assert key == ("assets", "GET", "/jsm/assets/workspace/{id}/v1/object/{id}", 200)
    assert count == 1


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc", "/v1.0/users/delta"),
        (
            "https://h/v1.0/devices/8c2b1a40-3f1e-4a52-9f3e-1d2c3b4a5f60/registeredOwners",
            "/v1.0/devices/{id}/registeredOwners",
        ),
        ("https://h/rest/api/3/user/search?query=jane@x.com", "/rest/api/3/user/search"),
        ("https://h/v1/object/ENTRA-88", "/v1/object/{id}"),
        ("https://h/tenant-guid-0000/oauth2/v2.0/token", "/tenant-guid-0000/oauth2/v2.0/token"),
    ],
)
def test_route_template(url: str, route: str) -> None:
    assert route_template(url) == route


@responses.activate
def test_user_agent_names_the_importer() -> None:
    responses.get(URL, json={})
    make_http().get_json(URL)
    assert responses.calls[0].request.headers["User-Agent"].startswith("importer/")


@responses.activate
def test_header_provider_is_called_for_every_attempt() -> None:
    tokens = iter(["t1", "t2"])
    responses.get(URL, status=503)
    responses.get(URL, status=200, json={})
    http = Http("graph", clock=FakeClock(), headers=lambda: {"Authorization": f"Bearer {next(tokens)}"})
    http.get_json(URL)
    assert [c.request.headers["Authorization"] for c in responses.calls] == ["Bearer t1", "Bearer t2"]


def test_rate_limiter_holds_its_rate_across_threads() -> None:
    clock = FakeClock()
    limiter = RateLimiter(600, burst=1, clock=clock)  # 10 per second
    start = clock.monotonic()
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            limiter.acquire()
            with lock:
                stamps.append(clock.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 100
    elapsed = max(stamps) - start
    assert elapsed >= 9.9 - 1e-6  # 100 requests at 10/s after a burst of 1
    stamps.sort()
    for i in range(10, len(stamps)):  # any 11 consecutive grants span at least one second
        assert stamps[i] - stamps[i - 10] >= 1.0 - 1e-6


def test_rate_limiter_never_grants_more_than_the_limit_in_any_sliding_minute() -> None:
    """Atlassian counts a sliding minute: the default burst must not push any minute over the limit."""
    clock = FakeClock()
    limiter = RateLimiter(1000, clock=clock)
    stamps = []
    for _ in range(3000):
        limiter.acquire()
        stamps.append(clock.monotonic())
    start = 0
    for end, t in enumerate(stamps):
        while stamps[start] <= t - 60.0:
            start += 1
        assert end - start + 1 <= 1000
    assert stamps[-1] - stamps[0] < 3000 / 1000 * 60 * 1.03  # and under 3% slower than the limit


def test_requests_that_arrive_up_to_a_second_late_still_keep_every_sliding_minute_under_the_limit() -> None:
    """Grants reach the server late by varying amounts (threads, connects): arrivals are what count."""
    clock = FakeClock()
    limiter = RateLimiter(1000, clock=clock)
    arrivals = []
    for _ in range(5000):
        limiter.acquire()
        granted = clock.monotonic()
        # the worst case: one minute's grants all arrive a second late, the next minute's at once
        arrivals.append(granted + (1.0 if int(granted // 60) % 2 == 0 else 0.0))
    arrivals.sort()
    start = 0
    for end, t in enumerate(arrivals):
        while arrivals[start] <= t - 60.0:
            start += 1
        assert end - start + 1 <= 1000


# -- real sockets: timeouts, dropped connections, CA bundle ---------------------------------


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    delay = 2.0

    def do_GET(self) -> None:
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # The client timed out long ago: the late answer meets a broken pipe. The default prints a
        # traceback to sys.stderr from the handler thread, into whatever test captures it then.
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_read_timeout_fires_and_is_retried_then_reported(slow_server: str) -> None:
    http = Http("assets", HttpSettings(timeout_s=0.2, max_retries=1), clock=FakeClock())
    started = time.monotonic()
    with pytest.raises(TransportError, match="read timeout"):
        http.get_json(slow_server + "/x")
    assert time.monotonic() - started < 1.9  # never waited for the slow answer
    assert http.stats.total() == 2


def test_connection_refused_is_a_transport_error_even_for_post() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = Http("assets", HttpSettings(max_retries=2), clock=FakeClock())
    with pytest.raises(TransportError, match="connection error"):
        http.post_json(f"http://127.0.0.1:{port}/create", {})
    # nothing reached a server, so even a non-idempotent POST was tried again
    assert http.stats.total() == 3


def test_an_explicit_ca_bundle_wins_over_requests_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    seen: dict[str, object] = {}

    class Recorder(requests.Session):
        def request(self, method: str, url: str, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
            seen.update(kwargs)
            resp = requests.Response()
            resp.status_code = 200
            resp._content = b"{}"
            return resp

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    http = Http("graph", HttpSettings(ca_bundle="/tmp/sandbox-ca.pem"), clock=FakeClock(), session=Recorder())
    http.get_json("https://127.0.0.1:1/x")
    assert seen["verify"] == "/tmp/sandbox-ca.pem"
    assert seen["timeout"] == (10.0, 30.0)


# -- the last attempt, the budget and `landed` ---------------------------------------------------


@responses.activate
def test_without_retries_a_long_retry_after_raises_the_throttle_itself_and_costs_nothing() -> None:
    """max_retries=0: no retry follows, so neither the budget nor the maximum wait is involved."""
    responses.get(URL, status=429, headers={"Retry-After": "3600"}, json={})
    budget = RetryBudget(20)
    http = Http("assets", HttpSettings(max_retries=0), clock=FakeClock(), budget=budget)
    with capture_logs() as logs, pytest.raises(ApiThrottledError) as info:
        http.get_json(URL)
    assert info.value.status == 429
    assert len(responses.calls) == 1
    assert budget.tokens == 20
    assert http.stats.throttled_waits == 0
    assert http.stats.waited_s == 0
    assert not [e for e in logs if e["event"] == "request_retry_scheduled"]


@responses.activate
def test_the_last_attempts_error_is_raised_even_with_a_long_retry_after() -> None:
    """After the final attempt the run sees the real 503 (retriable), not 'retry budget exceeded'."""
    responses.get(URL, status=503, json={})
    responses.get(URL, status=503, json={})
    responses.get(URL, status=503, headers={"Retry-After": "3600"}, json={"error": {"code": "busy"}})
    budget = RetryBudget(100)
    clock = FakeClock()
    http = Http("assets", HttpSettings(max_retries=2), clock=clock, budget=budget)
    with capture_logs() as logs, pytest.raises(ApiServerError) as info:
        http.get_json(URL)
    assert info.value.status == 503
    assert len(responses.calls) == 3
    assert budget.tokens == 100 - 2 * 5  # two retries were paid for, not a third
    assert http.stats.throttled_waits == 2
    assert http.stats.waited_s == pytest.approx(sum(clock.sleeps))
    assert len([e for e in logs if e["event"] == "request_retry_scheduled"]) == 2


@responses.activate
def test_a_budget_that_covers_every_retry_ends_with_the_real_error() -> None:
    responses.get(URL, status=502)
    budget = RetryBudget(10)  # exactly two retries
    http = Http("assets", HttpSettings(max_retries=2), clock=FakeClock(), budget=budget)
    with pytest.raises(ApiServerError):
        http.get_json(URL)
    assert len(responses.calls) == 3
    assert budget.tokens == 0


@pytest.mark.parametrize(
    ("budget", "retry_after", "refused"),
    [
        pytest.param(4, None, "retry budget exhausted", id="budget-empty"),
        pytest.param(500, "3600", "asked to wait 3600 s", id="wait-too-long"),
    ],
)
@responses.activate
def test_a_create_whose_retry_is_refused_is_still_looked_up(
    budget: int, retry_after: str | None, refused: str
) -> None:
    """The 503'd POST may have created the object: `landed` is asked before giving up."""
    headers = {"Retry-After": retry_after} if retry_after else {}
    responses.post(URL, status=503, headers=headers, json={})
    http = Http("assets", HttpSettings(), clock=FakeClock(), budget=RetryBudget(budget))
    checks: list[str] = []

    def found() -> dict[str, str]:
        checks.append("looked")
        return {"id": "9"}

    assert http.request("POST", URL, json_body={}, landed=found).body == {"id": "9"}
    assert checks == ["looked"]
    assert len(responses.calls) == 1

    def nothing() -> None:
        checks.append("looked again")

    with pytest.raises(RetryBudgetExceeded, match=refused):
        http.request("POST", URL, json_body={}, landed=nothing)
    assert checks == ["looked", "looked again"]
    assert len(responses.calls) == 2  # no second POST either time


@responses.activate
def test_a_408_is_retried_even_for_a_plain_post() -> None:
    """408: the server gave up waiting for the request, so it did not act on it."""
    responses.post(URL, status=408)
    responses.post(URL, status=201, json={"id": "3"})
    clock = FakeClock()
    assert make_http(clock).post_json(URL, {}) == {"id": "3"}
    assert len(responses.calls) == 2
    responses.reset()
    responses.get(URL, status=408)
    with pytest.raises(TransportError) as info:
        make_http(max_retries=1).get_json(URL)
    assert info.value.status == 408
    assert isinstance(info.value, RetriableError)


# -- what requests raises, body size, sessions ------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(requests.exceptions.TooManyRedirects, id="too-many-redirects"),
        pytest.param(requests.exceptions.InvalidHeader, id="invalid-header"),
        pytest.param(requests.exceptions.InvalidURL, id="invalid-url"),
        pytest.param(requests.exceptions.RequestException, id="any-other"),
    ],
)
@responses.activate
def test_other_request_exceptions_are_transport_errors_naming_only_their_type(
    exc: type[requests.exceptions.RequestException],
) -> None:
    secret_url = "https://api.example.test/v1/things?user=jane.doe@contoso.com&token=abc"
    responses.get(URL, body=exc(f"Exceeded 30 redirects at {secret_url}"))
    with pytest.raises(TransportError) as info:
        make_http().get_json(URL)
    text = str(info.value)
    assert exc.__name__ in text
    assert "jane.doe" not in text
    assert "token=abc" not in text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert len(responses.calls) == 1  # they do not pass by themselves: not retried


@pytest.mark.parametrize("expect_json", [pytest.param(True, id="json"), pytest.param(False, id="raw")])
@responses.activate
def test_a_body_over_the_cap_is_a_transport_error(monkeypatch: pytest.MonkeyPatch, expect_json: bool) -> None:
    monkeypatch.setattr("importer.http._client.MAX_BODY_BYTES", 1024 * 1024)
    responses.get(URL, body=b"[" + b"1," * (1024 * 1024) + b"1]", content_type="application/json")
    with pytest.raises(TransportError, match="response body over 1 MB"):
        make_http().request("GET", URL, expect_json=expect_json)
    assert len(responses.calls) == 1


@responses.activate
def test_a_body_under_the_cap_is_read_whole_as_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importer.http._client.MAX_BODY_BYTES", 4096)
    value = "é" * 2000  # 4,000 bytes in UTF-8, the JSON around it stays under 4,096
    body = ('{"v": "' + value + '"}').encode()
    responses.get(URL, body=body, content_type="application/json")
    assert make_http().get_json(URL) == {"v": value}


def test_the_default_body_cap_is_64_mb() -> None:
    from importer.http import MAX_BODY_BYTES

    assert MAX_BODY_BYTES == 64 * 1024 * 1024


class _EndlessHandler(http.server.BaseHTTPRequestHandler):
    """A chunked body that never ends (no Content-Length to refuse it by)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"[" + b"0," * 32768
        try:
            for _ in range(10_000):  # 640 MB at most, should the client read it all
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_endless_body_is_cut_at_the_cap_not_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importer.http._client.MAX_BODY_BYTES", 1024 * 1024)
    server = _QuietServer(("127.0.0.1", 0), _EndlessHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Http("assets", HttpSettings(timeout_s=5), clock=FakeClock())
        started = time.monotonic()
        with pytest.raises(TransportError, match="response body over 1 MB"):
            client.get_json(f"http://127.0.0.1:{server.server_address[1]}/big")
        assert time.monotonic() - started < 5
        assert client.stats.total() == 1
    finally:
        server.shutdown()
        server.server_close()


@responses.activate
def test_an_injected_session_keeps_its_own_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without http.ca_bundle, a session given to Http (e.g. one with a corporate CA) is not overridden."""
    session = requests.Session()
    session.verify = "/etc/corp/ca.pem"
    session.trust_env = False
    responses.get(URL, json={})
    Http("assets", HttpSettings(), clock=FakeClock(), session=session).get_json(URL)
    assert responses.calls[0].request.req_kwargs["verify"] == "/etc/corp/ca.pem"  # type: ignore[attr-defined]
    responses.calls.reset()
    Http(
        "assets", HttpSettings(ca_bundle="/tmp/sandbox-ca.pem"), clock=FakeClock(), session=session
    ).get_json(URL)
    assert responses.calls[0].request.req_kwargs["verify"] == "/tmp/sandbox-ca.pem"  # type: ignore[attr-defined]


@responses.activate
def test_a_sibling_of_our_own_session_reads_the_environment_like_we_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """for_service (the authority beside Graph) shares the session and still honours
    REQUESTS_CA_BUNDLE and the proxy variables."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    graph = Http("graph", HttpSettings(), clock=FakeClock())
    sibling = graph.for_service("authority")
    assert sibling.session is graph.session
    responses.get(URL, json={})
    sibling.get_json(URL)
    kwargs = responses.calls[0].request.req_kwargs  # type: ignore[attr-defined]
    assert kwargs["verify"] == "/etc/corp/ca.pem"
    assert kwargs["proxies"].get("https") == "http://proxy.corp.test:3128"
    assert sibling.stats is graph.stats
    assert sibling.budget is graph.budget
    assert graph.stats.by_service() == {"authority": 1}
