"""Read users, devices and device owners from Microsoft Graph, completely or not at all.

A read returns a ``SourceRead`` whatever happens on the wire: ``complete`` is True only when the
round ended normally (a page with ``@odata.deltaLink`` for a delta read, a last page without
``@odata.nextLink`` for a list read). Permission errors, exhausted retries, truncated bodies and
broken paging chains make it incomplete, with ``error`` set and the records read so far kept; they
are never passed off as "no objects". Only credential errors (no token) are raised.

Full reads are delta rounds without a token (``/users/delta?$select=...``), so they end with a
delta link; incremental reads follow the stored link verbatim. ``$top`` is not sent on delta
requests: ``/users/delta`` rejects it and ``/devices/delta`` documents only ``$select`` and
``$filter``; the server picks the page size. A changed ``$select`` needs a full read, because a
delta link only tracks the properties it was started with (see ``select_fingerprint``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import structlog

from importer.crashpoints import crash_point
from importer.errors import ApiAuthError, ConfigError, CredentialError, ImporterError
from importer.graph.auth import GraphAuth
from importer.graph.errors import (
    BrokenPagingError,
    DeltaLinkExpiredError,
    is_delta_expired,
    permission_error,
)
from importer.graph.models import (
    Check,
    GraphRecord,
    GraphSource,
    OwnersRead,
    RecordParser,
    SourceRead,
    effective_select,
    merge_records,
    select_fingerprint,
)
from importer.graph.paging import iter_pages, origin_of
from importer.http import Http, route_template

__all__ = ["GraphClient"]

_log = structlog.get_logger("importer.graph")
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SOURCES: tuple[GraphSource, ...] = ("users", "devices")


class GraphClient:
    """The Entra source: users, devices and device owners from Microsoft Graph v1.0.

    Args:
        http: the HTTP layer for Graph (service ``graph``); it does timeouts and retries.
        auth: bearer tokens; one is asked for before each request.
        page_size: ``$top`` for list reads (Graph's maximum for directory objects is 999).
        max_concurrency: ``$batch`` requests in flight at once when reading owners.
    """

    def __init__(
        self, http: Http, auth: GraphAuth, *, page_size: int = 999, max_concurrency: int = 4
    ) -> None:
        if not 1 <= page_size <= 999:
            raise ValueError("page_size must be between 1 and 999")
        self.http = http
        self.auth = auth
        self.page_size = page_size
        self.max_concurrency = max(1, max_concurrency)
        self.graph_url = auth.graph_url
        self.origin = origin_of(auth.graph_url)

    # -- one request ------------------------------------------------------------------------------

    def send(self, method: str, url: str, *, json_body: Any = None, route: str | None = None) -> Any:
        """Send one Graph request with a fresh token; on 401, drop the token and retry once."""
        for attempt in (1, 2):
            try:
                return self.http.request(
                    method,
                    url,
                    json_body=json_body,
                    headers=self.auth.headers(),
                    route=route,
                    idempotent=True,  # our only POST is $batch of GETs
                ).body
            except ApiAuthError as exc:
                if exc.status == 401 and attempt == 2:
                    raise ApiAuthError(
                        **exc.origin(),
                        detail="Graph refused a freshly issued token: check entra.cloud and entra.graph_url",
                    ) from exc
                if exc.status != 401:
                    raise
                _log.info("token_rejected", route=exc.route, code=exc.code)
                self.auth.invalidate()
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, url: str) -> Any:
        """GET ``url`` verbatim and return its JSON body."""
        return self.send("GET", url)

    # -- users and devices ----------------------------------------------------------------------

    def read(
        self,
        source: GraphSource,
        *,
        select: Sequence[str],
        delta_link: str | None = None,
        intune_owners: bool = False,
    ) -> SourceRead:
        """Read ``source`` through a delta round: a full read without ``delta_link``, else incremental.

        Args:
            source: ``users`` or ``devices``.
            select: the fields the mapping uses (``id`` is always added; ``deviceId`` too for
                devices when ``intune_owners``). Pass the same list that started ``delta_link``.
            delta_link: the link stored after the last complete round, followed verbatim.
            intune_owners: owners will come from Intune, which joins on ``deviceId``.

        Returns:
            A ``SourceRead``; ``full_read_needed`` is set when ``delta_link`` has expired.
        """
        fields = self._select(source, select, intune_owners=intune_owners)
        if delta_link is not None:
            if origin_of(delta_link) != self.origin:
                error = DeltaLinkExpiredError(
                    f"{source}: the stored delta link is for another Graph endpoint"
                )
                return self._expired(source, fields, error)
            url = delta_link
        else:
            url = f"{self.graph_url}/v1.0/{source}/delta?$select={','.join(fields)}"
        return self._collect(source, url, fields, delta=True, incremental=delta_link is not None)

    def read_list(
        self, source: GraphSource, *, select: Sequence[str], intune_owners: bool = False
    ) -> SourceRead:
        """Read ``source`` with a plain list (``$select`` and ``$top``); no delta link comes back."""
        fields = self._select(source, select, intune_owners=intune_owners)
        url = f"{self.graph_url}/v1.0/{source}?$select={','.join(fields)}&$top={self.page_size}"
        return self._collect(source, url, fields, delta=False, incremental=False)

    def _select(self, source: GraphSource, select: Sequence[str], *, intune_owners: bool) -> tuple[str, ...]:
        if source not in _SOURCES:
            raise ValueError(f"unknown Graph source {source!r}")
        if isinstance(select, str):
            raise TypeError("select must be a sequence of field names, not one string")
        fields = effective_select(source, select, intune_owners=intune_owners)
        bad = [name for name in fields if not _PROPERTY.match(name)]
        if bad:
            raise ConfigError(f"mapping: {', '.join(map(repr, bad))} is not a Graph property name")
        return fields

    def _expired(self, source: GraphSource, fields: tuple[str, ...], error: BaseException) -> SourceRead:
        _log.warning("delta_link_expired", source=source)
        return SourceRead(
            source=source,
            complete=False,
            error=error,
            full_read_needed=True,
            select_fingerprint=select_fingerprint(fields),
            incremental=True,
        )

    def _collect(
        self, source: GraphSource, url: str, fields: tuple[str, ...], *, delta: bool, incremental: bool
    ) -> SourceRead:
        started = self.http.clock.monotonic()
        parser = RecordParser(fields)
        merged: dict[str, GraphRecord] = {}
        pages = 0
        last_delta: str | None = None
        error: BaseException | None = None
        try:
            for page in iter_pages(self.get, url, origin=self.origin):
                crash_point("read")  # test-only (IMPORTER_CRASH_AT)
                pages += 1
                for item in page.items:
                    record = parser.parse(item)
                    if record is None:  # an object we cannot name might be one we would "lose"
                        raise BrokenPagingError(f"{source}: page {pages} holds an item without an id")
                    earlier = merged.get(record.id)
                    merged[record.id] = record if earlier is None else merge_records(earlier, record)
                last_delta = page.delta_link if page.next_link is None else None
                _log.debug("page_fetched", source=source, page=pages, items=len(page.items))
            if delta and last_delta is None:
                error = BrokenPagingError(f"{source}: the delta round ended without an @odata.deltaLink")
        except CredentialError:
            raise
        except ImporterError as exc:
            if delta and is_delta_expired(exc):
                expired = DeltaLinkExpiredError(
                    f"{source}: the delta link expired ({exc}); a full read is needed"
                )
                return self._expired(source, fields, expired)
            error = permission_error(exc, source)
        records = tuple(r for r in merged.values() if r.removed is None)
        removed = tuple(r for r in merged.values() if r.removed is not None)
        complete = error is None
        duration_ms = round((self.http.clock.monotonic() - started) * 1000)
        fields_log = {
            "source": source,
            "mode": "incremental" if incremental else ("full" if delta else "list"),
            "records": len(records),
            "removed": len(removed),
            "pages": pages,
            "complete": complete,
            "duration_ms": duration_ms,
        }
        if error is None:
            _log.info("read_finished", **fields_log)
        else:
            route = getattr(error, "route", None) or route_template(url)
            _log.warning("read_incomplete", **fields_log, error_type=type(error).__name__, route=route)
        return SourceRead(
            source=source,
            records=records,
            removed=removed,
            delta_link=last_delta if complete and delta else None,
            complete=complete,
            error=error,
            pages=pages,
            select_fingerprint=select_fingerprint(fields),
            incremental=incremental,
        )

    # -- owners and doctor ------------------------------------------------------------------------

    def read_owners(self, devices: Iterable[str | GraphRecord], *, intune: bool = False) -> OwnersRead:
        """Read the owner of each device: registeredOwners through ``$batch``, or Intune's primary user.

        Args:
            devices: device object ids, or device records. Intune joins on ``deviceId``, so with
                ``intune=True`` pass records read with ``intune_owners=True``.
            intune: take owners from ``deviceManagement/managedDevices`` (one paged list)
                instead of one ``registeredOwners`` call per device.
        """
        from importer.graph.owners import read_intune_owners, read_registered_owners

        if intune:
            return read_intune_owners(self, devices)
        return read_registered_owners(self, devices)

    def probe(self, *, intune: bool) -> list[Check]:
        """Check that a token can be had and each source read (``importer doctor``)."""
        from importer.graph.doctor import probe

        return probe(self, intune=intune)
