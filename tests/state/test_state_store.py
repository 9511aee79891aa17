"""The StateStore contract: every test runs against SQLite and DynamoDB (moto server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

import pytest
from state_fixtures import FakeClock, StoreFactory

from importer.errors import LeaseLostError
from importer.state import (
    Approval,
    AuditRecord,
    CachedAccount,
    DeltaState,
    IdMapChanges,
    IdMapEntry,
    Installation,
    Lease,
    RunRecord,
    StateStore,
    init_state,
)
from importer.state.models import LEASE_SKEW

OWNER_A = "host-a:101"
OWNER_B = "host-b:202"


def a_run(run_id: str, started_at: datetime, **changes: object) -> RunRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "instance": "contoso",
        "started_at": started_at,
        "finished_at": started_at + timedelta(minutes=3),
        "mode": "incremental",
        "trigger": "schedule",
        "outcome": "success",
        "counts": {"users": {"create": 2, "update": 1}, "devices": {"mark": 1}},
        "requests": {"graph": 12, "assets": 40},
        "plan_hash": "ph-1",
        "error": None,
        "holder": OWNER_A,
    }
    fields.update(changes)
    return RunRecord(**fields)  # type: ignore[arg-type]


def a_delta(source: str, link: str, at: datetime) -> DeltaState:
    return DeltaState(source=source, link=link, select_fingerprint="fp-1", updated_at=at)


def entries(n: int, *, prefix: str = "g", version: str = "h1") -> dict[str, IdMapEntry]:
    return {
        f"{prefix}{i:05d}": IdMapEntry(object_id=f"obj-{i}", content_hash=f"{version}-{i}") for i in range(n)
    }


def commit_run(
    store: StateStore,
    lease: Lease | None,
    clock: FakeClock,
    *,
    run_id: str = "run-1",
    deltas: Mapping[str, DeltaState | None] | None = None,
    id_maps: Mapping[str, IdMapChanges] | None = None,
) -> RunRecord:
    run = a_run(run_id, clock.now)
    store.commit(lease, deltas=deltas or {}, id_maps=id_maps or {}, run=run)
    return run


def assert_nothing_written(store: StateStore) -> None:
    assert store.get_delta("users") is None
    assert store.count_id_map("users") == 0
    assert store.list_runs() == []


# -- set-up, installation --------------------------------------------------------------------


def test_init_is_idempotent_and_init_state_says_what_it_did(make_store: StoreFactory) -> None:
    store = make_store()
    first = init_state(store)
    second = init_state(store)
    assert first != second  # the first one created the file or table
    expected = "SQLite" if make_store.backend == "sqlite" else "DynamoDB"
    assert expected in first
    assert expected in second
    store.init()
    assert store.get_installation() is None


def test_installation_round_trips(store: StateStore, clock: FakeClock) -> None:
    rec = Installation(
        instance="contoso",
        site_url="https://contoso.atlassian.net",
        workspace_id=None,
        tenant_pseudonym="pid:tenant1",
        first_seen=clock.now,
        last_seen=clock.now,
    )
    store.put_installation(rec)
    assert store.get_installation() == rec
    later = Installation(
        instance="contoso",
        site_url=rec.site_url,
        workspace_id="ws-1",
        tenant_pseudonym=rec.tenant_pseudonym,
        first_seen=rec.first_seen,
        last_seen=clock.now + timedelta(days=1, microseconds=7),
    )
    store.put_installation(later)
    assert store.get_installation() == later


def test_installation_of_another_instance_is_refused(store: StateStore, clock: FakeClock) -> None:
    rec = Installation(
        instance="fabrikam",
        site_url="https://f.example",
        workspace_id=None,
        tenant_pseudonym="pid:t",
        first_seen=clock.now,
        last_seen=clock.now,
    )
    with pytest.raises(ValueError, match="fabrikam"):
        store.put_installation(rec)


def test_instances_sharing_a_backing_do_not_see_each_other(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    contoso, fabrikam = make_store(instance="contoso"), make_store(instance="fabrikam")
    contoso.init()
    lease = contoso.acquire_lease(OWNER_A, duration_s=60)
    assert lease is not None
    commit_run(
        contoso,
        lease,
        clock,
        deltas={"users": a_delta("users", "L1", clock.now)},
        id_maps={"users": IdMapChanges(upserts=entries(3))},
    )
    assert fabrikam.get_delta("users") is None
    assert fabrikam.count_id_map("users") == 0
    assert fabrikam.list_runs() == []
    assert fabrikam.acquire_lease(OWNER_B, duration_s=60) is not None  # its own lease


def test_records_refuse_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Approval(plan_hash="p", approved_at=datetime(2025, 1, 1), approved_by="ops")


# -- commit: deltas, id map, run -------------------------------------------------------------


def test_commit_writes_deltas_id_map_and_run(store: StateStore, clock: FakeClock) -> None:
    lease = store.acquire_lease(OWNER_A, duration_s=60)
    run = commit_run(
        store,
        lease,
        clock,
        deltas={"users": a_delta("users", "L1", clock.now), "devices": a_delta("devices", "D1", clock.now)},
        id_maps={"users": IdMapChanges(upserts=entries(5)), "devices": IdMapChanges(upserts=entries(2))},
    )
    assert store.get_delta("users") == a_delta("users", "L1", clock.now)
    assert store.get_delta("devices") == a_delta("devices", "D1", clock.now)
    assert store.get_delta("groups") is None
    assert dict(store.iter_id_map("users")) == entries(5)
    assert store.count_id_map("devices") == 2
    assert store.list_runs() == [run]


def test_none_in_deltas_deletes_that_sources_link(store: StateStore, clock: FakeClock) -> None:
    commit_run(store, None, clock, deltas={"users": a_delta("users", "L1", clock.now)})
    commit_run(store, None, clock, run_id="run-2", deltas={"users": None, "devices": None})
    assert store.get_delta("users") is None


def test_id_map_lookups_deletes_and_reverse_lookup(store: StateStore, clock: FakeClock) -> None:
    commit_run(store, None, clock, id_maps={"users": IdMapChanges(upserts=entries(10))})
    found = store.get_id_entries("users", ["g00001", "g00003", "nope", "g00001"])
    assert found == {
        "g00001": IdMapEntry(object_id="obj-1", content_hash="h1-1"),
        "g00003": IdMapEntry(object_id="obj-3", content_hash="h1-3"),
    }
    assert store.get_id_entries("users", []) == {}
    assert store.get_id_entries("devices", ["g00001"]) == {}
    assert store.find_source_ids("users", ["obj-2", "obj-9", "obj-missing"]) == {
        "obj-2": "g00002",
        "obj-9": "g00009",
    }
    changed = IdMapChanges(
        upserts={"g00001": IdMapEntry(object_id="obj-1", content_hash="h2")},
        deletes=["g00002", "g00003", "never-mapped"],
    )
    commit_run(store, None, clock, run_id="run-2", id_maps={"users": changed})
    assert store.count_id_map("users") == 8
    assert store.get_id_entries("users", ["g00001"])["g00001"].content_hash == "h2"
    assert store.get_id_entries("users", ["g00002", "g00003"]) == {}


def test_an_id_both_deleted_and_upserted_ends_up_mapped(store: StateStore, clock: FakeClock) -> None:
    both = IdMapChanges(upserts=entries(1), deletes=["g00000"])
    commit_run(store, None, clock, id_maps={"users": both})
    assert dict(store.iter_id_map("users")) == entries(1)


def test_replace_all_makes_the_map_exactly_the_upserts(store: StateStore, clock: FakeClock) -> None:
    commit_run(store, None, clock, id_maps={"users": IdMapChanges(upserts=entries(6))})
    commit_run(store, None, clock, id_maps={"devices": IdMapChanges(upserts=entries(2))})
    full = {**entries(3), "new1": IdMapEntry(object_id="obj-n", content_hash="hn")}
    full["g00000"] = IdMapEntry(object_id="obj-0", content_hash="changed")
    commit_run(
        store, None, clock, run_id="run-full", id_maps={"users": IdMapChanges(upserts=full, replace_all=True)}
    )
    assert dict(store.iter_id_map("users")) == full
    assert store.count_id_map("devices") == 2  # other types untouched
    commit_run(
        store, None, clock, run_id="run-empty", id_maps={"users": IdMapChanges(upserts={}, replace_all=True)}
    )
    assert store.count_id_map("users") == 0


def test_delete_id_entries_forgets_and_counts(store: StateStore, clock: FakeClock) -> None:
    commit_run(store, None, clock, id_maps={"users": IdMapChanges(upserts=entries(4))})
    assert store.delete_id_entries("users", ["g00000", "g00002", "unknown"]) == 2
    assert sorted(sid for sid, _ in store.iter_id_map("users")) == ["g00001", "g00003"]
    assert store.delete_id_entries("users", []) == 0


def test_a_few_thousand_id_map_entries_round_trip_in_batches(store: StateStore, clock: FakeClock) -> None:
    many = entries(2600)
    commit_run(store, None, clock, id_maps={"users": IdMapChanges(upserts=many)})
    assert store.count_id_map("users") == 2600
    assert store.get_id_entries("users", list(many)) == many
    assert dict(store.iter_id_map("users")) == many
    wanted = [f"obj-{i}" for i in range(0, 2600, 7)]
    assert store.find_source_ids("users", wanted) == {f"obj-{i}": f"g{i:05d}" for i in range(0, 2600, 7)}
    after = {k: v for k, v in entries(2600, version="h2").items() if not k.endswith("3")}
    commit_run(
        store, None, clock, run_id="run-2", id_maps={"users": IdMapChanges(upserts=after, replace_all=True)}
    )
    assert dict(store.iter_id_map("users")) == after


class ExplodingMapping(Mapping[str, IdMapEntry]):
    """An id map whose iteration fails part-way, as a bug upstream would."""

    def __init__(self, good: int) -> None:
        self._good = good

    def __getitem__(self, key: str) -> IdMapEntry:
        return IdMapEntry(object_id=f"obj-{key}", content_hash="h")

    def __len__(self) -> int:
        return self._good + 1

    def __iter__(self) -> Iterator[str]:
        yield from (f"g{i}" for i in range(self._good))
        raise RuntimeError("upstream bug")


def test_a_commit_failing_part_way_writes_nothing(store: StateStore, clock: FakeClock) -> None:
    lease = store.acquire_lease(OWNER_A, duration_s=60)
    with pytest.raises(RuntimeError, match="upstream bug"):
        commit_run(
            store,
            lease,
            clock,
            deltas={"users": a_delta("users", "L1", clock.now)},
            id_maps={
                "devices": IdMapChanges(upserts=entries(30)),
                "users": IdMapChanges(upserts=ExplodingMapping(50)),
            },
        )
    assert_nothing_written(store)
    assert store.count_id_map("devices") == 0


def test_a_commit_with_inconsistent_input_writes_nothing(store: StateStore, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="devices"):
        commit_run(
            store,
            None,
            clock,
            deltas={"users": a_delta("devices", "L1", clock.now)},
            id_maps={"users": IdMapChanges(upserts=entries(3))},
        )
    with pytest.raises(ValueError, match="fabrikam"):
        store.commit(None, deltas={}, id_maps={}, run=a_run("r", clock.now, instance="fabrikam"))
    assert_nothing_written(store)


# -- runs, approvals, accounts, audit --------------------------------------------------------


def test_runs_are_listed_newest_first_with_every_field(store: StateStore, clock: FakeClock) -> None:
    older = a_run("run-1", clock.now - timedelta(hours=2))
    failed = a_run(
        "run-2",
        clock.now - timedelta(hours=1),
        outcome="failed",
        finished_at=None,
        counts={},
        requests={},
        plan_hash=None,
        error="Graph 503 after retries",
        holder=None,
        mode="full",
        trigger="manual",
    )
    store.record_run(older)
    store.record_run(failed)
    newest = commit_run(store, None, clock, run_id="run-3")
    assert store.list_runs() == [newest, failed, older]
    assert store.list_runs(limit=2) == [newest, failed]
    assert store.list_runs(limit=0) == []
    assert store.list_runs(limit=-1) == []


def test_record_run_refuses_another_instance(store: StateStore, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="fabrikam"):
        store.record_run(a_run("r", clock.now, instance="fabrikam"))


def test_approvals_round_trip(store: StateStore, clock: FakeClock) -> None:
    approval = Approval(plan_hash="sha256:abc", approved_at=clock.now, approved_by="pid:ops1")
    store.add_approval(approval)
    assert store.get_approval("sha256:abc") == approval
    assert store.get_approval("sha256:other") is None


def test_accounts_cache_round_trips_and_expires(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(account_ttl_days=7)
    store.init()
    store.put_accounts(
        [
            CachedAccount(key="k1", account_id="557058:aaa", cached_at=clock.now),
            CachedAccount(key="k2", account_id=None, cached_at=clock.now - timedelta(days=6)),
            CachedAccount(key="k3", account_id="557058:ccc", cached_at=clock.now - timedelta(days=8)),
        ]
    )
    found = store.get_accounts(["k1", "k2", "k3", "k4"])
    assert found == {
        "k1": CachedAccount(key="k1", account_id="557058:aaa", cached_at=clock.now),
        "k2": CachedAccount(key="k2", account_id=None, cached_at=clock.now - timedelta(days=6)),
    }
    clock.advance(days=2)
    assert set(store.get_accounts(["k1", "k2", "k3"])) == {"k1"}
    store.delete_accounts(["k1"])
    assert store.get_accounts(["k1"]) == {}
    assert store.sweep() == 2  # k2 and k3 had expired


def test_audit_records_are_listed_newest_first(store: StateStore, clock: FakeClock) -> None:
    records = [
        AuditRecord(
            at=clock.now + timedelta(seconds=i), action=f"act{i}", subject=f"pid:{i}", detail={"n": str(i)}
        )
        for i in range(5)
    ]
    for rec in records:
        store.add_audit(rec)
    assert store.list_audit(3) == records[::-1][:3]
    assert store.list_audit(10) == records[::-1]
    assert store.list_audit(0) == []


# -- retention -------------------------------------------------------------------------------


def test_expired_runs_and_approvals_are_hidden_then_swept(store: StateStore, clock: FakeClock) -> None:
    old_run = a_run("run-old", clock.now - timedelta(days=61))
    kept_run = a_run("run-kept", clock.now - timedelta(days=59))
    store.record_run(old_run)
    store.record_run(kept_run)
    store.add_approval(Approval(plan_hash="old", approved_at=clock.now - timedelta(days=61), approved_by="o"))
    kept = Approval(plan_hash="kept", approved_at=clock.now - timedelta(days=59), approved_by="o")
    store.add_approval(kept)

    assert store.list_runs() == [kept_run]  # expired, not yet swept: already invisible
    assert store.get_approval("old") is None
    assert store.sweep() == 2
    assert store.sweep() == 0
    assert store.list_runs() == [kept_run]
    assert store.get_approval("kept") == kept

    assert store.sweep(clock.now + timedelta(days=2)) == 2  # the 59-day-old ones expire in a day
    assert store.list_runs() == []


def test_retention_days_is_configurable(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(retention_days=10)
    store.init()
    store.record_run(a_run("r", clock.now - timedelta(days=11)))
    assert store.list_runs() == []


# -- lease -----------------------------------------------------------------------------------


def test_lease_is_exclusive_until_released(store: StateStore, clock: FakeClock) -> None:
    info = store.lease_info()
    assert (info.owner, info.fence, info.released) == (None, 0, False)
    assert not info.is_held(clock.now)
    lease = store.acquire_lease(OWNER_A, duration_s=60)
    assert lease is not None
    assert (lease.owner, lease.fence, lease.instance) == (OWNER_A, 1, "contoso")
    assert lease.expires_at == clock.now + timedelta(seconds=60)
    assert store.acquire_lease(OWNER_B, duration_s=60) is None
    assert store.acquire_lease(OWNER_A, duration_s=60) is None  # no re-entry, even for the same owner
    info = store.lease_info()
    assert (info.owner, info.fence, info.released, info.expires_at) == (OWNER_A, 1, False, lease.expires_at)
    assert info.is_held(clock.now)

    store.release_lease(lease)
    info = store.lease_info()
    assert (info.owner, info.fence, info.released) == (OWNER_A, 1, True)
    assert not info.is_held(clock.now)
    second = store.acquire_lease(OWNER_B, duration_s=60)
    assert second is not None
    assert second.fence == 2  # release kept the record, so the fence keeps growing


def test_renew_extends_the_lease_with_a_new_rvn(store: StateStore, clock: FakeClock) -> None:
    lease = store.acquire_lease(OWNER_A, duration_s=30)
    assert lease is not None
    clock.advance(seconds=20)
    renewed = store.renew_lease(lease, duration_s=30)
    assert (renewed.fence, renewed.owner) == (lease.fence, lease.owner)
    assert renewed.rvn != lease.rvn
    assert renewed.expires_at == clock.now + timedelta(seconds=30)
    clock.advance(seconds=25)  # past the first expiry, within the renewed one
    assert store.acquire_lease(OWNER_B, duration_s=30) is None


def test_an_expired_lease_is_taken_over_only_after_the_skew_margin(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    host_a, host_b = make_store(), make_store()
    host_a.init()
    lease = host_a.acquire_lease(OWNER_A, duration_s=30)
    assert lease is not None
    clock.advance(seconds=30)
    assert host_b.acquire_lease(OWNER_B, duration_s=30) is None  # expired, but within the skew margin
    clock.advance(seconds=LEASE_SKEW.total_seconds())
    taken = host_b.acquire_lease(OWNER_B, duration_s=30)
    assert taken is not None
    assert taken.fence == lease.fence + 1


def test_a_stale_holder_is_fenced_out(make_store: StoreFactory, clock: FakeClock) -> None:
    host_a, host_b = make_store(), make_store()
    host_a.init()
    stale = host_a.acquire_lease(OWNER_A, duration_s=30)
    assert stale is not None
    clock.advance(seconds=120)  # host A paused (GC, VM freeze) past its lease
    fresh = host_b.acquire_lease(OWNER_B, duration_s=30)
    assert fresh is not None

    with pytest.raises(LeaseLostError):
        host_a.renew_lease(stale, duration_s=30)
    with pytest.raises(LeaseLostError):
        commit_run(
            host_a,
            stale,
            clock,
            deltas={"users": a_delta("users", "STALE", clock.now)},
            id_maps={"users": IdMapChanges(upserts=entries(5))},
        )
    assert_nothing_written(host_b)
    host_a.release_lease(stale)  # releasing a lost lease leaves the new holder alone
    info = host_b.lease_info()
    assert (info.owner, info.fence, info.released) == (OWNER_B, fresh.fence, False)
    commit_run(host_b, fresh, clock, deltas={"users": a_delta("users", "FRESH", clock.now)})
    assert host_b.get_delta("users") == a_delta("users", "FRESH", clock.now)


def test_a_released_lease_cannot_commit_or_renew(store: StateStore, clock: FakeClock) -> None:
    lease = store.acquire_lease(OWNER_A, duration_s=30)
    assert lease is not None
    store.release_lease(lease)
    with pytest.raises(LeaseLostError):
        commit_run(store, lease, clock, deltas={"users": a_delta("users", "L", clock.now)})
    with pytest.raises(LeaseLostError):
        store.renew_lease(lease, duration_s=30)
    assert_nothing_written(store)


def test_a_holder_past_expiry_may_still_commit_if_nobody_took_over(
    store: StateStore, clock: FakeClock
) -> None:
    lease = store.acquire_lease(OWNER_A, duration_s=30)
    clock.advance(seconds=300)
    commit_run(store, lease, clock, deltas={"users": a_delta("users", "L", clock.now)})
    assert store.get_delta("users") is not None


def test_lease_arguments_are_checked(store: StateStore) -> None:
    with pytest.raises(ValueError, match="duration"):
        store.acquire_lease(OWNER_A, duration_s=0)
    with pytest.raises(ValueError, match="owner"):
        store.acquire_lease("", duration_s=10)


@pytest.mark.parametrize(
    "shared", [pytest.param(False, id="store-per-thread"), pytest.param(True, id="shared")]
)
def test_threads_racing_for_the_lease_have_exactly_one_winner(
    make_store: StoreFactory, clock: FakeClock, shared: bool
) -> None:
    workers, rounds = 4, 25
    first = make_store()
    first.init()
    stores = [first] * workers if shared else [first, *(make_store() for _ in range(workers - 1))]
    barrier = threading.Barrier(workers)
    results: list[list[Lease | None]] = [[] for _ in range(workers)]
    failures: list[BaseException] = []

    def race(i: int) -> None:
        try:
            for _ in range(rounds):
                barrier.wait(timeout=30)
                results[i].append(stores[i].acquire_lease(f"worker-{i}", duration_s=60))
                barrier.wait(timeout=30)
                mine = results[i][-1]
                if mine is not None:
                    stores[i].release_lease(mine)
                barrier.wait(timeout=30)
        except BaseException as exc:  # reported below; a thread cannot fail the test itself
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    fences = []
    for round_no in range(rounds):
        winners = [r[round_no] for r in results if r[round_no] is not None]
        assert len(winners) == 1, f"round {round_no}: {len(winners)} winners"
        fences.append(winners[0].fence)  # type: ignore[union-attr]
    assert fences == list(range(1, rounds + 1))


def test_a_lease_of_another_instance_is_refused(make_store: StoreFactory) -> None:
    contoso, fabrikam = make_store(instance="contoso"), make_store(instance="fabrikam")
    contoso.init()
    theirs = fabrikam.acquire_lease(OWNER_B, duration_s=30)
    assert theirs is not None
    with pytest.raises(ValueError, match="fabrikam"):
        contoso.renew_lease(theirs, duration_s=30)
    with pytest.raises(ValueError, match="fabrikam"):
        contoso.release_lease(theirs)


def test_deletes_given_as_one_string_are_refused(store: StateStore, clock: FakeClock) -> None:
    with pytest.raises(TypeError, match="not a string"):
        commit_run(store, None, clock, id_maps={"users": IdMapChanges(upserts={}, deletes="g00001")})


def test_a_dead_holder_named_by_the_caller_is_taken_over_at_once(store: StateStore, clock: FakeClock) -> None:
    """After a kill -9 on this host the next run need not wait for the lease to expire."""
    first = store.acquire_lease("host-a:1", duration_s=300)
    assert first is not None
    assert store.acquire_lease("host-a:2", duration_s=300) is None
    assert store.acquire_lease("host-a:2", duration_s=300, take_over="host-b:9") is None  # not the holder
    second = store.acquire_lease("host-a:2", duration_s=300, take_over="host-a:1")
    assert second is not None
    assert second.fence == first.fence + 1
    with pytest.raises(LeaseLostError):
        store.renew_lease(first, duration_s=300)
