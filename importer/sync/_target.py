"""The Assets side of a run: the objects there now, and the desired values in Assets terms.

``Targets`` reads current objects (full runs: every object of a type, in AQL pages; incremental
runs: lookups by key for what the content hashes did not skip), resolves references to object
ids (or pending creates) and emails to Atlassian accountIds, and normalises values per attribute
kind. ``Writer`` is what apply writes through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import structlog

from importer.errors import PagingLoopError
from importer.mapping import AccountEmail, Ref
from importer.plan import Pending, differs

if TYPE_CHECKING:
    from importer.assets import AccountResolver, AssetsObject, ResolvedSchema
    from importer.assets.models import NormValue
    from importer.runtime import Runtime
    from importer.sync._model import Work

__all__ = ["Targets", "Writer"]

_log = structlog.get_logger("importer.sync")
_PREFETCH_ACCOUNTS = 20  # more unresolved emails than this: list all accounts once instead
_AS_DESIRED: Mapping[str, NormValue] = MappingProxyType({})  # values of an object read as already desired


class Targets:
    """Current objects and desired values for the types of one run (``by_name``)."""

    accounts: AccountResolver  # set by open_accounts, before the first normalise

    def __init__(
        self, rt: Runtime, schema: ResolvedSchema, by_name: Mapping[str, Work], warnings: list[str]
    ) -> None:
        self.rt = rt
        self.schema = schema
        self.by_name = by_name
        self.warnings = warnings
        self.truncations: Counter[str] = Counter()

    # -- current objects ----------------------------------------------------------------------

    def load_current(self, work: Work, *, set_aside: bool = False) -> None:
        """Read the type's objects: all of them on a full run, else those the plan may touch."""
        objects = self.rt.objects()
        if work.full:
            result = objects.read_objects(work.rtype, compact=self._as_desired(work) if set_aside else None)
            work.current = dict(result.objects)
            work.managed = len(result.objects)
            if set_aside:
                self.set_aside_unchanged(work)
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
        work.current = self.rt.objects().find_by_keys(work.rtype, wanted) if wanted else {}
        work.stale = {sid for sid in work.removed if sid in known and sid not in work.current}
        work.managed = self.rt.state.count_id_map(work.name)

    def _as_desired(self, work: Work) -> Callable[[AssetsObject], AssetsObject]:
        """For ``read_objects``: an object already as desired is kept without its values."""
        clear = frozenset(a.name for a in work.entry.attributes if a.clear_on_null)

        def compact(obj: AssetsObject) -> AssetsObject:
            want = work.desired.get(obj.key or "")
            if want is None or differs(want, obj.values, clear):
                return obj
            return replace(obj, label=None, values=_AS_DESIRED)

        return compact

    def set_aside_unchanged(self, work: Work) -> None:
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

    # -- accounts ---------------------------------------------------------------------------

    def open_accounts(self, works: list[Work]) -> None:
        """Email ─► accountId look-ups, seeded from the state's cache; many unknown: list all once."""
        keys = self._account_keys(works)
        cached = self.rt.state.get_accounts(keys) if keys else {}
        self.accounts = self.rt.accounts({k: c.account_id for k, c in cached.items()})
        if self.accounts.pending(keys) > _PREFETCH_ACCOUNTS:
            try:
                self.accounts.prefetch()  # one request per 1,000 accounts instead of one per email
            except PagingLoopError as exc:  # the site ignores startAt: look emails up one by one
                _log.warning("account_listing_failed", error=str(exc))
                self.warnings.append(
                    f"the Jira account listing could not be paged ({exc}); emails are looked up one by one"
                )

    def _account_keys(self, works: list[Work]) -> set[str]:
        return {
            self._account_key(v.email)
            for w in works
            for sid, values in w.raw.items()
            if sid not in w.skipped
            for v in values.values()
            if isinstance(v, AccountEmail)
        }

    def _account_key(self, email: str) -> str:
        return self.rt.pseudonyms.pseudonym(email, kind="acct")

    # -- desired values -----------------------------------------------------------------------

    def normalise(self, work: Work) -> None:
        """Mapped values ─► Assets values (in place), moved to ``work.desired``."""
        from importer.assets import normalize

        entry = work.entry.entry
        refs = self._resolve_refs(work)
        policy = self.rt.settings.missing_policy(entry)
        mark_active = (
            self.mark_value(work, entry.mark.active) if policy != "ignore" and entry.mark.active else None
        )
        for sid, out in work.raw.items():
            if sid in work.skipped:
                continue
            # In place: one dict per record instead of two (the raw values are not needed again;
            # the content hash was taken when mapped). 50 MB at 100,000 objects.
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

    def mark_value(self, work: Work, value: str) -> object:
        """A mark (``missing: mark``) value in Assets terms: a status id or a normalised value."""
        from importer.assets import normalize

        mark = work.entry.entry.mark
        if mark.type == "status":
            return self.schema.status_id(value)
        return normalize(work.rtype.attribute(mark.attribute), value)

    def _resolve_refs(self, work: Work) -> dict[str, object]:
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
                entry_cfg = next(e for e in self.rt.settings.mapping.object_types if e.name == target)
                rtype = self.schema.type(entry_cfg.object_type)
                for sid, obj in self.rt.objects().find_by_keys(rtype, rest).items():
                    out[sid] = obj.id
        return out


class Writer:
    """apply's writes, over AssetsObjects and the resolved types."""

    def __init__(self, rt: Runtime, works: Mapping[str, Work]) -> None:
        self.objects = rt.objects()
        self.types = {name: w.rtype for name, w in works.items()}

    def create(self, type_name: str, values: Mapping[str, object]) -> str:
        """Create one object; returns its id."""
        return self.objects.create_object(self.types[type_name], values)  # type: ignore[arg-type]

    def update(self, type_name: str, object_id: str, values: Mapping[str, object]) -> None:
        """Write the given attributes of one object."""
        self.objects.update_object(object_id, self.types[type_name], values)  # type: ignore[arg-type]

    def delete(self, type_name: str, object_id: str) -> None:
        """Delete one object."""
        self.objects.delete_object(object_id)
