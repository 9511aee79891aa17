"""When the daemon runs: schedule expressions as APScheduler 3.x triggers, and the next slots.

An expression (``schedule.incremental`` / ``schedule.full``) is either a 5-field cron
expression (minute hour day-of-month month day-of-week, in ``schedule.timezone``) or
``@every 30s`` / ``@every 15m`` / ``@every 2h``.

- Cron day-of-week numbers keep their crontab meaning (0 and 7 are Sunday, 1 is Monday).
  APScheduler 3.x counts from Monday, so numbers are translated to day names first.
- Day of month and day of week combine as in crontab: when both are restricted (neither field
  starts with ``*``), a day that matches *either* fires (``0 3 1 * 1``: the 1st of each month
  and every Monday). APScheduler's ``CronTrigger`` would require both, so such an expression
  becomes an ``OrTrigger`` of two cron triggers. When either field starts with ``*`` (``*``,
  ``*/2``), both must match, as crontab does too.
- ``@every`` takes more than zero seconds and at most 366 days (``@every 8784h``).
- ``@every`` slots are aligned on multiples of the interval since 2000-01-01 00:00 UTC, so every
  host computes the same slots (``@every 15m`` fires at :00, :15, :30 and :45).
- A small jitter (at most 5 s, at most a tenth of the interval) is added to each fire time so
  that several hosts do not ask for the lease in the same instant. The *slot* (the fire time
  without jitter) is what identifies a scheduled run: ``SlotTrigger.slot_at`` gives it to the
  job, which then skips when a run of that slot already happened on another host.
"""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

__all__ = [
    "ANCHOR",
    "MAX_JITTER_S",
    "SlotTrigger",
    "base_trigger",
    "build_trigger",
    "crontab_weekdays",
    "jitter_for",
    "next_slots",
    "parse_every",
]

ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
MAX_JITTER_S = 5.0
_EVERY_RE = re.compile(r"^@every\s+(\d+(?:\.\d+)?)\s*(s|m|h)$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_EVERY_S = 366 * 86400.0  # longer intervals overflow the slot arithmetic (year 9999)
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 = Sunday
_APS_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_every(expr: str) -> float | None:
    """Seconds of an ``@every N{s,m,h}`` expression, or ``None`` for anything else.

    Raises:
        ValueError: the interval is zero, or longer than 366 days.
    """
    match = _EVERY_RE.match(expr.strip())
    if match is None:
        return None
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{expr!r}: the interval must be longer than zero")
    if seconds > _MAX_EVERY_S:
        raise ValueError(f"{expr!r}: the interval must be at most 366 days (@every 8784h)")
    return seconds


def _weekday(token: str) -> int:
    name = token.strip().lower()
    if name[:3] in _DAY_NAMES and name.isalpha():
        return _DAY_NAMES.index(name[:3])
    if not name.isdigit() or int(name) > 7:
        raise ValueError(f"day of week {token!r}: expected 0-7 (0 and 7 are Sunday) or a name like mon")
    return int(name) % 7


def crontab_weekdays(field: str) -> str:
    """Translate a crontab day-of-week field into APScheduler day names (``1-5`` → ``mon,...,fri``).

    Supports ``*``, numbers 0-7 and names, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists.
    """
    if field.strip() == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        spec, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"day of week {item!r}: the step must be at least 1")
        if spec == "*":
            first, last = 0, 6
        elif "-" in spec:
            low, high = spec.split("-", 1)
            first, last = _weekday(low), _weekday(high)
            if high.strip() == "7":
                last = 7
            if last < first:
                raise ValueError(f"day of week {item!r}: a range must go forwards")
        else:
            first = _weekday(spec)
            last = 6 if step_text else first
        days.update(day % 7 for day in range(first, last + 1, step))
    names = [_DAY_NAMES[d] for d in sorted(days)]
    return ",".join(sorted(names, key=_APS_ORDER.index))


