"""The daemon's jobs: options, the lease, slots, skips, failures, signals, the retention sweep."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from structlog.testing import capture_logs

from importer.daemon import JOB_DEFAULTS, Daemon, describe_error, find_configs
from importer.errors import ApiServerError, ConfigError
from importer.schedule import SlotTrigger
from importer.sync import RunOptions
from tests.daemon.conftest import Exits, FakeRuns, MakeDaemon, fake_config


def _events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == name]


def _at_slot(slot: datetime) -> SimpleNamespace:
    """A trigger stand-in whose running fire belongs to ``slot``."""
    return SimpleNamespace(slot_at=lambda now: slot)


# -- scheduling ---------------------------------------------------------------------------------


def test_run_jobs_have_the_safe_options(make_daemon: MakeDaemon) -> None:
    """max_instances=1, coalesce, a generous misfire grace time, slot triggers, in-memory store."""
    daemon, inst = make_daemon(opened=False)
    daemon.schedule_jobs()
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    assert {"contoso:incremental", "contoso:full", "open", "health", "sweep"} <= set(jobs)
    for kind in ("incremental", "full"):
        job = jobs[f"contoso:{kind}"]
        assert job.max_instances == 1
        assert job.coalesce is True
        assert job.misfire_grace_time >= 300
        assert isinstance(job.trigger, SlotTrigger)
        assert job.trigger is inst.triggers[kind]
        assert job.args == (inst, kind)
    assert JOB_DEFAULTS["misfire_grace_time"] >= 300
    assert isinstance(daemon.scheduler._jobstores["default"], MemoryJobStore)  # never shared


def test_retention_sweep_is_scheduled_daily(make_daemon: MakeDaemon) -> None:
    daemon, _ = make_daemon(opened=False)
    daemon.schedule_jobs()
    sweep = daemon.scheduler.get_job("sweep")
    assert sweep.func == daemon.sweep
    assert sweep.trigger.interval == timedelta(hours=24)


def test_a_schedule_turned_off_has_no_job(make_daemon: MakeDaemon) -> None:
    daemon, _ = make_daemon(opened=False, schedule={"incremental": "@every 30s", "full": None})
    daemon.schedule_jobs()
    ids = {job.id for job in daemon.scheduler.get_jobs()}
    assert "contoso:incremental" in ids
    assert "contoso:full" not in ids


def test_sweep_removes_expired_records_and_old_logs(make_daemon: MakeDaemon) -> None:
    daemon, inst = make_daemon()
    assert inst.runtime is not None
    log_dir = inst.runtime.settings.logging.dir
    log_dir.mkdir(parents=True, exist_ok=True)
    old = log_dir / "importer-2001-01-01.jsonl"
    old.write_text("{}\n", encoding="utf-8")
    with capture_logs() as logs:
        daemon.sweep()
    assert not old.exists()
    assert _events(logs, "retention_swept")[0]["log_files"] == 1


# -- the lease and the slot -----------------------------------------------------------------------


def test_job_skips_and_names_the_holder_when_another_host_holds_the_lease(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns()
    daemon, inst = make_daemon(runner=runs)
    assert inst.runtime is not None
    assert inst.runtime.state.acquire_lease("other-host:4242", duration_s=60) is not None
    with capture_logs() as logs:
        assert daemon.run_job(inst, "incremental") == "skipped:lease_held"
    assert runs.calls == []
    skipped = _events(logs, "job_skipped")
    assert skipped == [
        {
            "event": "job_skipped",
            "log_level": "info",
            "mode": "incremental",
            "reason": "lease_held",
            "holder": "other-host:4242",
        }
    ]
    assert 'reason="lease_held"' in daemon.metrics.render().decode()


def test_job_runs_a_scheduled_sync_under_the_lease(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns()
    daemon, inst = make_daemon(runner=runs)
    assert inst.runtime is not None
    assert daemon.run_job(inst, "full") == "success"
    (options,) = runs.calls
    assert options.full is True
    assert options.trigger == "schedule"
    assert options.apply is True
    assert options.should_stop is not None
    assert options.should_stop() is None
    info = inst.runtime.state.lease_info()
    assert info.released  # given back after the run
    assert info.owner is not None
    assert ":" in info.owner  # host:pid
    assert inst.runtime.state.list_runs()[0].holder == info.owner


def test_a_slot_that_already_ran_elsewhere_is_skipped(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns()
    daemon, inst = make_daemon(runner=runs)
    slot = datetime.now(UTC) - timedelta(seconds=1)
    inst.triggers["incremental"] = _at_slot(slot)  # type: ignore[assignment]
    assert daemon.run_job(inst, "incremental") == "success"  # the first host runs the slot
    with capture_logs() as logs:
        assert daemon.run_job(inst, "incremental") == "skipped:slot_done"  # the second one skips it
    assert _events(logs, "job_skipped")[0]["reason"] == "slot_done"
    assert len(runs.calls) == 1


def test_an_interrupted_run_does_not_use_up_its_slot(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns(outcome="interrupted")
    daemon, inst = make_daemon(runner=runs)
    inst.triggers["incremental"] = _at_slot(datetime.now(UTC) - timedelta(seconds=1))  # type: ignore[assignment]
    assert daemon.run_job(inst, "incremental") == "interrupted"
    runs.outcome = "success"
    assert daemon.run_job(inst, "incremental") == "success"


def test_an_incremental_run_does_not_count_as_the_full_slot(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns()
    daemon, inst = make_daemon(runner=runs)
    slot = datetime.now(UTC) - timedelta(seconds=1)
    inst.triggers["incremental"] = inst.triggers["full"] = _at_slot(slot)  # type: ignore[assignment]
    assert daemon.run_job(inst, "incremental") == "success"
    assert daemon.run_job(inst, "full") == "success"
    assert daemon.run_job(inst, "incremental") == "skipped:slot_done"  # the full run covers it


# -- in-process exclusion and readiness of the installation --------------------------------------


def test_incremental_skips_while_the_full_job_runs_here(make_daemon: MakeDaemon) -> None:
    daemon, inst = make_daemon(runner=FakeRuns())
    inst.run_lock.acquire()
    try:
        assert daemon.run_job(inst, "incremental") == "skipped:busy"
    finally:
        inst.run_lock.release()


def test_full_job_waits_for_the_incremental_one(make_daemon: MakeDaemon) -> None:
    daemon, inst = make_daemon(runner=FakeRuns())
    inst.run_lock.acquire()
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(daemon.run_job(inst, "full")))
    worker.start()
    time.sleep(0.3)
    assert results == []
    inst.run_lock.release()
    worker.join(5)
    assert results == ["success"]


def test_full_job_runs_after_an_incremental_run_that_outlasts_the_grace_time(
    make_daemon: MakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily full run is not lost when the 03:00 incremental run takes longer than the grace time."""
    monkeypatch.setitem(JOB_DEFAULTS, "misfire_grace_time", 0.2)  # stands in for 300 s
    runs = FakeRuns()
    incremental_running, finish_incremental = threading.Event(), threading.Event()

    def runner(rt: object, options: RunOptions, *, lease: object = None) -> object:
        if not options.full:
            incremental_running.set()
            finish_incremental.wait(10)  # a long incremental run
        return runs(rt, options, lease=lease)

    daemon, inst = make_daemon(runner=runner)
    assert inst.runtime is not None
    slot = datetime.now(UTC) - timedelta(seconds=1)  # both jobs fire for the same slot
    inst.triggers["incremental"] = inst.triggers["full"] = _at_slot(slot)  # type: ignore[assignment]
    results: dict[str, str] = {}
    incremental = threading.Thread(
        target=lambda: results.update(incremental=daemon.run_job(inst, "incremental"))
    )
    incremental.start()
    assert incremental_running.wait(5)
    full = threading.Thread(target=lambda: results.update(full=daemon.run_job(inst, "full")))
    full.start()
    time.sleep(1.0)  # five grace times
    assert "full" not in results  # still waiting, not skipped as busy
    # another incremental slot meanwhile skips rather than taking the lock before the full run
    assert daemon.run_job(inst, "incremental") == "skipped:busy"
    finish_incremental.set()
    incremental.join(5)
    full.join(5)
    assert results == {"incremental": "success", "full": "success"}
    assert [r.mode for r in inst.runtime.state.list_runs()] == ["full", "incremental"]


