"""A worker process for the SQLite lease race (imported by spawned children, so not a test module)."""

from __future__ import annotations

from typing import Any

from importer.state import SqliteStateStore


def race_for_lease(path: str, worker: int, rounds: int, barrier: Any, results: Any) -> None:
    """Each round: wait for the others, try to take the lease, report, and let the winner release it."""
    store = SqliteStateStore(path, instance="contoso", busy_timeout_s=30)
    try:
        for round_no in range(rounds):
            barrier.wait(timeout=60)
            lease = store.acquire_lease(f"proc-{worker}", duration_s=60)
            results.put((round_no, worker, lease.fence if lease else None))
            barrier.wait(timeout=60)
            if lease is not None:
                store.release_lease(lease)
            barrier.wait(timeout=60)
    finally:
        store.close()
