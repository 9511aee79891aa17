"""Log files and history: one 0600 file per day, gone after retention_days; logging never stops a sync."""

from __future__ import annotations

import errno
import io
import logging
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pydantic
import pytest

from importer import logs
from importer.config import LoggingConfig
from importer.logs import DailyFileHandler, configure_logging, log_write_failures, sweep_logs
from importer.state import Approval, RunRecord, SqliteStateStore, StateStore
from tests.e2e.conftest import make_env

NOW = datetime(2025, 8, 20, 9, 30, tzinfo=UTC)


def day_file(directory: Path, when: datetime) -> Path:
    path = directory / f"importer-{when:%Y-%m-%d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"event": "x"}\n', encoding="utf-8")
    return path


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def record(message: str = "hello") -> logging.LogRecord:
    return logging.LogRecord("importer.test", logging.INFO, __file__, 1, message, None, None)


# -- sweep --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("age_days", "kept"), [(61, False), (60, False), (59, True), (0, True)])
def test_a_day_file_goes_once_its_first_line_could_be_older_than_retention(
    tmp_path: Path, age_days: int, kept: bool
) -> None:
    path = day_file(tmp_path, NOW - timedelta(days=age_days))
    removed = sweep_logs(tmp_path, 60, now=NOW)
    assert path.exists() is kept
    assert removed == ([] if kept else [path])


def test_the_sweep_leaves_other_files_alone(tmp_path: Path) -> None:
    others = [tmp_path / name for name in ("notes.txt", "importer-2001-01-01.jsonl.gz", "importer-bad.jsonl")]
    for path in others:
        path.write_text("x", encoding="utf-8")
    assert sweep_logs(tmp_path, 1, now=NOW) == []
    assert all(p.exists() for p in others)


def test_the_sweep_of_a_missing_or_unreadable_directory_does_nothing(tmp_path: Path) -> None:
    assert sweep_logs(tmp_path / "absent", 60) == []
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    assert sweep_logs(blocker, 60) == []


