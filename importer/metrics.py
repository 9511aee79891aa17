"""Prometheus metrics of one daemon: runs, objects, HTTP requests, throttling, lease, readiness.

Each daemon has its own ``CollectorRegistry`` (never the global one), served on ``/metrics``.
Labels carry only names an operator chose or the code defines: the installation's ``instance``,
mapping type names (``users``, ``devices``), actions, modes, outcomes, HTTP services, methods,
route templates (ids already replaced by ``{id}``) and statuses. Never a person, an id, a URL
query or free text. Route values that do not look like a template are counted as ``other``.

=========================================  =======  ======================================
metric                                     type     labels
=========================================  =======  ======================================
importer_runs_total                        counter  instance, mode, outcome
importer_objects_total                     counter  instance, type, action
importer_run_duration_seconds              hist.    instance, mode
importer_http_requests_total               counter  instance, service, method, route, status
importer_throttled_waits_total             counter  instance
importer_throttled_wait_seconds_total      counter  instance
importer_jobs_skipped_total                counter  instance, mode, reason
importer_last_success_timestamp_seconds    gauge    instance
importer_lease_held                        gauge    instance
importer_ready                             gauge    instance
importer_log_write_failures_total          counter  (none)
=========================================  =======  ======================================
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from importer.http import RequestRecord
from importer.logs import log_write_failures

__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "DaemonMetrics", "safe_route"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_ROUTE_RE = re.compile(r"^/[A-Za-z0-9_.~$\-{}/]*$")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def safe_route(route: str) -> str:
    """A route template as a label value, or ``other`` if it does not look like one."""
    if len(route) > 200 or not _ROUTE_RE.match(route):
        return "other"
    return route


class _LogFailures(Collector):
    """``importer_log_write_failures_total`` read from ``importer.logs`` at scrape time."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "importer_log_write_failures",
            "Log records that could not be written to the log directory (written to stderr instead).",
        )
        family.add_metric([], float(self._read()))
        yield family


class DaemonMetrics:
    """The daemon's metrics in a registry of their own."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, log_failures: Callable[[], int] | None = None
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series (half the output)
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "importer_runs", "Sync runs by outcome.", ["instance", "mode", "outcome"], registry=r
        )
        self.objects = Counter(
            "importer_objects",
            "Objects written (or failed) by runs, by mapping type and action.",
            ["instance", "type", "action"],
            registry=r,
        )
        self.duration = Histogram(
            "importer_run_duration_seconds",
            "How long sync runs took.",
            ["instance", "mode"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "importer_http_requests",
            "HTTP attempts by service, method, route template and status (error: no response).",
            ["instance", "service", "method", "route", "status"],
            registry=r,
        )
        self.throttled = Counter(
            "importer_throttled_waits",
            "Waits caused by throttling, rate limits or backoff.",
            ["instance"],
            registry=r,
        )
        self.throttled_s = Counter(
            "importer_throttled_wait_seconds",
            "Seconds spent waiting on throttling, rate limits or backoff.",
            ["instance"],
            registry=r,
        )
        self.skipped = Counter(
            "importer_jobs_skipped",
            "Scheduled jobs that did not run (lease_held, slot_done, busy, running, missed, not_ready, ...).",
            ["instance", "mode", "reason"],
            registry=r,
        )
        self.last_success = Gauge(
            "importer_last_success_timestamp_seconds",
            "When the last successful run of this daemon finished (Unix time).",
            ["instance"],
            registry=r,
        )
        self.lease_held = Gauge(
            "importer_lease_held",
            "1 while this daemon holds the installation's lease.",
            ["instance"],
            registry=r,
        )
        self.ready = Gauge(
            "importer_ready",
            "1 when the installation passes every readiness check.",
            ["instance"],
            registry=r,
        )
        r.register(_LogFailures(log_failures or log_write_failures))

    def add_instance(self, instance: str) -> None:
        """Show the per-installation series at zero before the first run."""
        self.lease_held.labels(instance).set(0)
        self.ready.labels(instance).set(0)
        self.throttled.labels(instance)
        self.throttled_s.labels(instance)

    def http_observer(self, instance: str) -> Callable[[RequestRecord], None]:
        """A ``RequestStats`` observer counting one installation's HTTP attempts."""

        def observe(rec: RequestRecord) -> None:
            method = rec.method.upper() if rec.method.upper() in _METHODS else "OTHER"
            status = str(rec.status) if rec.status is not None else "error"
            self.requests.labels(instance, rec.service, method, safe_route(rec.route), status).inc()

        return observe

    def observe_run(
        self,
        instance: str,
        *,
        mode: str,
        outcome: str,
        duration_s: float,
        applied: Mapping[str, Mapping[str, int]] | None = None,
        throttled_waits: int = 0,
        waited_s: float = 0.0,
        finished_at: float | None = None,
    ) -> None:
        """Count one finished run (``applied``: mapping type → action → count)."""
        self.runs.labels(instance, mode, outcome).inc()
        self.duration.labels(instance, mode).observe(duration_s)
        for type_name, actions in (applied or {}).items():
            for action, count in actions.items():
                if count:
                    self.objects.labels(instance, type_name, action).inc(count)
        if throttled_waits:
            self.throttled.labels(instance).inc(throttled_waits)
        if waited_s > 0:
            self.throttled_s.labels(instance).inc(waited_s)
        if outcome == "success":
            self.last_success.labels(instance).set(finished_at if finished_at is not None else time.time())

    def skip(self, instance: str, *, mode: str, reason: str) -> None:
        """Count a scheduled job that did not run."""
        self.skipped.labels(instance, mode, reason).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
