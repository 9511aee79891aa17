"""Network faults on Graph and Assets: throttling, 5xx, dropped connections, truncation, lost answers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.resilience.conftest import Twin, clean_sync, make_twin

pytestmark = pytest.mark.resilience

# The mix: 10% 429 (Retry-After 0.1-2 s, every form in turn), 5% 500/503, 2% dropped
# connections (half before, half after the server acted), 1% truncated bodies.
BAD_DAY: dict[str, Any] = {
    "rate_429": 0.10,
    "retry_after": [0.1, 2.0],
    "retry_after_format": "mixed",
    "rate_5xx": 0.05,
    "statuses_5xx": [500, 503],
    "drop_rate": 0.02,
    "truncate_rate": 0.01,
}


_STRAGGLERS = re.compile(r"^(\d+) objects failed; they will be retried on the next run$", re.MULTILINE)


def _sync_through_a_bad_day(twin: Twin, *, seed: int, **knobs: Any) -> float:
    """Sync under the fault mix until done; returns the first run's duration.

    The first run must finish (exit 0). One exception: an object whose every attempt (1 +
    http.max_retries, about 0.18^7 per create) met a fault is left to the next run, which is the
    designed recovery; then at most 1 in 1,000 objects may be left, and the next run, under the
    same faults, must finish.
    """
    twin.sb.set_faults(**{**BAD_DAY, **knobs}, seed=seed)  # both services
    started = time.monotonic()
    result = twin.env.run("sync")
    took = time.monotonic() - started
    if result.code == 1 and (left := _STRAGGLERS.search(result.err)):
        total = sum(twin.sb.stats()["objects"].values())
        assert int(left.group(1)) <= max(1, total // 1000), result.err
        result = twin.env.run("sync")
    assert result.code == 0, f"the sync did not ride out the faults:\n{result.out}\n{result.err}"
    twin.sb.set_faults(reset=True)
    return took


@pytest.mark.quick
def test_a_small_first_sync_rides_out_the_fault_mix(tmp_path: Path) -> None:
    """80 objects under the fault mix on both services (Retry-After 0.1-0.5 s, to keep CI quick)."""
    for twin in make_twin(tmp_path, users=40, devices=40):
        _sync_through_a_bad_day(twin, seed=8, retry_after=[0.1, 0.5])
        assert any(r["status"] == 429 for r in twin.sb.stats()["requests"])
        twin.check()


def test_a_first_sync_rides_out_throttling_5xx_drops_and_truncation(tmp_path: Path) -> None:
    """300 objects under the full fault mix on both services: one run, exit 0, same objects as a clean run."""
    for twin in make_twin(tmp_path, users=150, devices=150):
        _sync_through_a_bad_day(twin, seed=1)
        statuses = {r["status"] for r in twin.sb.stats()["requests"]}
        assert {429, 500, 503, 0} <= statuses, f"the faults did not all fire: {statuses}"
        twin.check()


def test_incremental_changes_ride_out_the_same_faults(synced: Twin) -> None:
    """Updates, marks and creates of an incremental run land exactly once under the fault mix."""
    synced.mutate(add_users=4, update_users=6, update_devices=5, soft_delete_users=1, add_devices=3)
    _sync_through_a_bad_day(synced, seed=2)
    synced.check()


def test_5000_objects_ride_out_a_bad_day_on_graph_and_assets(tmp_path: Path) -> None:
    """The issue's size: 2,500 users and 2,500 devices, first sync under the full fault mix."""
    for twin in make_twin(tmp_path, users=2500, devices=2500, seed=5):
        took = _sync_through_a_bad_day(twin, seed=3)
        stats = twin.sb.stats()
        assert stats["objects"] == {"Entra User": 2500, "Entra Device": 2500}
        faulted = sum(r["count"] for r in stats["requests"] if r["status"] in (0, 429, 500, 503))
        assert faulted > 500, f"only {faulted} requests were faulted"
        twin.check()
        print(f"5,000 objects under faults: {took:.1f}s, {faulted} faulted requests")


@pytest.fixture
def short_timeout(tmp_path: Path) -> Iterator[Twin]:
    """A small twin whose importer gives up on an answer after 1 s."""
    yield from make_twin(tmp_path, users=20, devices=20, http={"timeout_s": 1})


@pytest.mark.quick
def test_a_create_whose_answer_was_lost_is_not_made_twice(short_timeout: Twin) -> None:
    """The sandbox creates the object but answers after the read timeout: the importer finds it by key."""
    sb = short_timeout.sb
    sb.set_faults(
        service="assets", delay_answer_ms=2500, delay_answer_match="POST /object/create", delay_answer_count=3
    )
    result = short_timeout.env.run("sync")
    assert result.code == 0, result.err
    creates = sum(
        r["count"] for r in sb.stats()["requests"] if r["method"] == "POST" and r["route"].endswith("/create")
    )
    assert creates == 40, f"{creates} creates for 40 objects: a lost answer was followed by a second create"
    short_timeout.check()


def test_an_update_whose_answer_was_lost_is_retried_safely(short_timeout: Twin) -> None:
    """PUT is idempotent: a timed-out update is sent again and the object ends as desired."""
    clean_sync(short_timeout.env)
    short_timeout.mutate(update_users=5)
    short_timeout.sb.set_faults(
        service="assets", delay_answer_ms=2500, delay_answer_match="PUT /jsm/", delay_answer_count=2
    )
    result = short_timeout.env.run("sync")
    assert result.code == 0, result.err
    short_timeout.check()
