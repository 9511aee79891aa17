"""What only the SQLite backend has: a private file, damaged-file errors, versions, processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
from collections import defaultdict
from pathlib import Path

import pytest
from state_fixtures import FakeClock
from state_race_worker import race_for_lease

from importer.errors import FatalError, RetriableError
from importer.state import DeltaState, IdMapChanges, IdMapEntry, RunRecord, SqliteStateStore


def a_store(path: Path, clock: FakeClock | None = None, **kwargs: float) -> SqliteStateStore:
    return SqliteStateStore(path, instance="contoso", clock=clock or FakeClock(), **kwargs)  # type: ignore[arg-type]


def filled(path: Path, n: int = 3000) -> None:
    """A state file with enough rows to span many pages, closed (WAL checkpointed)."""
    store = a_store(path)
    ids = {f"g{i:06d}": IdMapEntry(object_id=f"obj-{i}", content_hash="x" * 40) for i in range(n)}
    clock = FakeClock()
    run = RunRecord(
        run_id="r1",
        instance="contoso",
        started_at=clock.now,
        mode="full",
        trigger="manual",
        outcome="success",
    )
    store.commit(None, deltas={}, id_maps={"users": IdMapChanges(upserts=ids)}, run=run)
    store.close()


def test_the_file_and_its_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "state.db"
    store = a_store(path)
    store.init()
    assert store.acquire_lease("me", duration_s=10) is not None  # a write, so the WAL exists
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0
    store.close()


def test_wal_mode_is_on(tmp_path: Path) -> None:
    a_store(tmp_path / "state.db").init()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"this is not a database at all\n" * 100), id="not-a-database"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:50]), id="header-cut"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), id="truncated"),
    ],
)
def test_a_damaged_file_is_a_clear_error_naming_the_file(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "state.db"
    filled(path)
    damage(path)  # type: ignore[operator]
    store = a_store(path)
    with pytest.raises(FatalError, match=str(path)) as caught:
        store.init()
    assert "importer state init" in str(caught.value)


def test_a_damaged_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    junk = b"\x00garbage\xff" * 64
    path.write_bytes(junk)
    with pytest.raises(FatalError, match=str(path)):
        a_store(path).get_delta("users")
    assert path.read_bytes() == junk


def test_another_apps_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(FatalError, match="not an importer state file"):
        a_store(path).init()


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    a_store(path).init()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(FatalError, match=r"schema version 99.*upgrade the importer"):
        a_store(path).init()


def test_a_failure_inside_the_commit_transaction_rolls_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    store = a_store(tmp_path / "state.db", clock)
    lease = store.acquire_lease("me", duration_s=60)

    def broken(*_: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteStateStore, "_write_run", broken)
    run = RunRecord(
        run_id="r1",
        instance="contoso",
        started_at=clock.now,
        mode="full",
        trigger="manual",
        outcome="success",
    )
    delta = DeltaState(source="users", link="L", select_fingerprint="f", updated_at=clock.now)
    upserts = {"g1": IdMapEntry(object_id="o1", content_hash="h")}
    with pytest.raises(FatalError, match="disk I/O error"):
        store.commit(
            lease, deltas={"users": delta}, id_maps={"users": IdMapChanges(upserts=upserts)}, run=run
        )
    monkeypatch.undo()
    assert store.get_delta("users") is None
    assert store.count_id_map("users") == 0
    assert store.list_runs() == []


def test_a_lock_held_too_long_by_another_process_is_retriable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = a_store(path, busy_timeout_s=0.2)
    store.init()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RetriableError, match="locked"):
            store.acquire_lease("me", duration_s=10)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.acquire_lease("me", duration_s=10) is not None  # the store is usable afterwards


def test_close_then_use_reopens(tmp_path: Path) -> None:
    store = a_store(tmp_path / "state.db")
    store.init()
    store.close()
    store.close()
    assert store.lease_info().fence == 0


def test_processes_racing_for_the_lease_have_exactly_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    a_store(path).init()
    workers, rounds = 3, 6
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=race_for_lease, args=(str(path), i, rounds, barrier, results))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    outcomes: dict[int, list[int | None]] = defaultdict(list)
    for _ in range(workers * rounds):
        round_no, _worker, fence = results.get(timeout=120)
        outcomes[round_no].append(fence)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    fences = []
    for round_no in range(rounds):
        won = [f for f in outcomes[round_no] if f is not None]
        assert len(won) == 1, f"round {round_no}: {outcomes[round_no]}"
        fences.append(won[0])
    assert fences == list(range(1, rounds + 1))
    results.close()
    results.join_thread()
