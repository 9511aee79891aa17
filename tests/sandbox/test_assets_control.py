"""Jira user search, rate limiting, the /_sandbox/assets control routes, stats, and thread safety."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from importer.http import parse_rate_limit_reset
from importer.sandbox.assets import AssetsService
from importer.sandbox.assets_testing import AssetsCaller, make_service, make_type

SEARCH = "/rest/api/3/user/search"


@pytest.fixture
def service() -> AssetsService:
    return make_service()


@pytest.fixture
def api(service: AssetsService) -> AssetsCaller:
    return AssetsCaller(service)


@pytest.fixture
def user_type(api: AssetsCaller) -> tuple[str, dict[str, str]]:
    return make_type(
        api,
        "Entra User",
        [
            {"name": "Entra Object Id", "type": 0, "defaultTypeId": 0, "uniqueAttribute": True},
            {"name": "Mail", "type": 0, "defaultTypeId": 8, "maximumCardinality": -1},
        ],
    )


def _names(response: Any) -> list[str]:
    assert response.status == 200, response.body
    return [user["displayName"] for user in response.body]


# ---- Jira user search ------------------------------------------------------------------------


def test_user_search_matches_prefixes_of_names_and_emails(service: AssetsService, api: AssetsCaller) -> None:
    anna = service.add_jira_user("anna@contoso.com", "Anna Smith")
    service.add_jira_user("annabel.lee@contoso.com", "Annabel Lee")
    service.add_jira_user("anna@contoso.com.au", "Anna Jones")
    service.add_jira_user("bob@contoso.com", "Bob Annan")
    service.add_jira_user("carol@contoso.com", "Carol Danvers")
    assert _names(api.get(SEARCH, query={"query": "ann"})) == [
        "Anna Jones",
        "Anna Smith",
        "Annabel Lee",
        "Bob Annan",
    ]
    assert _names(api.get(SEARCH, query={"query": "anna@contoso.com"})) == ["Anna Jones", "Anna Smith"]
    assert _names(api.get(SEARCH, query={"query": "LEE"})) == ["Annabel Lee"]
    assert _names(api.get(SEARCH, query={"query": "contoso"})) == []  # domains are not prefixes
    assert _names(api.get(SEARCH, query={"query": "anna smith"})) == ["Anna Smith"]
    (user,) = api.get(SEARCH, query={"query": "anna smith"}).body
    assert user == {
        "self": f"https://127.0.0.1:8443/rest/api/3/user?accountId={anna}",
        "accountId": anna,
        "accountType": "atlassian",
        "emailAddress": "anna@contoso.com",
        "avatarUrls": user["avatarUrls"],
        "displayName": "Anna Smith",
        "active": True,
        "timeZone": "Etc/UTC",
        "locale": "en_US",
    }
    assert api.get(SEARCH, query={"query": "ann"}).route == SEARCH


def test_user_search_paging_lookup_and_errors(service: AssetsService, api: AssetsCaller) -> None:
    for n in range(5):
        service.add_jira_user(f"user{n}@contoso.com", f"User {n}")
    assert _names(api.get(SEARCH, query={"query": "user", "startAt": 1, "maxResults": 2})) == [
        "User 1",
        "User 2",
    ]
    account = service.add_jira_user("x@contoso.com", "Xavier")
    assert _names(api.get(SEARCH, query={"accountId": account})) == ["Xavier"]
    assert api.get(SEARCH).status == 400
    assert api.get(SEARCH, query={"query": "x", "maxResults": "many"}).status == 400
    assert api.post(SEARCH, {}).status == 405


def test_account_ids_are_deterministic_per_seed_and_email() -> None:
    first = make_service(seed=1).add_jira_user("Anna@Contoso.com", "Anna")
    again = make_service(seed=1).add_jira_user("anna@contoso.com", "Anna S.")
    other = make_service(seed=2).add_jira_user("anna@contoso.com", "Anna")
    assert first == again != other
    twin = make_service(seed=1)
    assert twin.add_jira_user("anna@contoso.com", "Anna") == first
    second = twin.add_jira_user("anna@contoso.com", "Anna (2nd account)")  # another account, same email
    assert second != first
    replay = make_service(seed=1)
    assert [replay.add_jira_user("anna@contoso.com", "A") for _ in range(2)] == [first, second]
    found = AssetsCaller(twin).get(SEARCH, query={"query": "anna@contoso.com"}).body
    assert sorted(user["accountId"] for user in found) == sorted([first, second])
    assert re.fullmatch(r"557058:[0-9a-f-]{36}", first)


def test_hidden_emails_are_found_but_not_shown_and_inactive_users_are_listed(
    service: AssetsService, api: AssetsCaller
) -> None:
    service.add_jira_user("hidden@contoso.com", "Hidden Person", email_visible=False)
    service.add_jira_user("gone@contoso.com", "Gone Person", active=False)
    (hidden,) = api.get(SEARCH, query={"query": "hidden@contoso.com"}).body
    assert "emailAddress" not in hidden
    (gone,) = api.get(SEARCH, query={"query": "gone"}).body
    assert gone["active"] is False


# ---- rate limiting ---------------------------------------------------------------------------


def test_requests_beyond_the_budget_get_429_with_retry_after(
    service: AssetsService, api: AssetsCaller
) -> None:
    service.set_rate_limit(3)
    assert api.get("/objectschema/list").status == 200
    assert api.get("/icon/global").status == 200
    assert api.aql("objectSchemaId = 6").status == 200  # every Assets route shares the budget
    limited = api.get("/objectschema/list")
    assert limited.status == 429
    assert limited.body == {
        "errorMessages": ["The request has been rate-limited. Please try again later."],
        "errors": {},
        "status": 429,
    }
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", limited.headers["X-RateLimit-Reset"])
    assert limited.route == "/jsm/assets/workspace/{id}/v1/objectschema/list"
    assert api.get(SEARCH, query={"query": "a"}).status == 200  # Jira's own API is not Assets
    service.reset_rate_window()
    assert api.get("/objectschema/list").status == 200
    service.set_rate_limit(None)
    assert all(api.get("/icon/global").status == 200 for _ in range(10))


def test_the_rate_limit_reset_time_is_one_the_importer_reads(
    service: AssetsService, api: AssetsCaller
) -> None:
    """Without Retry-After the importer waits for X-RateLimit-Reset: the sandbox's form must parse."""
    service.set_rate_limit(1)
    assert api.get("/objectschema/list").status == 200
    limited = api.get("/objectschema/list")
    assert limited.status == 429
    wait = parse_rate_limit_reset(limited.headers["X-RateLimit-Reset"], now=datetime.now(UTC))
    assert wait is not None
    assert 0 < wait <= 61


