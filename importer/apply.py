"""Execute a Plan against Assets: bounded concurrency, referenced creates first, failures collected.

The plan is already ordered (creates of referenced types, then the others, updates, marks,
deletes). Consecutive changes with the same action and type form a *phase*; a phase runs on a
thread pool of ``max_concurrency`` workers and finishes before the next begins, so a device
created in a later phase can point at a user created in an earlier one (``Pending`` values
are resolved to the new object's id just before the write).

A per-object failure (a 400 naming an attribute, a 404, retries exhausted on one object) is
recorded and the run goes on; the next run retries it because its state was not committed.
The whole apply stops when Assets rejects our credentials (401/403), when the retry budget of
the run is spent, when more than ``max_failure_percent`` of operations fail, or when asked to
stop (SIGTERM, lost lease): in-flight writes finish, nothing new starts.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from importer.crashpoints import crash_point
from importer.errors import (
    ApiAuthError,
    ApiError,
    ApiNotFoundError,
    FatalError,
    ImporterError,
    RetryBudgetExceeded,
)
from importer.plan import Change, Pending, Plan

__all__ = ["ApplyResult", "ObjectFailure", "Progress", "Writer", "apply_plan"]

_log = structlog.get_logger("importer.apply")
_MIN_SAMPLE = 20  # operations done before the failure rate may abort the run


class Writer(Protocol):
    """The three writes apply needs (implemented over ``AssetsObjects`` by the sync engine)."""

    def create(self, type_name: str, values: Mapping[str, object]) -> str:
        """Create an object (values include the key attribute); return its id."""

    def update(self, type_name: str, object_id: str, values: Mapping[str, object]) -> None:
        """Write the given attributes of an existing object."""

    def delete(self, type_name: str, object_id: str) -> None:
        """Delete an object (already gone counts as done)."""


class Progress(Protocol):
    """Where apply reports progress (a bar on a terminal, a log line per 1,000 otherwise)."""

    def start(self, phase: str, total: int) -> None:
        """A phase begins with ``total`` operations."""

    def advance(self, done: int = 1) -> None:
        """``done`` more operations finished (ok or failed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectFailure:
    """One object that could not be written; ``error`` names status, code and attributes, never values."""

    action: str
    type: str
    source_id: str
    object_id: str | None
    error: str
    gone: bool = False  # the object no longer exists in Assets (404)


@dataclass(slots=True)
class ApplyResult:
    """What apply did."""

    created: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, source id) -> object id
    succeeded: set[tuple[str, str]] = field(default_factory=set)  # (type, source id) written as planned
    failures: list[ObjectFailure] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, action) -> done
    aborted: str | None = None
    interrupted: bool = False

    @property
    def failed_ids(self) -> set[tuple[str, str]]:
        """(type, source id) of every failure."""
        return {(f.type, f.source_id) for f in self.failures}


class _Abort(Exception):
    def __init__(self, reason: str, *, interrupted: bool = False) -> None:
        super().__init__(reason)
        self.interrupted = interrupted


def apply_plan(
    plan: Plan,
    writer: Writer,
    *,
    max_concurrency: int = 8,
    max_failure_percent: float = 40.0,
    progress: Progress | None = None,
    should_stop: Callable[[], str | None] | None = None,
) -> ApplyResult:
    """Run every change of ``plan``; return what happened (never raises for per-object failures)."""
    result = _Run(writer, plan, max_failure_percent, should_stop or (lambda: None))
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency), thread_name_prefix="apply") as pool:
        try:
            for label, changes in _phases(plan.changes):
                if progress is not None:
                    progress.start(label, len(changes))
                result.run_phase(pool, changes, max_concurrency, progress)
        except _Abort as exc:
            result.out.aborted = str(exc)
            result.out.interrupted = exc.interrupted
            _log.warning("apply_stopped", reason=str(exc), done=sum(result.out.counts.values()))
    return result.out


def _phases(changes: Iterable[Change]) -> list[tuple[str, list[Change]]]:
    """Group consecutive changes with the same action and object type."""
    phases: list[tuple[str, list[Change]]] = []
    for change in changes:
        key = f"{change.action} {change.object_type}"
        if phases and phases[-1][0] == key:
            phases[-1][1].append(change)
        else:
            phases.append((key, [change]))
    return phases


