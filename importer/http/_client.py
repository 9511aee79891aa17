"""``Http``: one requests session with the importer's timeouts, retries, rate limit and accounting."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception

from importer import __version__
from importer.errors import (
    ApiError,
    RetryBudgetExceeded,
    TransportError,
    api_error_for_status,
)
from importer.http._describe import _describe_error, _never_connected, _request_id
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

USER_AGENT = f"importer/{__version__} (Entra ID to Jira Assets sync; python-requests/{requests.__version__})"
# 500 too: Graph and Atlassian gateways answer a passing 500 now and then, and a GET (or a PUT,
# or an idempotent POST such as AQL) is safe to repeat; a plain POST still is not (should_retry).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

_log = structlog.get_logger("importer.http")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A successful (or explicitly accepted) response with its JSON body already parsed."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str
    url: str


class _Retry(Exception):
    """Internal: an attempt failed in a way that may be retried."""

    def __init__(self, error: ApiError, *, retry_after: float | None, timeout: bool, sent: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.timeout = timeout
        self.sent = sent  # False when the request certainly never reached the server


HeaderProvider = Callable[[], Mapping[str, str]]


class Http:
    """A requests session with the importer's timeouts, retries, rate limit and accounting.

    Args:
        service: name used in stats and errors (``graph``, ``assets``, ``authority``, ``jira``).
        settings: timeouts, retry limits, CA bundle.
        stats: shared request counter (one per run is typical).
        budget: shared retry budget (one per run).
        limiter: shared rate limiter (one per installation and service).
        headers: a callable giving extra headers per attempt (e.g. a fresh bearer token).
        clock: injected time source.
        session: a ready session (tests); by default a new one with a pool sized for the
            configured concurrency.
    """

    def __init__(
        self,
        service: str,
        settings: HttpSettings | None = None,
        *,
        stats: RequestStats | None = None,
        budget: RetryBudget | None = None,
        limiter: RateLimiter | None = None,
        headers: HeaderProvider | None = None,
        clock: Clock | None = None,
        session: requests.Session | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.settings = settings or HttpSettings()
        self.stats = stats if stats is not None else RequestStats()
        self.budget = budget if budget is not None else RetryBudget(self.settings.retry_budget)
        self.limiter = limiter
        self._headers = headers
        self.clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._own_session = session is None
        self.session = session or self._new_session()
        self._environ: dict[str, tuple[dict[str, str], str | bool]] = {}

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        pool = max(10, self.settings.max_concurrency * 2)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        # requests would read proxies, CA bundle and ~/.netrc from the environment on every
        # request (a tenth of the CPU of a large sync); `_environment` reads them once per origin.
        # Without trust_env a ~/.netrc entry can no longer replace our Authorization header either.
        session.trust_env = False
        return session

    def _environment(self, url: str) -> tuple[dict[str, str] | None, str | bool]:
        """Proxies and ``verify`` for ``url``, as requests would take them from the environment.

        An explicit ``ca_bundle`` wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE. Read once per
        origin for our own sessions; an injected session keeps its own ``trust_env`` handling.
        """
        verify: str | bool = self.settings.ca_bundle or True
        if not self._own_session:
            return None, verify
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._environ.get(origin)
        if found is None:
            if verify is True:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            found = self._environ[origin] = (requests.utils.get_environ_proxies(url), verify)
        return found

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    # -- public calls -----------------------------------------------------------------------

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
    ) -> Any:
        """GET ``url`` and return its parsed JSON body."""
        return self.request("GET", url, params=params, headers=headers, route=route).body

    def post_json(
        self,
        url: str,
        body: Any,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        idempotent: bool = False,
    ) -> Any:
        """POST a JSON body and return the parsed JSON answer."""
        return self.request(
            "POST", url, json_body=body, params=params, headers=headers, route=route, idempotent=idempotent
        ).body

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | str | None = None,
        headers: Mapping[str, str] | None = None,
        route: str | None = None,
        idempotent: bool | None = None,
        expect_json: bool = True,
        accept_statuses: frozenset[int] = frozenset(),
        landed: Callable[[], Any] | None = None,
    ) -> HttpResponse:
        """Send a request under the retry policy and return the response.

        Args:
            idempotent: whether the request may be repeated safely; defaults to True for GET,
                HEAD, PUT, DELETE and OPTIONS and False for POST and PATCH.
            landed: for a request that is not idempotent, what an earlier attempt that may have
                reached the server (5xx, timeout, dropped connection, truncated answer) produced,
                or None when it produced nothing. Called before each retry, which is sent only
                on None, and after the last failure; a value found becomes the response body.
            expect_json: parse the body as JSON (an empty body gives None); a body that does not
                parse is a ``TransportError`` (retried when idempotent).
            accept_statuses: error statuses returned to the caller instead of raised.
        """
        method = method.upper()
        route = route or route_template(url)
        safe = idempotent if idempotent is not None else method in _IDEMPOTENT_METHODS
        refund = {"amount": 0}
        check = {"due": False}  # the last attempt may have acted: ask `landed` before another

        def may_have_acted(exc: _Retry) -> bool:
            return not safe and exc.sent and exc.error.status != 429

        def should_retry(exc: BaseException) -> bool:
            if not isinstance(exc, _Retry):
                return False
            # A non-idempotent request is repeated only when the server cannot have acted on it,
            # or when `landed` will prove, just before the retry, that it did not.
            if may_have_acted(exc):
                check["due"] = landed is not None
                return landed is not None
            return True

        def found_landed() -> HttpResponse | None:
            assert landed is not None
            body = landed()
            if body is None:
                return None
            _log.info("request_found_landed", service=self.service, method=method, route=route)
            return HttpResponse(status=200, headers={}, body=body, text="", url=url)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            assert isinstance(exc, _Retry)
            cost = self.budget.try_spend(timeout=exc.timeout)
            if cost is None:
                raise RetryBudgetExceeded(
                    f"{self.service} {method} {route}: retry budget exhausted "
                    f"(last error: {exc.error}); the service is failing or throttling too much, "
                    "try again later"
                ) from exc.error
            refund["amount"] += cost
            retry_after = exc.retry_after
            if retry_after is not None:
                if retry_after > self.settings.max_retry_wait_s:
                    raise RetryBudgetExceeded(
                        f"{self.service} {method} {route}: the server asked to wait {retry_after:.0f} s "
                        f"(Retry-After), more than http.max_retry_wait_s={self.settings.max_retry_wait_s:g}"
                    ) from exc.error
                # Retry-After is a minimum: add a little jitter on top, never subtract.
                delay = retry_after + self._rng.uniform(0, min(1.0, retry_after * 0.1 + 0.05))
            else:
                ceiling = min(
                    self.settings.backoff_cap_s,
                    self.settings.backoff_base_s * (2 ** (state.attempt_number - 1)),
                )
                delay = self._rng.uniform(0, ceiling)
            self.stats.record_wait(delay)
            _log.debug(
                "request_retry_scheduled",
                service=self.service,
                method=method,
                route=route,
                attempt=state.attempt_number,
                wait_s=round(delay, 3),
            )
            return delay

        retrying = Retrying(
            sleep=self.clock.sleep,
            stop=lambda state: state.attempt_number > self.settings.max_retries,
            wait=wait,
            retry=retry_if_exception(should_retry),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if check["due"]:
                        check["due"] = False
                        found = found_landed()
                        if found is not None:
                            self.budget.refund(refund["amount"])
                            return found
                    response = self._attempt(
                        method,
                        url,
                        route,
                        number,
                        params=params,
                        json_body=json_body,
                        data=data,
                        headers=headers,
                        expect_json=expect_json,
                        accept_statuses=accept_statuses,
                    )
                    self.budget.refund(refund["amount"] if refund["amount"] else 1)
                    return response
        except _Retry as exc:
            if landed is not None and may_have_acted(exc):
                found = found_landed()  # the last attempt may have acted although it failed
                if found is not None:
                    return found
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover - tenacity either returns or raises

    # -- one attempt ------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        url: str,
        route: str,
        attempt: int,
        *,
        params: Mapping[str, str] | None,
        json_body: Any,
        data: Mapping[str, str] | str | None,
        headers: Mapping[str, str] | None,
        expect_json: bool,
        accept_statuses: frozenset[int],
    ) -> HttpResponse:
        if self.limiter is not None:
            waited = self.limiter.acquire()
            if waited:
                self.stats.record_wait(waited)
        merged: dict[str, str] = dict(self._headers() if self._headers else {})
        if headers:
            merged.update(headers)
        proxies, verify = self._environment(url)
        started = self.clock.monotonic()
        status: int | None = None
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                data=data,
                headers=merged,
                timeout=(self.settings.connect_timeout_s, self.settings.timeout_s),
                proxies=proxies,
                verify=verify,
            )
            status = resp.status_code
            return self._check(resp, method, route, expect_json=expect_json, accept=accept_statuses)
        except requests.exceptions.ConnectTimeout as exc:
            raise self._transport(method, route, "connect timeout", exc, timeout=True, sent=False) from None
        except requests.exceptions.ReadTimeout as exc:
            raise self._transport(method, route, "read timeout", exc, timeout=True, sent=True) from None
        except requests.exceptions.SSLError as exc:
            raise self._fatal_transport(method, route, "TLS verification failed", exc) from None
        except requests.exceptions.ContentDecodingError as exc:  # e.g. a gzip body cut short
            raise self._transport(method, route, "undecodable body", exc, timeout=False, sent=True) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            sent = not _never_connected(exc)
            raise self._transport(method, route, "connection error", exc, timeout=False, sent=sent) from None
        finally:
            duration = self.clock.monotonic() - started
            self.stats.record(
                RequestRecord(
                    service=self.service,
                    method=method,
                    route=route,
                    status=status,
                    duration_s=duration,
                    attempt=attempt,
                )
            )
            _log.debug(
                "request_finished",
                service=self.service,
                method=method,
                route=route,
                status=status,
                duration_ms=round(duration * 1000, 1),
                attempt=attempt,
            )

    def _transport(
        self, method: str, route: str, what: str, exc: Exception, *, timeout: bool, sent: bool
    ) -> _Retry:
        error = TransportError(
            service=self.service,
            method=method,
            route=route,
            status=None,
            detail=f"{what}: {type(exc).__name__}",
        )
        return _Retry(error, retry_after=None, timeout=timeout, sent=sent)

    def _fatal_transport(self, method: str, route: str, what: str, exc: Exception) -> TransportError:
        hint = (
            "check http.ca_bundle"
            if self.settings.ca_bundle is None
            else f"CA bundle {self.settings.ca_bundle}"
        )
        return TransportError(
            service=self.service,
            method=method,
            route=route,
            status=None,
            detail=f"{what} ({type(exc).__name__}); {hint}",
        )

    def _check(
        self,
        resp: requests.Response,
        method: str,
        route: str,
        *,
        expect_json: bool,
        accept: frozenset[int],
    ) -> HttpResponse:
        status = resp.status_code
        text = resp.text
        body: Any = None
        parse_failed = False
        if text.strip() and (expect_json or status >= 400):
            try:
                body = json.loads(text)
            except ValueError:
                parse_failed = True
        if status < 400 or status in accept:
            if parse_failed and expect_json and status < 400:
                error = TransportError(
                    service=self.service,
                    method=method,
                    route=route,
                    status=status,
                    request_id=_request_id(resp.headers, None),
                    detail="truncated or non-JSON response body",
                )
                raise _Retry(error, retry_after=None, timeout=False, sent=True)
            return HttpResponse(status=status, headers=resp.headers, body=body, text=text, url=resp.url)
        code, request_id, fields, messages = _describe_error(body, resp.headers)
        error_cls = api_error_for_status(status)
        api_error: ApiError = error_cls(
            service=self.service,
            method=method,
            route=route,
            status=status,
            request_id=request_id,
            code=code,
            fields=fields,
            server_messages=messages,
        )
        if status in RETRY_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), now=self.clock.now())
            raise _Retry(api_error, retry_after=retry_after, timeout=False, sent=True)
        raise api_error
