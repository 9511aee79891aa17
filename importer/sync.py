"""One run, end to end: read Entra, read Assets, plan, guard, apply, commit. Binds ``run_id``.

::

    schema      resolve types and attributes by name (drift stops the run before any write)
    read        per source: follow the stored delta link, or a full delta round (first run,
                --full, expired link, changed $select or mapping); device owners
    map         Graph records ─► desired values (pure); filtered-out records count as removed
    current     full: every object of the type (AQL pages), type by type, after the type's own
                normalise step, so that an object already as desired is kept as its id alone as
                its page arrives (memory); incremental: the content hash in the id map skips
                unchanged records, the rest are looked up by key (AQL IN)
    normalise   references ─► object ids (or Pending creates), emails ─► accountIds, values per kind
    plan/guard  importer.plan
    apply       importer.apply (only for sync; plan stops before)
    commit      delta links + id map + run record in one fenced commit, only after apply;
                delta links do not move when something failed, so the next run retries it

Incremental correctness rests on three facts: creates are preceded by a lookup by key (so a
crash between apply and commit never duplicates), the content hash only lets a run *skip*
work that was committed, and a full run reconciles everything.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import structlog

from importer.apply import ApplyResult, ObjectFailure, Progress, apply_plan
from importer.crashpoints import crash_point
from importer.errors import (
    EXIT_FAILED,
    EXIT_GUARD,
    EXIT_OK,
    EXIT_PLAN_CHANGES,
    ConfigError,
    CredentialError,
    FatalError,
    LeaseHeldError,
    LeaseLostError,
)
from importer.mapping import AccountEmail, CompiledEntry, Ref, compile_mapping, map_record
from importer.plan import Current, Pending, Plan, TypeInput, build_plan, differs, guard, type_order

if TYPE_CHECKING:
    from importer.assets import AssetsObject, ResolvedSchema, ResolvedType, TypeRequirement
    from importer.assets.models import NormValue
    from importer.config import Settings
    from importer.graph import OwnersRead, SourceRead
    from importer.runtime import Runtime
    from importer.state import Lease, RunRecord

__all__ = [
    "LeaseKeeper",
    "RunInterrupted",
    "RunOptions",
    "RunResult",
    "content_hash",
    "requirements",
    "run_sync",
    "value_formatter",
]

_log = structlog.get_logger("importer.sync")
_PREFETCH_ACCOUNTS = 20  # more unresolved emails than this: list all accounts once instead
_AS_DESIRED: Mapping[str, NormValue] = MappingProxyType({})  # values of an object read as already desired
Outcome = Literal["planned", "success", "partial", "failed", "refused", "interrupted"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How to run: plan only or apply, full or incremental, which types, who asked."""

    apply: bool = True
    full: bool = False
    only: tuple[str, ...] = ()
    approve: str | None = None
    trigger: Literal["manual", "schedule", "ci"] = "manual"
    progress: Progress | None = None
    should_stop: Callable[[], str | None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a run did; ``plan`` is what it planned (applied or not)."""

    run_id: str
    plan: Plan
    outcome: Outcome
    schema: ResolvedSchema
    failures: tuple[ObjectFailure, ...] = ()
    applied: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    requests: Mapping[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    message: str | None = None

    def exit_code(self, *, detailed: bool = False) -> int:
        """The CLI exit code for this result."""
        if self.outcome == "refused":
            return EXIT_GUARD
        if self.outcome == "planned":
            if self.plan.verdict is not None and self.plan.verdict.refused:
                return EXIT_GUARD
            return EXIT_PLAN_CHANGES if detailed and self.plan.has_changes else EXIT_OK
        return EXIT_OK if self.outcome == "success" else EXIT_FAILED


def content_hash(values: Mapping[str, object]) -> str:
    """A stable hash of one record's mapped (raw) values, stored in the id map."""

    def enc(v: object) -> object:
        if isinstance(v, Ref):
            return ["ref", v.type, v.source_id]
        if isinstance(v, AccountEmail):
            return ["email", v.email.strip().casefold()]
        if isinstance(v, tuple):
            return [enc(x) for x in v]
        return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)

    text = json.dumps({k: enc(v) for k, v in sorted(values.items())}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def requirements(settings: Settings) -> list[TypeRequirement]:
    """What the Assets schema must offer for this mapping (for resolve, ``schema plan`` and ``apply``)."""
    from importer.assets import AttributeRequirement, TypeRequirement

    compiled = compile_mapping(settings)
    by_name = {e.name: e for e in settings.mapping.object_types}
    out: list[TypeRequirement] = []
    for entry in settings.mapping.object_types:
        attrs = [AttributeRequirement(name=entry.key, kind="text", unique=True, required=True)]
        for attr in compiled[entry.name].attributes:
            ref_type = by_name[attr.reference].object_type if attr.reference else None
            attrs.append(
                AttributeRequirement(
                    name=attr.name,
                    kind=attr.kind,  # type: ignore[arg-type]  # mapping kinds are a subset of Assets kinds
                    reference_type=ref_type,
                    options=attr.options,
                    label=attr.name == entry.label,
                )
            )
        statuses: tuple[str, ...] = ()
        if settings.missing_policy(entry) != "ignore":
            mark = entry.mark
            attrs.append(
                AttributeRequirement(
                    name=mark.attribute,
                    kind=mark.type,
                    options=tuple(v for v in (mark.active, mark.value) if v) if mark.type == "select" else (),
                )
            )
            if mark.type == "status":
                statuses = tuple(v for v in (mark.active, mark.value) if v)
        out.append(
            TypeRequirement(
                name=entry.object_type,
                description=entry.description,
                icon=entry.icon,
                key_attribute=entry.key,
                label_attribute=entry.label,
                attributes=tuple(attrs),
                statuses=statuses,
            )
        )
    return out


_PERSONAL_KINDS = frozenset({"text", "textarea", "email", "url", "user", "select", "ipaddress"})


def value_formatter(
    result: RunResult, settings: Settings, pseudonyms: Callable[[str], str] | None
) -> tuple[Callable[[str, str, object], object], Callable[[str], str]]:
    """How plan values are shown: status names, pending creates spelled out, personal values
    pseudonymized when ``pseudonyms`` is given (``--redact``). Returns (display, redactor)."""
    from importer.plan import jsonable
    from importer.render import Note

    types = {e.name: e.object_type for e in settings.mapping.object_types}
    statuses = {s.id: s.name for s in result.schema.statuses.values()}

    def redact(text: str) -> str:
        return pseudonyms(text) if pseudonyms is not None else text

    def display(type_name: str, attr: str, value: object) -> object:
        if isinstance(value, Pending):
            return Note(f"(the new {value.ref.type} object for {redact(value.ref.source_id)})")
        try:
            kind = result.schema.type(types[type_name]).attribute(attr).kind
        except KeyError:
            kind = "text"
        if kind == "status" and isinstance(value, str):
            return statuses.get(value, value)
        if kind in _PERSONAL_KINDS and pseudonyms is not None and value is not None:
            if isinstance(value, tuple):
                return [redact(str(v)) for v in value]
            return redact(str(value))
        return jsonable(value)

    return display, redact


def _dead_local_holder(owner: str | None) -> str | None:
    """The holder's name if it is a process of this host and PID namespace that no longer runs.

    Holders are ``host:pid@pidns`` (``runtime.holder_name``). Only a holder in our own PID
    namespace can be checked: two containers may share a host name (host networking) without
    seeing each other's processes, so anything else waits for the lease to expire.
    """
    import os
    import socket

    from importer.runtime import pid_namespace

    if not owner or ":" not in owner:
        return None
    host, _, rest = owner.rpartition(":")
    pid, _, ns = rest.partition("@")
    if host != socket.gethostname() or not pid.isdigit() or not ns or ns != pid_namespace():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return owner
    except PermissionError:
        return None  # it runs, as another user
    return None


class RunInterrupted(FatalError):
    """The run was asked to stop (SIGTERM, lost lease) before it wrote anything."""


class LeaseKeeper:
    """Hold the installation's lease for one run, renewing it in the background."""

    def __init__(self, rt: Runtime, owner: str, *, wait_s: float = 0.0, poll_s: float = 2.0) -> None:
        self.rt = rt
        self.owner = owner
        self.duration = rt.settings.state.lease_s
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.lease: Lease | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> LeaseKeeper:
        deadline = time.monotonic() + self.wait_s
        while True:
            dead = _dead_local_holder(self.rt.state.lease_info().owner)
            self.lease = self.rt.state.acquire_lease(self.owner, duration_s=self.duration, take_over=dead)
            if self.lease is not None:
                if dead:
                    _log.warning("lease_taken_over", previous_holder=dead, reason="process no longer runs")
                break
            if time.monotonic() >= deadline:
                info = self.rt.state.lease_info()
                until = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "?"
                raise LeaseHeldError(
                    f"another run holds the lease for {self.rt.settings.instance} "
                    f"({info.owner}, until {until}); try again later or use --wait SECONDS"
                )
            time.sleep(min(self.poll_s, max(0.05, deadline - time.monotonic())))
        _log.info("lease_acquired", fence=self.lease.fence)
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                with self._lock:
                    assert self.lease is not None
                    self.lease = self.rt.state.renew_lease(self.lease, duration_s=self.duration)
            except LeaseLostError as exc:
                self.lost = f"the lease was taken over by another worker ({exc})"
                _log.error("lease_lost")
                return
            except Exception as exc:  # a state outage: keep trying until the lease would expire
                _log.warning("lease_renew_failed", error=type(exc).__name__)

    def current(self) -> Lease:
        """The lease as last renewed."""
        with self._lock:
            assert self.lease is not None
            return self.lease

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease is not None and self.lost is None:
            try:
                self.rt.state.release_lease(self.current())
                _log.info("lease_released")
            except Exception as err:
                _log.warning("lease_release_failed", error=type(err).__name__)


@dataclass(slots=True)
class _Work:
    """One mapped type during a run."""

    entry: CompiledEntry
    rtype: ResolvedType
    full: bool
    read: SourceRead
    raw: dict[str, dict[str, object]] = field(default_factory=dict)  # mapped; normalised in place
    hashes: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)  # removed records mapped in state but gone from Assets
    current: dict[str, AssetsObject] = field(default_factory=dict)
    desired: dict[str, dict[str, object]] = field(default_factory=dict)
    same: dict[str, str] = field(default_factory=dict)  # full runs: already as desired -> object id
    managed: int = 0

    @property
    def name(self) -> str:
        return self.entry.entry.name


