"""How a run is written down: its run record in state, its ``run_finished`` log line, its result."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import structlog

from importer.apply import ApplyResult
from importer.plan import Plan
from importer.sync._lease import LeaseKeeper, RunInterrupted
from importer.sync._model import Outcome, RunOptions, RunResult

if TYPE_CHECKING:
    from importer.assets import ResolvedSchema
    from importer.runtime import Runtime
    from importer.state import RunRecord

__all__ = ["Recorder"]

_log = structlog.get_logger("importer.sync")


class Recorder:
    """Records and results of one run (``run_id``), started now."""

    schema: ResolvedSchema  # set once resolved; every result carries it

    def __init__(self, rt: Runtime, opts: RunOptions, run_id: str, keeper: LeaseKeeper | None) -> None:
        self.rt = rt
        self.opts = opts
        self.run_id = run_id
        self.keeper = keeper
        self.started = datetime.now(UTC)
        self.t0 = time.monotonic()

    def failure(self, exc: BaseException) -> None:
        """Record a sync that ended with an exception (never raises)."""
        from importer.logs import scrub_text
        from importer.state import RunRecord

        outcome = "interrupted" if isinstance(exc, RunInterrupted) else "failed"
        try:
            self.rt.state.record_run(
                RunRecord(
                    run_id=self.run_id,
                    instance=self.rt.settings.instance,
                    started_at=self.started,
                    finished_at=datetime.now(UTC),
                    mode="full" if self.opts.full else "incremental",
                    trigger=self.opts.trigger,
                    outcome=outcome,
                    requests=self.rt.stats.by_service(),
                    error=scrub_text(f"{type(exc).__name__}: {exc}")[:500],
                    holder=self.keeper.owner if self.keeper is not None else None,
                )
            )
        except Exception as err:  # the state store may be what failed
            _log.warning("run_record_failed", error_type=type(err).__name__)
        _log.error(
            "run_finished",
            outcome=outcome,
            error_type=type(exc).__name__,
            duration_s=round(time.monotonic() - self.t0, 2),
            requests=sum(self.rt.stats.by_service().values()),
        )

    def interrupted(self, reason: str) -> RunResult:
        """The result of a run stopped before its plan was built."""
        mode: Literal["full", "incremental"] = "full" if self.opts.full else "incremental"
        empty = Plan(mode=mode, changes=(), unchanged={}, complete={}, object_types={})
        return RunResult(
            run_id=self.run_id,
            plan=empty,
            outcome="interrupted",
            schema=self.schema,
            requests=self.rt.stats.by_service(),
            duration_s=time.monotonic() - self.t0,
            message=reason,
        )

    def run_record(
        self, outcome: str, plan: Plan, *, applied: ApplyResult | None = None, error: str | None = None
    ) -> RunRecord:
        """The run record of a run that built its plan; ``counts`` are what was done (none without apply)."""
        from importer.state import RunRecord

        counts = counts_of(applied)  # a refused or stopped run did nothing: its planned counts are not kept
        return RunRecord(
            run_id=self.run_id,
            instance=self.rt.settings.instance,
            started_at=self.started,
            finished_at=datetime.now(UTC),
            mode=plan.mode,
            trigger=self.opts.trigger,
            outcome=outcome,
            counts=counts,
            requests=self.rt.stats.by_service(),
            plan_hash=plan.plan_hash,
            error=error,
            holder=self.keeper.owner if self.keeper is not None else None,
        )

    def record(
        self, outcome: str, plan: Plan, *, applied: ApplyResult | None = None, error: str | None = None
    ) -> None:
        """Store the run record now (runs that end without a commit)."""
        self.rt.state.record_run(self.run_record(outcome, plan, applied=applied, error=error))

    def result(
        self, plan: Plan, outcome: Outcome, *, applied: ApplyResult | None = None, message: str | None = None
    ) -> RunResult:
        """Log ``run_finished`` and return the run's result."""
        duration = time.monotonic() - self.t0
        requests = self.rt.stats.by_service()
        s = plan.summary()
        _log.info(
            "run_finished",
            outcome=outcome,
            mode=plan.mode,
            plan_hash=plan.plan_hash,
            duration_s=round(duration, 2),
            requests=sum(requests.values()),
            requests_by_service=requests,
            failed=len(applied.failures) if applied else 0,
            **s,
        )
        return RunResult(
            run_id=self.run_id,
            plan=plan,
            outcome=outcome,
            schema=self.schema,
            failures=tuple(applied.failures) if applied else (),
            applied=counts_of(applied),
            requests=requests,
            duration_s=duration,
            message=message,
        )


def counts_of(applied: ApplyResult | None) -> dict[str, dict[str, int]]:
    """What apply did, per type and action, with failures counted as ``failed``."""
    out: dict[str, dict[str, int]] = {}
    if applied is not None:
        for (t, action), n in applied.counts.items():
            out.setdefault(t, {})[action] = n
        for f in applied.failures:
            bucket = out.setdefault(f.type, {})
            bucket["failed"] = bucket.get("failed", 0) + 1
    return out