def test_a_stop_ends_the_full_jobs_wait(make_daemon: MakeDaemon) -> None:
    """SIGTERM while the full job waits for a running incremental one: the full job gives up at once."""
    daemon, inst = make_daemon(runner=FakeRuns())
    inst.run_lock.acquire()  # the incremental run
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(daemon.run_job(inst, "full")))
    try:
        worker.start()
        time.sleep(0.3)
        daemon.request_stop("received SIGTERM")
        worker.join(5)
        assert results == ["skipped:stopping"]
        assert not inst.full_waiting.is_set()
    finally:
        inst.run_lock.release()


def test_job_skips_when_the_installation_could_not_be_opened(make_daemon: MakeDaemon) -> None:
    daemon, inst = make_daemon(opened=False, runner=FakeRuns())
    inst.open_attempted.set()  # an attempt ended without a runtime (broken vault, state down)
    assert daemon.run_job(inst, "incremental") == "skipped:not_ready"


def test_a_job_that_fires_while_opening_waits_for_the_open_and_runs(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns()
    daemon, inst = make_daemon(opened=False, runner=runs)
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(daemon.run_job(inst, "incremental")))
    worker.start()
    time.sleep(0.5)
    assert results == []  # still waiting: the first slot is not lost to a slow start
    daemon.open_pending()
    worker.join(10)
    assert results == ["success"]