def test_the_window_slides_and_refused_or_unauthenticated_requests_do_not_count(
    service: AssetsService, api: AssetsCaller
) -> None:
    now = [1000.0]
    service.limiter.clock = lambda: now[0]
    service.set_rate_limit(2)
    assert api.get("/icon/global", auth=None).status == 401
    assert api.get("/icon/global").status == 200
    now[0] += 30
    assert api.get("/icon/global").status == 200
    assert api.get("/icon/global").status == 429
    now[0] += 29
    limited = api.get("/icon/global")
    assert (limited.status, limited.headers["Retry-After"]) == (429, "1")
    now[0] += 1.5  # the first request leaves the window
    assert api.get("/icon/global").status == 200
    assert api.get("/icon/global").status == 429


def test_a_zero_budget_refuses_everything(service: AssetsService, api: AssetsCaller) -> None:
    service.set_rate_limit(0)
    assert api.get("/icon/global").headers["Retry-After"] == "60"
    with pytest.raises(ValueError, match="per_minute"):
        service.set_rate_limit(-1)


# ---- control routes --------------------------------------------------------------------------


def test_hand_made_objects_dump_edit_and_delete(
    service: AssetsService, api: AssetsCaller, user_type: tuple[str, dict[str, str]]
) -> None:
    created = api.post(
        "/_sandbox/assets/objects",
        {
            "type": "entra user",
            "attributes": {"Name": "Anna", "Entra Object Id": "u-1", "Mail": ["a@x.io", "b@x.io"]},
        },
    )
    assert (created.status, created.route) == (201, "")
    assert created.body["attributes"] == {
        "Name": "Anna",
        "Entra Object Id": "u-1",
        "Mail": ["a@x.io", "b@x.io"],
    }
    duplicate = {"type": "Entra User", "attributes": {"Name": "Twin", "Entra Object Id": "u-1"}}
    assert api.post("/_sandbox/assets/objects", duplicate).status == 400
    assert api.post("/_sandbox/assets/objects", {**duplicate, "bypass_unique": True}).status == 201
    assert service.snapshot_stats()["duplicate_keys"] == {"Entra User": 1}
    object_id = created.body["id"]
    edited = api.put(
        f"/_sandbox/assets/objects/{object_id}", {"attributes": {"Name": "Anna B.", "Mail": None}}
    )
    assert edited.body["attributes"] == {"Name": "Anna B.", "Entra Object Id": "u-1"}
    dump = api.get("/_sandbox/assets/objects", query={"type": "Entra User"})
    assert [item["label"] for item in dump.body] == ["Anna B.", "Twin"]
    assert dump.body == service.dump_objects("Entra User")
    assert api.delete(f"/_sandbox/assets/objects/{object_id}").status == 204
    assert [item["label"] for item in service.dump_objects("Entra User")] == ["Twin"]
    assert api.delete(f"/_sandbox/assets/objects/{object_id}").status == 404
    assert api.put(f"/_sandbox/assets/objects/{object_id}", {"attributes": {}}).status == 404


