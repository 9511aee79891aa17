"""``importer status``: last runs, next scheduled runs and the lease holder, as text or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import main
from importer.config import load_settings
from importer.runtime import open_state
from importer.state import RunRecord
from importer.status import gather_status
from tests.daemon.conftest import fake_config

T0 = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return fake_config(tmp_path, schedule={"incremental": "*/15 * * * *", "full": "0 3 * * 0"})


def _seed(config: Path, *, hold: bool) -> None:
    """Two runs in state, and the lease held by another host if ``hold``."""
    store = open_state(load_settings(config))
    store.init()
    for i, (outcome, error) in enumerate(
        [("success", None), ("failed", "graph GET /v1.0/users/delta: HTTP 503")]
    ):
        store.record_run(
            RunRecord(
                run_id=f"run{i}",
                instance="contoso",
                started_at=datetime.now(UTC) - timedelta(minutes=30 - 15 * i),
                finished_at=datetime.now(UTC) - timedelta(minutes=30 - 15 * i, seconds=-12),
                mode="incremental",
                trigger="schedule",
                outcome=outcome,
                counts={"users": {"create": 3, "update": 2}, "devices": {"mark": 1}},
                requests={"graph": 4, "assets": 9},
                error=error,
                holder="host-a:101",
            )
        )
    if hold:
        assert store.acquire_lease("host-b:202", duration_s=120) is not None
    store.close()


def _status(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config), "status", *args])
    return result.exit_code, result.output


def test_status_before_any_state(config: Path) -> None:
    code, out = _status(config)
    assert code == 0, out
    assert "no state yet" in out
    assert "no runs recorded yet" in out
    assert "*/15 * * * *" in out
    assert not (config.parent / "contoso.db").exists()  # reading status created nothing


def test_status_shows_runs_schedule_and_holder(config: Path) -> None:
    _seed(config, hold=True)
    code, out = _status(config)
    assert code == 0, out
    assert "held by host-b:202 until" in out
    assert "incremental" in out
    assert "0 3 * * 0" in out
    assert "success" in out
    assert "failed" in out
    assert "host-a:101" in out
    assert "run1 failed: graph GET /v1.0/users/delta: HTTP 503" in out


def test_status_json(config: Path) -> None:
    _seed(config, hold=False)
    code, out = _status(config, "--json", "--limit", "1")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["instance"] == "contoso"
    assert doc["lease"]["held"] is False
    assert doc["lease"]["holder"] is None
    (run,) = doc["runs"]
    assert run["run_id"] == "run1"
    assert run["changes"] == {"create": 3, "update": 2, "mark": 1, "delete": 0, "failed": 0}
    assert run["requests"] == 13
    assert run["duration_s"] == 12.0
    jobs = {j["job"]: j for j in doc["schedule"]["jobs"]}
    now = datetime.fromisoformat(doc["now"])
    nxt = [datetime.fromisoformat(t) for t in jobs["incremental"]["next"]]
    assert len(nxt) == 3
    assert now <= nxt[0] < now + timedelta(minutes=15)
    assert all(t.minute % 15 == 0 and t.second == 0 for t in nxt)
    assert all(datetime.fromisoformat(t).weekday() == 6 for t in jobs["full"]["next"])


def test_next_runs_come_from_the_schedule_and_the_clock(config: Path) -> None:
    doc = gather_status(load_settings(config), None, now=T0)  # a Sunday, 07:00 UTC
    jobs = {j["job"]: j["next"] for j in doc["schedule"]["jobs"]}
    assert jobs["incremental"] == [
        "2026-11-29T07:00:00+00:00",
        "2026-11-29T07:15:00+00:00",
        "2026-11-29T07:30:00+00:00",
    ]
    assert jobs["full"][0] == "2026-12-06T03:00:00+00:00"


def test_only_run_takes_several_configs(config: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(config), "--config", str(config), "status"])
    assert result.exit_code == 4
    assert "only `importer run` takes several" in result.output
