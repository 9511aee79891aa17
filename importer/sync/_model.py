"""What a run is asked to do, what it did, and the per-type working set it carries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from importer.apply import ObjectFailure, Progress
from importer.errors import EXIT_FAILED, EXIT_GUARD, EXIT_OK, EXIT_PLAN_CHANGES
from importer.mapping import AccountEmail, CompiledEntry, Ref
from importer.plan import Plan

if TYPE_CHECKING:
    from importer.assets import AssetsObject, ResolvedSchema, ResolvedType
    from importer.graph import SourceRead

__all__ = ["Outcome", "RunOptions", "RunResult", "Work", "content_hash"]

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
        """The CLI exit code for this result.

        A plan built from an incomplete read from Entra exits ``EXIT_FAILED``: it may miss
        changes, so "no changes" would be a false all-clear (the rendered plan says why).
        """
        if self.outcome == "refused":
            return EXIT_GUARD
        if self.outcome == "planned":
            if self.plan.verdict is not None and self.plan.verdict.refused:
                return EXIT_GUARD
            if not self.plan.is_complete:
                return EXIT_FAILED
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


@dataclass(slots=True)
class Work:
    """One mapped type during a run: its records as mapped, then as desired, and its objects."""

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
        """The mapped type's name (``mapping.object_types[].name``)."""
        return self.entry.entry.name
