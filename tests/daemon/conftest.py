"""Fixtures for the daemon tests: offline configurations, a daemon that is never started, fake runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from importer.daemon import Daemon, Installation
from importer.sandbox.configfile import write_config
from importer.state import RunRecord
from importer.sync import RunOptions

# Connection details of a tenant and workspace that do not exist: the vault and the state store
# are real, nothing is ever sent (fake runs replace sync, and 127.0.0.1:9 refuses connections).
FAKE_INFO: dict[str, Any] = {
    "authority_host": "127.0.0.1:9",
    "graph_url": "https://127.0.0.1:9",
    "site_url": "https://127.0.0.1:9",
    "assets_api_url": "https://127.0.0.1:9",
    "workspace_id": "ws-test",
    "ca_bundle": "ca.pem",
    "tenant_id": "00000000-0000-4000-8000-000000000001",
    "client_id": "00000000-0000-4000-8000-000000000002",
    "client_secret": "client-secret-value-0001",
    "jira_email": "importer.bot@example.com",
    "jira_api_token": "jira-api-token-value-0001",
}


def fake_config(
    directory: Path,
    *,
    instance: str = "contoso",
    schedule: Mapping[str, str | None] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """A valid configuration with its own vault, key file and SQLite state under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_config(
        FAKE_INFO,
        directory / f"{instance}.yaml",
        instance=instance,
        schedule=schedule or {"incremental": "*/15 * * * *", "full": "0 3 * * 0"},  # type: ignore[arg-type]
        overrides=overrides,
    )


@dataclass
class FakeRuns:
    """A stand-in for ``run_sync``: records a run like sync does, or blocks until told to stop."""

    outcome: str = "success"
    block: bool = False
    raises: BaseException | None = None
    applied: dict[str, dict[str, int]] = field(default_factory=lambda: {"users": {"create": 2, "update": 1}})
    calls: list[RunOptions] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)

    def __call__(self, rt: Any, options: RunOptions, *, lease: Any = None) -> Any:
        self.calls.append(options)
        self.entered.set()
        started = datetime.now(UTC)
        outcome = self.outcome
        error = None
        if self.raises is not None:  # like run_sync: a sync that raises is recorded as failed first
            outcome, error = "failed", f"{type(self.raises).__name__}: {self.raises}"
        if self.block:
            assert options.should_stop is not None
            while (reason := options.should_stop()) is None:
                threading.Event().wait(0.01)
            outcome, error = "interrupted", reason
        mode = "full" if options.full else "incremental"
        rt.state.record_run(
            RunRecord(
                run_id=uuid.uuid4().hex[:12],
                instance=rt.settings.instance,
                started_at=started,
                finished_at=datetime.now(UTC),
                mode=mode,
                trigger=options.trigger,
                outcome=outcome,
                counts=self.applied,
                error=error,
                holder=lease.owner if lease is not None else None,
            )
        )
        if self.raises is not None:
            raise self.raises
        return SimpleNamespace(
            outcome=outcome, plan=SimpleNamespace(mode=mode), duration_s=0.01, applied=self.applied
        )


@dataclass
class Exits:
    """Records ``hard_exit`` calls instead of ending the test process."""

    codes: list[int] = field(default_factory=list)

    def __call__(self, code: int) -> None:
        self.codes.append(code)


MakeDaemon = Callable[..., tuple[Daemon, Installation]]


@pytest.fixture
def exits() -> Exits:
    """Where the daemon's hard exits go."""
    return Exits()


@pytest.fixture
def make_daemon(tmp_path: Path, exits: Exits) -> Iterator[MakeDaemon]:
    """Build a daemon over one fake configuration, loaded and opened, never started."""
    made: list[Daemon] = []

    def make(
        *,
        runner: Any = None,
        opened: bool = True,
        schedule: Mapping[str, str | None] | None = None,
        **kw: Any,
    ) -> tuple[Daemon, Installation]:
        path = fake_config(tmp_path / f"d{len(made)}", schedule=schedule)
        daemon = Daemon(
            [path], listen=None, runner=runner, hard_exit=exits, configure_logs=False, stop_timeout_s=2, **kw
        )
        daemon.load()
        inst = daemon.installations[0]
        if opened:
            daemon.open_pending()
            assert inst.runtime is not None, daemon.readiness.report()
        made.append(daemon)
        return daemon, inst

    yield make
    for daemon in made:
        for inst in daemon.installations:
            if inst.runtime is not None:
                inst.runtime.close()