def test_control_route_errors(api: AssetsCaller, user_type: tuple[str, dict[str, str]]) -> None:
    assert api.get("/_sandbox/assets/objects").status == 400
    assert api.get("/_sandbox/assets/objects", query={"type": "Nope"}).body == []
    assert api.post("/_sandbox/assets/objects", {"type": "Nope", "attributes": {}}).status == 404
    bad_attr = {"type": "Entra User", "attributes": {"Shoe Size": "9"}}
    assert api.post("/_sandbox/assets/objects", bad_attr).status == 400
    assert api.post("/_sandbox/assets/objects", {"type": "Entra User", "attributes": []}).status == 400
    assert api.get("/_sandbox/assets/nothing").status == 404
    assert api.post("/_sandbox/assets/settings", {"colour": "blue"}).status == 400
    assert api.post("/_sandbox/assets/settings", {"rate_limit_per_minute": -5}).status == 400
    malformed = api.request("POST", "/_sandbox/assets/settings", raw_body=b"{oops")
    assert malformed.status == 400


def test_other_schemas_are_reachable_by_key(service: AssetsService, api: AssetsCaller) -> None:
    offices = service.dump_objects("Office", schema_key="ITSM")
    assert len(offices) == 3
    assert all(item["objectKey"].startswith("ITSM-") for item in offices)
    services = api.get("/_sandbox/assets/objects", query={"type": "Business Service", "schema": "itsm"}).body
    assert {item["attributes"]["Office"] for item in services} <= {item["id"] for item in offices}
    assert service.dump_objects("Office") == []  # not a type of the managed schema
    assert service.snapshot_stats()["other_schemas"] == {"ITSM": {"Office": 3, "Business Service": 2}}