def test_a_stop_ends_the_wait_for_the_open(make_daemon: MakeDaemon) -> None:
    daemon, inst = make_daemon(opened=False, runner=FakeRuns())
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(daemon.run_job(inst, "incremental")))
    worker.start()
    time.sleep(0.3)
    daemon.request_stop("received SIGTERM")
    worker.join(5)
    assert results == ["skipped:stopping"]


def test_a_run_that_raises_does_not_stop_the_daemon(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns(raises=RuntimeError("lookup exploded"))
    daemon, inst = make_daemon(runner=runs)
    assert inst.runtime is not None
    with capture_logs() as logs:
        assert daemon.run_job(inst, "incremental") == "failed"
    (record,) = inst.runtime.state.list_runs()  # recorded by the runner (run_sync records its failures)
    assert record.outcome == "failed"
    assert _events(logs, "run_failed")[0]["error_type"] == "RuntimeError"
    assert inst.runtime.state.lease_info().released
    runs.raises = None
    assert daemon.run_job(inst, "incremental") == "success"


def test_three_failed_runs_in_a_row_make_the_installation_unready(make_daemon: MakeDaemon) -> None:
    runs = FakeRuns(
        raises=ApiServerError(service="graph", method="GET", route="/v1.0/users/delta", status=503)
    )
    daemon, inst = make_daemon(runner=runs)
    for expected_ready in (True, True, False):
        daemon.run_job(inst, "incremental")
        assert daemon.readiness.is_ready("contoso") is expected_ready
    ready, body = daemon.readiness.report()
    assert not ready
    assert body["installations"]["contoso"]["checks"]["runs"]["reason"].startswith("the last 3 runs failed")
    runs.raises = None
    daemon.run_job(inst, "incremental")
    assert daemon.readiness.is_ready("contoso")


# -- signals ------------------------------------------------------------------------------------


def test_first_signal_interrupts_the_run_and_the_second_exits(make_daemon: MakeDaemon, exits: Exits) -> None:
    runs = FakeRuns(block=True)
    daemon, inst = make_daemon(runner=runs)
    assert inst.runtime is not None
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.append(daemon.run_job(inst, "incremental")))
    worker.start()
    assert runs.entered.wait(5)
    daemon.on_signal(signal.SIGTERM)
    worker.join(5)
    assert results == ["interrupted"]
    record = inst.runtime.state.list_runs()[0]
    assert record.outcome == "interrupted"
    assert record.error == "the daemon is stopping (received SIGTERM)"
    assert inst.runtime.state.lease_info().released
    assert exits.codes == []
    assert daemon.run_job(inst, "incremental") == "skipped:stopping"
    ready, body = daemon.readiness.report()
    assert not ready
    assert body["failing"][0] == "daemon: stopping (received SIGTERM)"
    daemon.on_signal(signal.SIGINT)
    assert exits.codes == [128 + signal.SIGINT]


def test_drain_returns_0_once_the_run_has_stopped(make_daemon: MakeDaemon, exits: Exits) -> None:
    daemon, _ = make_daemon(runner=FakeRuns())
    daemon.request_stop("received SIGTERM")
    assert daemon._drain() == 0
    assert exits.codes == []


