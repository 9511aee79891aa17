"""Fixtures for the state tests: an injectable clock, and fresh stores of both backends."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from state_fixtures import FakeClock, StoreFactory

from importer.state import SqliteStateStore, StateStore
from importer.state.dynamodb import DynamoStateStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def atomic_moto(moto_endpoint: str) -> Iterator[str]:
    """moto's DynamoDB handles concurrent requests without a lock, so a conditional update can
    race with another and both succeed; real DynamoDB applies each write atomically. Serialising
    moto's DynamoDB actions makes the lease races test our code, not moto's threading."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DynamoHandler, "call_action", call_action)
        yield moto_endpoint


def _sqlite_factory(path: Path, clock: FakeClock) -> StoreFactory:
    def build(*, instance: str = "contoso", **kwargs: Any) -> StateStore:
        kwargs.setdefault("clock", clock)
        return SqliteStateStore(path, instance=instance, **kwargs)

    return StoreFactory("sqlite", build)


def _dynamo_factory(endpoint: str, table: str, clock: FakeClock) -> StoreFactory:
    def build(*, instance: str = "contoso", **kwargs: Any) -> StateStore:
        kwargs.setdefault("clock", clock)
        return DynamoStateStore(table, instance=instance, region="eu-west-1", endpoint_url=endpoint, **kwargs)

    return StoreFactory("dynamodb", build)


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"), pytest.param("dynamodb", id="dynamodb")])
def make_store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[StoreFactory]:
    """A factory of stores sharing one fresh backing (SQLite file in tmp_path, or a new table)."""
    if request.param == "sqlite":
        factory = _sqlite_factory(tmp_path / "state" / "state.db", clock)
    else:
        endpoint = request.getfixturevalue("atomic_moto")
        factory = _dynamo_factory(endpoint, f"state-{uuid.uuid4().hex[:12]}", clock)
    yield factory
    for store in factory.created:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> StateStore:
    """A fresh, initialised store for instance "contoso"."""
    created = make_store()
    created.init()
    return created


@pytest.fixture
def dynamo_table(atomic_moto: str) -> str:
    """A fresh table name (not yet created) on the moto server."""
    return f"state-{uuid.uuid4().hex[:12]}"
