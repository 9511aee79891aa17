"""Atlassian accounts: an email resolves to an accountId only on an exact match."""

from __future__ import annotations

import json

import pytest
import responses
from responses import matchers
from structlog.testing import capture_logs

from importer.assets.client import BasicAuth
from importer.assets.users import AccountResolver
from importer.errors import PagingLoopError

from .conftest import SITE, make_http

SEARCH = f"{SITE}/rest/api/3/user/search"


def _user(account: str, email: str | None, name: str = "Someone") -> dict[str, object]:
    user: dict[str, object] = {
        "accountId": account,
        "accountType": "atlassian",
        "displayName": name,
        "active": True,
    }
    if email is not None:
        user["emailAddress"] = email
    return user


def _resolver(**kw: object) -> AccountResolver:
    return AccountResolver(make_http(), SITE, auth=BasicAuth("bot@contoso.test", "t"), **kw)  # type: ignore[arg-type]


@responses.activate
def test_exact_match_wins_over_fuzzy_neighbours() -> None:
    responses.get(
        SEARCH,
        json=[_user("a-1", "ada.lovelace@contoso.test"), _user("a-2", "ada@contoso.test")],
        match=[matchers.query_param_matcher({"query": "ada@contoso.test", "maxResults": "50"})],
    )
    resolver = _resolver()
    assert resolver.resolve("ada@contoso.test") == "a-2"
    assert resolver.counts["resolved"] == 1


@responses.activate
def test_match_is_case_insensitive() -> None:
    responses.get(SEARCH, json=[_user("a-2", "Ada@Contoso.TEST")])
    assert _resolver().resolve(" ADA@contoso.test ") == "a-2"


@responses.activate
def test_no_exact_match_is_unknown_never_a_wrong_person() -> None:
    responses.get(SEARCH, json=[_user("a-1", "ada.lovelace@contoso.test"), _user("a-3", None)])
    resolver = _resolver()
    with capture_logs() as logs:
        assert resolver.resolve("ada@contoso.test") is None
    assert resolver.counts["unknown"] == 1
    assert "ada@contoso.test" not in json.dumps(logs)


@responses.activate
def test_two_accounts_with_the_same_email_are_ambiguous() -> None:
    responses.get(SEARCH, json=[_user("a-1", "ada@contoso.test"), _user("a-2", "ADA@contoso.test")])
    resolver = _resolver()
    assert resolver.resolve("ada@contoso.test") is None
    assert resolver.counts["ambiguous"] == 1


@responses.activate
def test_cache_is_used_seeded_and_snapshotted() -> None:
    responses.get(SEARCH, json=[_user("a-9", "grace@contoso.test")])
    resolver = _resolver(cache={"pid:ada": "a-2", "pid:gone": None})
    assert resolver.resolve("ada@contoso.test", key="pid:ada") == "a-2"
    assert resolver.resolve("nobody@contoso.test", key="pid:gone") is None
    assert resolver.resolve("grace@contoso.test", key="pid:grace") == "a-9"
    assert resolver.resolve("Grace@contoso.test", key="pid:grace") == "a-9"
    assert len(responses.calls) == 1
    assert resolver.counts["cache_hits"] == 3
    assert resolver.snapshot() == {"pid:ada": "a-2", "pid:grace": "a-9"}
    assert resolver.snapshot(include_unknown=True)["pid:gone"] is None


def test_blank_email_is_none_without_a_request() -> None:
    assert _resolver().resolve("  ") is None


ALL_USERS = f"{SITE}/rest/api/3/users/search"


@responses.activate
def test_prefetch_lists_every_account_when_the_server_caps_max_results() -> None:
    """Asked for 1,000 a page, the site sends 100: the listing goes on to an empty page, so an
    account on a later page resolves (it is not 'unknown' because the listing stopped early)."""
    accounts = [_user(f"acc-{n}", f"user{n}@contoso.test") for n in range(250)]
    for start in (0, 100, 200, 250):
        responses.get(
            ALL_USERS,
            json=accounts[start : start + 100],
            match=[matchers.query_param_matcher({"startAt": str(start), "maxResults": "1000"})],
        )
    resolver = _resolver()
    assert resolver.prefetch() == 250
    assert resolver.resolve("user180@contoso.test") == "acc-180"
    assert resolver.resolve("user249@contoso.test") == "acc-249"
    assert resolver.counts["unknown"] == 0
    assert resolver.counts["lookups"] == 0  # resolved from the listing, no search per email
    assert len(responses.calls) == 4


@responses.activate
def test_prefetch_raises_when_the_server_ignores_start_at() -> None:
    responses.get(ALL_USERS, json=[_user("acc-1", "a@contoso.test")])
    with pytest.raises(PagingLoopError):
        _resolver().prefetch()
