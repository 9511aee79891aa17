"""open_state builds the configured backend; configuration mistakes are ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.errors import ConfigError
from importer.state import SqliteStateStore, init_state, open_state
from importer.state.dynamodb import DynamoStateStore


def test_open_state_builds_sqlite_without_touching_the_disk(tmp_path: Path) -> None:
    store = open_state("sqlite", path=str(tmp_path / "state.db"), instance="contoso")
    assert isinstance(store, SqliteStateStore)
    assert not (tmp_path / "state.db").exists()
    assert "created" in init_state(store)
    store.close()


def test_open_state_builds_dynamodb(atomic_moto: str) -> None:
    store = open_state(
        "dynamodb", table="state-factory", region="eu-west-1", endpoint_url=atomic_moto, instance="contoso"
    )
    assert isinstance(store, DynamoStateStore)
    assert "state-factory" in init_state(store)
    store.close()


@pytest.mark.parametrize(
    ("backend", "kwargs", "where"),
    [
        pytest.param("sqlite", {}, "state.path", id="sqlite-without-path"),
        pytest.param("dynamodb", {}, "state.table", id="dynamodb-without-table"),
        pytest.param("redis", {"path": "x"}, "state.backend", id="unknown-backend"),
    ],
)
def test_open_state_reports_configuration_mistakes(backend: str, kwargs: dict[str, str], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        open_state(backend, instance="contoso", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("instance", ["", "a#b"])
def test_instance_names_that_would_break_keys_are_refused(tmp_path: Path, instance: str) -> None:
    with pytest.raises(ValueError, match="instance"):
        open_state("sqlite", path=str(tmp_path / "s.db"), instance=instance)
