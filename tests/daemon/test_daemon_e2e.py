"""End to end: two daemons as separate processes on one DynamoDB (moto) and one sandbox.

Over about a minute with a 5 s schedule: run records never overlap, every slot ran exactly once
(one daemon ran it, the other skipped), SIGTERM to the daemon in the middle of a run interrupts
it (nothing committed) and the other one takes over the next slot. A daemon whose vault cannot
be decrypted starts, answers /healthz and says on /readyz why it is not ready.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from importer.config import load_settings
from importer.runtime import open_state
from importer.sandbox.app import Sandbox
from importer.sandbox.configfile import write_config
from importer.sandbox.testing import sandbox_fixture
from importer.schedule import ANCHOR
from importer.state import RunRecord, StateStore
from tests.conftest import free_port
from tests.daemon.test_metrics import label_values_are_safe

pytestmark = pytest.mark.slow

sandbox = sandbox_fixture(scope="module", users=40, devices=15, seed=21)
INTERVAL_S = 5
OBSERVE_S = 60


@dataclass
class Daemon:
    """One ``importer run`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.read().decode()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = self.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


def _env() -> dict[str, str]:
    env = dict(os.environ)  # includes the dummy AWS credentials of the autouse fixture
    for name in ("IMPORTER_ENCRYPTION_STRING", "IMPORTER_ENCRYPTION_STRING_FILE", "IMPORTER_CONFIG"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _importer(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "importer", "--config", str(config), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _start(config: Path, tmp: Path, name: str) -> Daemon:
    port = free_port()
    log_path = tmp / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", "--config", str(config), "run", "--listen", f"127.0.0.1:{port}"],
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Daemon(proc=proc, port=port, log=log, log_path=log_path)


def _wait(what: str, check: Any, timeout: float, daemons: list[Daemon] = ()) -> Any:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    logs = "\n".join(f"--- {d.log_path.name}\n{d.log_path.read_text()[-3000:]}" for d in daemons)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _pid_of(holder: str) -> int:
    """The process id in a lease holder name (``host:pid@pidns``)."""
    return int(holder.rsplit(":", 1)[1].partition("@")[0])


def _puts(sb: Sandbox) -> int:
    return sum(
        r["count"] for r in sb.stats()["requests"] if r["service"] == "assets" and r["method"] == "PUT"
    )


def _slot(at: datetime) -> int:
    return math.floor((at - ANCHOR).total_seconds() / INTERVAL_S)


def _sum(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in metrics.items() if n == name)


@pytest.fixture
def store_of() -> Iterator[Any]:
    opened: list[StateStore] = []

    def open_(config: Path) -> StateStore:
        store = open_state(load_settings(config))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def test_two_daemons_share_one_lease_and_take_over(
    sandbox: Sandbox, moto_endpoint: str, tmp_path: Path, store_of: Any
) -> None:
    config = write_config(
        sandbox.info(),
        tmp_path / "e2e.yaml",
        instance="e2e",
        schedule={"incremental": f"@every {INTERVAL_S}s", "full": None},  # type: ignore[dict-item]
        overrides={
            "state": {
                "backend": "dynamodb",
                "table": f"importer-e2e-{uuid.uuid4().hex[:8]}",
                "endpoint_url": moto_endpoint,
                "region": "eu-west-1",
            },
            "http": {"max_concurrency": 1, "requests_per_minute": 100_000},
        },
    )
    for args in (["state", "init"], ["schema", "apply"], ["sync"]):
        done = _importer(config, *args)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    store = store_of(config)
    daemons = [_start(config, tmp_path, "a"), _start(config, tmp_path, "b")]
    by_pid = {d.pid: d for d in daemons}
    try:
        for d in daemons:
            _wait("/readyz 200", lambda d=d: d.get("/readyz")[0] == 200, 30, daemons)
        observed_from = datetime.now(UTC)
        time.sleep(OBSERVE_S / 2)
        before_stop = {d.pid: d.metrics() for d in daemons}

        # Make the next run slow, catch it in the middle of apply and stop the daemon running it.
        sandbox.mutate(update_users=30)
        sandbox.set_faults(service="assets", latency_ms=100)
        puts = _puts(sandbox)
        _wait("a run in apply", lambda: _puts(sandbox) > puts, 3 * INTERVAL_S, daemons)
        holder = store.lease_info().owner
        assert holder is not None
        victim = by_pid[_pid_of(holder)]
        survivor = next(d for d in daemons if d is not victim)
        signalled = datetime.now(UTC)
        victim.proc.send_signal(signal.SIGTERM)
        victim.proc.wait(30)
        exit_s = (datetime.now(UTC) - signalled).total_seconds()
        sandbox.set_faults(service="assets", latency_ms=0)

        def takeover() -> RunRecord | None:
            return next(
                (
                    r
                    for r in store.list_runs(limit=50)
                    if r.holder and _pid_of(r.holder) == survivor.pid and r.started_at > signalled
                ),
                None,
            )

        first = _wait("the survivor's first run", takeover, 3 * INTERVAL_S, daemons)
        takeover_s = (first.started_at - signalled).total_seconds()
        remaining = OBSERVE_S - (datetime.now(UTC) - observed_from).total_seconds()
        time.sleep(max(remaining, INTERVAL_S * 2))
        status, ready = survivor.get("/readyz")
        assert status == 200, ready
        assert json.loads(ready)["installations"]["e2e"]["ready"] is True
        final_metrics = survivor.metrics()
        observed_to = datetime.now(UTC)
    finally:
        codes = {d.pid: d.stop() for d in daemons}

    # Both daemons stopped cleanly; the victim well within the 25 s budget.
    assert codes == {d.pid: 0 for d in daemons}, [d.log_path.read_text()[-3000:] for d in daemons]
    assert exit_s < 25

    runs = sorted(
        (r for r in store.list_runs(limit=500) if r.trigger == "schedule" and r.started_at >= observed_from),
        key=lambda r: r.started_at,
    )
    assert runs, "no scheduled run in the window"
    # 1. Run records never overlap in time.
    for a, b in itertools.pairwise(runs):
        assert a.finished_at is not None
        assert a.finished_at <= b.started_at, (a, b)
    # 2. No slot ran twice (an interrupted run gives its slot back, but nobody reran it here).
    per_slot = Counter(_slot(r.started_at) for r in runs)
    assert max(per_slot.values()) == 1, per_slot
    # 3. Every slot in the window ran: a run started in it, or a run was still going at its start.
    first_slot, last_slot = _slot(observed_from) + 1, _slot(observed_to - timedelta(seconds=1))
    for slot in range(first_slot, last_slot + 1):
        start = ANCHOR + timedelta(seconds=slot * INTERVAL_S)
        busy = any(r.started_at < start < (r.finished_at or start) for r in runs)
        assert slot in per_slot or busy, f"slot {start.isoformat()} did not run"
    # 4. Who ran what: both daemons worked; the victim's last run was interrupted, nothing committed.
    holders = Counter(r.holder for r in runs)
    runs_by = {pid: sum(n for h, n in holders.items() if h and _pid_of(h) == pid) for pid in by_pid}
    assert all(n > 0 for n in runs_by.values()), runs_by
    victim_runs = [r for r in runs if r.holder and _pid_of(r.holder) == victim.pid]
    assert victim_runs[-1].outcome == "interrupted"
    assert victim_runs[-1].error == "the daemon is stopping (received SIGTERM)"
    assert first.outcome == "success"
    assert sum(c.get("update", 0) for c in first.counts.values()) > 0  # it redid the uncommitted work
    assert takeover_s <= INTERVAL_S + 2, takeover_s
    # 5. The daemon that did not run a slot skipped it (lease held, or the slot already ran).
    skips = sum(_sum(m, "importer_jobs_skipped_total") for m in before_stop.values())
    ran = sum(_sum(m, "importer_runs_total") for m in before_stop.values())
    assert ran > 0
    assert skips >= ran - 2, (skips, ran)
    reasons = {
        dict(labels)["reason"]
        for m in before_stop.values()
        for (n, labels) in m
        if n == "importer_jobs_skipped_total"
    }
    assert reasons <= {"lease_held", "slot_done"}, reasons
    # 6. Metrics: the expected series, and no personal value in any label.
    assert final_metrics[("importer_lease_held", (("instance", "e2e"),))] == 0
    assert final_metrics[("importer_ready", (("instance", "e2e"),))] == 1
    assert _sum(final_metrics, "importer_http_requests_total") > 0
    assert ("importer_log_write_failures_total", ()) in final_metrics
    for _, labels in final_metrics:
        label_values_are_safe(dict(labels), instances=frozenset({"e2e"}))
    print(  # the figures for the report (pytest -s shows them)
        f"\nruns={len(runs)} by daemon={runs_by} slots={last_slot - first_slot + 1} "
        f"skips_before_stop={skips:g} victim_exit_s={exit_s:.2f} takeover_s={takeover_s:.2f} overlaps=0"
    )


def test_a_wrong_key_starts_but_is_not_ready(sandbox: Sandbox, tmp_path: Path) -> None:
    info = sandbox.info()
    config = write_config(info, tmp_path / "badkey.yaml", instance="badkey")
    key_file = tmp_path / "badkey.key"
    right = key_file.read_text(encoding="utf-8").strip()
    wrong = "not-the-encryption-string-of-this-vault"
    key_file.write_text(wrong + "\n", encoding="utf-8")
    daemon = _start(config, tmp_path, "badkey")
    try:
        _wait("/healthz 200", lambda: daemon.get("/healthz")[0] == 200, 30, [daemon])
        _wait("the vault check", lambda: "decrypt" in daemon.get("/readyz")[1], 30, [daemon])
        status, body = daemon.get("/readyz")
        assert status == 503
        doc = json.loads(body)
        assert doc["ready"] is False
        checks = doc["installations"]["badkey"]["checks"]
        assert checks["config"] == {"ok": True}
        assert checks["vault"]["ok"] is False
        assert "wrong encryption string" in checks["vault"]["reason"]
        assert any(line.startswith("badkey: vault: ") for line in doc["failing"])
        for secret in (right, wrong, info["client_secret"], info["jira_api_token"], info["jira_email"]):
            assert secret not in body
        assert daemon.metrics()[("importer_ready", (("instance", "badkey"),))] == 0
        assert daemon.proc.poll() is None  # still up, waiting for a fixed vault
    finally:
        code = daemon.stop()
    assert code == 0
