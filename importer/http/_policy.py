"""HTTP policy values: clock, settings, Retry-After, route templates, retry budget, rate limiter, stats."""

from __future__ import annotations

import email.utils
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit


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
    backoff_base_s: float = 0.5
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
        # a sliding minute: the rate leaves room for the burst, so no minute exceeds per_minute
        # (at per_minute itself, 1,500 creates under a 1,000/min limit met 8 x 429). Limits below
        # twice the burst cannot be kept with whole tokens; they get half the rate, not less.
        self.rate = max(per_minute - self.burst, per_minute / 2) / 60.0
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
