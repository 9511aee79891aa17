"""One exception tree for the whole importer, grouped by what the caller does next.

::

    ImporterError                       base; ``exit_code`` says how the CLI ends
    ├── ConfigError            (4)      the configuration is wrong: fix the file, rerun
    ├── CredentialError        (4)      a secret, the vault or a login is wrong: fix it, rerun
    ├── FatalError             (1)      stop this run now; nothing more is attempted
    │   ├── SchemaDriftError            Assets schema no longer matches the mapping (before any write)
    │   ├── SourceIncompleteError       a source read did not finish; no removals may be planned
    │   ├── PagingLoopError             a server repeated a paging link
    │   ├── LeaseLostError              another worker fenced us out; commit nothing
    │   └── RunInterrupted (sync.py)    asked to stop (SIGTERM, lease lost) before anything was written
    ├── RetriableError         (1)      transient: the next run (or a later retry) may succeed
    │   └── RetryBudgetExceeded         the retry budget or the maximum wait ran out
    ├── SkippableError         (1)      one object failed; the run goes on and reports it
    └── LeaseHeldError         (5)      another run holds the lease

    ApiError (mixin with status, service, method, route, request id; never a response body)
    ├── ApiAuthError        401/403  -> FatalError (or CredentialError at start-up)
    ├── ApiNotFoundError    404      -> SkippableError
    ├── ApiClientError      other 4xx -> SkippableError
    ├── ApiServerError      5xx after retries -> RetriableError
    ├── ApiThrottledError   429 after retries -> RetriableError
    └── TransportError      connection reset, timeout, truncated or non-JSON body -> RetriableError

Messages never hold a response body, a secret, or a personal value: API errors carry the
server's error *code*, the route template and the request id, which is what support needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_GUARD",
    "EXIT_LEASE",
    "EXIT_OK",
    "EXIT_PLAN_CHANGES",
    "ApiAuthError",
    "ApiClientError",
    "ApiError",
    "ApiNotFoundError",
    "ApiServerError",
    "ApiThrottledError",
    "ConfigError",
    "ConfigProblem",
    "CredentialError",
    "FatalError",
    "ImporterError",
    "LeaseHeldError",
    "LeaseLostError",
    "PagingLoopError",
    "RetriableError",
    "RetryBudgetExceeded",
    "SchemaDriftError",
    "SkippableError",
    "SourceIncompleteError",
    "TransportError",
    "api_error_for_status",
]

# Exit codes, in one place (DESIGN.md "CLI").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PLAN_CHANGES = 2
EXIT_GUARD = 3
EXIT_CONFIG = 4
EXIT_LEASE = 5


class ImporterError(Exception):
    """Root of every error the importer raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILED


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration file: where it is and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ImporterError):
    """The configuration is invalid; ``problems`` lists every problem found, each with its key path."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: Sequence[ConfigProblem] | str, *, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem("", problems)]
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.problems)
        lines = [f"{head}{count} configuration problem{'s' if count != 1 else ''}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines) if count != 1 else f"{head}{self.problems[0]}")


class CredentialError(ImporterError):
    """A credential is missing, wrong, expired or cannot be decrypted."""

    exit_code = EXIT_CONFIG


class FatalError(ImporterError):
    """The run cannot go on; it stops without committing state."""


class SchemaDriftError(FatalError):
    """The Assets schema does not match what the mapping needs; raised before any write."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            "the Assets schema does not match the mapping (nothing was written):\n"
            f"{body}\nRun `importer schema plan` to see the difference and `importer schema apply` to fix it."
        )


class SourceIncompleteError(FatalError):
    """A source read did not complete, so nothing may be inferred from what is missing."""


class PagingLoopError(FatalError):
    """A paging link came back twice; following it would never end."""

    def __init__(self, route: str) -> None:
        self.route = route
        super().__init__(f"paging loop: the server repeated a next link for {route}")


class LeaseLostError(FatalError):
    """Our lease was taken over (fencing token outdated); nothing may be committed."""


class RetriableError(ImporterError):
    """A transient failure: retrying later may succeed."""


class RetryBudgetExceeded(RetriableError):
    """Retries were stopped: too many, or the server asked for a longer wait than allowed."""


class SkippableError(ImporterError):
    """One object failed; the run carries on and reports it."""


class LeaseHeldError(ImporterError):
    """Another run holds the lease for this installation."""

    exit_code = EXIT_LEASE


class ApiError(ImporterError):
    """An HTTP API answered with an error.

    Carries what support needs (status, service, method, route template, request id, the server's
    error code and the names of the fields it complained about) and never the response body,
    which may hold personal data.
    """

    def __init__(
        self,
        *,
        service: str,
        method: str,
        route: str,
        status: int | None,
        request_id: str | None = None,
        code: str | None = None,
        fields: Mapping[str, str] | None = None,
        detail: str | None = None,
        server_messages: Sequence[str] = (),
    ) -> None:
        self.service = service
        self.method = method
        self.route = route
        self.status = status
        self.request_id = request_id
        self.code = code
        # field key -> server message. Keys (e.g. rlabs-insight-attribute-12) are safe; the
        # messages may echo values, so they are kept out of str() and only logged scrubbed.
        self.fields: dict[str, str] = dict(fields or {})
        self.detail = detail
        self.server_messages = tuple(server_messages)
        super().__init__(self._summary())

    def origin(self) -> dict[str, Any]:
        """Where the error came from (service, method, route, status, request id, code), as
        keyword arguments: for an error of another class or with another detail about the same
        response."""
        return {
            "service": self.service,
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "request_id": self.request_id,
            "code": self.code,
        }

    def _summary(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        parts = [f"{self.service} {self.method} {self.route}: {status}"]
        if self.code:
            parts.append(f"code {self.code}")
        if self.fields:
            parts.append("fields " + ", ".join(sorted(self.fields)))
        if self.request_id:
            parts.append(f"request-id {self.request_id}")
        text = "; ".join(parts)
        return f"{text} ({self.detail})" if self.detail else text


class ApiAuthError(ApiError, FatalError):
    """401 or 403: the credentials or permissions are not good enough; the run stops."""


class ApiNotFoundError(ApiError, SkippableError):
    """404: the resource is gone."""


class ApiClientError(ApiError, SkippableError):
    """Another 4xx: the request was rejected (usually one object's data)."""


class ApiServerError(ApiError, RetriableError):
    """5xx that survived the retries."""


class ApiThrottledError(ApiError, RetriableError):
    """429 that survived the retries."""


class TransportError(ApiError, RetriableError):
    """No usable response: connection error, timeout, truncated or non-JSON body."""


def api_error_for_status(status: int) -> type[ApiError]:
    """Return the ``ApiError`` subclass that says what to do with ``status``."""
    if status in (401, 403):
        return ApiAuthError
    if status == 404:
        return ApiNotFoundError
    if status == 429:
        return ApiThrottledError
    if status >= 500:
        return ApiServerError
    return ApiClientError
