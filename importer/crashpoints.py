"""Test-only crash points: ``IMPORTER_CRASH_AT=<phase>:<n>`` kills the process at a chosen step.

Never set it in production. The resilience suite (``tests/resilience/test_crashes.py``) uses it to
``kill -9`` a sync at exact places and then checks that the next run converges with no duplicate
and no lost update. When the variable is unset (always, outside those tests) ``crash_point`` is a
dictionary lookup and returns.

The process sends itself SIGKILL the ``n``-th time (counting from 1) it passes ``phase``: no
``finally`` block, no lease release, no log flush, exactly like ``kill -9`` from outside.

==========  ===================================================================================
phase       passed
==========  ===================================================================================
read        after each Graph page of users or devices was received (before it is parsed)
owners      after each ``$batch`` of device owners was answered
apply       after each Assets write (create, update, mark, delete) returned, from any worker
commit      after apply, just before delta links, id map and run record are committed
committed   just after that commit, before the accounts cache is written and the lease released
==========  ===================================================================================
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["ENV_CRASH_AT", "PHASES", "crash_point"]

ENV_CRASH_AT = "IMPORTER_CRASH_AT"
PHASES = frozenset({"read", "owners", "apply", "commit", "committed"})

_lock = threading.Lock()
_passes: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    value = os.environ.get(ENV_CRASH_AT)
    if not value:
        return None
    phase, _, count = value.partition(":")
    if phase not in PHASES or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV_CRASH_AT}={value!r}: expected <phase>:<n> with phase in {sorted(PHASES)}")
    return phase, int(count)


def crash_point(phase: str) -> None:
    """SIGKILL this process at the n-th pass through ``phase`` when ``IMPORTER_CRASH_AT`` asks for it."""
    target = _target()
    if target is None or target[0] != phase:
        return
    with _lock:
        _passes[phase] = _passes.get(phase, 0) + 1
        if _passes[phase] == target[1]:
            os.kill(os.getpid(), signal.SIGKILL)
