"""Objects: bulk read by key, lookups, and writes that never duplicate an object."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses
from structlog.testing import capture_logs

from importer.assets.client import AssetsClient
from importer.assets.models import AssetsAttribute
from importer.assets.objects import AssetsObjects, parse_object
from importer.errors import ApiAuthError, ApiClientError, ApiNotFoundError, ApiServerError, TransportError

from .conftest import BASE, fixture, make_type

ACCOUNT = AssetsAttribute(id="140", name="Jira Account", kind="user")
ENABLED = AssetsAttribute(id="141", name="Account Enabled", kind="boolean")
MANAGER = AssetsAttribute(id="142", name="Manager", kind="reference", reference_type_id="23")
STATE = AssetsAttribute(id="143", name="Sync State", kind="status")
GROUPS = AssetsAttribute(id="144", name="Groups", kind="text", max_cardinality=-1)
TYPE = make_type(extra=(ACCOUNT, ENABLED, MANAGER, STATE, GROUPS))


def _raw(object_id: int, key: str | None, **values: list[dict[str, Any]]) -> dict[str, Any]:
    attrs = [{"objectTypeAttributeId": "134", "objectAttributeValues": [{"value": f"ENTRA-{object_id}"}]}]
    if key is not None:
        attrs.append(
            {"objectTypeAttributeId": "135", "objectAttributeValues": [{"value": key, "displayValue": key}]}
        )
    ids = {
        "name": "136",
        "enabled": "141",
        "manager": "142",
        "state": "143",
        "groups": "144",
        "account": "140",
    }
    attrs += [{"objectTypeAttributeId": ids[k], "objectAttributeValues": v} for k, v in values.items()]
    return {
        "id": str(object_id),
        "objectKey": f"ENTRA-{object_id}",
        "label": "x",
        "objectType": {"id": "23"},
        "attributes": attrs,
    }


def _page(objects: list[dict[str, Any]], *, is_last: bool = True) -> dict[str, Any]:
    return {
        "startAt": 0,
        "maxResults": 500,
        "total": 0,
        "isLast": is_last,
        "values": objects,
        "objectTypeAttributes": [],
    }


def test_parse_object_decodes_values_by_name_and_skips_system_attributes() -> None:
    raw = _raw(
        88,
        "g-1",
        name=[{"value": "Ada  "}],
        enabled=[{"value": "true"}],
        manager=[
            {
                "referencedObject": {"id": "87", "objectKey": "ENTRA-87"},
                "searchValue": "ENTRA-87",
                "displayValue": "B",
            }
        ],
        state=[{"status": {"id": "2", "name": "Active", "category": 1}, "displayValue": "Active"}],
        groups=[{"value": "b"}, {"value": "a"}],
    )
    obj = parse_object(TYPE, raw)
    assert obj.key == "g-1"
    assert obj.object_key == "ENTRA-88"
    assert obj.id == "88"
    assert obj.type_id == "23"
    assert obj.values == {
        "Entra Object ID": "g-1",
        "Name": "Ada",
        "Account Enabled": True,
        "Manager": "87",
        "Sync State": "2",
        "Groups": ("a", "b"),
    }


def test_parse_spec_update_echo() -> None:
    """PUT answers with embedded objectTypeAttribute documents; they parse too."""
    body = fixture("object_update_response.json")
    obj = parse_object(make_type(), body)
    assert obj.id == "88"
    assert obj.object_key == "ITSM-88"


@responses.activate
def test_read_reports_unkeyed_objects_and_duplicate_keys_and_keeps_the_oldest(client: AssetsClient) -> None:
    objects = [_raw(10, "k-1"), _raw(11, None), _raw(12, "k-2"), _raw(9, "k-1"), _raw(12, "k-2")]
    responses.post(f"{BASE}/object/aql", json=_page(objects))
    with capture_logs() as logs:
        result = AssetsObjects(client).read_objects(TYPE)
    assert set(result.objects) == {"k-1", "k-2"}
    assert result.objects["k-1"].id == "9"  # the lowest id stays; nothing is deleted
    assert result.unkeyed == ("ENTRA-11",)
    assert [o.id for o in result.duplicates["k-1"]] == ["9", "10"]
    assert "k-2" not in result.duplicates  # a replayed object (same id) is not a duplicate
    events = {e["event"]: e for e in logs}
    assert events["unkeyed_objects_found"]["object_keys"] == ["ENTRA-11"]
    assert events["duplicate_keys_found"]["count"] == 1
    assert "k-1" not in json.dumps(logs)  # key values (Graph ids) are not logged


@responses.activate
def test_find_by_keys_uses_quoted_in_chunks(client: AssetsClient) -> None:
    keys = [f"k-{i}" for i in range(120)] + ['we"ird\\key']
    seen: list[str] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        ql = json.loads(request.body or "{}")["qlQuery"]
        seen.append(ql)
        hits = [_raw(100 + i, f"k-{i}") for i in range(120) if f'"k-{i}"' in ql]
        if '"we\\"ird\\\\key"' in ql:
            hits.append(_raw(999, 'we"ird\\key'))
        return 200, {}, json.dumps(_page(hits))

    responses.add_callback(responses.POST, f"{BASE}/object/aql", callback=answer)
    found = AssetsObjects(client, key_chunk=50).find_by_keys(TYPE, keys)
    assert len(seen) == 3
    assert seen[0].startswith('objectTypeId = 23 AND "Entra Object ID" IN ("k-0", "k-1", ')
    assert len(found) == 121
    assert found['we"ird\\key'].id == "999"


@responses.activate
def test_create_sends_every_kind_encoded_and_returns_the_id(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/create", json=fixture("object_create_response.json"), status=201)
    values = {
        "Entra Object ID": "g-1",
        "Name": "Ada",
        "Account Enabled": False,
        "Manager": "87",
        "Sync State": "2",
        "Groups": ("a", "b"),
        "Jira Account": None,
    }
    assert AssetsObjects(client).create_object(TYPE, values) == "5186"
    body = json.loads(responses.calls[0].request.body)
    assert body["objectTypeId"] == "23"
    sent = {a["objectTypeAttributeId"]: a["objectAttributeValues"] for a in body["attributes"]}
    assert sent == {
        "135": [{"value": "g-1"}],
        "136": [{"value": "Ada"}],
        "141": [{"value": "false"}],
        "142": [{"value": "87"}],
        "143": [{"value": "2"}],
        "144": [{"value": "a"}, {"value": "b"}],
    }


def test_create_needs_the_key() -> None:
    with pytest.raises(ValueError, match="key attribute"):
        AssetsObjects(None).create_object(TYPE, {"Name": "x"})  # type: ignore[arg-type]


@responses.activate
def test_create_that_timed_out_but_landed_is_found_not_repeated(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/create", body=requests.exceptions.ReadTimeout("slow"))
    responses.post(f"{BASE}/object/aql", json=_page([_raw(5186, "g-1")]))
    assert AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1"}) == "5186"
    creates = [c for c in responses.calls if c.request.url.endswith("/object/create")]
    assert len(creates) == 1


@responses.activate
def test_create_that_got_503_and_did_not_land_is_created_once(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/create", status=503, json={"errorMessages": ["busy"]})
    responses.post(f"{BASE}/object/create", status=201, json={"id": "77", "objectKey": "ENTRA-77"})
    responses.post(f"{BASE}/object/aql", json=_page([]))
    assert AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1"}) == "77"
    urls = [c.request.url.split("?")[0].rsplit("/", 2)[-2:] for c in responses.calls]
    assert urls == [["object", "create"], ["object", "aql"], ["object", "create"]]


@responses.activate
def test_create_gives_up_after_http_max_retries_with_a_lookup_before_each_retry_and_after(
    client: AssetsClient,
) -> None:
    responses.post(f"{BASE}/object/create", status=500)
    responses.post(f"{BASE}/object/aql", json=_page([]))
    with pytest.raises(ApiServerError):
        AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1"})
    urls = [c.request.url.split("?")[0].rsplit("/", 1)[-1] for c in responses.calls]
    assert urls == ["create", "aql"] * 4  # the fixture's max_retries=3: four attempts, four lookups


@responses.activate
def test_create_retries_honour_retry_after(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/create", status=503, headers={"Retry-After": "7"})
    responses.post(f"{BASE}/object/create", status=201, json={"id": "78", "objectKey": "ENTRA-78"})
    responses.post(f"{BASE}/object/aql", json=_page([]))
    assert AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1"}) == "78"
    assert client.http.clock.sleeps[0] >= 7  # type: ignore[attr-defined]


@responses.activate
def test_a_create_that_landed_on_its_last_attempt_is_found(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/create", status=502)
    responses.post(f"{BASE}/object/aql", json=_page([]))
    responses.post(f"{BASE}/object/aql", json=_page([]))
    responses.post(f"{BASE}/object/aql", json=_page([]))
    responses.post(f"{BASE}/object/aql", json=_page([_raw(91, "g-1")]))
    assert AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1"}) == "91"
    assert sum(c.request.url.endswith("/object/create") for c in responses.calls) == 4


@responses.activate
def test_create_lookup_failure_does_not_retry(client: AssetsClient) -> None:
    """Without proof that the object is absent, no second create is sent."""
    responses.post(f"{BASE}/object/create", status=502)
    responses.post(f"{BASE}/object/aql", body=requests.exceptions.ConnectionError("reset"))
    with pytest.raises(TransportError):
        AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1"})
    assert sum(c.request.url.endswith("/object/create") for c in responses.calls) == 1


@responses.activate
def test_a_400_names_the_attribute_and_is_skippable(client: AssetsClient) -> None:
    responses.post(
        f"{BASE}/object/create",
        status=400,
        json={"errorMessages": [], "errors": {"rlabs-insight-attribute-140": "Invalid user ada@x.test"}},
    )
    with pytest.raises(ApiClientError) as info:
        AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1", "Jira Account": "557058:x"})
    assert info.value.fields == {"Jira Account": "Invalid user ada@x.test"}
    assert "Jira Account" in str(info.value)
    assert "ada@x.test" not in str(info.value)
    assert info.value.status == 400


@responses.activate
def test_reported_error_fixture_with_an_unknown_attribute_keeps_its_key(client: AssetsClient) -> None:
    responses.put(f"{BASE}/object/88", status=400, json=fixture("error_400_attribute.reported.json"))
    with pytest.raises(ApiClientError, match="rlabs-insight-attribute-1881"):
        AssetsObjects(client).update_object("88", TYPE, {"Name": "x"})


@pytest.mark.parametrize("status", [401, 403])
@responses.activate
def test_auth_errors_end_the_run(client: AssetsClient, status: int) -> None:
    responses.post(f"{BASE}/object/create", status=status)
    with pytest.raises(ApiAuthError):
        AssetsObjects(client).create_object(TYPE, {"Entra Object ID": "g-1"})


@responses.activate
def test_update_sends_only_changed_attributes_with_the_type_and_clears_with_empty_list(
    client: AssetsClient,
) -> None:
    echo = _raw(88, "g-1", name=[{"value": "Grace"}])
    responses.put(f"{BASE}/object/88", json=echo)
    with capture_logs() as logs:
        result = AssetsObjects(client).update_object("88", TYPE, {"Name": "Grace", "Manager": None})
    assert result is not None
    assert result.values["Name"] == "Grace"
    body = json.loads(responses.calls[0].request.body)
    assert body == {
        "objectTypeId": "23",
        "attributes": [
            {"objectTypeAttributeId": "136", "objectAttributeValues": [{"value": "Grace"}]},
            {"objectTypeAttributeId": "142", "objectAttributeValues": []},
        ],
    }
    assert not [e for e in logs if e["event"] == "object_update_echo_differed"]


@responses.activate
def test_update_echo_difference_is_logged_by_name(client: AssetsClient) -> None:
    responses.put(f"{BASE}/object/88", json=_raw(88, "g-1", name=[{"value": "Other"}]))
    with capture_logs() as logs:
        AssetsObjects(client).update_object("88", TYPE, {"Name": "Grace"})
    [event] = [e for e in logs if e["event"] == "object_update_echo_differed"]
    assert event["attributes"] == ["Name"]
    assert "Grace" not in json.dumps(event)


@responses.activate
def test_update_of_a_vanished_object_is_skippable(client: AssetsClient) -> None:
    responses.put(f"{BASE}/object/88", status=404)
    with pytest.raises(ApiNotFoundError):
        AssetsObjects(client).update_object("88", TYPE, {"Name": "x"})


@responses.activate
def test_delete_treats_404_as_already_gone(client: AssetsClient) -> None:
    responses.delete(f"{BASE}/object/88", status=204)
    responses.delete(f"{BASE}/object/89", status=404)
    objects = AssetsObjects(client)
    assert objects.delete_object("88") is True
    assert objects.delete_object("89") is False
