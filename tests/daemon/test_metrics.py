"""Metric names and labels: counts only, and label values never personal."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from importer.http import RequestRecord
from importer.metrics import DaemonMetrics, safe_route
from tests.daemon.conftest import FakeRuns, MakeDaemon

EXPECTED = {
    "importer_runs": {"instance", "mode", "outcome"},
    "importer_objects": {"instance", "type", "action"},
    "importer_run_duration_seconds": {"instance", "mode"},
    "importer_http_requests": {"instance", "service", "method", "route", "status"},
    "importer_throttled_waits": {"instance"},
    "importer_throttled_wait_seconds": {"instance"},
    "importer_jobs_skipped": {"instance", "mode", "reason"},
    "importer_last_success_timestamp_seconds": {"instance"},
    "importer_lease_held": {"instance"},
    "importer_ready": {"instance"},
    "importer_log_write_failures": set(),
}
ROUTE = re.compile(r"^(/[A-Za-z0-9_.~$\-]*|/\{[a-z_]+\})*$")
ALLOWED = {
    "type": {"users", "devices"},  # mapping type names (the config's `name:`)
    "action": {"create", "update", "mark", "delete", "failed"},
    "mode": {"incremental", "full"},
    "outcome": {"success", "partial", "failed", "refused", "interrupted"},
    "reason": {
        "lease_held",
        "slot_done",
        "busy",
        "running",
        "missed",
        "not_ready",
        "stopping",
        "state_error",
    },
    "service": {"graph", "authority", "assets"},
    "method": {"GET", "POST", "PUT", "DELETE", "OTHER"},
}


def _samples(text: str) -> list[tuple[str, str, dict[str, str]]]:
    return [
        (family.name, sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def label_values_are_safe(
    labels: dict[str, str], *, instances: frozenset[str] = frozenset({"contoso"})
) -> None:
    """Fail unless every label value is an instance name, a type name, a route template, a status..."""
    for key, value in labels.items():
        if key == "le":
            continue
        if key == "route":
            assert value == "other" or ROUTE.match(value), value
            assert "@" not in value
            assert "?" not in value
        elif key == "instance":
            assert value in instances, value
        elif key == "status":
            assert value == "error" or re.fullmatch(r"[1-5]\d\d", value), value
        else:
            assert value in ALLOWED[key], (key, value)


def _feed(metrics: DaemonMetrics) -> None:
    observe = metrics.http_observer("contoso")
    for service, method, route, status in [
        ("graph", "GET", "/v1.0/users/delta", 200),
        ("graph", "POST", "/v1.0/$batch", 429),
        ("authority", "POST", "/{id}/oauth2/v2.0/token", 200),
        ("assets", "PUT", "/jsm/assets/workspace/{id}/v1/object/{id}", 400),
        ("assets", "GET", "/jsm/assets/workspace/{id}/v1/object/aql", None),
        ("assets", "GET", "/rest/api/3/user/search?query=alice@example.com", 200),  # not a template
        ("graph", "GET", "/v1.0/users/alice@example.com", 404),
        ("graph", "PROPFIND", "/v1.0/users", 405),
    ]:
        observe(
            RequestRecord(
                service=service, method=method, route=route, status=status, duration_s=0.1, attempt=1
            )
        )
    metrics.add_instance("contoso")
    metrics.observe_run(
        "contoso",
        mode="incremental",
        outcome="success",
        duration_s=3.2,
        applied={"users": {"create": 2, "update": 0, "failed": 1}, "devices": {"mark": 4}},
        throttled_waits=3,
        waited_s=4.5,
        finished_at=1_700_000_000.0,
    )
    metrics.skip("contoso", mode="full", reason="lease_held")
    metrics.lease_held.labels("contoso").set(1)


def test_every_metric_has_its_name_and_labels() -> None:
    metrics = DaemonMetrics(log_failures=lambda: 7)
    _feed(metrics)
    samples = _samples(metrics.render().decode())
    families = {family for family, _, _ in samples}
    assert set(EXPECTED) <= families
    for family, sample, labels in samples:
        if family in EXPECTED:
            assert set(labels) - {"le"} == EXPECTED[family], sample
    assert not [s for _, s, _ in samples if s.endswith("_created")]


def test_label_values_are_never_personal() -> None:
    metrics = DaemonMetrics(log_failures=lambda: 0)
    _feed(metrics)
    text = metrics.render().decode()
    assert "alice" not in text
    assert "example.com" not in text
    for _, _, labels in _samples(text):
        label_values_are_safe(labels)


def test_values_add_up() -> None:
    metrics = DaemonMetrics(log_failures=lambda: 7)
    _feed(metrics)
    values = {
        (sample, tuple(sorted(labels.items()))): value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample, labels, value, *_ in family.samples
    }
    assert (
        values[
            (
                "importer_runs_total",
                (("instance", "contoso"), ("mode", "incremental"), ("outcome", "success")),
            )
        ]
        == 1
    )
    assert (
        values[("importer_objects_total", (("action", "mark"), ("instance", "contoso"), ("type", "devices")))]
        == 4
    )
    assert values[("importer_throttled_waits_total", (("instance", "contoso"),))] == 3
    assert values[("importer_last_success_timestamp_seconds", (("instance", "contoso"),))] == 1_700_000_000
    assert values[("importer_lease_held", (("instance", "contoso"),))] == 1
    assert values[("importer_log_write_failures_total", ())] == 7
    other = (
        ("instance", "contoso"),
        ("method", "GET"),
        ("route", "other"),
        ("service", "assets"),
        ("status", "200"),
    )
    assert values[("importer_http_requests_total", other)] == 1
    no_response = (
        ("instance", "contoso"),
        ("method", "GET"),
        ("route", "/jsm/assets/workspace/{id}/v1/object/aql"),
        ("service", "assets"),
        ("status", "error"),
    )
    assert values[("importer_http_requests_total", no_response)] == 1


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        pytest.param(
            "/v1.0/devices/{id}/registeredOwners", "/v1.0/devices/{id}/registeredOwners", id="template"
        ),
        pytest.param("/v1.0/$batch", "/v1.0/$batch", id="batch"),
        pytest.param("/v1.0/users?$filter=mail eq 'a@b.c'", "other", id="query"),
        pytest.param("/users/bob@example.com", "other", id="email"),
        pytest.param("https://graph.microsoft.com/v1.0/users", "other", id="absolute-url"),
        pytest.param("/" + "a" * 300, "other", id="too-long"),
    ],
)
def test_safe_route(route: str, expected: str) -> None:
    assert safe_route(route) == expected


def test_daemon_metrics_after_runs(make_daemon: MakeDaemon) -> None:
    """A daemon's registry after real jobs: runs, objects, lease, readiness, skips."""
    daemon, inst = make_daemon(runner=FakeRuns())
    assert inst.runtime is not None
    daemon.run_job(inst, "incremental")
    inst.runtime.state.acquire_lease("other-host:1", duration_s=60)
    daemon.run_job(inst, "full")
    text = daemon.metrics.render().decode()
    assert 'importer_runs_total{instance="contoso",mode="incremental",outcome="success"} 1.0' in text
    assert 'importer_objects_total{action="create",instance="contoso",type="users"} 2.0' in text
    assert 'importer_jobs_skipped_total{instance="contoso",mode="full",reason="lease_held"} 1.0' in text
    assert 'importer_lease_held{instance="contoso"} 0.0' in text
    assert 'importer_ready{instance="contoso"} 1.0' in text
    assert "other-host" not in text  # the holder goes to the log, not into a label
    for _, _, labels in _samples(text):
        label_values_are_safe(labels)