def test_logging_sweeps_at_start(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old, young = day_file(tmp_path, now - timedelta(days=61)), day_file(tmp_path, now - timedelta(days=59))
    configure_logging(LoggingConfig(dir=tmp_path, retention_days=60), stream=io.StringIO(), console=False)
    try:
        assert not old.exists()
        assert young.exists()
    finally:
        configure_logging(level="warning")


def test_the_file_handler_sweeps_when_the_day_rolls_over(tmp_path: Path) -> None:
    clock = Clock(NOW)
    handler = DailyFileHandler(tmp_path, retention_days=60, clock=clock)
    handler.emit(record())
    ageing = day_file(tmp_path, NOW - timedelta(days=59))
    clock.now += timedelta(days=1)  # at the first line of the next day it is 60 days old
    handler.emit(record())
    handler.close()
    assert not ageing.exists()
    assert {p.name for p in tmp_path.iterdir()} == {"importer-2025-08-20.jsonl", "importer-2025-08-21.jsonl"}


def test_retention_cannot_be_configured_above_60_days() -> None:
    with pytest.raises(pydantic.ValidationError):
        LoggingConfig(retention_days=61)
    assert LoggingConfig().retention_days == 60


# -- files --------------------------------------------------------------------------------------


def test_one_file_per_utc_day_created_0600_in_a_0700_directory(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    clock = Clock(datetime(2025, 8, 20, 23, 59, tzinfo=UTC))
    handler = DailyFileHandler(directory, clock=clock)
    handler.emit(record("first"))
    clock.now += timedelta(minutes=2)
    handler.emit(record("second"))
    handler.close()
    files = sorted(directory.iterdir())
    assert [p.name for p in files] == ["importer-2025-08-20.jsonl", "importer-2025-08-21.jsonl"]
    assert [p.read_text(encoding="utf-8") for p in files] == ["first\n", "second\n"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_an_existing_wider_log_file_is_narrowed_to_0600(tmp_path: Path) -> None:
    path = day_file(tmp_path, NOW)
    path.chmod(0o644)
    handler = DailyFileHandler(tmp_path, clock=Clock(NOW))
    handler.emit(record())
    handler.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_unwritable_log_directory_sends_lines_to_stderr_and_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x", encoding="utf-8")
    before = log_write_failures()
    handler = DailyFileHandler(blocker / "logs")
    handler.emit(record("still visible"))
    handler.emit(record("and again"))
    assert capsys.readouterr().err == "still visible\nand again\n"
    assert log_write_failures() == before + 2


@pytest.mark.parametrize(
    ("retry_s", "on_stderr"), [(0.0, ["disk full"]), (3600.0, ["disk full", "space again"])]
)
def test_a_full_disk_sends_lines_to_stderr_until_it_is_tried_again(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    retry_s: float,
    on_stderr: list[str],
) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    handler = DailyFileHandler(tmp_path, clock=Clock(NOW), retry_s=retry_s)
    monkeypatch.setattr(logs.os, "write", full)
    before = log_write_failures()
    handler.emit(record("disk full"))
    monkeypatch.undo()
    handler.emit(record("space again"))  # tried again at once, or only after retry_s
    handler.close()
    assert capsys.readouterr().err.splitlines() == on_stderr
    assert log_write_failures() == before + len(on_stderr)
    in_file = (tmp_path / "importer-2025-08-20.jsonl").read_text(encoding="utf-8").splitlines()
    assert in_file == [line for line in ["space again"] if line not in on_stderr]


def test_a_line_that_cannot_be_formatted_costs_that_line_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise RuntimeError("ann@contoso.com")

    handler = DailyFileHandler(tmp_path, clock=Clock(NOW))
    handler.setFormatter(Broken())
    handler.emit(record("ann@contoso.com"))
    err = capsys.readouterr().err
    assert "log_event_withheld" in err
    assert "ann@contoso.com" not in err


def test_a_sync_succeeds_when_its_log_directory_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "read-only"
    blocker.write_text("x", encoding="utf-8")
    for env in make_env(tmp_path, users=8, devices=8, logging={"dir": str(blocker / "logs")}):
        before = log_write_failures()
        result = env.run("sync")
        assert result.code == 0, result.err
        assert log_write_failures() > before
        assert '"event": "run_finished"' in result.err  # the file's lines went to stderr instead


# -- run records and approvals ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    clock = Clock(NOW)
    built: StateStore
    if request.param == "sqlite":
        built = SqliteStateStore(tmp_path / "state.db", instance="contoso", retention_days=60, clock=clock)
    else:
        from importer.state.dynamodb import DynamoStateStore

        endpoint = request.getfixturevalue("moto_endpoint")
        table = f"privacy-{uuid.uuid4().hex[:10]}"
        built = DynamoStateStore(
            table,
            instance="contoso",
            region="eu-west-1",
            endpoint_url=endpoint,
            retention_days=60,
            clock=clock,
        )
    built.init()
    yield built
    built.close()


def run(run_id: str, started: datetime) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        instance="contoso",
        started_at=started,
        mode="full",
        trigger="schedule",
        outcome="success",
    )


def test_run_records_and_approvals_older_than_retention_are_swept(store: StateStore, tmp_path: Path) -> None:
    for name, age in (("old", 61), ("young", 59)):
        started = NOW - timedelta(days=age)
        store.record_run(run(name, started))
        store.add_approval(Approval(plan_hash=f"hash-{name}", approved_at=started, approved_by="manual"))
    assert [r.run_id for r in store.list_runs()] == ["young"]  # expired records are never read
    assert store.sweep() == 2
    assert [r.run_id for r in store.list_runs()] == ["young"]
    assert store.get_approval("hash-old") is None
    assert store.get_approval("hash-young") is not None
    if isinstance(store, SqliteStateStore):  # and they are really gone from the file
        with sqlite3.connect(tmp_path / "state.db") as conn:
            assert conn.execute("SELECT run_id FROM run").fetchall() == [("young",)]
            assert conn.execute("SELECT plan_hash FROM approval").fetchall() == [("hash-young",)]
