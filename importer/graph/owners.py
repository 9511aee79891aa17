"""Device owners: ``registeredOwners`` through JSON ``$batch``, or Intune's primary user.

``$batch`` carries up to 20 ``GET /devices/{id}/registeredOwners?$select=id`` requests per POST;
batches go out a few at a time from a thread pool. The outer POST goes through ``Http`` (retries,
budget); the inner responses are judged here, because ``Http`` cannot see them: an inner 429 (or
503/504) is retried after its own ``Retry-After`` (at least 1 s; without one, the throttle backoff
``Http`` uses), spending from the run's retry budget (given back once the retried requests are
answered, as ``Http`` does for its own retries); when the retries run out the error is the one
the last inner status names (429 throttled, 503/504 server error). An inner 404 means the device
is gone, so it has no owner; any other inner error leaves that device's owner unknown and the
read incomplete.

Intune (``deviceManagement/managedDevices``) is one paged list joined on ``azureADDeviceId``, which
is the Entra device's ``deviceId``, not its object ``id``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog

from importer.crashpoints import crash_point
from importer.errors import (
    ApiError,
    CredentialError,
    FatalError,
    ImporterError,
    RetryBudgetExceeded,
    api_error_for_status,
)
from importer.graph.errors import BrokenPagingError, permission_error
from importer.graph.models import DeviceOwner, GraphRecord, OwnersRead
from importer.graph.paging import iter_pages
from importer.http import parse_retry_after, retry_delay

if TYPE_CHECKING:
    from importer.graph.client import GraphClient

__all__ = ["BATCH_SIZE", "read_intune_owners", "read_registered_owners"]

BATCH_SIZE = 20  # Graph's limit per $batch
_OWNERS_ROUTE = "/v1.0/devices/{id}/registeredOwners"
_BATCH_ROUTE = "/v1.0/$batch"
_INNER_RETRY = frozenset({429, 503, 504})
_NO_USER = frozenset({"", "00000000-0000-0000-0000-000000000000"})
_jitter = random.Random()  # noqa: S311 - jitter, not cryptography
_log = structlog.get_logger("importer.graph")


@dataclass(slots=True)
class _Outcome:
    """What one batch (with its inner retries) found out."""

    owners: dict[str, DeviceOwner | None] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    error: BaseException | None = None
    requests: int = 0


def _device_ids(devices: Iterable[str | GraphRecord]) -> list[str]:
    ids = (d.id if isinstance(d, GraphRecord) else d for d in devices)
    return list(dict.fromkeys(i for i in ids if i))


def read_registered_owners(client: GraphClient, devices: Iterable[str | GraphRecord]) -> OwnersRead:
    """Read each device's registered owner with ``$batch`` (20 per POST, a few POSTs at a time)."""
    ids = _device_ids(devices)
    chunks = [ids[i : i + BATCH_SIZE] for i in range(0, len(ids), BATCH_SIZE)]
    stop = threading.Event()  # after a fatal error, the remaining batches are not sent

    def run(chunk: list[str]) -> _Outcome:
        if stop.is_set():
            return _Outcome(failed=list(chunk))
        try:
            outcome = _batch(client, chunk)
        except CredentialError:
            stop.set()
            raise
        if isinstance(outcome.error, FatalError | RetryBudgetExceeded):
            stop.set()
        return outcome

    total = _Outcome()
    workers = max(1, min(client.max_concurrency, len(chunks)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graph-owners") as pool:
        for outcome in pool.map(run, chunks):
            total.owners.update(outcome.owners)
            total.failed.extend(outcome.failed)
            total.requests += outcome.requests
            if total.error is None or (outcome.error is not None and _worse(outcome.error, total.error)):
                total.error = outcome.error or total.error
    complete = not total.failed and total.error is None
    _log.info(
        "owners_read",
        via="registered_owners",
        devices=len(ids),
        batches=len(chunks),
        requests=total.requests,
        with_owner=sum(1 for o in total.owners.values() if o is not None),
        failed=len(total.failed),
        complete=complete,
    )
    return OwnersRead(
        owners=total.owners,
        complete=complete,
        error=total.error,
        failed=tuple(total.failed),
        requests=total.requests,
    )


def _worse(new: BaseException, old: BaseException) -> bool:
    """A fatal error (permission, budget) says more than a transient one."""
    return isinstance(new, FatalError | RetryBudgetExceeded) and not isinstance(
        old, FatalError | RetryBudgetExceeded
    )


def _batch(client: GraphClient, chunk: list[str]) -> _Outcome:
    """Send one batch; retry its throttled inner requests until answered or out of budget."""
    http = client.http
    outcome = _Outcome()
    pending = {str(n): device_id for n, device_id in enumerate(chunk, start=1)}
    attempt = 0
    spent = 0  # retry budget taken by this batch's inner retries; refunded once they are answered
    while pending:
        body = {
            "requests": [
                {
                    "id": key,
                    "method": "GET",
                    "url": f"/devices/{quote(dev, safe='')}/registeredOwners?$select=id",
                }
                for key, dev in pending.items()
            ]
        }
        outcome.requests += 1
        try:
            answer = client.send(
                "POST", f"{client.graph_url}/v1.0/$batch", json_body=body, route=_BATCH_ROUTE
            )
        except CredentialError:
            raise
        except ImporterError as exc:
            outcome.failed.extend(pending.values())
            outcome.error = permission_error(exc, "owners")
            return outcome
        crash_point("owners")  # test-only (IMPORTER_CRASH_AT)
        retry, wait, status = _judge(answer, pending, outcome, http.clock.now())
        pending = retry
        if pending:
            attempt += 1
            delay = _retry_wait(client, attempt, wait, status)
            if isinstance(delay, BaseException):
                outcome.failed.extend(pending.values())
                outcome.error = delay
                return outcome
            spent += http.budget.retry_cost
            _log.info("batch_throttled", route=_OWNERS_ROUTE, requests=len(pending), wait_s=round(delay, 3))
            http.stats.record_wait(delay)
            http.clock.sleep(delay)
    http.budget.refund(spent)
    return outcome


def _judge(
    answer: Any, pending: dict[str, str], outcome: _Outcome, now: datetime
) -> tuple[dict[str, str], float | None, int]:
    """Sort a batch's inner responses into owners, failures and retries (with the longest wait
    asked and the status of the last retried one)."""
    responses = answer.get("responses") if isinstance(answer, dict) else None
    if not isinstance(responses, list):
        outcome.failed.extend(pending.values())
        outcome.error = outcome.error or BrokenPagingError("$batch: the answer has no responses list")
        return {}, None, 0
    unanswered = dict(pending)
    retry: dict[str, str] = {}
    wait: float | None = None
    retry_status = 0
    for item in responses:
        key = str(item.get("id")) if isinstance(item, dict) else ""
        device_id = unanswered.pop(key, None)
        if device_id is None:
            continue
        status = item.get("status")
        if status == 200:
            outcome.owners[device_id] = _first_user(item.get("body"))
        elif status == 404:
            outcome.owners[device_id] = None  # the device is gone: no owner to map
        elif status in _INNER_RETRY:
            retry[key] = device_id
            retry_status = status
            asked = parse_retry_after(_lower(item.get("headers")).get("retry-after"), now=now)
            if asked is not None:
                wait = max(wait or 0.0, asked)
        else:
            outcome.failed.append(device_id)
            outcome.error = outcome.error or permission_error(_inner_error(item, status), "owners")
    if unanswered:  # requests the batch did not answer at all
        outcome.failed.extend(unanswered.values())
        outcome.error = outcome.error or BrokenPagingError("$batch: some requests got no response")
    return retry, wait, retry_status


def _retry_wait(client: GraphClient, attempt: int, asked: float | None, status: int) -> float | BaseException:
    """The wait before retrying throttled inner requests, or the error that ends the retries
    (typed by ``status``, the last inner status: 429 throttled, 503/504 server error)."""
    http = client.http
    settings = http.settings
    if attempt > settings.max_retries:
        return api_error_for_status(status)(
            service=http.service,
            method="GET",
            route=_OWNERS_ROUTE,
            status=status,
            detail="inner requests of $batch",
        )
    if asked is not None and asked > settings.max_retry_wait_s:
        return RetryBudgetExceeded(
            f"graph GET {_OWNERS_ROUTE}: $batch asked to wait {asked:.0f} s, "
            f"more than http.max_retry_wait_s={settings.max_retry_wait_s:g}"
        )
    if http.budget.try_spend() is None:
        return RetryBudgetExceeded(
            f"graph GET {_OWNERS_ROUTE}: retry budget exhausted by throttled $batch requests"
        )
    # Every inner status retried here (429, 503, 504) is a throttle or an overload.
    return retry_delay(attempt, asked=asked, throttled=True, settings=settings, rng=_jitter)


def _lower(headers: Any) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _first_user(body: Any) -> DeviceOwner | None:
    """The first user among a device's registered owners."""
    values = body.get("value") if isinstance(body, dict) else None
    for owner in values if isinstance(values, list) else []:
        if not isinstance(owner, dict) or not isinstance(owner.get("id"), str):
            continue
        if owner.get("@odata.type", "#microsoft.graph.user") == "#microsoft.graph.user":
            return DeviceOwner(user_id=owner["id"])
    return None


def _inner_error(item: Mapping[str, Any], status: Any) -> ApiError:
    """An ``ApiError`` for one failed inner request (code and request id, never the body text)."""
    error = item.get("body", {}).get("error") if isinstance(item.get("body"), dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    inner = error.get("innerError") if isinstance(error, dict) else None
    request_id = inner.get("request-id") if isinstance(inner, dict) else None
    number = status if isinstance(status, int) else None
    cls = api_error_for_status(number) if number is not None else ApiError
    return cls(
        service="graph",
        method="GET",
        route=_OWNERS_ROUTE,
        status=number,
        code=code if isinstance(code, str) else None,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def read_intune_owners(client: GraphClient, devices: Iterable[str | GraphRecord]) -> OwnersRead:
    """Owners from Intune's managed devices (primary user), joined on the Entra ``deviceId``."""
    wanted: dict[str, str] = {}  # deviceId (lower-case) -> device object id
    unjoinable: list[str] = []  # records without a deviceId cannot be enrolled in Intune
    for device in devices:
        if not isinstance(device, GraphRecord):
            raise ValueError(
                "Intune owners join on deviceId: pass device records read with intune_owners=True"
            )
        key = device.get("deviceId")
        if isinstance(key, str) and key:
            wanted[key.lower()] = device.id
        else:
            unjoinable.append(device.id)
    select = "azureADDeviceId,userId,userPrincipalName"
    url = f"{client.graph_url}/v1.0/deviceManagement/managedDevices?$select={select}"
    found: dict[str, DeviceOwner] = {}
    pages = 0
    error: BaseException | None = None
    try:
        for page in iter_pages(client.get, url, origin=client.origin):
            pages += 1
            for item in page.items:
                device_key = item.get("azureADDeviceId") if isinstance(item, dict) else None
                user_id = item.get("userId") if isinstance(item, dict) else None
                if not isinstance(device_key, str) or device_key.lower() not in wanted:
                    continue
                if isinstance(user_id, str) and user_id not in _NO_USER and device_key.lower() not in found:
                    upn = item.get("userPrincipalName")
                    found[device_key.lower()] = DeviceOwner(
                        user_id=user_id, user_principal_name=upn if isinstance(upn, str) and upn else None
                    )
    except CredentialError:
        raise
    except ImporterError as exc:
        error = permission_error(exc, "intune")
    complete = error is None
    owners: dict[str, DeviceOwner | None] = {}
    if complete:
        owners = {object_id: found.get(key) for key, object_id in wanted.items()}
        owners.update(dict.fromkeys(unjoinable))
    _log.info(
        "owners_read",
        via="intune",
        devices=len(wanted) + len(unjoinable),
        requests=pages,
        with_owner=len(found),
        complete=complete,
    )
    failed = () if complete else (*wanted.values(), *unjoinable)
    return OwnersRead(owners=owners, complete=complete, error=error, failed=failed, requests=pages)
