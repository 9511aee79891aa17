"""``importer demo``: the whole job on the built-in sandbox, in about a minute, with nothing else needed.

It starts a simulated Entra tenant and Assets workspace in-process (real HTTPS on 127.0.0.1),
writes a config and vault for them in a temporary directory, creates the schema, plans and
runs the first sync, changes the tenant (updates, soft and hard deletes, new users, new device
owners), runs an incremental plan and sync, then a full one (device owner changes are only
seen by full runs: Graph delta does not report them), and ends with what each step cost in
requests as counted by the sandbox itself.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["run_demo"]

MUTATIONS = {
    "update_users": 25,
    "update_devices": 40,
    "add_users": 5,
    "soft_delete_users": 3,
    "hard_delete_users": 2,
    "hard_delete_devices": 2,
    "reassign_owners": 10,
}


@dataclass
class _Step:
    name: str
    mode: str
    outcome: str
    counts: dict[str, int]
    requests: int
    seconds: float


def run_demo(
    *, users: int = 1000, devices: int = 1500, seed: int = 42, console: Console | None = None
) -> int:
    """Run the demo; return the process exit code (0 when every step did what it should)."""
    from importer.sandbox.app import Sandbox

    out = console or Console(highlight=False)
    if not out.is_terminal:
        out.width = max(out.width, 120)
    with (
        tempfile.TemporaryDirectory(prefix="importer-demo-") as tmp,
        Sandbox(users=users, devices=devices, seed=seed) as sb,
    ):
        out.rule("[bold]importer demo[/bold]")
        out.print(
            f"Sandbox on {sb.info()['graph_url']}: an Entra tenant with {users} users and {devices} devices, "
            "and an empty Assets schema ENTRA. Nothing leaves this machine."
        )
        return _Demo(sb, Path(tmp), out).run()


class _Demo:
    def __init__(self, sb: Any, tmp: Path, out: Console) -> None:
        from importer.config import load_settings
        from importer.logs import configure_logging
        from importer.sandbox.configfile import write_config

        self.sb = sb
        self.out = out
        self.config = write_config(sb.info(), tmp / "demo.yaml", instance="demo")
        self.settings = load_settings(self.config)
        configure_logging(self.settings.logging, console_level="error")
        self.steps: list[_Step] = []
        self.ok = True
        self.last: Any = None

    def run(self) -> int:
        from importer.render import render_text
        from importer.sync import value_formatter

        self._schema()
        first = self._plan("first plan")
        self.out.print(f"[bold]First plan[/bold] ({first.plan_hash}): {_summary(first)}")
        self._sync("first sync", full=False)
        self._idle("idle incremental run")
        touched = self.sb.mutate(**MUTATIONS)
        self.out.rule("Entra changes")
        self.out.print(", ".join(f"{k.replace('_', ' ')}: {len(v)}" for k, v in touched.items()))
        plan = self._plan("incremental plan")
        display, _ = value_formatter(self.last, self.settings, None)
        self.out.print(
            render_text(plan, instance="demo", color=self.out.is_terminal, fmt=display, limit=12), end=""
        )
        self._sync("incremental sync", full=False)
        full = self._plan("full plan", full=True)
        relinked = sum(1 for c in full.changes if set(c.diff) == {"Owner"})
        self.out.print(f"[bold]Full plan[/bold]: {_summary(full)} ({relinked} devices with a new owner)")
        self._sync("full sync", full=True)
        self._idle("idle incremental run")
        self._table()
        return 0 if self.ok else 1

    def _runtime(self) -> Any:
        from importer.runtime import open_runtime

        return open_runtime(self.settings)

    def _schema(self) -> None:
        from importer.assets import apply_schema
        from importer.sync import requirements

        self.sb.reset_stats()
        started = time.monotonic()
        rt = self._runtime()
        try:
            result = apply_schema(rt.assets(), self.settings.assets.schema_key, requirements(self.settings))
        finally:
            rt.close()
        self.out.print(
            f"[bold]Schema[/bold]: created {len(result.created_types)} object types, "
            f"{len(result.created_attributes)} attributes and {len(result.created_statuses)} statuses"
        )
        self.steps.append(
            _Step(
                "schema apply",
                "-",
                "success",
                {"create": result.created},
                self._requests(),
                time.monotonic() - started,
            )
        )

    def _plan(self, name: str, *, full: bool = False) -> Any:
        from importer.sync import RunOptions, run_sync

        self.sb.reset_stats()
        rt = self._runtime()
        try:
            result = run_sync(rt, RunOptions(apply=False, full=full))
        finally:
            rt.close()
        self.last = result
        self.steps.append(
            _Step(
                name, result.plan.mode, "planned", result.plan.summary(), self._requests(), result.duration_s
            )
        )
        return result.plan

    def _sync(self, name: str, *, full: bool) -> None:
        from importer.progress import open_progress
        from importer.runtime import holder_name
        from importer.sync import LeaseKeeper, RunOptions, run_sync

        self.sb.reset_stats()
        rt = self._runtime()
        try:
            with (
                open_progress(tty=self.out.is_terminal) as progress,
                LeaseKeeper(rt, holder_name()) as keeper,
            ):
                result = run_sync(rt, RunOptions(apply=True, full=full, progress=progress), lease=keeper)
        finally:
            rt.close()
        done = {
            a: sum(c.get(a, 0) for c in result.applied.values())
            for a in ("create", "update", "mark", "delete")
        }
        done["unchanged"] = result.plan.summary()["unchanged"]
        done["failed"] = len(result.failures)
        self.steps.append(
            _Step(name, result.plan.mode, result.outcome, done, self._requests(), result.duration_s)
        )
        self.ok &= result.outcome == "success"
        self.out.print(f"[bold]{name}[/bold]: {result.outcome} in {result.duration_s:.1f}s")

    def _idle(self, name: str) -> None:
        plan = self._plan(name)
        if plan.has_changes:
            self.ok = False
            self.out.print(f"[red]{name}: expected no changes, got {_summary(plan)}[/red]")

    def _requests(self) -> int:
        return sum(r["count"] for r in self.sb.stats()["requests"])

    def _table(self) -> None:
        table = Table(title="What the demo did (requests counted by the sandbox)")
        for column in (
            "step",
            "mode",
            "outcome",
            "create",
            "update",
            "mark",
            "delete",
            "unchanged",
            "requests",
            "seconds",
        ):
            table.add_column(column, justify="left" if column in ("step", "mode", "outcome") else "right")
        for s in self.steps:
            table.add_row(
                s.name,
                s.mode,
                s.outcome,
                *(str(s.counts.get(k, 0)) for k in ("create", "update", "mark", "delete", "unchanged")),
                str(s.requests),
                f"{s.seconds:.1f}",
            )
        self.out.print(table)
        stats = self.sb.stats()
        dupes = sum(stats["duplicate_keys"].values())
        self.out.print(f"Assets now holds {stats['objects']}; duplicate keys: {dupes}.")
        self.ok &= dupes == 0


def _summary(plan: Any) -> str:
    s = plan.summary()
    return ", ".join(f"{n} {a}" for a, n in s.items())
