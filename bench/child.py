"""Run the importer CLI (or the naive baseline) as a measured child process.

``python -m bench.child OUT.json importer --config C sync`` runs ``importer.cli.main`` with the
arguments after ``importer``; ``... OUT.json baseline --config C`` runs ``bench.baseline``.
Whatever way the program ends (click always leaves through ``SystemExit``), OUT.json receives
this process's own resource usage (``getrusage(RUSAGE_SELF)``: user and system CPU; peak RSS
from ``VmHWM``, see ``_usage``), wall time and exit code. Only this process is measured: the
sandbox runs in the driver.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _high_water_kib() -> int | None:
    """VmHWM: the peak RSS of this process's own address space (Linux), in KiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _usage(started: float, code: int) -> dict[str, float | int | None]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    hwm = _high_water_kib()
    return {
        "exit_code": code,
        "wall_s": round(time.perf_counter() - started, 3),
        "cpu_user_s": round(own.ru_utime, 3),
        "cpu_sys_s": round(own.ru_stime, 3),
        "cpu_s": round(own.ru_utime + own.ru_stime, 3),
        # ru_maxrss is kept across exec on Linux, so a child spawned (vfork + exec) by the driver,
        # which holds the sandbox, starts with the driver's high-water mark: 313 MB reported for
        # a 13 MB child of a 300 MB parent. VmHWM belongs to this address space alone.
        "max_rss_mb": round((hwm if hwm is not None else own.ru_maxrss) / 1024, 1),
        "ru_maxrss_mb": round(own.ru_maxrss / 1024, 1),  # KiB on Linux
    }


def main(argv: list[str]) -> int:
    """Run the target named in ``argv[1]`` and write its resource usage to ``argv[0]``."""
    out, target, *args = argv
    started = time.perf_counter()
    code = 0
    try:
        if target == "importer":
            from importer.cli import main as importer_main

            importer_main(args=args, prog_name="importer")
        elif target == "baseline":
            from bench.baseline import main as baseline_main

            code = baseline_main(args)
        else:
            raise SystemExit(f"unknown target {target!r}")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        Path(out).write_text(json.dumps(_usage(started, code)), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
