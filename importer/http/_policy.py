"""HTTP policy values: clock, settings, waits between retries, route templates, retry budget,
rate limiter, stats."""

from __future__ import annotations

import email.utils
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

# Waits between retries (assets-api.md §9 and §14.6, graph-api.md §4.2, reliability.md §5).
# 429 and 503 say "slow down": without a wait named by the server, back off from 2 s, doubling up
# to 60 s. A wait the server names is a minimum, but never under 1 s: Graph's $batch names 0.124 s,
# which would be an immediate retry that still counts against the throttle.
THROTTLE_STATUSES = frozenset({429, 503})
THROTTLE_BACKOFF_START_S = 2.0
THROTTLE_BACKOFF_CAP_S = 60.0
MIN_SERVER_WAIT_S = 1.0


class Clock(Protocol):
    """Time as the HTTP layer sees it; tests inject a fake one."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware (for HTTP-date Retry-After values)."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """Seconds on the process's monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        """Current UTC time."""
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """HTTP policy values (built from the ``http`` config section)."""

    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    ca_bundle: str | None = None
    max_retries: int = 6
    max_retry_wait_s: float = 120.0
    backoff_base_s: float = 0.5  # connection errors, timeouts, 500/502/504; 429/503: THROTTLE_BACKOFF_*
    backoff_cap_s: float = 60.0
    retry_budget: int = 500
    requests_per_minute: float | None = None
    max_concurrency: int = 8


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds, or None if absent or unreadable.

    Accepts integer seconds, decimal seconds (``2.128``, seen from Graph ``$batch``), comma
    decimals (``0,120``, seen from Graph in some locales) and RFC 9110 HTTP-dates.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    number = text.replace(",", ".", 1) if re.fullmatch(r"\d+,\d+", text) else text
    try:
        seconds = float(number)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def parse_rate_limit_reset(value: str | None, *, now: datetime) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` time, or None if absent or unreadable.

    Jira Cloud sends an ISO 8601 timestamp (``2026-11-29T12:00:05.123Z``, assets-api.md §9); one
    without a zone is taken as UTC. A time already past gives 0.
    """
    if value is None or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def server_wait(headers: Mapping[str, str], *, now: datetime) -> tuple[float, str] | None:
    """The wait an error response asks for and the header that said so: ``Retry-After``, else
    ``X-RateLimit-Reset``; None when neither is there and readable."""
    seconds = parse_retry_after(headers.get("Retry-After"), now=now)
    if seconds is not None:
        return seconds, "Retry-After"
    seconds = parse_rate_limit_reset(headers.get("X-RateLimit-Reset"), now=now)
    if seconds is not None:
        return seconds, "X-RateLimit-Reset"
    return None


def retry_delay(
    attempt: int,
    *,
    asked: float | None,
    throttled: bool,
    settings: HttpSettings,
    rng: random.Random,
) -> float:
    """Seconds to wait before the next attempt.

    Args:
        attempt: attempts made so far (1 before the first retry).
        asked: the wait the server named (``server_wait``), if any: honoured as a minimum of
            ``MIN_SERVER_WAIT_S``, with a little jitter added on top, never subtracted.
        throttled: a 429 or 503 without a named wait: exponential from
            ``THROTTLE_BACKOFF_START_S`` (1-2 s, then 2-4 s, ...) capped at ``THROTTLE_BACKOFF_CAP_S``.
            Otherwise (connection errors, timeouts, 500/502/504, truncated bodies) full jitter
            from ``settings.backoff_base_s`` capped at ``settings.backoff_cap_s``: these are quick
            to retry and usually pass at once.
        settings: the backoff values and ``max_retry_wait_s``, which caps a computed backoff
            (a named wait over it is refused by the caller instead).
        rng: the jitter source.
    """
    if asked is not None:
        wait = max(asked, MIN_SERVER_WAIT_S)
        return wait + rng.uniform(0, min(1.0, wait * 0.1 + 0.05))
    doubling = 2.0 ** min(attempt - 1, 30)
    if throttled:
        ceiling = min(THROTTLE_BACKOFF_CAP_S, THROTTLE_BACKOFF_START_S * doubling)
        delay = rng.uniform(ceiling / 2, ceiling)  # never an immediate retry into a throttle
    else:
        delay = rng.uniform(0, min(settings.backoff_cap_s, settings.backoff_base_s * doubling))
    return min(delay, settings.max_retry_wait_s)


_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[A-Za-z0-9_\-]{24,}|[A-Z][A-Z0-9]*-\d+|.*[@%].*|.*\(.*\).*)$"
)


def route_template(url: str) -> str:
    """Reduce a URL to a route template: path only, ids and other per-object parts as ``{id}``.

    >>> route_template("https://graph.microsoft.com/v1.0/devices/8c2b1a40-3f1e-4a52-9f3e-1d2c3b4a5f60/registeredOwners?$top=1")
    '/v1.0/devices/{id}/registeredOwners'
    """
    path = urlsplit(url).path or "/"
    parts: list[str] = []
    for part in path.split("/"):
        is_version = part.isdigit() and parts and parts[-1] == "api"  # /rest/api/3/...
        parts.append(part if is_version or not _ID_SEGMENT.match(part) else "{id}")
    return "/".join(parts) or "/"


class RetryBudget:
    """A token bucket that bounds retries across a whole run (the AWS SDK "standard" design).

    Each retry costs ``retry_cost`` tokens (``timeout_cost`` after a timeout); a request that
    succeeds at the first attempt refunds one token and one that succeeds after retries refunds
    what its retries cost. An empty bucket means "stop retrying; fail this run".
    """

    def __init__(self, capacity: int = 500, *, retry_cost: int = 5, timeout_cost: int = 10) -> None:
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self._tokens = capacity
        self._lock = threading.Lock()

    @property
    def tokens(self) -> int:
        """Tokens left."""
        return self._tokens

    def try_spend(self, *, timeout: bool = False) -> int | None:
        """Take the cost of one retry; return the cost taken, or None when the bucket is too low."""
        cost = self.timeout_cost if timeout else self.retry_cost
        with self._lock:
            if self._tokens < cost:
                return None
            self._tokens -= cost
            return cost

    def refund(self, amount: int) -> None:
        """Give tokens back after a success."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + amount)


ARRIVAL_JITTER_S = 1.0  # how much later than its grant a request may reach the server


class RateLimiter:
    """A token bucket limiting requests per minute, shared by every thread that holds it.

    Written here rather than taken from a library because it must run on the injected clock
    (tests check the rate without sleeping) and it is a dozen lines.
    """

    def __init__(self, per_minute: float, *, burst: float | None = None, clock: Clock | None = None) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.burst = burst if burst is not None else max(1.0, min(per_minute / 60.0, 10.0))
        # Any 60 s holds at most burst + 60 * rate grants, and Atlassian (like the sandbox) counts
        # a sliding minute of *arrivals*: the rate leaves room for the burst and for up to
        # ARRIVAL_JITTER_S between a grant and its arrival (threads, connects), so no minute the
        # server sees exceeds per_minute. At per_minute itself 1,500 creates under a 1,000/min limit
        # met 8 x 429; with room for the burst only, 10,000 creates at concurrency 8 still met
        # 6 x 429 (1,001 arrivals in one minute). Limits below twice the reserve cannot be kept
        # with whole tokens; they get half the rate, not less.
        reserve = self.burst + per_minute / 60.0 * ARRIVAL_JITTER_S
        self.rate = max(per_minute - reserve, per_minute / 2) / 60.0
        self._clock = clock or SystemClock()
        self._tokens = self.burst
        self._last = self._clock.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may go; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0 - 1e-9:  # a wait of exactly the delay may leave 0.99999...
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return waited
                delay = (1.0 - self._tokens) / self.rate
            self._clock.sleep(delay)
            waited += delay


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One HTTP attempt, as counted for metrics (a route template, never ids or query values)."""

    service: str
    method: str
    route: str
    status: int | None
    duration_s: float
    attempt: int


@dataclass(slots=True)
class RequestStats:
    """Counts of HTTP attempts by service, method, route template and status; thread-safe."""

    counts: Counter[tuple[str, str, str, int | None]] = field(default_factory=Counter)
    throttled_waits: int = 0
    waited_s: float = 0.0
    observers: list[Callable[[RequestRecord], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, rec: RequestRecord) -> None:
        """Count one attempt and tell the observers (e.g. Prometheus counters)."""
        with self._lock:
            self.counts[(rec.service, rec.method, rec.route, rec.status)] += 1
        for observer in self.observers:
            observer(rec)

    def record_wait(self, seconds: float) -> None:
        """Count a wait caused by throttling or backoff."""
        with self._lock:
            self.throttled_waits += 1
            self.waited_s += seconds

    def total(self, service: str | None = None) -> int:
        """Attempts made, for one service or all."""
        with self._lock:
            return sum(n for (svc, *_), n in self.counts.items() if service in (None, svc))

    def by_service(self) -> dict[str, int]:
        """Attempts per service."""
        out: Counter[str] = Counter()
        with self._lock:
            for (svc, *_), n in self.counts.items():
                out[svc] += n
        return dict(out)
