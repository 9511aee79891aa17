"""Execute a Plan against Assets: bounded concurrency, referenced creates first, failures collected.

The plan is already ordered (creates of referenced types, then the others, updates, marks,
deletes). Consecutive changes with the same action and type form a *phase*; a phase runs on a
thread pool of ``max_concurrency`` workers and finishes before the next begins, so a device
created in a later phase can point at a user created in an earlier one (``Pending`` values
are resolved to the new object's id just before the write).

A ``Pending`` whose create failed is never written as an empty value: the change that refers
to it fails instead ("the referenced ... object could not be created in this run"), so a device
is neither created without its owner nor has its owner cleared, and the next run retries it.
A type whose attributes refer to its own type has all its creates in one concurrent phase, so
its target may not exist yet when a create starts: the object is then created without those
attributes, which a follow-up phase right after that create phase writes once every create it
waits for has been tried (the object fails there if its target could not be created). Such a
create counts as done only when its follow-up has written.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

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
_T = TypeVar("_T")


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
            phases = _phases(plan.changes)
            creates = [i for i, (_label, changes) in enumerate(phases) if changes[0].action == "create"]
            for i, (label, changes) in enumerate(phases):
                if progress is not None:
                    progress.start(label, len(changes))
                result.run_phase(pool, changes, result.one, max_concurrency, progress)
                if i in creates:
                    result.run_follow_ups(pool, max_concurrency, progress, last=i == creates[-1])
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


@dataclass(frozen=True, slots=True, kw_only=True)
class _FollowUp:
    """A create made without some references whose targets did not exist yet; they are written next."""

    change: Change
    object_id: str
    refs: Mapping[str, Pending]  # attribute -> the pending create it points at


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
        self.failed_creates: set[tuple[str, str]] = set()  # (type, source id): a Pending to it never resolves
        self.follow_ups: list[_FollowUp] = []

    def run_phase(
        self,
        pool: ThreadPoolExecutor,
        items: Sequence[_T],
        work: Callable[[_T], None],
        width: int,
        progress: Progress | None,
    ) -> None:
        pending: set[Future[None]] = set()
        queue = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < max(2, 2 * width):
                self._check()
                item = next(queue, None)
                if item is None:
                    exhausted = True
                    break
                # structlog's bound context (run_id, instance) does not follow work into threads
                pending.add(pool.submit(contextvars.copy_context().run, work, item))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            if progress is not None:
                progress.advance(len(done))
            for future in done:
                future.result()  # work never raises; this surfaces programming errors
            if self.fatal is not None:
                wait(pending)
                raise _Abort(self.fatal)

    def run_follow_ups(
        self, pool: ThreadPoolExecutor, width: int, progress: Progress | None, *, last: bool
    ) -> None:
        """Write the references creates held back, once their targets were tried (all after the last)."""
        with self.lock:
            ready = [f for f in self.follow_ups if last or not self._waits(f)]
            self.follow_ups = [f for f in self.follow_ups if not last and self._waits(f)]
        if not ready:
            return
        ready.sort(key=lambda f: (f.change.object_type, f.change.source_id))
        for object_type in dict.fromkeys(f.change.object_type for f in ready):
            batch = [f for f in ready if f.change.object_type == object_type]
            if progress is not None:
                progress.start(f"update {object_type} (references)", len(batch))
            self.run_phase(pool, batch, self.follow_up, width, progress)

    def _waits(self, follow_up: _FollowUp) -> bool:
        """Whether a target of the follow-up was neither created nor failed yet."""
        return any(
            _key(p) not in self.out.created and _key(p) not in self.failed_creates
            for p in follow_up.refs.values()
        )

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

    def one(self, change: Change) -> None:
        """Write one planned change (in a worker thread); failures are recorded, never raised."""
        values: dict[str, object] = {}
        later: dict[str, Pending] = {}
        missing: list[str] = []
        with self.lock:
            for attr, (_old, new) in change.diff.items():
                if not isinstance(new, Pending):
                    values[attr] = new
                elif (target_id := self.out.created.get(_key(new))) is not None:
                    values[attr] = target_id
                elif change.action == "create" and _key(new) not in self.failed_creates:
                    later[attr] = new  # a create of this same phase (or a later one), not done yet
                else:
                    missing.append(attr)
        if missing:
            self._record(change, _unresolved(self.plan, change, missing))
            return
        try:
            if change.action == "create":
                object_id = self.writer.create(
                    change.type, {k: v for k, v in values.items() if v is not None}
                )
                with self.lock:
                    self.out.created[(change.type, change.source_id)] = object_id
                    if later:  # done once the follow-up has written the rest
                        self.follow_ups.append(_FollowUp(change=change, object_id=object_id, refs=later))
                        return
            elif change.action in ("update", "mark"):
                assert change.object_id is not None
                self.writer.update(change.type, change.object_id, values)
            else:
                assert change.object_id is not None
                self.writer.delete(change.type, change.object_id)
        except Exception as exc:
            self._failed(change, exc)
            return
        crash_point("apply")  # test-only (IMPORTER_CRASH_AT): a crash right after a write landed
        self._done(change)

    def follow_up(self, item: _FollowUp) -> None:
        """Write the references a create held back (in a worker thread)."""
        change = item.change
        values: dict[str, object] = {}
        missing: list[str] = []
        with self.lock:
            for attr, pending in item.refs.items():
                object_id = self.out.created.get(_key(pending))
                if object_id is None:
                    missing.append(attr)
                values[attr] = object_id
        if missing:
            error = "created without " + _unresolved(self.plan, change, missing)
            self._record(change, error, object_id=item.object_id)
            return
        try:
            self.writer.update(change.type, item.object_id, values)
        except Exception as exc:
            self._failed(change, exc, object_id=item.object_id)
            return
        crash_point("apply")
        self._done(change)

    def _done(self, change: Change) -> None:
        with self.lock:
            self.out.succeeded.add((change.type, change.source_id))
            self.out.counts[(change.type, change.action)] += 1

    def _failed(self, change: Change, exc: Exception, *, object_id: str | None = None) -> None:
        """Record a failed write; credentials refused or the retry budget spent stop the whole apply."""
        if not isinstance(exc, (ImporterError, ValueError, KeyError)):
            raise exc  # a programming error: surfaced by run_phase
        # A 404 means the object is gone, except for a create (the object never existed).
        gone = isinstance(exc, ApiNotFoundError) and (change.action != "create" or object_id is not None)
        self._record(change, _describe(exc), gone=gone, object_id=object_id)
        if isinstance(exc, (ApiAuthError, RetryBudgetExceeded, FatalError)):
            with self.lock:
                self.fatal = self.fatal or _fatal_reason(exc)

    def _record(
        self, change: Change, error: str, *, gone: bool = False, object_id: str | None = None
    ) -> None:
        failure = ObjectFailure(
            action=change.action,
            type=change.type,
            source_id=change.source_id,
            object_id=object_id or change.object_id,
            error=error,
            gone=gone,
        )
        with self.lock:
            self.out.failures.append(failure)
            if change.action == "create" and object_id is None:
                self.failed_creates.add((change.type, change.source_id))
        _log.warning(
            "object_failed",
            action=change.action,
            object_type=change.object_type,
            object_id=failure.object_id,
            source_id=change.source_id,  # pseudonymized by the log anonymizer: which person, for support
            error=failure.error,
        )


def _key(pending: Pending) -> tuple[str, str]:
    return (pending.ref.type, pending.ref.source_id)


def _unresolved(plan: Plan, change: Change, attrs: Sequence[str]) -> str:
    """Why a change referring to objects that were not created was not written (names, no values)."""
    types: set[str] = set()
    for attr in attrs:
        _old, new = change.diff[attr]
        if isinstance(new, Pending):
            types.add(plan.object_types.get(new.ref.type, new.ref.type))
    return (
        f"{', '.join(sorted(attrs))}: the referenced {' / '.join(sorted(types))} object could not be created "
        "in this run"
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
