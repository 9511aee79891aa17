"""The one place that decides HTTP policy for Graph, Assets and the Entra authority.

Each request goes through a few short layers, one concern each::

    Http.request ── retry loop (tenacity): which outcomes retry, how long to wait, the run's budget
        └── _attempt ── rate limiter, auth headers, timeouts, CA bundle, one send, stats
              └── _check ── status / body → value or a typed ``ApiError``

Retry policy: 408, 429, 500, 502, 503, 504, connection errors, read timeouts and truncated JSON
bodies are retried for idempotent requests. A wait the server names (``Retry-After``: integer
seconds, decimal seconds ``2.128``, comma decimals ``0,120`` and HTTP-dates; else Jira's
``X-RateLimit-Reset`` time) is honoured as a minimum of 1 s with a little jitter on top; a 429 or
503 without one backs off exponentially from 2 s to 60 s (with jitter); anything else backs off
from 0.5 s with full jitter. A POST is idempotent only when the caller says so; otherwise only a
408, a 429 or a connection that was never made (nothing reached the server) is retried, unless
the caller passes ``landed``: a check (e.g. a lookup by key) run before each retry and once more
after the last failure (also when the budget or the maximum wait refuses the retry), that finds
what an earlier attempt may have created; a retry is sent only when it finds nothing.
Every retry costs tokens from a per-run ``RetryBudget`` and a single wait longer than
``max_retry_wait_s`` ends the request at once, so a throttling storm ends in a clear error
instead of a hang; the last attempt's failure is raised as itself (no retry follows it, so
neither check applies). Anything else requests raises is a ``TransportError`` naming only the
exception's type, and a body over ``MAX_BODY_BYTES`` (64 MB) is a ``TransportError`` too.
"""

from __future__ import annotations

from importer.http._client import (
    MAX_BODY_BYTES,
    RETRY_STATUSES,
    USER_AGENT,
    HeaderProvider,
    Http,
    HttpResponse,
)
from importer.http._policy import (
    MIN_SERVER_WAIT_S,
    THROTTLE_BACKOFF_CAP_S,
    THROTTLE_BACKOFF_START_S,
    THROTTLE_STATUSES,
    Clock,
    HttpSettings,
    RateLimiter,
    RequestRecord,
    RequestStats,
    RetryBudget,
    SystemClock,
    parse_rate_limit_reset,
    parse_retry_after,
    retry_delay,
    route_template,
    server_wait,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MIN_SERVER_WAIT_S",
    "RETRY_STATUSES",
    "THROTTLE_BACKOFF_CAP_S",
    "THROTTLE_BACKOFF_START_S",
    "THROTTLE_STATUSES",
    "USER_AGENT",
    "Clock",
    "HeaderProvider",
    "Http",
    "HttpResponse",
    "HttpSettings",
    "RateLimiter",
    "RequestRecord",
    "RequestStats",
    "RetryBudget",
    "SystemClock",
    "parse_rate_limit_reset",
    "parse_retry_after",
    "retry_delay",
    "route_template",
    "server_wait",
]

# Layout: ``_client.py`` (Http: the retry loop, one attempt, checking a response), ``_policy.py``
# (clock, settings, waits between retries, route templates, retry budget, rate limiter, request stats),
# ``_describe.py`` (what an error body says: code, request id, field keys).
