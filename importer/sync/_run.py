"""One run, in order: schema, read, map, current, normalise, plan, guard, apply, commit."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Set
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import structlog

from importer.apply import ApplyResult, apply_plan
from importer.crashpoints import crash_point
from importer.errors import ConfigError
from importer.mapping import compile_mapping, map_record
from importer.plan import Current, Plan, TypeInput, build_plan, guard, type_order
from importer.sync._lease import LeaseKeeper, RunInterrupted
from importer.sync._model import Outcome, RunOptions, RunResult, Work, content_hash
from importer.sync._read import read_owners, read_sources, source_fingerprint
from importer.sync._record import Recorder
from importer.sync._schema import requirements
from importer.sync._target import Targets, Writer

if TYPE_CHECKING:
    from importer.graph import OwnersRead, SourceRead
    from importer.runtime import Runtime

__all__ = ["run_sync"]

_log = structlog.get_logger("importer.sync")
# Expired run records, approvals and cached accounts are deleted after a committed sync at most
# this often (cron and CI deployments have no daemon to run the daily sweep).
_SWEEP_EVERY = timedelta(days=1)


def run_sync(rt: Runtime, opts: RunOptions, *, lease: LeaseKeeper | None = None) -> RunResult:
    """Run once. ``plan`` passes ``apply=False`` (no lease, no writes, no state change).

    A sync (``apply=True``) that raises (schema drift, credentials, a bug) is recorded as a
    ``failed`` run before the error goes on to the caller.
    """
    run_id = uuid.uuid4().hex[:12]
    with structlog.contextvars.bound_contextvars(run_id=run_id, instance=rt.settings.instance):
        sync = _Sync(rt, opts, Recorder(rt, opts, run_id, lease))
        try:
            return sync.run()
        except RunInterrupted as exc:  # asked to stop before anything was written
            sync.recorder.failure(exc)
            return sync.recorder.interrupted(str(exc))
        except Exception as exc:
            if opts.apply:
                sync.recorder.failure(exc)
            raise


class _Sync:
    def __init__(self, rt: Runtime, opts: RunOptions, recorder: Recorder) -> None:
        self.rt = rt
        self.s = rt.settings
        self.opts = opts
        self.recorder = recorder
        self.keeper = recorder.keeper
        self.warnings: list[str] = []
        self.owners_unknown: set[str] = set()  # devices whose owner read failed: not committed as done

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
        self.recorder.schema = self.schema
        reads, full_sources = read_sources(self.rt, self.opts, self.schema, chosen, self.warnings)
        self._check_stop()
        works = [
            Work(
                entry=e,
                rtype=self.schema.type(e.entry.object_type),
                full=e.entry.source in full_sources,
                read=reads[e.entry.source],
            )
            for e in chosen
        ]
        self.by_name = {w.name: w for w in works}
        owners, self.owners_unknown = read_owners(self.rt, works, self.warnings)
        for work in works:
            _map(work, owners, self.owners_unknown)
        # Mapped: the Graph records and owners are not needed again; on a 100k tenant they hold
        # ~85 MB, so let them go before the Assets objects are read.
        del owners
        reads = {src: replace(read, records=()) for src, read in reads.items()}
        self.targets = targets = Targets(self.rt, self.schema, self.by_name, self.warnings)
        for work in works:
            work.read = reads[work.entry.entry.source]
            if not work.full:
                targets.load_current(work)  # lookups by key, after the content hashes skipped what they could
        targets.open_accounts(works)
        for work in _dependency_order(works):
            if not work.full:
                targets.normalise(work)
            elif any(a.reference == work.name for a in work.entry.attributes):
                targets.load_current(work)  # its references to itself need its objects' ids first
                targets.normalise(work)
                targets.set_aside_unchanged(work)
            else:
                targets.normalise(work)  # first: the read then keeps only the ids of objects as desired
                targets.load_current(work, set_aside=True)
        for work in works:
            work.raw.clear()  # normalised (work.desired holds the same dicts); the plan needs only that
        plan = self._plan(works)
        if not self.opts.apply:
            return self.recorder.result(plan, "planned")
        if plan.verdict is not None and plan.verdict.refused:
            self.recorder.record("refused", plan, error=plan.verdict.reason)
            return self.recorder.result(plan, "refused", message=plan.verdict.reason)
        reason = self._should_stop()
        if reason:
            self._keep_approval(plan)
            self.recorder.record("interrupted", plan, error=reason)
            return self.recorder.result(plan, "interrupted", message=reason)
        applied = apply_plan(
            plan,
            Writer(self.rt, self.by_name),
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

    def _should_stop(self) -> str | None:
        if self.keeper is not None and self.keeper.lost:
            return self.keeper.lost
        return self.opts.should_stop() if self.opts.should_stop else None

    # -- plan -------------------------------------------------------------------------------

    def _plan(self, works: list[Work]) -> Plan:
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
                    mark_value=self.targets.mark_value(w, entry.mark.value) if policy != "ignore" else None,
                    clear_on_null=frozenset(a.name for a in w.entry.attributes if a.clear_on_null),
                    managed=w.managed,
                    unchanged=len(w.skipped) + len(w.same),
                    labels={sid: str(v[label]) for sid, v in w.desired.items() if v.get(label)},
                )
            )
        deps = {w.name: [a.reference for a in w.entry.attributes if a.reference] for w in works}
        for reason, count in sorted(self.targets.truncations.items()):
            self.warnings.append(
                f"{count} values of {reason}"
                if ":" in reason
                else f"{count} values of {reason} were cut to the Text limit"
            )
        mode: Literal["full", "incremental"] = "full" if any(w.full for w in works) else "incremental"
        plan = build_plan(inputs, mode=mode, dependencies=deps, warnings=self.warnings)
        if not self.opts.apply and not plan.is_complete:
            plan = replace(
                plan,
                warnings=(
                    *plan.warnings,
                    "this plan is incomplete (a read from Entra did not complete) and may miss changes; "
                    "`importer plan` exits 1 for an incomplete plan",
                ),
            )
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

    # -- commit -----------------------------------------------------------------------------

    def _finish(
        self, plan: Plan, works: list[Work], reads: Mapping[str, SourceRead], applied: ApplyResult
    ) -> RunResult:
        from importer.state import DeltaState, IdMapChanges, IdMapEntry

        rec = self.recorder
        # A device whose owner could not be read is retried like a failed write: no content hash,
        # and its source's delta link does not move (a full read's is forgotten, below), so the
        # next run reads it (and its owner) again.
        owners_unknown = {
            (w.name, sid)
            for w in works
            if w.entry.uses_owner
            for sid in self.owners_unknown & (w.desired.keys() | w.same.keys())
        }
        failed = applied.failed_ids | owners_unknown
        if applied.aborted:
            self._keep_approval(plan)
            outcome: Outcome = "interrupted" if applied.interrupted else "failed"
            rec.record(outcome, plan, applied=applied, error=applied.aborted)
            return rec.result(plan, outcome, applied=applied, message=applied.aborted)
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
        # A source read in full whose records failed must be read in full again: its new delta link
        # would skip the failed records that did not change, and its old one (if any) predates
        # what this full read was for (--full repairs, a changed mapping).
        full_sources = {w.entry.entry.source for w in works if w.full}
        deltas: dict[str, DeltaState | None] = {
            src: None for src in reads if src in bad_sources and src in full_sources
        }
        deltas |= {
            src: DeltaState(
                source=src,
                link=r.delta_link,
                select_fingerprint=source_fingerprint(
                    self.s,
                    self.schema,
                    src,
                    sorted({f for w in works if w.entry.entry.source == src for f in w.entry.select}),
                ),
                updated_at=now,
            )
            for src, r in reads.items()
            if r.complete and r.delta_link and src not in bad_sources
        }
        outcome = "success" if not applied.failures and not owners_unknown and plan.is_complete else "partial"
        run = rec.run_record(outcome, plan, applied=applied)
        lease = self.keeper.current() if self.keeper is not None else None
        crash_point("commit")  # test-only (IMPORTER_CRASH_AT): a crash between apply and commit
        approved = plan.verdict is not None and plan.verdict.approved
        self.rt.state.commit(
            lease,
            deltas=deltas,
            id_maps=id_maps,
            run=run,
            consumed_approval=plan.plan_hash if approved else None,
        )
        crash_point("committed")
        self._after_commit(now)
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
        return rec.result(plan, outcome, applied=applied, message=message)

    def _keep_approval(self, plan: Plan) -> None:
        """An approved plan that was not committed keeps its approval for a next run of the same plan."""
        from importer.state import Approval

        if plan.verdict is not None and plan.verdict.approved:
            self.rt.state.add_approval(
                Approval(
                    plan_hash=plan.plan_hash, approved_at=self.recorder.started, approved_by=self.opts.trigger
                )
            )

    def _after_commit(self, now: datetime) -> None:
        """Housekeeping once the run is committed: a failure here is a warning, the run stays as committed."""
        from importer.state import CachedAccount

        try:
            snapshot = self.targets.accounts.snapshot(include_unknown=True)
            if snapshot:
                self.rt.state.put_accounts(
                    CachedAccount(key=k, account_id=v, cached_at=now) for k, v in snapshot.items()
                )
        except Exception as exc:  # the next run looks the accounts up again
            _log.warning("account_cache_write_failed", error_type=type(exc).__name__)
        try:
            swept = self.rt.state.sweep_if_due(every=_SWEEP_EVERY)
        except Exception as exc:  # the next committed run tries again
            _log.warning("retention_sweep_failed", error_type=type(exc).__name__)
        else:
            if swept is not None:
                _log.info("retention_swept", records=swept)


def _map(work: Work, owners: OwnersRead | None, owners_unknown: Set[str]) -> None:
    """Graph records ─► mapped values (``work.raw``) and their content hashes; removals noted.

    A device whose owner could not be read (``owners_unknown``) is mapped without its
    owner-derived attributes: its owner is left as it is in Assets, not cleared.
    """
    key = work.entry.entry.key
    from_owner = {a.name for a in work.entry.attributes if a.from_owner}
    for rec in work.read.records:
        owner = owners.owners.get(rec.id) if owners is not None else None
        desired = map_record(work.entry, rec.id, rec.fields, owner=owner.user_id if owner else None)
        if desired is None:
            work.removed[rec.id] = "filtered"
            continue
        values = dict(desired.values)
        if from_owner and rec.id in owners_unknown:
            for name in from_owner:
                values.pop(name, None)
        values[key] = rec.id
        work.raw[rec.id] = values
        work.hashes[rec.id] = content_hash(values)
    for rec in work.read.removed:
        work.removed[rec.id] = rec.removed or "deleted"


def _dependency_order(works: list[Work]) -> list[Work]:
    """Referenced types first, so their pending creates are known when references resolve."""
    deps = {w.name: [a.reference for a in w.entry.attributes if a.reference] for w in works}
    order = type_order([w.name for w in works], deps)
    return sorted(works, key=lambda w: order[w.name])
