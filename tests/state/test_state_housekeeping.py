"""Approvals consumed by the commit that used them, and the once-a-day sweep (both backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from state_fixtures import FakeClock, StoreFactory

from importer.errors import LeaseLostError
from importer.state import Approval, DeltaState, RunRecord, StateStore

DAY = timedelta(days=1)


def _run(run_id: str, clock: FakeClock, *, days_ago: float = 0) -> RunRecord:
    started = clock.now - timedelta(days=days_ago)
    return RunRecord(
        run_id=run_id,
        instance="contoso",
        started_at=started,
        finished_at=started + timedelta(minutes=1),
        mode="full",
        trigger="manual",
        outcome="success",
    )


def _approval(plan_hash: str, clock: FakeClock) -> Approval:
    return Approval(plan_hash=plan_hash, approved_at=clock.now, approved_by="manual")


def test_the_commit_that_applied_an_approved_plan_consumes_its_approval(
    store: StateStore, clock: FakeClock
) -> None:
    store.add_approval(_approval("plan-a", clock))
    store.add_approval(_approval("plan-b", clock))
    lease = store.acquire_lease("host-a:1", duration_s=60)
    store.commit(lease, deltas={}, id_maps={}, run=_run("r1", clock), consumed_approval="plan-a")
    assert store.get_approval("plan-a") is None  # one-shot: the same plan planned again is refused again
    assert store.get_approval("plan-b") == _approval("plan-b", clock)
    assert [r.run_id for r in store.list_runs()] == ["r1"]
    # Consuming an approval that was never stored (given with --approve only) is fine.
    store.commit(lease, deltas={}, id_maps={}, run=_run("r2", clock), consumed_approval="plan-c")


def test_a_fenced_out_commit_leaves_the_approval_in_place(make_store: StoreFactory, clock: FakeClock) -> None:
    host_a, host_b = make_store(), make_store()
    host_a.init()
    approval = _approval("plan-a", clock)
    host_a.add_approval(approval)
    stale = host_a.acquire_lease("host-a:1", duration_s=30)
    clock.advance(seconds=120)
    assert host_b.acquire_lease("host-b:2", duration_s=30) is not None
    with pytest.raises(LeaseLostError):
        host_a.commit(stale, deltas={}, id_maps={}, run=_run("r1", clock), consumed_approval="plan-a")
    assert host_b.get_approval("plan-a") == approval


def test_a_commit_can_forget_a_delta_link_so_the_next_run_reads_that_source_in_full(
    store: StateStore, clock: FakeClock
) -> None:
    link = DeltaState(source="users", link="L1", select_fingerprint="fp", updated_at=clock.now)
    store.commit(None, deltas={"users": link}, id_maps={}, run=_run("r1", clock))
    store.commit(None, deltas={"users": None}, id_maps={}, run=_run("r2", clock))
    assert store.get_delta("users") is None


def test_sweep_if_due_sweeps_at_most_once_a_day(store: StateStore, clock: FakeClock) -> None:
    store.record_run(_run("old-1", clock, days_ago=61))
    assert store.sweep_if_due(every=DAY) == 1
    store.record_run(_run("old-2", clock, days_ago=61))
    clock.advance(hours=23)
    assert store.sweep_if_due(every=DAY) is None  # swept 23 hours ago: nothing read or deleted
    clock.advance(hours=1)
    assert store.sweep_if_due(every=DAY) == 1
    assert store.sweep_if_due(every=DAY) is None


def test_a_plain_sweep_counts_as_the_days_sweep(store: StateStore, clock: FakeClock) -> None:
    assert store.sweep() == 0  # the daemon's daily sweep
    store.record_run(_run("old", clock, days_ago=61))
    assert store.sweep_if_due(every=DAY) is None
    clock.advance(days=1)
    assert store.sweep_if_due(every=DAY) == 1


def test_instances_sharing_a_store_sweep_on_their_own_days(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    contoso, fabrikam = make_store(), make_store(instance="fabrikam")
    contoso.init()
    assert contoso.sweep_if_due(every=DAY) == 0
    assert fabrikam.sweep_if_due(every=DAY) == 0
    assert fabrikam.sweep_if_due(every=DAY) is None
