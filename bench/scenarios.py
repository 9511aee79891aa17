"""The scenarios, in the order they run, and the lower bound of each.

(a)–(e) run on one sandbox per size, one after the other, each starting from where the last
ended; the baseline repeats the same sequence on a second sandbox with the same seed (same
tenant, same mutations). (f) gets a fresh sandbox per variant.

Lower bound (requests Atlassian must see at the least): one write per changed object, plus,
for a run that must read the target (initial and full runs), one AQL page of 500 per 500
objects per type (at least one page per type). An incremental run needs no read at all (the
id map knows the object ids), so its bound is its writes alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Measurement, Tenant, open_tenant

__all__ = ["FAST", "SCENARIOS", "FResult", "Row", "lower_bound", "run_baseline", "run_f", "run_importer"]

PAGE = 500
MUTATION_SEEDS = {"c": 101, "e": 202}
# The sandbox writes requests_per_minute: 20000; 100,000 (the config's maximum) keeps the
# importer's own limiter from being what (a)–(e) measure.
FAST: dict[str, dict[str, Any]] = {"http": {"requests_per_minute": 100_000}}


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    args: tuple[str, ...]
    full_read: bool
    mutate: bool


SCENARIOS = (
    Scenario("a", "initial sync into an empty schema", ("sync",), True, False),
    Scenario("b", "incremental, no change", ("sync",), False, False),
    Scenario("c", "incremental, 1% changed", ("sync",), False, True),
    Scenario("d", "full resync, no change", ("sync", "--full"), True, False),
    Scenario("e", "full resync, 1% changed", ("sync", "--full"), True, True),
)
BASELINE_OF = {"a": "a", "b": "b", "c": "c", "d": "b", "e": "c"}  # it has one mode: (d) is (b), (e) is (c)


def lower_bound(size: int, *, changed: int, full_read: bool, empty: bool = False) -> int:
    """Fewest Atlassian requests: the writes, plus one AQL page per 500 objects per type when reading.

    ``empty``: the types hold nothing yet (an initial sync reads one empty page per type).
    """
    per_type = (0, 0) if empty else (size // 2, size - size // 2)
    reads = sum(max(1, math.ceil(n / PAGE)) for n in per_type) if full_read else 0
    return changed + reads


@dataclass(slots=True)
class Row:
    """One scenario at one size: the importer's runs (idempotent ones repeat), the baseline's, the bound."""

    size: int
    scenario: Scenario
    runs: list[Measurement]
    changed: int
    bound: int
    baseline: Measurement | None = None
    baseline_note: str = ""

    @property
    def importer(self) -> Measurement:
        """The run whose wall time is the median (the only run for scenarios that cannot repeat)."""
        ordered = sorted(self.runs, key=lambda m: m.wall_s)
        return ordered[(len(ordered) - 1) // 2]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        walls = [m.wall_s for m in self.runs]
        return {
            "size": self.size,
            "scenario": self.scenario.key,
            "title": self.scenario.title,
            "changed_objects": self.changed,
            "lower_bound_atlassian": self.bound,
            "importer": self.importer.as_dict(),
            "importer_wall_s_all_runs": walls,
            "importer_wall_s_spread": round(max(walls) - min(walls), 3),
            "baseline": self.baseline.as_dict() if self.baseline else None,
            "baseline_note": self.baseline_note,
        }


def _mutate(tenant: Tenant, key: str) -> int:
    k = tenant.size // 200  # half of 1% on each side
    touched = tenant.sb.mutate(update_users=k, update_devices=k, seed=MUTATION_SEEDS[key])
    return sum(len(touched.get(name, [])) for name in ("update_users", "update_devices"))


def run_importer(size: int, *, repeat: int, log: Callable[[str], None]) -> list[Row]:
    """(a)–(e) for the importer on a fresh sandbox of ``size`` objects."""
    rows: list[Row] = []
    with open_tenant(size, overrides=FAST) as tenant:
        for sc in SCENARIOS:
            changed = _mutate(tenant, sc.key) if sc.mutate else (size if sc.key == "a" else 0)
            idempotent = sc.key in ("b", "d")
            runs = [tenant.run("importer", *sc.args) for _ in range(repeat if idempotent else 1)]
            bound = lower_bound(size, changed=changed, full_read=sc.full_read, empty=sc.key == "a")
            row = Row(size, sc, runs, changed, bound)
            rows.append(row)
            m = row.importer
            log(
                f"  importer ({sc.key}) {m.wall_s:7.2f} s  {m.total():>7} requests  "
                f"{m.max_rss_mb:6.1f} MB  {m.summary[:90]}"
            )
    return rows


def run_baseline(size: int, rows: list[Row], *, log: Callable[[str], None]) -> None:
    """The naive baseline's (a), (b), (c) on a second sandbox with the same seed; fills ``rows``."""
    done: dict[str, Measurement] = {}
    with open_tenant(size, overrides=FAST) as tenant:
        for key in ("a", "b", "c"):
            if key == "c":
                _mutate(tenant, key)
            done[key] = tenant.run("baseline")
            m = done[key]
            log(
                f"  baseline ({key}) {m.wall_s:7.2f} s  {m.total():>7} requests  "
                f"{m.max_rss_mb:6.1f} MB  {m.summary}"
            )
    for row in rows:
        source = BASELINE_OF[row.scenario.key]
        row.baseline = done[source]
        if source != row.scenario.key:
            row.baseline_note = f"the baseline's ({source}): it has no full/incremental modes"


@dataclass(slots=True)
class FResult:
    """(f): an initial sync under 50 ms of Assets latency, with or without a 1,000/min limit."""

    size: int
    concurrency: int
    limited: bool
    m: Measurement
    bound: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "size": self.size,
            "max_concurrency": self.concurrency,
            "assets_per_minute": 1000 if self.limited else None,
            "importer_requests_per_minute": 1000 if self.limited else 100_000,
            "latency_ms": 50,
            "lower_bound_atlassian": self.bound,
            "floor_s_at_limit": round(self.bound / 1000 * 60, 1) if self.limited else None,
            "importer": self.m.as_dict(),
        }


def run_f(size: int, *, log: Callable[[str], None]) -> list[FResult]:
    """(f) at ``size``: concurrency 1 and 8, with the 1,000/min limit (as specified) and without it."""
    out: list[FResult] = []
    for limited in (True, False):
        for conc in (1, 8):
            rpm = 1000 if limited else 100_000
            overrides = {"http": {"requests_per_minute": rpm, "max_concurrency": conc}}
            with open_tenant(size, overrides=overrides) as tenant:
                tenant.sb.set_faults(
                    latency_ms=50, assets_per_minute=1000 if limited else 0, service="assets"
                )
                m = tenant.run("importer", "sync")
            bound = lower_bound(size, changed=size, full_read=True, empty=True)
            out.append(FResult(size, conc, limited, m, bound))
            log(
                f"  (f) {size} {'1,000/min' if limited else 'no limit'} concurrency {conc}: "
                f"{m.wall_s:7.1f} s, "
                f"{m.throttled} x 429, max {m.max_assets_per_60s} Assets requests in 60 s"
            )
    return out


def speedup(results: list[FResult], *, limited: bool) -> float | None:
    """Wall time at concurrency 1 over wall time at concurrency 8."""
    by = {r.concurrency: r.m.wall_s for r in results if r.limited == limited}
    return round(by[1] / by[8], 2) if 1 in by and 8 in by and by[8] else None


def median(values: list[float]) -> float:
    """The median, for repeated runs."""
    return statistics.median(values) if values else 0.0
