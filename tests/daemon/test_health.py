"""Readiness logic and the /healthz, /readyz, /metrics server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from importer.health import CHECKS, HealthServer, Readiness, parse_listen


def _all_ok(readiness: Readiness, name: str = "contoso") -> None:
    for check in CHECKS:
        readiness.set(name, check, True)


def test_a_new_installation_is_not_ready_until_checked() -> None:
    readiness = Readiness()
    readiness.add("contoso")
    ready, body = readiness.report()
    assert not ready
    assert set(body["installations"]["contoso"]["checks"]) == set(CHECKS)


def test_ready_when_every_check_passes() -> None:
    readiness = Readiness()
    _all_ok(readiness)
    assert readiness.report() == (
        True,
        {
            "ready": True,
            "failing": [],
            "installations": {
                "contoso": {"ready": True, "checks": {c: {"ok": True} for c in CHECKS}},
            },
        },
    )


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        pytest.param(
            "config", "contoso.yaml: state.table: the dynamodb backend needs a table name", id="config"
        ),
        pytest.param("vault", "cannot decrypt secrets.vault: wrong encryption string", id="vault"),
        pytest.param("state", "RetriableError: DynamoDB GetItem: ProvisionedThroughputExceeded", id="state"),
    ],
)
def test_each_failing_check_is_named_with_its_reason(check: str, reason: str) -> None:
    readiness = Readiness()
    _all_ok(readiness)
    readiness.set("contoso", check, False, reason)
    ready, body = readiness.report()
    assert not ready
    assert body["failing"] == [f"contoso: {check}: {reason}"]
    assert body["installations"]["contoso"]["checks"][check] == {"ok": False, "reason": reason}


@pytest.mark.parametrize(
    ("outcomes", "ready"),
    [
        pytest.param([], True, id="no-runs-yet"),
        pytest.param(["failed", "failed"], True, id="two-failures"),
        pytest.param(["failed", "failed", "failed"], False, id="three-failures"),
        pytest.param(["success", "failed", "failed"], True, id="recovered"),
        pytest.param(["failed", "partial", "failed"], True, id="partial-is-not-failed"),
        pytest.param(["interrupted", "failed", "failed"], True, id="interrupted-is-not-failed"),
    ],
)
def test_runs_check_fails_after_three_failures_in_a_row(outcomes: list[str], ready: bool) -> None:
    readiness = Readiness(failures_allowed=3)
    _all_ok(readiness)
    readiness.set_runs("contoso", outcomes, last_error="graph GET /v1.0/users/delta: HTTP 503")
    assert readiness.is_ready("contoso") is ready
    if not ready:
        reason = readiness.report()[1]["installations"]["contoso"]["checks"]["runs"]["reason"]
        assert reason == "the last 3 runs failed (newest: graph GET /v1.0/users/delta: HTTP 503)"


def test_reasons_carry_no_personal_data_or_secret() -> None:
    from importer.logs import register_secret

    register_secret("hunter2-secret-value")
    readiness = Readiness()
    readiness.set("contoso", "vault", False, "token hunter2-secret-value for alice@example.com rejected")
    text = json.dumps(readiness.report()[1])
    assert "hunter2-secret-value" not in text
    assert "alice@example.com" not in text


def test_stopping_and_empty_daemons_are_not_ready() -> None:
    readiness = Readiness()
    assert readiness.report()[1]["failing"] == ["daemon: no installation configured"]
    _all_ok(readiness)
    readiness.stopping("stopping (received SIGTERM)")
    ready, body = readiness.report()
    assert not ready
    assert body["failing"] == ["daemon: stopping (received SIGTERM)"]


def test_rename_keeps_the_checks() -> None:
    readiness = Readiness()
    readiness.set("contoso.yaml", "config", True)
    readiness.rename("contoso.yaml", "contoso")
    assert readiness.report()[1]["installations"]["contoso"]["checks"]["config"] == {"ok": True}


def test_unknown_checks_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown readiness check"):
        Readiness().set("contoso", "mood", True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("127.0.0.1:9464", ("127.0.0.1", 9464), id="ipv4"),
        pytest.param("0.0.0.0:80", ("0.0.0.0", 80), id="any"),  # noqa: S104 - parsed, never bound
        pytest.param("[::1]:9464", ("::1", 9464), id="ipv6"),
        pytest.param("localhost:0", ("localhost", 0), id="free-port"),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9464", ":9464", "host:", "host:99999", "host:abc"])
def test_parse_listen_refuses_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)


@pytest.fixture
def server() -> Iterator[HealthServer]:
    readiness = Readiness()
    readiness.add("contoso")
    srv = HealthServer("127.0.0.1", 0, readiness=readiness, metrics=lambda: b"importer_up 1\n")
    srv.start()
    yield srv
    srv.stop()


def _get(srv: HealthServer, path: str, method: str = "GET") -> tuple[int, str, str]:
    host, port = srv.address
    request = urllib.request.Request(f"http://{host}:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["Content-Type"], err.read().decode()


def test_healthz_answers_while_the_process_is_up(server: HealthServer) -> None:
    assert _get(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


def test_readyz_is_503_with_reasons_then_200(server: HealthServer) -> None:
    status, ctype, body = _get(server, "/readyz")
    assert (status, ctype) == (503, "application/json")
    assert json.loads(body)["failing"][0] == "contoso: config: not checked yet"
    _all_ok(server.readiness)
    status, _, body = _get(server, "/readyz")
    assert status == 200
    assert json.loads(body)["ready"] is True


def test_metrics_and_unknown_paths(server: HealthServer) -> None:
    status, ctype, body = _get(server, "/metrics")
    assert (status, body) == (200, "importer_up 1\n")
    assert ctype.startswith("text/plain; version=0.0.4")
    assert _get(server, "/nope")[0] == 404
    assert _get(server, "/healthz", method="HEAD") == (200, "text/plain; charset=utf-8", "")


def test_a_taken_port_is_reported(server: HealthServer) -> None:
    host, port = server.address
    with pytest.raises(OSError):  # noqa: PT011 - the errno differs between systems
        HealthServer(host, port, readiness=Readiness(), metrics=lambda: b"")