def run_sync(rt: Runtime, opts: RunOptions, *, lease: LeaseKeeper | None = None) -> RunResult:
    """Run once. ``plan`` passes ``apply=False`` (no lease, no writes, no state change).

    A sync (``apply=True``) that raises (schema drift, credentials, a bug) is recorded as a
    ``failed`` run before the error goes on to the caller.
    """
    run_id = uuid.uuid4().hex[:12]
    with structlog.contextvars.bound_contextvars(run_id=run_id, instance=rt.settings.instance):
        sync = _Sync(rt, opts, run_id, lease)
        try:
            return sync.run()
        except RunInterrupted as exc:  # asked to stop before anything was written
            sync.record_failure(exc)
            return sync.interrupted(str(exc))
        except Exception as exc:
            if opts.apply:
                sync.record_failure(exc)
            raise


class _Sync:
    def __init__(self, rt: Runtime, opts: RunOptions, run_id: str, lease: LeaseKeeper | None) -> None:
        self.rt = rt
        self.s = rt.settings
        self.opts = opts
        self.run_id = run_id
        self.keeper = lease
        self.started = datetime.now(UTC)
        self.t0 = time.monotonic()
        self.warnings: list[str] = []
        self.truncations: Counter[str] = Counter()
        self.owners_unknown: set[str] = set()  # devices whose owner read failed: not committed as done

    # -- the run --------------------------------------------------------------------------

    def run(self) -> RunResult:
        from importer.assets import resolve_schema

        self.rt.new_run()
        compiled = compile_mapping(self.s)
        names = [e.name for e in self.s.mapping.object_types]
        unknown = [n for n in self.opts.only if n not in compiled]
        if unknown:
            raise ConfigError(
                f"--only: unknown mapped type(s) {', '.join(unknown)} (known: {', '.join(names)})"
            )
        chosen = [compiled[n] for n in names if not self.opts.only or n in self.opts.only]
        self.schema = resolve_schema(self.rt.assets(), self.s.assets.schema_key, requirements(self.s))
        reads, full_sources = self._read_sources(chosen)
        self._check_stop()
        works = [self._work(e, reads[e.entry.source], e.entry.source in full_sources) for e in chosen]
        self.by_name = {w.name: w for w in works}
        owners = self._owners(works)
        for work in works:
            self._map(work, owners)
        # Mapped: the Graph records and owners are not needed again; on a 100k tenant they hold
        # ~85 MB, so let them go before the Assets objects are read.
        del owners
        reads = {src: replace(read, records=()) for src, read in reads.items()}
        for work in works:
            work.read = reads[work.entry.entry.source]
            if not work.full:
                self._load_current(work)  # lookups by key, after the content hashes skipped what they could
        self.accounts = self.rt.accounts(self._cached_accounts(works))
        if self.accounts.pending(self._account_keys(works)) > _PREFETCH_ACCOUNTS:
            self.accounts.prefetch()  # one request per 1,000 accounts instead of one per email
        for work in self._dependency_order(works):
            if not work.full:
                self._normalise(work)
            elif any(a.reference == work.name for a in work.entry.attributes):
                self._load_current(work)  # its references to itself need its objects' ids first
                self._normalise(work)
                self._set_aside_unchanged(work)
            else:
                self._normalise(work)  # first: the read then keeps only the ids of objects as desired
                self._load_current(work, set_aside=True)
        for work in works:
            work.raw.clear()  # normalised (work.desired holds the same dicts); the plan needs only that
        plan = self._plan(works)
        if not self.opts.apply:
            return self._result(plan, "planned")
        if plan.verdict is not None and plan.verdict.refused:
            self._record("refused", plan, error=plan.verdict.reason)
            return self._result(plan, "refused", message=plan.verdict.reason)
        reason = self._should_stop()
        if reason:
            self._record("interrupted", plan, error=reason)
            return self._result(plan, "interrupted", message=reason)
        applied = apply_plan(
            plan,
            _Writer(self.rt, self.by_name),
            max_concurrency=self.s.http.max_concurrency,
            max_failure_percent=self.s.sync.max_failure_percent,
            progress=self.opts.progress,
            should_stop=self._should_stop,
        )
        return self._finish(plan, works, reads, applied)

    def _check_stop(self) -> None:
        """Stop between phases when asked (SIGTERM, lost lease): nothing is written or committed."""
        reason = self._should_stop() if self.opts.apply else None
        if reason:
            raise RunInterrupted(reason)

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

    def record_failure(self, exc: BaseException) -> None:
        """Record a sync that ended with an exception (never raises)."""
        from importer.logs import scrub_text
        from importer.state import RunRecord

        outcome = "interrupted" if isinstance(exc, RunInterrupted) else "failed"
        try:
            self.rt.state.record_run(
                RunRecord(
                    run_id=self.run_id,
                    instance=self.s.instance,
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

    def _should_stop(self) -> str | None:
        if self.keeper is not None and self.keeper.lost:
            return self.keeper.lost
        return self.opts.should_stop() if self.opts.should_stop else None

    # -- reads ----------------------------------------------------------------------------

    def _read_sources(self, chosen: Iterable[CompiledEntry]) -> tuple[dict[str, SourceRead], set[str]]:
        graph = self.rt.graph()
        intune = self.s.entra.owners == "intune"
        selects: dict[str, set[str]] = {}
        for e in chosen:
            selects.setdefault(e.entry.source, set()).update(e.select)
        reads: dict[str, SourceRead] = {}
        full: set[str] = set()
        for source in sorted(selects):
            select = sorted(selects[source])
            fingerprint = self._fingerprint(source, select)
            delta = self.rt.state.get_delta(source)
            link = (
                None
                if self.opts.full or delta is None or delta.select_fingerprint != fingerprint
                else delta.link
            )
            if link is None and delta is not None and delta.select_fingerprint != fingerprint:
                _log.info("full_read_forced", source=source, reason="mapping or $select changed")
            read = graph.read(source, select=select, delta_link=link, intune_owners=intune)  # type: ignore[arg-type]
            if read.full_read_needed:
                _log.warning("delta_link_expired", source=source)
                self.warnings.append(f"{source}: the delta link had expired; this run read everything")
                read = graph.read(source, select=select, intune_owners=intune)  # type: ignore[arg-type]
                link = None
            if isinstance(read.error, CredentialError):
                raise read.error
            if not read.complete:
                self.warnings.append(f"{source}: the read from Entra did not complete ({read.error})")
            _log.info(
                "source_read",
                source=source,
                mode="incremental" if link else "full",
                records=len(read.records),
                removed=len(read.removed),
                pages=read.pages,
                complete=read.complete,
            )
            reads[source] = read
            if link is None:
                full.add(source)
        return reads, full

    def _fingerprint(self, source: str, select: list[str]) -> str:
        from importer.graph import effective_select, select_fingerprint

        intune = self.s.entra.owners == "intune"
        base = select_fingerprint(effective_select(source, select, intune_owners=intune))  # type: ignore[arg-type]
        mapping = [
            e.model_dump(mode="json", by_alias=True)
            for e in self.s.mapping.object_types
            if e.source == source
        ]
        # The ids of the types and attributes written: one deleted and recreated in Assets (empty
        # now) must be refilled by a full run, which the id map's content hashes would skip.
        wanted = {r.name: [a.name for a in r.attributes] for r in requirements(self.s)}
        ids = sorted(
            (self.schema.type(e.object_type).id, name, self.schema.type(e.object_type).attribute(name).id)
            for e in self.s.mapping.object_types
            if e.source == source
            for name in wanted[e.object_type]
        )
        extra = hashlib.sha256(
            json.dumps([mapping, self.s.entra.owners, ids], sort_keys=True).encode()
        ).hexdigest()[:16]
        return f"{base}+{extra}"

    def _work(self, entry: CompiledEntry, read: SourceRead, full: bool) -> _Work:
        return _Work(entry=entry, rtype=self.schema.type(entry.entry.object_type), full=full, read=read)

    def _owners(self, works: list[_Work]) -> OwnersRead | None:
        devices = {r.id: r for w in works if w.entry.uses_owner for r in w.read.records}
        if not devices:
            return None
        owners = self.rt.graph().read_owners(list(devices.values()), intune=self.s.entra.owners == "intune")
        if not owners.complete:
            self.owners_unknown = set(owners.failed)
            self.warnings.append(
                f"device owners: {len(owners.failed)} could not be read ({owners.error}); "
                "their owner is left as is"
            )
        return owners

    # -- map, current, normalise --------------------------------------------------------------

    def _map(self, work: _Work, owners: OwnersRead | None) -> None:
        key = work.entry.entry.key
        for rec in work.read.records:
            owner = owners.owners.get(rec.id) if owners is not None else None
            desired = map_record(work.entry, rec.id, rec.fields, owner=owner.user_id if owner else None)
            if desired is None:
                work.removed[rec.id] = "filtered"
                continue
            values = dict(desired.values)
            values[key] = rec.id
            work.raw[rec.id] = values
            work.hashes[rec.id] = content_hash(values)
        for rec in work.read.removed:
            work.removed[rec.id] = rec.removed or "deleted"

    def _load_current(self, work: _Work, *, set_aside: bool = False) -> None:
        objects = self.rt.objects()
        if work.full:
            result = objects.read_objects(work.rtype, compact=self._as_desired(work) if set_aside else None)
            work.current = dict(result.objects)
            work.managed = len(result.objects)
            if set_aside:
                self._set_aside_unchanged(work)
            if result.unkeyed:
                self.warnings.append(
                    f"{work.name}: {len(result.unkeyed)} objects without {work.entry.entry.key} "
                    "are not managed and were left alone"
                )
            if result.duplicates:
                self.warnings.append(
                    f"{work.name}: {len(result.duplicates)} key values are held by several "
                    "objects; only the oldest is managed, the others were left alone"
                )
            return
        known = self.rt.state.get_id_entries(work.name, set(work.raw) | set(work.removed))
        work.skipped = {
            sid for sid, h in work.hashes.items() if sid in known and known[sid].content_hash == h
        }
        wanted = (set(work.raw) - work.skipped) | set(work.removed)
        work.current = objects.find_by_keys(work.rtype, wanted) if wanted else {}
        work.stale = {sid for sid in work.removed if sid in known and sid not in work.current}
        work.managed = self.rt.state.count_id_map(work.name)

    def _as_desired(self, work: _Work) -> Callable[[AssetsObject], AssetsObject]:
        """For ``read_objects``: an object already as desired is kept without its values."""
        clear = frozenset(a.name for a in work.entry.attributes if a.clear_on_null)

        def compact(obj: AssetsObject) -> AssetsObject:
            want = work.desired.get(obj.key or "")
            if want is None or differs(want, obj.values, clear):
                return obj
            return replace(obj, label=None, values=_AS_DESIRED)

        return compact

    def _set_aside_unchanged(self, work: _Work) -> None:
        """Full runs: objects already as desired leave the plan's inputs now, keeping only their id.

        Every object of a type held twice (as read and as desired) until the plan was built made
        most of a full run's memory (440 MB at 100,000 objects). The test is the plan's own
        (``plan.differs``), so the plan is the same; they are counted as unchanged.
        """
        clear = frozenset(a.name for a in work.entry.attributes if a.clear_on_null)
        same = [
            sid
            for sid, want in work.desired.items()
            if sid in work.current
            and (
                work.current[sid].values is _AS_DESIRED or not differs(want, work.current[sid].values, clear)
            )
        ]
        for sid in same:
            work.same[sid] = work.current.pop(sid).id
            del work.desired[sid]

    def _account_keys(self, works: list[_Work]) -> set[str]:
        return {
            self._account_key(v.email)
            for w in works
            for sid, values in w.raw.items()
            if sid not in w.skipped
            for v in values.values()
            if isinstance(v, AccountEmail)
        }

    def _cached_accounts(self, works: list[_Work]) -> dict[str, str | None]:
        keys = self._account_keys(works)
        cached = self.rt.state.get_accounts(keys) if keys else {}
        return {k: c.account_id for k, c in cached.items()}

    def _account_key(self, email: str) -> str:
        return self.rt.pseudonyms.pseudonym(email, kind="acct")

    def _dependency_order(self, works: list[_Work]) -> list[_Work]:
        """Referenced types first, so their pending creates are known when references resolve."""
        deps = {w.name: [a.reference for a in w.entry.attributes if a.reference] for w in works}
        order = type_order([w.name for w in works], deps)
        return sorted(works, key=lambda w: order[w.name])

    def _normalise(self, work: _Work) -> None:
        from importer.assets import normalize

        entry = work.entry.entry
        refs = self._resolve_refs(work)
        policy = self.s.missing_policy(entry)
        mark_active = (
            self._mark_value(work, entry.mark.active) if policy != "ignore" and entry.mark.active else None
        )
        for sid, out in work.raw.items():
            if sid in work.skipped:
                continue
            # In place: one dict per record instead of two (the raw values are not needed again;
            # the content hash was taken in _map). 50 MB at 100,000 objects.
            for name, value in out.items():
                attr = work.rtype.attribute(name)
                if isinstance(value, Ref):
                    out[name] = refs.get(value.source_id)
                elif isinstance(value, AccountEmail):
                    out[name] = self.accounts.resolve(value.email, key=self._account_key(value.email))
                else:
                    try:
                        out[name] = normalize(attr, value, truncations=self.truncations)
                    except ValueError:
                        self.truncations[f"{name}: unusable value"] += 1
                        out[name] = None
            if mark_active is not None:
                out[entry.mark.attribute] = mark_active
            work.desired[sid] = out

    def _mark_value(self, work: _Work, value: str) -> object:
        from importer.assets import normalize

        mark = work.entry.entry.mark
        if mark.type == "status":
            return self.schema.status_id(value)
        return normalize(work.rtype.attribute(mark.attribute), value)

    def _resolve_refs(self, work: _Work) -> dict[str, object]:
        """Graph ids of referenced records ─► Assets object ids, or Pending when this plan creates them."""
        wanted: dict[str, set[str]] = {}
        for sid, values in work.raw.items():
            if sid in work.skipped:
                continue
            for value in values.values():
                if isinstance(value, Ref):
                    wanted.setdefault(value.type, set()).add(value.source_id)
        out: dict[str, object] = {}
        for target, ids in wanted.items():
            other = self.by_name.get(target)
            rest = set(ids)
            if other is not None:
                for sid in list(rest):
                    if sid in other.current:
                        out[sid] = other.current[sid].id
                        rest.discard(sid)
                    elif sid in other.same:
                        out[sid] = other.same[sid]
                        rest.discard(sid)
                    elif sid in other.raw and sid not in other.skipped:
                        out[sid] = Pending(Ref(target, sid))
                        rest.discard(sid)
            if rest:
                for sid, entry in self.rt.state.get_id_entries(target, rest).items():
                    out[sid] = entry.object_id
                    rest.discard(sid)
            if rest and (other is None or not other.full):
                entry_cfg = next(e for e in self.s.mapping.object_types if e.name == target)
                rtype = self.schema.type(entry_cfg.object_type)
                for sid, obj in self.rt.objects().find_by_keys(rtype, rest).items():
                    out[sid] = obj.id
        return out

    # -- plan -------------------------------------------------------------------------------

    def _plan(self, works: list[_Work]) -> Plan:
        inputs = []
        for w in works:
            entry = w.entry.entry
            policy = self.s.missing_policy(entry)
            label = entry.label
            inputs.append(
                TypeInput(
                    name=w.name,
                    object_type=entry.object_type,
                    desired=w.desired,
                    current={
                        sid: Current(object_id=o.id, label=o.label, values=o.values)
                        for sid, o in w.current.items()
                    },
                    removed=w.removed,
                    full=w.full,
                    complete=w.read.complete,
                    missing=policy,
                    mark_attribute=entry.mark.attribute if policy != "ignore" else None,
                    mark_value=self._mark_value(w, entry.mark.value) if policy != "ignore" else None,
                    clear_on_null=frozenset(a.name for a in w.entry.attributes if a.clear_on_null),
                    managed=w.managed,
                    unchanged=len(w.skipped) + len(w.same),
                    labels={sid: str(v[label]) for sid, v in w.desired.items() if v.get(label)},
                )
            )
        deps = {w.name: [a.reference for a in w.entry.attributes if a.reference] for w in works}
        for reason, count in sorted(self.truncations.items()):
            self.warnings.append(
                f"{count} values of {reason}"
                if ":" in reason
                else f"{count} values of {reason} were cut to the Text limit"
            )
        mode: Literal["full", "incremental"] = "full" if any(w.full for w in works) else "incremental"
        plan = build_plan(inputs, mode=mode, dependencies=deps, warnings=self.warnings)
        approved = self.opts.approve
        if approved is None and self.opts.apply:
            stored = self.rt.state.get_approval(plan.plan_hash)
            approved = stored.plan_hash if stored else None
        plan = guard(
            plan,
            managed={w.name: w.managed for w in works},
            delete_max=self.s.sync.delete_max,
            delete_max_percent=self.s.sync.delete_max_percent,
            approved_hash=approved,
        )
        s = plan.summary()
        _log.info(
            "plan_built",
            mode=mode,
            plan_hash=plan.plan_hash,
            **s,
            refused=bool(plan.verdict and plan.verdict.refused),
        )
        return plan

    # -- finish -----------------------------------------------------------------------------

    def _finish(
        self, plan: Plan, works: list[_Work], reads: Mapping[str, SourceRead], applied: ApplyResult
    ) -> RunResult:
        from importer.state import Approval, CachedAccount, DeltaState, IdMapChanges, IdMapEntry

        if plan.verdict is not None and plan.verdict.approved:
            self.rt.state.add_approval(
                Approval(plan_hash=plan.plan_hash, approved_at=self.started, approved_by=self.opts.trigger)
            )
        # A device whose owner could not be read is retried like a failed write: no content hash,
        # and its source's delta link stays, so the next run reads it (and its owner) again.
        owners_unknown = {
            (w.name, sid)
            for w in works
            if w.entry.uses_owner
            for sid in self.owners_unknown & (w.desired.keys() | w.same.keys())
        }
        failed = applied.failed_ids | owners_unknown
        if applied.aborted:
            outcome: Outcome = "interrupted" if applied.interrupted else "failed"
            self._record(outcome, plan, applied=applied, error=applied.aborted)
            return self._result(plan, outcome, applied=applied, message=applied.aborted)
        deleted = {(c.type, c.source_id) for c in plan.changes if c.action == "delete"} - failed
        gone = {(f.type, f.source_id) for f in applied.failures if f.gone}
        id_maps: dict[str, IdMapChanges] = {}
        for w in works:
            upserts: dict[str, IdMapEntry] = {}
            for sid in w.desired:
                object_id = w.current[sid].id if sid in w.current else applied.created.get((w.name, sid))
                if object_id is not None and (w.name, sid) not in gone:
                    upserts[sid] = IdMapEntry(
                        object_id=object_id, content_hash="" if (w.name, sid) in failed else w.hashes[sid]
                    )
            for sid, object_id in w.same.items():
                upserts[sid] = IdMapEntry(
                    object_id=object_id, content_hash="" if (w.name, sid) in failed else w.hashes[sid]
                )
            for sid, obj in w.current.items():
                if sid not in w.desired and (w.name, sid) not in deleted | gone:
                    upserts[sid] = IdMapEntry(object_id=obj.id, content_hash="")
            drop = {sid for (t, sid) in deleted | gone if t == w.name} | w.stale
            id_maps[w.name] = IdMapChanges(upserts=upserts, deletes=drop, replace_all=w.full)
        now = datetime.now(UTC)
        bad_sources = {self.by_name[t].entry.entry.source for (t, _) in failed}
        deltas = {
            src: DeltaState(
                source=src,
                link=r.delta_link,
                select_fingerprint=self._fingerprint(
                    src, sorted({f for w in works if w.entry.entry.source == src for f in w.entry.select})
                ),
                updated_at=now,
            )
            for src, r in reads.items()
            if r.complete and r.delta_link and src not in bad_sources
        }
        outcome = "success" if not applied.failures and not owners_unknown and plan.is_complete else "partial"
        run = self._run_record(outcome, plan, applied=applied)
        lease = self.keeper.current() if self.keeper is not None else None
        crash_point("commit")  # test-only (IMPORTER_CRASH_AT): a crash between apply and commit
        self.rt.state.commit(lease, deltas=deltas, id_maps=id_maps, run=run)
        crash_point("committed")
        snapshot = self.accounts.snapshot(include_unknown=True)
        if snapshot:
            self.rt.state.put_accounts(
                CachedAccount(key=k, account_id=v, cached_at=now) for k, v in snapshot.items()
            )
        message = None
        if applied.failures:
            message = f"{len(applied.failures)} objects failed; they will be retried on the next run"
        elif owners_unknown:
            message = (
                f"the owners of {len(owners_unknown)} devices could not be read; "
                "the next run reads them again"
            )
        elif not plan.is_complete:
            message = "a source read was incomplete; the next run reads it again"
        return self._result(plan, outcome, applied=applied, message=message)

    def _counts(self, applied: ApplyResult | None) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        if applied is not None:
            for (t, action), n in applied.counts.items():
                out.setdefault(t, {})[action] = n
            for f in applied.failures:
                bucket = out.setdefault(f.type, {})
                bucket["failed"] = bucket.get("failed", 0) + 1
        return out

    def _run_record(
        self, outcome: str, plan: Plan, *, applied: ApplyResult | None = None, error: str | None = None
    ) -> RunRecord:
        from importer.state import RunRecord

        counts = (
            self._counts(applied) if applied is not None else {t: dict(c) for t, c in plan.by_type().items()}
        )
        return RunRecord(
            run_id=self.run_id,
            instance=self.s.instance,
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

    def _record(
        self, outcome: str, plan: Plan, *, applied: ApplyResult | None = None, error: str | None = None
    ) -> None:
        self.rt.state.record_run(self._run_record(outcome, plan, applied=applied, error=error))

    def _result(
        self, plan: Plan, outcome: Outcome, *, applied: ApplyResult | None = None, message: str | None = None
    ) -> RunResult:
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
            applied=self._counts(applied),
            requests=requests,
            duration_s=duration,
            message=message,
        )


class _Writer:
    """apply's writes, over AssetsObjects and the resolved types."""

    def __init__(self, rt: Runtime, works: Mapping[str, _Work]) -> None:
        self.objects = rt.objects()
        self.types = {name: w.rtype for name, w in works.items()}

    def create(self, type_name: str, values: Mapping[str, object]) -> str:
        return self.objects.create_object(self.types[type_name], values)  # type: ignore[arg-type]

    def update(self, type_name: str, object_id: str, values: Mapping[str, object]) -> None:
        self.objects.update_object(object_id, self.types[type_name], values)  # type: ignore[arg-type]

    def delete(self, type_name: str, object_id: str) -> None:
        self.objects.delete_object(object_id)