def test_a_run_that_outlives_the_stop_budget_loses_its_lease(make_daemon: MakeDaemon, exits: Exits) -> None:
    """At the deadline the lease is released (the fence refuses the late commit) and the process exits 1."""
    release = threading.Event()

    def stubborn(rt: object, options: object, *, lease: object = None) -> object:
        release.wait(10)  # ignores should_stop, like a read stuck in a slow request
        raise RuntimeError("gave up")

    daemon, inst = make_daemon(runner=stubborn)
    assert inst.runtime is not None
    daemon.stop_timeout_s = 0.3
    worker = threading.Thread(target=daemon.run_job, args=(inst, "incremental"))
    worker.start()
    deadline = time.monotonic() + 5
    while inst.runtime.state.lease_info().released is not False and time.monotonic() < deadline:
        time.sleep(0.01)
    daemon.request_stop("received SIGTERM")
    assert daemon._drain() == 1
    assert exits.codes == [1]
    assert inst.runtime.state.lease_info().released
    release.set()
    worker.join(5)


# -- loading configurations -----------------------------------------------------------------------


def test_a_config_dir_holds_one_installation_per_yaml(tmp_path: Path) -> None:
    a = fake_config(tmp_path, instance="alpha")
    b = fake_config(tmp_path, instance="beta")
    (tmp_path / "notes.txt").write_text("not a config", encoding="utf-8")
    assert find_configs(tmp_path) == [a, b]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"no \*\.yaml"):
        find_configs(empty)
    with pytest.raises(ConfigError, match="not a directory"):
        find_configs(tmp_path / "missing")


def test_two_configs_run_side_by_side_but_not_with_the_same_instance(tmp_path: Path, exits: Exits) -> None:
    a = fake_config(tmp_path / "a", instance="alpha")
    b = fake_config(tmp_path / "b", instance="beta")
    c = fake_config(tmp_path / "c", instance="alpha")
    daemon = Daemon([a, b, c], listen=None, configure_logs=False, hard_exit=exits)
    daemon.load()
    assert [i.name for i in daemon.installations] == ["alpha", "beta", "alpha.yaml"]
    daemon.schedule_jobs()
    ids = {job.id for job in daemon.scheduler.get_jobs()}
    assert {"alpha:incremental", "beta:incremental"} <= ids
    _, body = daemon.readiness.report()
    assert "is also configured in" in body["installations"]["alpha.yaml"]["checks"]["config"]["reason"]


def test_no_loadable_config_is_an_error(tmp_path: Path, exits: Exits) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("instance: [not, a, name]\n", encoding="utf-8")
    daemon = Daemon([bad], listen=None, configure_logs=False, hard_exit=exits)
    with pytest.raises(ConfigError):
        daemon.load()


def test_a_zero_interval_is_a_config_error_naming_the_key(tmp_path: Path, exits: Exits) -> None:
    """``@every 0s`` stops ``importer run`` at load (exit 4, the key named), not in the scheduler."""
    path = fake_config(tmp_path, schedule={"incremental": "@every 0s", "full": None})
    daemon = Daemon([path], listen=None, configure_logs=False, hard_exit=exits)
    with pytest.raises(ConfigError) as info:
        daemon.load()
    assert info.value.exit_code == 4
    assert "schedule.incremental: invalid interval: '@every 0s'" in str(info.value)


def test_a_wrong_key_leaves_the_daemon_up_but_unready(make_daemon: MakeDaemon) -> None:
    daemon, inst = make_daemon(opened=False)
    key_file = inst.path.with_suffix(".key")
    key_file.write_text("definitely-not-the-right-encryption-string\n", encoding="utf-8")
    daemon.open_pending()
    assert inst.runtime is None
    ready, body = daemon.readiness.report()
    assert not ready
    vault = body["installations"]["contoso"]["checks"]["vault"]
    assert vault["ok"] is False
    assert "decrypt" in vault["reason"]
    assert "definitely-not" not in str(body)


def test_describe_error_scrubs_and_names_unexpected_errors() -> None:
    assert describe_error(KeyError("x")) == "KeyError: 'x'"
    assert "bob@example.com" not in describe_error(ValueError("bob@example.com"))
    assert describe_error(ConfigError("state.table: missing")) == "state.table: missing"


def test_a_daemon_without_configs_refuses_to_start(exits: Exits) -> None:
    with pytest.raises(ConfigError, match="no configuration file"):
        Daemon([], listen=None, configure_logs=False, hard_exit=exits).load()
