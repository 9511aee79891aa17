"""The real sync against the sandbox: SIGTERM in the middle of a daemon's apply, and a manual
``importer sync`` that shares the daemon's lease (exit 5 naming the holder, or ``--wait``)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.assets import apply_schema
from importer.cli import main
from importer.config import load_settings
from importer.daemon import Daemon, Installation
from importer.runtime import open_state
from importer.sandbox.app import Sandbox
from importer.sandbox.configfile import write_config
from importer.sandbox.testing import sandbox_fixture
from importer.sync import requirements
from tests.daemon.conftest import Exits

sandbox = sandbox_fixture(scope="module", users=40, devices=10, seed=11)


def _puts(sb: Sandbox) -> int:
    return sum(
        r["count"] for r in sb.stats()["requests"] if r["service"] == "assets" and r["method"] == "PUT"
    )


@pytest.fixture
def opened(sandbox: Sandbox, tmp_path: Path, exits: Exits) -> Iterator[tuple[Daemon, Installation]]:
    path = write_config(
        sandbox.info(),
        tmp_path / "sb.yaml",
        instance="sbterm",
        schedule={"incremental": "@every 1h", "full": "0 3 * * *"},
        overrides={"http": {"max_concurrency": 1, "requests_per_minute": 100_000}},
    )
    daemon = Daemon([path], listen=None, configure_logs=False, hard_exit=exits, stop_timeout_s=10)
    daemon.load()
    daemon.open_pending()
    inst = daemon.installations[0]
    assert inst.runtime is not None, daemon.readiness.report()
    rt = inst.runtime
    apply_schema(rt.assets(), rt.settings.assets.schema_key, requirements(rt.settings))
    yield daemon, inst
    sandbox.reset()
    rt.close()


@pytest.mark.slow
def test_sigterm_mid_apply_interrupts_the_run_and_commits_nothing(
    sandbox: Sandbox, opened: tuple[Daemon, Installation], exits: Exits
) -> None:
    daemon, inst = opened
    rt = inst.runtime
    assert rt is not None
    assert daemon.run_job(inst, "incremental") == "success"  # first run: full read, creates
    users_link = rt.state.get_delta("users")
    assert users_link is not None
    map_before = dict(rt.state.iter_id_map("users"))

    sandbox.mutate(update_users=25)
    sandbox.set_faults(service="assets", latency_ms=60)
    before = _puts(sandbox)
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(daemon.run_job(inst, "incremental")))
    worker.start()
    deadline = time.monotonic() + 20
    while _puts(sandbox) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _puts(sandbox) > before, "the run never reached apply"
    signalled = time.monotonic()
    daemon.on_signal(signal.SIGTERM)
    worker.join(10)
    stopped_after = time.monotonic() - signalled

    assert results == ["interrupted"]
    assert stopped_after < 5
    record = rt.state.list_runs()[0]
    assert record.outcome == "interrupted"
    assert record.error == "the daemon is stopping (received SIGTERM)"
    assert record.trigger == "schedule"
    done = sum(c.get("update", 0) for c in record.counts.values())
    assert 0 < done < 25  # some writes finished, the rest were never submitted
    assert rt.state.get_delta("users") == users_link  # the watermark did not move
    assert dict(rt.state.iter_id_map("users")) == map_before  # nor did the id map
    assert rt.state.lease_info().released
    assert exits.codes == []
    assert daemon._drain() == 0


@pytest.fixture
def manual_config(opened: tuple[Daemon, Installation]) -> Path:
    """The daemon's configuration, as an admin runs ``importer sync`` with it."""
    return opened[1].path


@pytest.mark.slow
def test_manual_sync_exits_5_naming_the_daemon_that_holds_the_lease(manual_config: Path) -> None:
    store = open_state(load_settings(manual_config))
    try:
        assert store.acquire_lease("daemon-host:4242", duration_s=60) is not None
        result = CliRunner().invoke(main, ["--config", str(manual_config), "sync"])
    finally:
        store.close()
    assert result.exit_code == 5, result.output
    assert "daemon-host:4242" in result.output
    assert "--wait" in result.output


@pytest.mark.slow
def test_manual_sync_waits_for_the_lease_and_never_overlaps(manual_config: Path) -> None:
    store = open_state(load_settings(manual_config))
    try:
        lease = store.acquire_lease("daemon-host:4242", duration_s=60)
        assert lease is not None
        released_at: list[datetime] = []

        def finish_the_daemon_run() -> None:
            time.sleep(1.5)
            released_at.append(datetime.now(UTC))
            store.release_lease(lease)

        threading.Thread(target=finish_the_daemon_run).start()
        result = CliRunner().invoke(main, ["--config", str(manual_config), "sync", "--wait", "20"])
        assert result.exit_code == 0, result.output
        runs = store.list_runs(limit=1)
    finally:
        store.close()
    assert runs[0].trigger == "manual"
    assert runs[0].outcome == "success"
    assert runs[0].started_at >= released_at[0]  # it started only once the lease was free
