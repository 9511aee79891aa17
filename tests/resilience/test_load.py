"""Load: a 20,000-object first sync while two more manual syncs try to start."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from importer.config import load_settings
from importer.runtime import open_state
from tests.resilience.conftest import Twin, make_twin

pytestmark = pytest.mark.resilience


def _spawn(twin: Twin, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "importer", "--config", str(twin.env.config), "sync", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_20000_objects_with_two_concurrent_manual_syncs_run_exactly_once(tmp_path: Path) -> None:
    """One sync holds the lease; one without --wait exits 5 at once; one with --wait runs after it."""
    for twin in make_twin(tmp_path, users=10_000, devices=10_000, seed=20):
        first = _spawn(twin)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and sum(twin.sb.stats()["objects"].values()) < 500:
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
        impatient = _spawn(twin)
        patient = _spawn(twin, "--wait", "900")
        out, err = impatient.communicate(timeout=120)
        assert impatient.returncode == 5, f"{impatient.returncode}: {out}\n{err}"
        assert "another run holds the lease" in err
        assert first.poll() is None, "the first sync finished before the second one was refused"
        out, err = first.communicate(timeout=900)
        assert first.returncode == 0, f"{out}\n{err}"
        assert "20000 created" in out, out
        out, err = patient.communicate(timeout=900)
        assert patient.returncode == 0, f"{out}\n{err}"
        assert " 0 created, 0 updated" in out, out  # it ran after the first one, with nothing left to do
        store = open_state(load_settings(twin.env.config))
        try:
            runs = sorted(store.list_runs(10), key=lambda r: r.started_at)
        finally:
            store.close()
        assert [r.outcome for r in runs] == ["success", "success"], runs
        assert runs[0].finished_at is not None
        assert runs[0].finished_at <= runs[1].started_at, "the two runs overlapped"
        assert twin.sb.stats()["objects"] == {"Entra User": 10_000, "Entra Device": 10_000}
        twin.check()
