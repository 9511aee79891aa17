"""``importer status``: the last runs, the next scheduled runs and the lease holder.

Everything comes from the configuration and the state store, so it works on any host, with or
without a daemon running, and without the vault (no credential is needed to read state).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from importer.schedule import next_slots

if TYPE_CHECKING:
    from rich.console import Console

    from importer.config import Settings
    from importer.state import LeaseInfo, RunRecord, StateStore

__all__ = ["gather_status", "print_status", "state_exists"]

_ACTIONS = ("create", "update", "mark", "delete", "failed")


def state_exists(settings: Settings) -> bool:
    """False when the SQLite state file has not been created yet (reading it would create it)."""
    return settings.state.backend != "sqlite" or settings.state.path.exists()


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _run(rec: RunRecord) -> dict[str, Any]:
    # Counts are what a run did. A refused run did nothing, whatever an older importer stored
    # for it (it used to store the refused plan's counts).
    counts = {} if rec.outcome == "refused" else rec.counts
    totals = dict.fromkeys(_ACTIONS, 0)
    for actions in counts.values():
        for action, count in actions.items():
            if action in totals:
                totals[action] += count
    duration = (rec.finished_at - rec.started_at).total_seconds() if rec.finished_at else None
    return {
        "run_id": rec.run_id,
        "started_at": _iso(rec.started_at),
        "finished_at": _iso(rec.finished_at),
        "duration_s": round(duration, 1) if duration is not None else None,
        "mode": rec.mode,
        "trigger": rec.trigger,
        "outcome": rec.outcome,
        "changes": totals,
        "counts": {t: dict(c) for t, c in counts.items()},
        "requests": sum(rec.requests.values()),
        "holder": rec.holder,
        "error": rec.error,
    }


def _lease(info: LeaseInfo, now: datetime) -> dict[str, Any]:
    return {
        "held": info.is_held(now),
        "holder": info.owner,
        "expires_at": _iso(info.expires_at),
        "released": info.released,
        "fence": info.fence,
    }


def gather_status(
    settings: Settings, store: StateStore | None, *, now: datetime | None = None, limit: int = 10
) -> dict[str, Any]:
    """The status as a JSON-ready document; ``store=None`` when no state exists yet."""
    now = now or datetime.now(UTC)
    sched = settings.schedule
    jobs = []
    for kind in ("incremental", "full"):
        expr = getattr(sched, kind)
        slots = next_slots(expr, sched.timezone, now=now) if expr else []
        jobs.append({"job": kind, "expression": expr, "next": [s.isoformat() for s in slots]})
    state = settings.state
    doc: dict[str, Any] = {
        "instance": settings.instance,
        "now": _iso(now),
        "state": {
            "backend": state.backend,
            "location": str(state.path) if state.backend == "sqlite" else state.table,
            "exists": store is not None,
        },
        "schedule": {"timezone": sched.timezone, "jobs": jobs},
        "lease": None,
        "runs": [],
    }
    if store is not None:
        doc["lease"] = _lease(store.lease_info(), now)
        doc["runs"] = [_run(r) for r in store.list_runs(limit=limit)]
    return doc


def _lease_line(lease: dict[str, Any] | None) -> str:
    if lease is None:
        return "no state yet (run `importer state init` or a first sync)"
    if lease["holder"] is None:
        return "never taken"
    if lease["held"]:
        return f"held by {lease['holder']} until {lease['expires_at']} (fence {lease['fence']})"
    how = "released" if lease["released"] else f"expired {lease['expires_at']}"
    return f"free (last holder {lease['holder']}, {how}, fence {lease['fence']})"


def print_status(doc: dict[str, Any], console: Console) -> None:
    """Render the status as text tables."""
    from rich.table import Table

    state = doc["state"]
    console.print(f"[bold]{doc['instance']}[/bold]  state: {state['backend']} {state['location']}")
    console.print(f"lease: {_lease_line(doc['lease'])}")
    schedule = Table(title=f"next scheduled runs ({doc['schedule']['timezone']})", title_justify="left")
    for column in ("job", "schedule", "next"):
        schedule.add_column(column)
    for job in doc["schedule"]["jobs"]:
        nxt = ", ".join(t.replace("T", " ")[:19] for t in job["next"]) or "-"
        schedule.add_row(job["job"], job["expression"] or "off", nxt)
    console.print(schedule)
    runs = Table(title="last runs (newest first)", title_justify="left")
    for column in ("started (UTC)", "mode", "trigger", "outcome"):
        runs.add_column(column)
    for column in ("s", "+", "~", "mark", "-", "failed", "req"):
        runs.add_column(column, justify="right")
    runs.add_column("holder")
    for run in doc["runs"]:
        c = run["changes"]
        style = {"failed": "red", "interrupted": "yellow", "partial": "yellow", "refused": "magenta"}.get(
            run["outcome"], ""
        )
        runs.add_row(
            (run["started_at"] or "").replace("T", " ").removesuffix("Z"),
            run["mode"],
            run["trigger"],
            f"[{style}]{run['outcome']}[/{style}]" if style else run["outcome"],
            f"{run['duration_s']:.1f}" if run["duration_s"] is not None else "-",
            str(c["create"]),
            str(c["update"]),
            str(c["mark"]),
            str(c["delete"]),
            str(c["failed"]),
            str(run["requests"]),
            run["holder"] or "-",
        )
    if doc["runs"]:
        console.print(runs)
        errors = [r for r in doc["runs"] if r["error"]][:3]
        for run in errors:
            console.print(f"  {run['run_id']} {run['outcome']}: {run['error']}", markup=False)
    else:
        console.print("no runs recorded yet")
