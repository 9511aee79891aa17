"""The measuring side: a sandbox in this process, the importer or baseline in a child process.

Request counts come from the sandbox (what the services saw), never from the importer's own
counters. The sandbox's counter is wrapped so that each request also leaves a timestamp, which
gives the largest number of Assets requests in any 60 s window (the shape of Atlassian's
limit, and of the sandbox's ``assets_per_minute`` fault).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.sandbox.app import Sandbox
from importer.sandbox.configfile import write_config

__all__ = ["REPO", "Measurement", "Tenant", "open_tenant"]

REPO = Path(__file__).resolve().parents[1]
SEED = 7
LIMITED_PREFIX = "/jsm/assets/"  # the routes Atlassian's (and the sandbox's) Assets limit counts


@dataclass(slots=True, kw_only=True)
class Measurement:
    """One child run: what the sandbox saw and what the child process used."""

    program: str  # importer | baseline
    exit_code: int
    wall_s: float  # spawn to exit, as the driver saw it (interpreter start included)
    inner_wall_s: float  # from the child's own first line of code to its exit
    cpu_s: float
    max_rss_mb: float
    requests: dict[str, int]  # "service METHOD route" -> count
    by_status: dict[str, int]  # "service status" -> count
    throttled: int  # 429 answers
    max_assets_per_60s: int  # accepted /jsm/assets requests in the busiest 60 s window
    summary: str = ""  # the child's last stdout line
    notes: list[str] = field(default_factory=list)

    def total(self, service: str | None = None) -> int:
        """Requests the sandbox counted, for one service or all."""
        return sum(n for k, n in self.requests.items() if service is None or k.split(" ", 1)[0] == service)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "program": self.program,
            "exit_code": self.exit_code,
            "wall_s": self.wall_s,
            "inner_wall_s": self.inner_wall_s,
            "cpu_s": self.cpu_s,
            "max_rss_mb": self.max_rss_mb,
            "requests_total": self.total(),
            "requests_by_service": {s: self.total(s) for s in ("assets", "graph", "authority")},
            "requests": self.requests,
            "by_status": self.by_status,
            "throttled_429": self.throttled,
            "max_assets_requests_in_60s": self.max_assets_per_60s,
            "summary": self.summary,
            "notes": self.notes,
        }


class _Timeline:
    """Wraps the sandbox's request counter: every counted request also gets a timestamp."""

    def __init__(self, sb: Sandbox) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[float, str, str, int]] = []
        counter = sb.stats_counter
        original = counter.record

        def record(service: str, method: str, route: str, status: int) -> None:
            original(service, method, route, status)
            with self._lock:
                self.events.append((time.monotonic(), service, route, status))

        counter.record = record  # type: ignore[method-assign]  # instance attribute shadows the method

    def clear(self) -> None:
        with self._lock:
            self.events = []

    def max_in_window(self, window_s: float = 60.0) -> int:
        """Accepted (non-429) requests on Assets' limited routes in the busiest ``window_s``."""
        with self._lock:
            times = sorted(
                t for t, svc, route, status in self.events
                if svc == "assets" and route.startswith(LIMITED_PREFIX) and status != 429
            )  # fmt: skip
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - window_s:
                start += 1
            best = max(best, end - start + 1)
        return best


@dataclass
class Tenant:
    """A running sandbox of one size, an importer config for it, and a scratch directory."""

    sb: Sandbox
    config: Path
    workdir: Path
    timeline: _Timeline
    size: int

    def reset(self) -> None:
        """Zero the sandbox's counts before a measured run."""
        self.sb.reset_stats()
        self.timeline.clear()

    def run(self, program: str, *args: str, timeout_s: float = 4 * 3600) -> Measurement:
        """Run ``program`` (importer | baseline) with ``args`` in a child process and measure it."""
        self.reset()
        usage_file = self.workdir / "usage.json"
        usage_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "bench.child", str(usage_file), program, "--config", str(self.config)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        started = time.perf_counter()
        proc = subprocess.run(
            [*cmd, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.workdir,
            timeout=timeout_s,
            check=False,
        )
        wall = time.perf_counter() - started
        usage = json.loads(usage_file.read_text()) if usage_file.exists() else {}
        stats = self.sb.stats()["requests"]
        requests: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        for row in stats:
            requests[f"{row['service']} {row['method']} {row['route']}"] += row["count"]
            statuses[f"{row['service']} {row['status']}"] += row["count"]
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        m = Measurement(
            program=program,
            exit_code=usage.get("exit_code", proc.returncode),
            wall_s=round(wall, 3),
            inner_wall_s=usage.get("wall_s", 0.0),
            cpu_s=usage.get("cpu_s", 0.0),
            max_rss_mb=usage.get("max_rss_mb", 0.0),
            requests=dict(sorted(requests.items())),
            by_status=dict(sorted(statuses.items())),
            throttled=sum(n for k, n in statuses.items() if k.endswith(" 429")),
            max_assets_per_60s=self.timeline.max_in_window(),
            summary=lines[-1] if lines else "",
        )
        if m.exit_code != 0:
            m.notes.append(f"exit code {m.exit_code}: {proc.stderr.strip()[-400:]}")
        return m

    def schema_apply(self) -> None:
        """Create the object types (not measured)."""
        m = self.run("importer", "schema", "apply")
        if m.exit_code != 0:
            raise RuntimeError(f"schema apply failed: {m.notes}")
        self.reset()


@contextmanager
def open_tenant(
    size: int, *, overrides: Mapping[str, Mapping[str, Any]] | None = None, seed: int = SEED
) -> Iterator[Tenant]:
    """A fresh sandbox with ``size`` objects (half users, half devices) and the schema applied."""
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{size}-") as tmp,
        Sandbox(users=size // 2, devices=size - size // 2, seed=seed) as sb,
    ):
        workdir = Path(tmp)
        config = write_config(sb.info(), workdir / "importer.yaml", overrides=overrides)
        tenant = Tenant(sb=sb, config=config, workdir=workdir, timeline=_Timeline(sb), size=size)
        tenant.schema_apply()
        yield tenant