def test_rename_and_delete_attributes_by_hand(
    service: AssetsService, api: AssetsCaller, user_type: tuple[str, dict[str, str]]
) -> None:
    api.post(
        "/_sandbox/assets/objects", {"type": "Entra User", "attributes": {"Name": "A", "Mail": "a@x.io"}}
    )
    renamed = api.post(
        "/_sandbox/assets/attributes/rename",
        {"type": "Entra User", "attribute": "Mail", "new_name": "E-mail"},
    )
    assert renamed.status == 200
    assert service.dump_objects("Entra User")[0]["attributes"]["E-mail"] == ["a@x.io"]
    assert api.aql('Mail = "a@x.io"').status == 400
    assert api.aql('"E-mail" = "a@x.io"').body["total"] == 1
    deleted = api.post("/_sandbox/assets/attributes/delete", {"type": "Entra User", "attribute": "E-mail"})
    assert deleted.status == 200
    assert "E-mail" not in service.dump_objects("Entra User")[0]["attributes"]
    missing = {"type": "Entra User", "attribute": "E-mail"}
    assert api.post("/_sandbox/assets/attributes/delete", missing).status == 404
    assert api.post("/_sandbox/assets/attributes/rename", {**missing, "attribute": "Name"}).status == 400
    label = {"type": "Entra User", "attribute": "Name"}
    assert api.post("/_sandbox/assets/attributes/delete", label).status == 400


def test_settings_route_flips_the_switches(service: AssetsService, api: AssetsCaller) -> None:
    assert api.get("/_sandbox/assets/settings").body == {
        "enforce_unique": True,
        "is_last_as_string": False,
        "rate_limit_per_minute": None,
    }
    changed = api.post(
        "/_sandbox/assets/settings",
        {"enforce_unique": False, "is_last_as_string": True, "rate_limit_per_minute": 100},
    )
    assert changed.body == {"enforce_unique": False, "is_last_as_string": True, "rate_limit_per_minute": 100}
    assert service.store.enforce_unique is False
    assert service.limiter.per_minute == 100
    assert api.aql("objectSchemaId = 6").body["isLast"] == "true"
    api.post("/_sandbox/assets/settings", {"rate_limit_per_minute": None})
    assert service.limiter.per_minute is None


def test_stats_and_users_routes(
    service: AssetsService, api: AssetsCaller, user_type: tuple[str, dict[str, str]]
) -> None:
    assert api.get("/_sandbox/assets/stats").body == service.snapshot_stats()
    assert service.snapshot_stats()["objects"] == {"Entra User": 0}
    added = api.post(
        "/_sandbox/assets/users", {"email": "z@contoso.com", "display_name": "Zed", "active": False}
    )
    assert added.status == 201
    assert added.body["accountId"] == make_service().add_jira_user("z@contoso.com", "Zed", active=False)
    assert api.post("/_sandbox/assets/users", {"email": "z@contoso.com"}).status == 400


# ---- concurrency -----------------------------------------------------------------------------


def test_concurrent_writers_get_distinct_objects_and_one_winner_per_unique_value(
    service: AssetsService, user_type: tuple[str, dict[str, str]]
) -> None:
    type_id, ids = user_type
    barrier = threading.Barrier(8)

    def create(n: int) -> int:
        api = AssetsCaller(service)
        barrier.wait()
        statuses = []
        for k in range(25):
            entra_id = "shared" if k == 0 else f"u-{n}-{k}"
            attributes = [
                {"objectTypeAttributeId": ids["Name"], "objectAttributeValues": [{"value": f"U{n}-{k}"}]},
                {
                    "objectTypeAttributeId": ids["Entra Object Id"],
                    "objectAttributeValues": [{"value": entra_id}],
                },
            ]
            statuses.append(
                api.post("/object/create", {"objectTypeId": type_id, "attributes": attributes}).status
            )
        return statuses.count(201)

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = sum(pool.map(create, range(8)))
    assert created == 8 * 24 + 1  # exactly one thread won "shared"
    dump = service.dump_objects("Entra User")
    assert len(dump) == created
    assert len({item["id"] for item in dump}) == created
    assert service.snapshot_stats()["duplicate_keys"] == {"Entra User": 0}
