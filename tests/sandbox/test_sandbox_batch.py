"""JSON batching: up to 20 GETs, unordered answers with their own status, headers and body."""

from __future__ import annotations

from typing import Any

import requests

from importer.sandbox.app import Sandbox


def batch(
    sb: Sandbox, http: requests.Session, token: str, requests_: list[dict[str, Any]]
) -> requests.Response:
    return http.post(
        f"{sb.base_url}/v1.0/$batch",
        json={"requests": requests_},
        headers={"Authorization": f"Bearer {token}"},
    )


def owner_requests(sb: Sandbox, n: int) -> list[dict[str, Any]]:
    assert sb.directory is not None
    devices = sb.directory.dump("devices")["value"][:n]
    return [
        {"id": str(i + 1), "method": "GET", "url": f"/devices/{d['id']}/registeredOwners"}
        for i, d in enumerate(devices)
    ]


def test_a_batch_of_owner_lookups_answers_each_item(sb: Sandbox, http: requests.Session, token: str) -> None:
    assert sb.directory is not None
    devices = sb.directory.dump("devices")["value"][:19]
    items = [{"id": d["id"], "method": "GET", "url": f"/devices/{d['id']}/registeredOwners"} for d in devices]
    items.append(
        {
            "id": "missing",
            "method": "GET",
            "url": "devices/00000000-0000-4000-8000-000000000000/registeredOwners",
        }
    )
    response = batch(sb, http, token, items)
    assert response.status_code == 200
    answers = {a["id"]: a for a in response.json()["responses"]}
    assert set(answers) == {i["id"] for i in items}
    assert [a["id"] for a in response.json()["responses"]] != [i["id"] for i in items]  # unordered
    for device in devices:
        answer = answers[device["id"]]
        assert answer["status"] == 200
        assert answer["headers"]["Content-Type"].startswith("application/json")
        owners = [o["id"] for o in answer["body"]["value"]]
        assert owners == ([device["registeredOwnerId"]] if device["registeredOwnerId"] else [])
    assert answers["missing"]["status"] == 404
    assert answers["missing"]["body"]["error"]["code"] == "Request_ResourceNotFound"


def test_more_than_20_requests_is_400(sb: Sandbox, http: requests.Session, token: str) -> None:
    response = batch(sb, http, token, owner_requests(sb, 21))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


def test_duplicate_ids_and_empty_batches_are_400(sb: Sandbox, http: requests.Session, token: str) -> None:
    twice = owner_requests(sb, 2)
    twice[1]["id"] = twice[0]["id"]
    assert batch(sb, http, token, twice).status_code == 400
    assert batch(sb, http, token, []).status_code == 400


def test_a_batch_needs_a_token_and_inner_requests_need_permissions(
    sb: Sandbox, http: requests.Session, token: str
) -> None:
    assert (
        http.post(f"{sb.base_url}/v1.0/$batch", json={"requests": owner_requests(sb, 1)}).status_code == 401
    )
    sb.set_tenant(permissions=["User.Read.All"])
    answer = batch(sb, http, token, owner_requests(sb, 1)).json()["responses"][0]
    assert answer["status"] == 403
    assert answer["body"]["error"]["code"] == "Authorization_RequestDenied"


def test_inner_requests_can_be_throttled_with_their_own_retry_after(
    sb: Sandbox, http: requests.Session, token: str
) -> None:
    sb.set_faults(service="graph", rate_429=0.3, retry_after=[0.1, 2.0], retry_after_format="decimal", seed=5)
    inner_429 = None
    for _ in range(20):
        response = batch(sb, http, token, owner_requests(sb, 20))
        if response.status_code != 200:
            continue  # the batch itself was throttled
        inner_429 = next((a for a in response.json()["responses"] if a["status"] == 429), None)
        if inner_429 is not None:
            break
    assert inner_429 is not None
    assert float(inner_429["headers"]["Retry-After"]) > 0
    assert inner_429["body"]["error"]["code"] == "TooManyRequests"


def test_inner_urls_with_query_options_work(sb: Sandbox, http: requests.Session, token: str) -> None:
    items = [{"id": "1", "method": "GET", "url": "/users?$select=id,displayName&$top=3"}]
    answer = batch(sb, http, token, items).json()["responses"][0]
    assert answer["status"] == 200
    assert len(answer["body"]["value"]) == 3
    assert set(answer["body"]["value"][0]) == {"id", "displayName"}