def base_trigger(expr: str, timezone: str) -> Any:
    """The trigger of one expression, without jitter.

    A ``CronTrigger`` (an ``OrTrigger`` of two when day of month and day of week are both
    restricted, see the module docstring) or an aligned ``IntervalTrigger``. This is also what
    the configuration's validation calls, so an expression the config accepts always schedules.

    Raises:
        ValueError: the expression is not a valid cron or ``@every`` expression.
    """
    seconds = parse_every(expr)
    if seconds is not None:
        return IntervalTrigger(seconds=seconds, start_date=ANCHOR, timezone=timezone)
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r}: expected 5 cron fields (minute hour day month weekday) or '@every 15m'")
    minute, hour, day, month, weekday = fields

    def cron(days: str, weekdays: str) -> CronTrigger:
        return CronTrigger(
            minute=minute, hour=hour, day=days, month=month, day_of_week=weekdays, timezone=timezone
        )

    weekdays = crontab_weekdays(weekday)
    if day.startswith("*") or weekday.startswith("*"):
        return cron(day, weekdays)
    return OrTrigger([cron(day, "*"), cron("*", weekdays)])


def jitter_for(expr: str) -> float:
    """The jitter for one expression: 5 s, or a tenth of a shorter ``@every`` interval."""
    seconds = parse_every(expr)
    return MAX_JITTER_S if seconds is None else min(MAX_JITTER_S, seconds / 10)


class SlotTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """A trigger that fires at each slot of ``base`` plus a random jitter, and remembers the slots.

    APScheduler hands a trigger its previous *fire* time; this class maps it back to the slot, so
    jitter never accumulates and every host keeps the same slots.
    """

    def __init__(
        self, base: Any, *, jitter_s: float = 0.0, rng: random.Random | None = None, expr: str = ""
    ) -> None:
        self.base = base
        self.expr = expr
        self.jitter_s = max(0.0, jitter_s)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._fires: deque[tuple[datetime, datetime]] = deque(maxlen=64)
        self._lock = threading.Lock()

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """The next slot after the previous one (or after ``now``), plus jitter."""
        previous_slot = self._slot_of(previous_fire_time) if previous_fire_time is not None else None
        slot: datetime | None = self.base.get_next_fire_time(previous_slot, now)
        if slot is None:
            return None
        fire = slot + timedelta(seconds=self._rng.uniform(0, self.jitter_s)) if self.jitter_s else slot
        with self._lock:
            self._fires.append((fire, slot))
        return fire

    def _slot_of(self, fire: datetime) -> datetime:
        with self._lock:
            for seen_fire, slot in reversed(self._fires):
                if seen_fire == fire:
                    return slot
        return fire

    def slot_at(self, now: datetime) -> datetime | None:
        """The slot of the latest fire time at or before ``now`` (what a running job belongs to)."""
        with self._lock:
            due = [(fire, slot) for fire, slot in self._fires if fire <= now]
        return max(due)[1] if due else None

    def __str__(self) -> str:
        return f"{self.expr or self.base} + jitter"


def build_trigger(expr: str, timezone: str, *, rng: random.Random | None = None) -> SlotTrigger:
    """The daemon's trigger for one schedule expression."""
    return SlotTrigger(base_trigger(expr, timezone), jitter_s=jitter_for(expr), rng=rng, expr=expr)


def next_slots(expr: str, timezone: str, *, now: datetime | None = None, count: int = 3) -> list[datetime]:
    """The next ``count`` slots of an expression at or after ``now`` (for ``importer status``)."""
    trigger = base_trigger(expr, timezone)
    moment = now or datetime.now(UTC)
    out: list[datetime] = []
    previous: datetime | None = None
    while len(out) < count:
        slot: datetime | None = trigger.get_next_fire_time(previous, moment)
        if slot is None:
            break
        out.append(slot)
        previous = moment = slot
    return out
