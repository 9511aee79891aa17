"""Schedule expressions: cron with a time zone and crontab weekdays, ``@every`` slots, jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from importer.schedule import (
    ANCHOR,
    MAX_JITTER_S,
    SlotTrigger,
    base_trigger,
    build_trigger,
    crontab_weekdays,
    jitter_for,
    next_slots,
    parse_every,
)

SUNDAY = datetime(2026, 11, 29, 7, 31, 12, tzinfo=UTC)  # a Sunday morning


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        pytest.param("*", "*", id="any"),
        pytest.param("0", "sun", id="0-is-sunday"),
        pytest.param("7", "sun", id="7-is-sunday"),
        pytest.param("1-5", "mon,tue,wed,thu,fri", id="workdays"),
        pytest.param("mon-fri", "mon,tue,wed,thu,fri", id="names"),
        pytest.param("5-7", "fri,sat,sun", id="range-to-7"),
        pytest.param("*/2", "tue,thu,sat,sun", id="step"),
        pytest.param("1-5/2", "mon,wed,fri", id="range-step"),
        pytest.param("sun,6", "sat,sun", id="list"),
    ],
)
def test_crontab_weekdays_keep_their_crontab_meaning(field: str, expected: str) -> None:
    """Day 0 is Sunday as in crontab, although APScheduler 3.x counts from Monday."""
    assert crontab_weekdays(field) == expected


@pytest.mark.parametrize("field", ["8", "fri-mon", "x", "1-3/0"])
def test_bad_weekdays_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match="day of week"):
        crontab_weekdays(field)


def test_cron_runs_in_the_configured_time_zone() -> None:
    """``0 3 * * 1-5`` in Europe/Berlin fires at 03:00 Berlin time on the next workday."""
    trigger = base_trigger("0 3 * * 1-5", "Europe/Berlin")
    assert isinstance(trigger, CronTrigger)
    fire = trigger.get_next_fire_time(None, SUNDAY)
    assert fire == datetime(2026, 11, 30, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert fire.astimezone(UTC).hour == 2  # CET is UTC+1 in November


def test_cron_sunday_is_sunday() -> None:
    fire = base_trigger("0 3 * * 0", "UTC").get_next_fire_time(None, SUNDAY)
    assert fire.weekday() == 6  # Sunday, a week later (today's 03:00 has passed)
    assert fire.date() == datetime(2026, 12, 6).date()


def test_day_of_month_or_weekday_fires_on_either_as_in_crontab() -> None:
    """``0 3 1 * 1`` runs on the 1st of each month and on every Monday, not only on Monday the 1st."""
    trigger = build_trigger("0 3 1 * 1", "UTC", rng=random.Random(3))  # what the daemon schedules
    fire = trigger.get_next_fire_time(None, SUNDAY)
    slots = []
    for _ in range(4):
        slots.append(trigger.slot_at(fire))
        fire = trigger.get_next_fire_time(fire, fire)
    assert [s.date().isoformat() if s else None for s in slots] == [
        "2026-11-30",  # Monday
        "2026-12-01",  # the 1st, a Tuesday
        "2026-12-07",  # Monday
        "2026-12-14",  # Monday
    ]
    assert next_slots("0 3 1 * 1", "UTC", now=SUNDAY, count=4) == slots  # `importer status` agrees


def test_a_day_field_starting_with_a_star_still_combines_with_the_weekday() -> None:
    """As in crontab: ``*/2`` does not count as restricted, so odd days that are Mondays."""
    dates = [s.date().isoformat() for s in next_slots("0 3 */2 * 1", "UTC", now=SUNDAY, count=3)]
    assert dates == ["2026-12-07", "2026-12-21", "2027-01-11"]


@pytest.mark.parametrize(
    ("expr", "seconds"),
    [
        pytest.param("@every 30s", 30, id="seconds"),
        pytest.param("@every 15m", 900, id="minutes"),
        pytest.param("@every 2h", 7200, id="hours"),
        pytest.param("@every 1.5m", 90, id="decimal"),
    ],
)
def test_every_is_an_aligned_interval(expr: str, seconds: float) -> None:
    """``@every`` slots are multiples of the interval since 2000-01-01 UTC, the same on every host."""
    assert parse_every(expr) == seconds
    trigger = base_trigger(expr, "Europe/Berlin")
    assert isinstance(trigger, IntervalTrigger)
    first = trigger.get_next_fire_time(None, SUNDAY)
    assert first >= SUNDAY
    assert (first - ANCHOR).total_seconds() % seconds == 0
    assert first - SUNDAY < timedelta(seconds=seconds)


def test_every_15m_fires_on_the_quarter_hours() -> None:
    assert [s.minute for s in next_slots("@every 15m", "UTC", now=SUNDAY, count=4)] == [45, 0, 15, 30]


def test_cron_expressions_are_not_every() -> None:
    assert parse_every("*/15 * * * *") is None


@pytest.mark.parametrize(
    "expr", ["* * * *", "61 * * * *", "0 3 * * 9", "@every 0s", "@every 0.0m", "@every 8785h"]
)
def test_invalid_expressions_raise(expr: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - APScheduler's messages vary by field
        base_trigger(expr, "UTC")


@pytest.mark.parametrize(
    ("expr", "jitter"),
    [
        pytest.param("@every 5s", 0.5, id="short-interval"),
        pytest.param("@every 15m", MAX_JITTER_S, id="long-interval"),
        pytest.param("*/15 * * * *", MAX_JITTER_S, id="cron"),
    ],
)
def test_jitter_is_small(expr: str, jitter: float) -> None:
    assert jitter_for(expr) == jitter


def test_jitter_never_accumulates() -> None:
    """Each fire is its slot plus at most the jitter, however many fires follow each other."""
    trigger = build_trigger("@every 5s", "UTC", rng=random.Random(1))
    fire = trigger.get_next_fire_time(None, SUNDAY)
    for _ in range(200):
        slot = trigger.slot_at(fire)
        assert slot is not None
        assert (slot - ANCHOR).total_seconds() % 5 == 0
        assert timedelta(0) <= fire - slot <= timedelta(seconds=0.5)
        fire = trigger.get_next_fire_time(fire, fire)
    assert slot - SUNDAY < timedelta(seconds=5 * 201)


def test_slot_at_names_the_slot_of_the_running_fire() -> None:
    trigger = build_trigger("*/15 * * * *", "UTC", rng=random.Random(2))
    first = trigger.get_next_fire_time(None, SUNDAY)
    second = trigger.get_next_fire_time(first, first)  # computed while the first one runs
    assert trigger.slot_at(first + timedelta(seconds=1)) == datetime(2026, 11, 29, 7, 45, tzinfo=UTC)
    assert trigger.slot_at(second) == datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    assert trigger.slot_at(SUNDAY) is None


def test_slot_trigger_without_jitter_fires_on_the_slot() -> None:
    trigger = SlotTrigger(base_trigger("@every 1m", "UTC"))
    assert trigger.get_next_fire_time(None, SUNDAY) == datetime(2026, 11, 29, 7, 32, tzinfo=UTC)


def test_next_slots_for_status() -> None:
    assert next_slots("0 3 * * *", "UTC", now=SUNDAY, count=2) == [
        datetime(2026, 11, 30, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
    ]
