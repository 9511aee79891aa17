"""``kill -9`` at chosen points of a sync (reads, owners, mid-apply, around the state commit), then rerun.

The crash comes from inside: ``IMPORTER_CRASH_AT=<phase>:<n>`` (``importer/crashpoints.py``, test
only) makes the child process send itself SIGKILL at the n-th pass through a phase, so every point
is hit exactly and the suite is reproducible. After each crash an ordinary ``importer sync`` must
converge to what a clean run of the same tenant gives: no duplicate, no lost update.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from importer.crashpoints import ENV_CRASH_AT
from tests.resilience.conftest import Twin, clean_sync, make_twin

pytestmark = pytest.mark.resilience

PAGE = 10  # delta page size on both twins, so a read has pages to crash between


@dataclass(frozen=True)
class Point:
    phase: str
    n: int
    full: bool

    def __str__(self) -> str:
        return f"{self.phase}:{self.n}{' (full)' if self.full else ''}"


def crash(twin: Twin, point: Point) -> None:
    """Run ``importer sync`` in a child that kills itself at ``point``; assert that it did."""
    env = {**os.environ, ENV_CRASH_AT: f"{point.phase}:{point.n}"}
    args = [sys.executable, "-m", "importer", "--config", str(twin.env.config), "sync"]
    if point.full:
        args.append("--full")
    child = subprocess.run(args, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, (
        f"the sync was not killed at {point} (exit {child.returncode}):\n{child.stdout}\n{child.stderr}"
    )


def recover(twin: Twin, point: Point) -> None:
    """The admin simply runs the sync again; it must converge."""
    args = ("--full",) if point.full else ()
    again = twin.env.run("sync", *args)
    assert again.code == 0, f"after a crash at {point}: {again.out}\n{again.err}"
    twin.check(expected=twin.expected(*args))


def writes_planned(twin: Twin, *, full: bool) -> int:
    plan = twin.env.run("plan", "--format", "json", *(["--full"] if full else []))
    assert plan.code in (0, 2), plan.err
    return len(plan.json()["changes"])


@pytest.fixture
def paged(tmp_path: Path) -> Iterator[Twin]:
    """40 users and 60 devices on both twins, delta pages of 10."""
    for twin in make_twin(tmp_path, users=40, devices=60):
        for sb in (twin.sb, twin.ref.sb):
            sb.set_tenant(delta_page_size=PAGE)
        yield twin


def test_a_first_sync_killed_mid_apply_then_rerun_creates_each_object_once(paged: Twin) -> None:
    crash(paged, Point("apply", 37, full=False))
    created = sum(paged.sb.stats()["objects"].values())
    assert 37 <= created < 100, created
    recover(paged, Point("apply", 37, full=False))


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(Point("read", 2, full=False), id="during-reads"),
        pytest.param(Point("commit", 1, full=False), id="between-apply-and-commit", marks=pytest.mark.quick),
        pytest.param(Point("committed", 1, full=False), id="after-commit-before-lease-release"),
    ],
)
def test_an_incremental_sync_killed_at_a_point_converges_on_rerun(paged: Twin, point: Point) -> None:
    clean_sync(paged.env)
    clean_sync(paged.ref)
    paged.mutate(add_users=2, update_users=5, update_devices=4, add_devices=3, soft_delete_users=1)
    crash(paged, point)
    recover(paged, point)


def _points(rng: random.Random, twin: Twin, round_no: int) -> Point:
    full = round_no % 4 == 3
    if round_no == 0:
        return Point("apply", rng.randint(1, 99), full=False)  # the first sync: 100 creates
    phase = rng.choice(["read", "read", "owners", "apply", "apply", "apply", "apply", "commit", "committed"])
    if phase == "read":
        return Point(phase, rng.randint(1, 9 if full else 2), full)
    if phase == "owners":
        return Point(phase, rng.randint(1, 3) if full else 1, full)  # incremental: one $batch
    if phase == "apply":
        planned = writes_planned(twin, full=full)
        return Point(phase, rng.randint(1, max(1, planned)), full)
    return Point(phase, 1, full)


# Each round changes at least one device, so an incremental run has an owners batch to crash in.
CHANGES = [
    {"add_users": 2, "update_users": 4, "update_devices": 3},
    {"add_devices": 4, "update_users": 3, "soft_delete_devices": 1},
    {"update_users": 6, "disable_users": 1, "restore_devices": 1, "update_devices": 1},
    {"reassign_owners": 3, "update_devices": 5, "add_users": 1},
    {"soft_delete_users": 1, "add_devices": 2, "update_users": 2},
    {"restore_users": 1, "update_devices": 6, "enable_users": 1},
    {"hard_delete_devices": 1, "add_users": 2, "update_users": 3, "update_devices": 1},
]


def test_20_kills_at_random_points_each_followed_by_a_rerun_converge(paged: Twin) -> None:
    """The issue's 20 random points (seeded, so a failure can be replayed): reads, owners, apply, commit."""
    rng = random.Random(20)
    seen: list[str] = []
    for round_no in range(20):
        if round_no:
            paged.mutate(**CHANGES[round_no % len(CHANGES)])
        point = _points(rng, paged, round_no)
        seen.append(str(point))
        crash(paged, point)
        recover(paged, point)
    phases = {p.split(":")[0] for p in seen}
    assert phases >= {"read", "owners", "apply", "commit", "committed"}, seen
