"""Durable state: installation, delta links, id map, runs, approvals, accounts, audit, lease.

One ``StateStore`` protocol (``base.py``), two backends with the same behaviour:
``sqlite.SqliteStateStore`` (default; one file, one host) and ``dynamodb.DynamoStateStore``
(one table shared by daemons on several hosts). ``open_state`` builds either from the
``state:`` section of the configuration; ``init_state`` backs ``importer state init``.
The DynamoDB backend is imported only when asked for, so boto3 stays off the SQLite path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from importer.errors import ConfigError
from importer.state.base import ReportsInit, StateStore
from importer.state.models import (
    LEASE_SKEW,
    RUN_MODES,
    RUN_OUTCOMES,
    RUN_TRIGGERS,
    Approval,
    AuditRecord,
    CachedAccount,
    DeltaState,
    IdMapChanges,
    IdMapEntry,
    Installation,
    Lease,
    LeaseInfo,
    RunRecord,
)
from importer.state.sqlite import SqliteStateStore

__all__ = [
    "LEASE_SKEW",
    "RUN_MODES",
    "RUN_OUTCOMES",
    "RUN_TRIGGERS",
    "Approval",
    "AuditRecord",
    "CachedAccount",
    "DeltaState",
    "IdMapChanges",
    "IdMapEntry",
    "Installation",
    "Lease",
    "LeaseInfo",
    "RunRecord",
    "SqliteStateStore",
    "StateStore",
    "init_state",
    "open_state",
]


def open_state(
    backend: str,
    *,
    path: str | None = None,
    table: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    instance: str,
    retention_days: int = 60,
    account_ttl_days: int = 7,
    clock: Callable[[], datetime] | None = None,
) -> StateStore:
    """Build the configured backend (nothing is opened or created until it is used).

    Args:
        backend: ``"sqlite"`` (needs ``path``) or ``"dynamodb"`` (needs ``table``; ``region`` and
            ``endpoint_url`` are optional and default to the AWS SDK's own resolution).
        instance: names this installation inside the file or table.
        retention_days: how long run records and approvals are kept.
        account_ttl_days: how long a cached account lookup is trusted.
        clock: returns the current aware datetime; tests inject one.
    """
    if backend == "sqlite":
        if not path:
            raise ConfigError("state.path: the sqlite backend needs a file path")
        return SqliteStateStore(
            path,
            instance=instance,
            retention_days=retention_days,
            account_ttl_days=account_ttl_days,
            clock=clock,
        )
    if backend == "dynamodb":
        if not table:
            raise ConfigError("state.table: the dynamodb backend needs a table name")
        from importer.state.dynamodb import DynamoStateStore

        return DynamoStateStore(
            table,
            instance=instance,
            region=region,
            endpoint_url=endpoint_url,
            retention_days=retention_days,
            account_ttl_days=account_ttl_days,
            clock=clock,
        )
    raise ConfigError(f"state.backend: expected 'sqlite' or 'dynamodb', not {backend!r}")


def init_state(store: StateStore) -> str:
    """Create the state file or table if needed (``importer state init``) and say what was done."""
    if isinstance(store, ReportsInit):
        return store.prepare()
    store.init()
    return "state store initialised"