class _Run:
    def __init__(
        self, writer: Writer, plan: Plan, max_failure_percent: float, should_stop: Callable[[], str | None]
    ) -> None:
        self.writer = writer
        self.plan = plan
        self.max_failure = max_failure_percent / 100.0
        self.should_stop = should_stop
        self.out = ApplyResult()
        self.lock = threading.Lock()
        self.fatal: str | None = None

    def run_phase(
        self, pool: ThreadPoolExecutor, changes: list[Change], width: int, progress: Progress | None
    ) -> None:
        pending: set[Future[None]] = set()
        queue = iter(changes)
        exhausted = False
        while True:
            while not exhausted and len(pending) < max(2, 2 * width):
                self._check()
                change = next(queue, None)
                if change is None:
                    exhausted = True
                    break
                # structlog's bound context (run_id, instance) does not follow work into threads
                pending.add(pool.submit(contextvars.copy_context().run, self._one, change))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            if progress is not None:
                progress.advance(len(done))
            for future in done:
                future.result()  # _one never raises; this surfaces programming errors
            if self.fatal is not None:
                wait(pending)
                raise _Abort(self.fatal)

    def _check(self) -> None:
        reason = self.should_stop()
        if reason:
            raise _Abort(reason, interrupted=True)
        if self.fatal is not None:
            raise _Abort(self.fatal)
        with self.lock:
            done = sum(self.out.counts.values()) + len(self.out.failures)
            failed = len(self.out.failures)
        if done >= _MIN_SAMPLE and failed > self.max_failure * done:
            raise _Abort(
                f"{failed} of {done} operations failed (more than sync.max_failure_percent="
                f"{self.max_failure * 100:g}%); stopping so that the cause can be fixed"
            )

    def _resolve(self, value: object) -> object:
        if isinstance(value, Pending):
            with self.lock:
                return self.out.created.get((value.ref.type, value.ref.source_id))
        return value

    def _one(self, change: Change) -> None:
        try:
            values = {attr: self._resolve(new) for attr, (_old, new) in change.diff.items()}
            if change.action == "create":
                object_id = self.writer.create(
                    change.type, {k: v for k, v in values.items() if v is not None}
                )
                with self.lock:
                    self.out.created[(change.type, change.source_id)] = object_id
            elif change.action in ("update", "mark"):
                assert change.object_id is not None
                self.writer.update(change.type, change.object_id, values)
            else:
                assert change.object_id is not None
                self.writer.delete(change.type, change.object_id)
        except (ApiAuthError, RetryBudgetExceeded, FatalError) as exc:
            self._fail(change, exc)
            with self.lock:
                self.fatal = self.fatal or _fatal_reason(exc)
            return
        except (ImporterError, ValueError, KeyError) as exc:
            self._fail(change, exc)
            return
        crash_point("apply")  # test-only (IMPORTER_CRASH_AT): a crash right after a write landed
        with self.lock:
            self.out.succeeded.add((change.type, change.source_id))
            self.out.counts[(change.type, change.action)] += 1

    def _fail(self, change: Change, exc: Exception) -> None:
        gone = isinstance(exc, ApiNotFoundError) and change.action != "create"
        failure = ObjectFailure(
            action=change.action,
            type=change.type,
            source_id=change.source_id,
            object_id=change.object_id,
            error=_describe(exc),
            gone=gone,
        )
        with self.lock:
            self.out.failures.append(failure)
        _log.warning(
            "object_failed",
            action=change.action,
            object_type=change.object_type,
            object_id=change.object_id,
            source_id=change.source_id,  # pseudonymized by the log anonymizer: which person, for support
            error=failure.error,
        )


def _describe(exc: Exception) -> str:
    """A one-line reason without values: ApiError's text carries status, code and attribute names."""
    if isinstance(exc, ApiNotFoundError):
        return "the object no longer exists in Assets (deleted by hand?); a full run recreates it"
    if isinstance(exc, ApiError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"schema mismatch: {exc.args[0] if exc.args else exc}"
    return f"{type(exc).__name__}: {exc}"


def _fatal_reason(exc: Exception) -> str:
    if isinstance(exc, ApiAuthError):
        return (
            f"Assets refused our credentials or permissions ({exc}); check assets.email / "
            "assets.api_token and the account's Assets role on the schema"
        )
    return str(exc)
