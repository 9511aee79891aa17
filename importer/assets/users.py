"""Atlassian accounts for User attributes: an email resolved to an accountId, exactly or not at all.

``GET {site}/rest/api/3/user/search?query=<email>`` is a fuzzy search (it matches names and
prefixes too), so only a result whose ``emailAddress`` equals the email (case-insensitively)
counts. No such result (or a hidden email address) means unknown; two different accounts mean
ambiguous: both give ``None`` and are counted, so a User attribute is never set to the wrong
person. Results are cached per run; the caller may seed the cache from state and persist
``snapshot()`` back, under keys of its choosing (e.g. pseudonyms, so no email lands in state).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping

import structlog

from importer.assets.client import AssetsAuth, request_headers
from importer.errors import PagingLoopError
from importer.http import Http

__all__ = ["AccountResolver"]

_log = structlog.get_logger("importer.assets.users")


class AccountResolver:
    """Resolve emails to Atlassian accountIds with a cache; thread-safe.

    Args:
        http: the Jira site's ``Http`` (shares the Assets rate limiter as a rule).
        site_url: ``https://<site>.atlassian.net``.
        auth: the same Basic auth as Assets.
        cache: opaque key -> accountId (or None for "known unknown") from an earlier run.
    """

    def __init__(
        self,
        http: Http,
        site_url: str,
        *,
        auth: AssetsAuth | None = None,
        cache: Mapping[str, str | None] | None = None,
    ) -> None:
        self._http = http
        self._url = site_url.rstrip("/") + "/rest/api/3/user/search"
        self._all_url = site_url.rstrip("/") + "/rest/api/3/users/search"
        self._listed: dict[str, set[str]] | None = None  # email -> active accounts, after prefetch()
        self._hidden = 0  # active accounts whose email the listing did not show
        self._auth = auth
        self._cache: dict[str, str | None] = dict(cache or {})
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # resolved, unknown, ambiguous, cache_hits, lookups

    def resolve(self, email: str, *, key: str | None = None) -> str | None:
        """The accountId whose email is exactly ``email`` (case-insensitive), else None.

        ``key`` names the cache entry (default: the email, lower-cased).
        """
        wanted = email.strip().casefold()
        if not wanted:
            return None
        cache_key = key if key is not None else wanted
        with self._lock:
            if cache_key in self._cache:
                self.counts["cache_hits"] += 1
                return self._cache[cache_key]
        account = self._lookup(wanted)
        with self._lock:
            self._cache[cache_key] = account
        return account

    def prefetch(self, *, page_size: int = 1000) -> int:
        """List every account once (``GET /rest/api/3/users/search``, 1,000 a page) to resolve in bulk.

        A large first run then costs one request per 1,000 accounts instead of one per email. The
        listing ends on an empty page only: the answer is a bare list that does not say whether
        the server capped ``maxResults``, so a short page is no proof that no account follows.
        Emails the listing shows resolve from it; an email it does not show is searched for one by
        one only when some accounts hide their email address (Atlassian profile visibility).
        Returns the number of accounts listed.
        """
        listed: dict[str, set[str]] = {}
        hidden = 0
        start = 0
        previous_first: object = None
        while True:
            body = self._http.get_json(
                self._all_url,
                params={"startAt": str(start), "maxResults": str(page_size)},
                headers=request_headers(self._auth),
                route="/rest/api/3/users/search",
            )
            page = [u for u in (body if isinstance(body, list) else []) if isinstance(u, dict)]
            if not page:
                break
            first = page[0].get("accountId")
            if first is not None and first == previous_first:
                raise PagingLoopError("/rest/api/3/users/search")  # startAt ignored: it never ends
            previous_first = first
            for user in page:
                if user.get("accountType", "atlassian") != "atlassian" or user.get("active") is False:
                    continue
                email = user.get("emailAddress")
                if isinstance(email, str) and email.strip() and user.get("accountId"):
                    listed.setdefault(email.strip().casefold(), set()).add(str(user["accountId"]))
                else:
                    hidden += 1
            start += len(page)
        with self._lock:
            self._listed = listed
            self._hidden = hidden
            self.counts["listed"] = start
        _log.info("accounts_listed", accounts=start, hidden_emails=hidden)
        return start

    def _lookup(self, wanted: str) -> str | None:
        with self._lock:
            listed, hidden = self._listed, self._hidden
        if listed is not None and (wanted in listed or not hidden):
            matches = listed.get(wanted, set())
            return self._outcome(matches)
        body = self._http.get_json(
            self._url,
            params={"query": wanted, "maxResults": "50"},
            headers=request_headers(self._auth),
            route="/rest/api/3/user/search",
        )
        matches = {
            str(user["accountId"])
            for user in (body if isinstance(body, list) else [])
            if isinstance(user, dict)
            and user.get("accountId")
            and user.get("active") is not False
            and isinstance(user.get("emailAddress"), str)
            and user["emailAddress"].strip().casefold() == wanted
        }
        with self._lock:
            self.counts["lookups"] += 1
        return self._outcome(matches)

    def _outcome(self, matches: set[str]) -> str | None:
        with self._lock:
            outcome = "resolved" if len(matches) == 1 else "unknown" if not matches else "ambiguous"
            self.counts[outcome] += 1
        if len(matches) != 1:
            _log.debug("account_not_resolved", reason=outcome, candidates=len(matches))
            return None
        return next(iter(matches))

    def pending(self, keys: Iterable[str]) -> int:
        """How many of these cache keys are not resolved yet (to decide whether ``prefetch`` pays)."""
        with self._lock:
            return sum(1 for k in keys if k not in self._cache)

    def snapshot(self, *, include_unknown: bool = False) -> dict[str, str | None]:
        """The cache to persist; unknown entries are left out unless asked (accounts appear later)."""
        with self._lock:
            return {k: v for k, v in self._cache.items() if v is not None or include_unknown}
