"""The one place that decides HTTP policy for Graph, Assets and the Entra authority.

Each request goes through a few short layers, one concern each::

    Http.request ── retry loop (tenacity): which outcomes retry, how long to wait, the run's budget
        └── _attempt ── rate limiter, auth headers, timeouts, CA bundle, one send, stats
              └── _check ── status / body → value or a typed ``ApiError``

Retry policy: 429, 500, 502, 503, 504, connection errors, read timeouts and truncated JSON bodies
are retried for idempotent requests, honouring ``Retry-After`` (integer seconds, decimal seconds
``2.128``, comma decimals ``0,120`` and HTTP-dates), else capped exponential backoff with full
jitter. A POST is idempotent only when the caller says so; otherwise only a 429 or a connection
that was never made (nothing reached the server) is retried, unless the caller passes ``landed``:
a check (e.g. a lookup by key) run before each retry and once more after the last failure, that
finds what an earlier attempt may have created; a retry is sent only when it finds nothing.
Every retry costs tokens from a per-run ``RetryBudget`` and a single wait longer than
``max_retry_wait_s`` ends the request at once, so a throttling storm ends in a clear error
instead of a hang.
"""

from __future__ import annotations

from importer.http._client import RETRY_STATUSES, USER_AGENT, HeaderProvider, Http, HttpResponse
from importer.http._policy import (
    Clock,
    HttpSettings,
    RateLimiter,
    RequestRecord,
    RequestStats,
    RetryBudget,
    SystemClock,
    parse_retry_after,
    route_template,
)

__all__ = [
    "RETRY_STATUSES",
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
    "parse_retry_after",
    "route_template",
]

# Layout: ``_client.py`` (Http: the retry loop, one attempt, checking a response), ``_policy.py``
# (clock, settings, Retry-After, route templates, retry budget, rate limiter, request stats),
# ``_describe.py`` (what an error body says: code, request id, field keys).
