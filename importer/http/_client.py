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
    THROTTLE_STATUSES,
    Clock,
    HttpSettings,
    RateLimiter,
    RequestRecord,
    RequestStats,
    RetryBudget,
    SystemClock,
    retry_delay,
    route_template,
    server_wait,
)

USER_AGENT = f"importer/{__version__} (Entra ID to Jira Assets sync; python-requests/{requests.__version__})"
# 500 too: Graph and Atlassian gateways answer a passing 500 now and then, and a GET (or a PUT,
# or an idempotent POST such as AQL) is safe to repeat; a plain POST still is not (should_retry).
# 408 and 429 say the server did not act on the request, so even a plain POST may be repeated.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_NOT_ACTED_STATUSES = frozenset({408, 429})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# reliability.md §7: a body is read up to this size; a larger one is a corrupt response (a runaway
# proxy, a gzip bomb), refused without reading the rest. Our largest answers (500-object AQL
# pages with attributes) are a few MB.
MAX_BODY_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024

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

    def __init__(
        self, error: ApiError, *, asked: tuple[float, str] | None = None, timeout: bool, sent: bool
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.asked = asked  # the wait the server named, and the header that named it
        self.timeout = timeout
        self.sent = sent  # False when the request certainly never reached the server


def _failure(state: RetryCallState) -> _Retry:
    """The failure tenacity is deciding about (only ``_Retry`` is ever retried)."""
    exc = state.outcome.exception() if state.outcome else None
    assert isinstance(exc, _Retry)
    return exc


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

    def _environment(self, url: str) -> tuple[dict[str, str] | None, str | bool | None]:
        """Proxies and ``verify`` for ``url``, as requests would take them from the environment.

        An explicit ``ca_bundle`` wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE. Read once per
        origin for our own sessions; an injected session keeps its own ``verify``, proxies and
        ``trust_env`` handling (None lets requests merge them), unless ``ca_bundle`` is set.
        """
        if not self._own_session:
            return None, self.settings.ca_bundle
        verify: str | bool = self.settings.ca_bundle or True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._environ.get(origin)
        if found is None:
            if verify is True:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            found = self._environ[origin] = (requests.utils.get_environ_proxies(url), verify)
        return found

    def for_service(self, service: str) -> Http:
        """An ``Http`` for another service of the same run (the Entra authority beside Graph).

        It shares the settings, stats, retry budget, clock and session, and handles the session's
        proxies and CA bundle as this one does (read from the environment for a session of our
        own, left to an injected one); it has neither the header provider nor the rate limiter.
        """
        other = Http(
            service,
            self.settings,
            stats=self.stats,
            budget=self.budget,
            clock=self.clock,
            session=self.session,
        )
        other._own_session = self._own_session
        return other

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
                on None, and after the last failure, including one whose retry the budget or the
                maximum wait refused; a value found becomes the response body.
            expect_json: parse the body as JSON (an empty body gives None); a body that does not
                parse is a ``TransportError`` (retried when idempotent).
            accept_statuses: error statuses returned to the caller instead of raised.
        """
        method = method.upper()
        route = route or route_template(url)
        safe = idempotent if idempotent is not None else method in _IDEMPOTENT_METHODS
        spent = {"tokens": 0}  # what this request's retries took from the budget
        check = {"due": False}  # the last attempt may have acted: ask `landed` before going on

        def may_have_acted(exc: _Retry) -> bool:
            return not safe and exc.sent and exc.error.status not in _NOT_ACTED_STATUSES

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
            check["due"] = False
            body = landed()
            if body is None:
                return None
            _log.info("request_found_landed", service=self.service, method=method, route=route)
            self.budget.refund(spent["tokens"])
            return HttpResponse(status=200, headers={}, body=body, text="", url=url)

        def wait(state: RetryCallState) -> float:
            # Only the length of the wait: tenacity >= 8.3 asks for it after the last attempt too,
            # before deciding to stop, so paying for a retry belongs in before_sleep.
            exc = _failure(state)
            return retry_delay(
                state.attempt_number,
                asked=exc.asked[0] if exc.asked else None,
                throttled=exc.error.status in THROTTLE_STATUSES,
                settings=self.settings,
                rng=self._rng,
            )

        def before_sleep(state: RetryCallState) -> None:
            # Called (by every tenacity version) only when another attempt will be made: refuse a
            # wait longer than allowed, pay for the retry, count the wait.
            exc = _failure(state)
            if exc.asked is not None and exc.asked[0] > self.settings.max_retry_wait_s:
                seconds, header = exc.asked
                raise RetryBudgetExceeded(
                    f"{self.service} {method} {route}: the server asked to wait {seconds:.0f} s "
                    f"({header}), more than http.max_retry_wait_s={self.settings.max_retry_wait_s:g}"
                ) from exc.error
            cost = self.budget.try_spend(timeout=exc.timeout)
            if cost is None:
                raise RetryBudgetExceeded(
                    f"{self.service} {method} {route}: retry budget exhausted "
                    f"(last error: {exc.error}); the service is failing or throttling too much, "
                    "try again later"
                ) from exc.error
            spent["tokens"] += cost
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            self.stats.record_wait(delay)
            _log.debug(
                "request_retry_scheduled",
                service=self.service,
                method=method,
                route=route,
                attempt=state.attempt_number,
                wait_s=round(delay, 3),
            )

        retrying = Retrying(
            sleep=self.clock.sleep,
            stop=lambda state: state.attempt_number > self.settings.max_retries,
            wait=wait,
            retry=retry_if_exception(should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if check["due"] and (found := found_landed()) is not None:
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
                    self.budget.refund(spent["tokens"] if spent["tokens"] else 1)
                    return response
        except _Retry as exc:
            if check["due"] and (found := found_landed()) is not None:
                return found  # the last attempt may have acted although it failed
            raise exc.error from None
        except RetryBudgetExceeded:
            if check["due"] and (found := found_landed()) is not None:
                return found  # the attempt before the refused retry may have acted
            raise
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
                stream=True,  # the body is read by _read_body, which caps its size
            )
            status = resp.status_code
            text = self._read_body(resp, method, route)
            return self._check(resp, text, method, route, expect_json=expect_json, accept=accept_statuses)
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
        except requests.exceptions.RequestException as exc:
            # Anything else requests raises (TooManyRedirects, InvalidURL, InvalidHeader, ...) will
            # not pass by itself: not retried. Its text may hold the URL, so only its type is named.
            raise TransportError(
                service=self.service,
                method=method,
                route=route,
                status=status,
                detail=f"request failed ({type(exc).__name__})",
            ) from None
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
        return _Retry(error, timeout=timeout, sent=sent)

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

    def _read_body(self, resp: requests.Response, method: str, route: str) -> str:
        """The body as text, read in chunks; one over ``MAX_BODY_BYTES`` is a ``TransportError``."""
        limit = MAX_BODY_BYTES
        declared = resp.headers.get("Content-Length", "").strip()
        too_big = declared.isdigit() and int(declared) > limit
        content = bytearray()
        if resp.raw is None:  # built in memory (an adapter without a stream): nothing left to read
            content += resp.content or b""
            too_big = too_big or len(content) > limit
        elif not too_big:
            for chunk in resp.iter_content(_CHUNK_BYTES):
                content += chunk
                if len(content) > limit:
                    too_big = True
                    break
        if too_big:
            resp.close()  # the rest is never read; the connection is not reused
            raise TransportError(
                service=self.service,
                method=method,
                route=route,
                status=resp.status_code,
                request_id=_request_id(resp.headers, None),
                detail=f"response body over {limit / 2**20:g} MB",
            )
        # JSON is UTF-8 (RFC 8259); requests' charset guessing is slow on large bodies.
        try:
            return content.decode(resp.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return content.decode("utf-8", errors="replace")

    def _check(
        self,
        resp: requests.Response,
        text: str,
        method: str,
        route: str,
        *,
        expect_json: bool,
        accept: frozenset[int],
    ) -> HttpResponse:
        status = resp.status_code
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
                raise _Retry(error, timeout=False, sent=True)
            return HttpResponse(status=status, headers=resp.headers, body=body, text=text, url=resp.url)
        code, request_id, fields, messages = _describe_error(body, resp.headers)
        # 408: the server gave up waiting for the request; after the retries, a timeout like ours.
        error_cls = TransportError if status == 408 else api_error_for_status(status)
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
            asked = server_wait(resp.headers, now=self.clock.now())
            raise _Retry(api_error, asked=asked, timeout=False, sent=True)
        raise api_error
