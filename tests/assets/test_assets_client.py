"""The Assets REST client: URLs, headers, JSON shapes of the spec, AQL paging on Cloud and DC."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
import responses
from responses import matchers

from importer.assets.client import AssetsClient, BasicAuth, BearerAuth, discover_workspace
from importer.errors import ApiAuthError, ConfigError, PagingLoopError

from .conftest import API, BASE, SITE, SPEC, WORKSPACE, FakeSecret, fixture, make_http


def _objects(start: int, count: int, type_id: str = "23") -> list[dict[str, Any]]:
    return [
        {
            "id": str(i),
            "objectKey": f"ENTRA-{i}",
            "label": f"o{i}",
            "objectType": {"id": type_id},
            "attributes": [],
        }
        for i in range(start, start + count)
    ]


def _page(start: int, count: int, *, max_results: int = 500, is_last: object = False) -> dict[str, Any]:
    return {
        "startAt": start,
        "maxResults": max_results,
        "total": 0,
        "isLast": is_last,
        "values": _objects(start + 1, count),
        "objectTypeAttributes": [],
    }


@responses.activate
def test_workspace_is_discovered_from_the_site() -> None:
    body = fixture("servicedesk_assets_workspace_response.illustrative.json")
    responses.get(f"{SITE}/rest/servicedeskapi/assets/workspace", json=body)
    assert discover_workspace(make_http(), SITE, auth=BasicAuth("a@b.test", "t")) == WORKSPACE
    assert responses.calls[0].request.headers["Accept"] == "application/json"


@responses.activate
def test_a_site_without_assets_is_a_config_error() -> None:
    responses.get(
        f"{SITE}/rest/servicedeskapi/assets/workspace", json={"size": 0, "values": [], "isLastPage": True}
    )
    with pytest.raises(ConfigError, match=r"assets\.workspace_id"):
        discover_workspace(make_http(), SITE + "/")


@responses.activate
def test_every_call_sends_json_headers_and_basic_auth_from_a_secret(client: AssetsClient) -> None:
    responses.get(f"{BASE}/objectschema/list", json=fixture("objectschema_list_response.json"))
    client.list_schemas()
    headers = responses.calls[0].request.headers
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"bot@contoso.test:tok3n").decode()
    assert "tok3n" not in repr(client)
    assert "tok3n" not in repr(BasicAuth("x", FakeSecret("tok3n")))


@responses.activate
def test_the_vaults_secret_type_works_as_a_credential() -> None:
    vault = pytest.importorskip("importer.vault")
    responses.get(f"{BASE}/icon/global", json=[])
    client = AssetsClient.cloud(
        make_http(), workspace_id=WORKSPACE, api_url=API, auth=BasicAuth("a@b.test", vault.Secret("s3cret"))
    )
    client.list_global_icons()
    assert (
        responses.calls[0].request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"a@b.test:s3cret").decode()
    )


@responses.activate
def test_schema_reads_parse_the_spec_examples(client: AssetsClient) -> None:
    responses.get(f"{BASE}/objectschema/list", json=fixture("objectschema_list_response.json"))
    responses.get(
        f"{BASE}/objectschema/6/objecttypes/flat", json=fixture("objectschema_objecttypes_flat_response.json")
    )
    responses.get(
        f"{BASE}/objectschema/6/attributes",
        json=fixture("objectschema_attributes_response.json"),
        match=[matchers.query_param_matcher({"extended": "true"})],
    )
    responses.get(f"{BASE}/objecttype/23/attributes", json=fixture("objecttype_attributes_response.json"))
    responses.get(
        f"{BASE}/config/statustype",
        json=fixture("config_statustype_list_response.json"),
        match=[matchers.query_param_matcher({"objectSchemaId": "6"})],
    )
    schemas = client.list_schemas()
    assert [(s.key, s.id) for s in schemas][:2] == [("NS", "13"), ("ITSM", "6")]
    assert [t.name for t in client.list_object_types("6")] == ["Employee", "Office", "City"]
    by_name = {a.name: a for a in client.list_schema_attributes("6")}
    assert by_name["Tier"].kind == "select"
    assert by_name["Tier"].options == (
        "Tier 1",
        "Tier 2",
        "Tier 3",
        "Tier 4",
    )
    assert by_name["Service relationships"].kind == "reference"
    assert by_name["Service relationships"].reference_type_id == "122"
    assert by_name["Service relationships"].multi
    assert by_name["Service ID"].unique
    assert by_name["Name"].label
    type_attrs = {a.name: a for a in client.list_type_attributes("23")}
    assert type_attrs["City"].kind == "reference"
    assert type_attrs["City"].reference_kind_id == "4"
    assert type_attrs["Created"].kind == "datetime"
    assert type_attrs["Created"].system
    assert all(a.object_type_id == "23" for a in type_attrs.values())
    statuses = client.list_statuses("6")
    assert [s.name for s in statuses][:2] == ["Action Needed", "Active"]
    assert statuses[1].category == 1


@responses.activate
def test_schema_list_follows_pages(client: AssetsClient) -> None:
    first = {
        "startAt": 0,
        "maxResults": 1,
        "total": 2,
        "isLast": False,
        "values": [{"id": "1", "objectSchemaKey": "A", "name": "A"}],
    }
    second = {
        "startAt": 1,
        "maxResults": 1,
        "total": 2,
        "isLast": True,
        "values": [{"id": "2", "objectSchemaKey": "ENTRA", "name": "Entra"}],
    }
    responses.get(
        f"{BASE}/objectschema/list",
        json=first,
        match=[matchers.query_param_matcher({"startAt": "0", "maxResults": "100"})],
    )
    responses.get(
        f"{BASE}/objectschema/list",
        json=second,
        match=[matchers.query_param_matcher({"startAt": "1", "maxResults": "100"})],
    )
    assert [s.key for s in client.list_schemas()] == ["A", "ENTRA"]


@responses.activate
def test_schema_list_does_not_stop_on_a_short_page_without_an_echo(client: AssetsClient) -> None:
    first = {"startAt": 0, "values": [{"id": "1", "objectSchemaKey": "A", "name": "A"}]}
    second = {"startAt": 1, "values": [{"id": "2", "objectSchemaKey": "ENTRA", "name": "Entra"}]}
    third: dict[str, Any] = {"startAt": 2, "values": []}
    for start, body in ((0, first), (1, second), (2, third)):
        responses.get(
            f"{BASE}/objectschema/list",
            json=body,
            match=[matchers.query_param_matcher({"startAt": str(start), "maxResults": "100"})],
        )
    assert [s.key for s in client.list_schemas()] == ["A", "ENTRA"]


def test_the_documented_rate_limit_default_is_the_configs() -> None:
    """The module docstring names http.requests_per_minute and its real default; no dead constant."""
    import importer.assets.client as module
    from importer.config import HttpConfig

    default = HttpConfig.model_fields["requests_per_minute"].default
    doc = " ".join((module.__doc__ or "").split())
    assert "http.requests_per_minute" in doc
    assert f"{default} unless configured" in doc
    assert not hasattr(module, "DEFAULT_REQUESTS_PER_MINUTE")


@responses.activate
def test_icons_accept_the_spec_example_shape_and_a_list(client: AssetsClient) -> None:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    example = spec["paths"]["/icon/global"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]["example"]
    responses.get(f"{BASE}/icon/global", json=example)
    assert [i.name for i in client.list_global_icons()][:2] == ["Mac OS", "Marker"]
    responses.replace(responses.GET, f"{BASE}/icon/global", json=example["Icons"])
    assert client.list_global_icons()[0].id == "68"


@responses.activate
def test_schema_writes_send_spec_bodies(client: AssetsClient) -> None:
    responses.post(f"{BASE}/objecttype/create", json=fixture("objecttype_create_response.json"), status=201)
    responses.post(
        f"{BASE}/objecttypeattribute/23", json=fixture("objecttypeattribute_create_response.json"), status=201
    )
    responses.post(
        f"{BASE}/config/statustype",
        status=201,
        json={"id": "58", "name": "Decommissioned", "category": 0, "objectSchemaId": "6"},
    )
    created = client.create_object_type(schema_id="6", name="Office", description="d", icon_id="13")
    assert created.id == "23"
    assert created.icon_id == "13"
    body = json.loads(responses.calls[0].request.body)
    assert body["objectSchemaId"] == "6"
    assert body["iconId"] == "13"
    assert body["name"] == "Office"
    attribute = client.create_attribute("23", {"name": "Geolocation", "type": 0, "defaultTypeId": 0})
    assert attribute.id == "1330"
    assert attribute.kind == "text"
    assert attribute.object_type_id == "23"
    status = client.create_status(schema_id="6", name="Decommissioned", category=0)
    assert status.id == "58"
    assert json.loads(responses.calls[2].request.body) == {
        "name": "Decommissioned",
        "category": 0,
        "objectSchemaId": "6",
    }


# -- AQL paging (Cloud) ------------------------------------------------------------------------


def _aql(page: dict[str, Any], start: int, max_results: int = 500) -> None:
    responses.post(
        f"{BASE}/object/aql",
        json=page,
        match=[
            matchers.query_param_matcher(
                {"startAt": str(start), "maxResults": str(max_results), "includeAttributes": "true"}
            ),
            matchers.json_params_matcher({"qlQuery": "objectTypeId = 23"}),
        ],
    )


@responses.activate
def test_aql_pages_advance_by_objects_returned_and_stop_on_a_string_is_last(client: AssetsClient) -> None:
    _aql(_page(0, 500, is_last="false"), 0)
    _aql(_page(500, 500, is_last="false"), 500)
    _aql(_page(1000, 3, is_last="true"), 1000)
    pages = list(client.iter_aql_pages("objectTypeId = 23"))
    assert [len(p.objects) for p in pages] == [500, 500, 3]


@responses.activate
def test_aql_stops_on_a_short_page_even_without_is_last(client: AssetsClient) -> None:
    _aql(_page(0, 500), 0)
    _aql(_page(500, 20), 500)
    assert sum(len(p.objects) for p in client.iter_aql_pages("objectTypeId = 23")) == 520
    assert len(responses.calls) == 2


@responses.activate
def test_aql_stops_on_an_empty_page(client: AssetsClient) -> None:
    _aql(_page(0, 500), 0)
    _aql(_page(500, 0), 500)
    assert sum(len(p.objects) for p in client.iter_aql_pages("objectTypeId = 23")) == 500


@responses.activate
def test_aql_follows_a_server_that_caps_max_results(client: AssetsClient) -> None:
    """Asked for 500, the server sends 100 and echoes maxResults=100: that is not the end."""
    for start in range(0, 300, 100):
        _aql(_page(start, 100, max_results=100), start)
    _aql(_page(300, 40, max_results=100, is_last=True), 300)
    assert sum(len(p.objects) for p in client.iter_aql_pages("objectTypeId = 23")) == 340
    assert len(responses.calls) == 4


@responses.activate
def test_aql_follows_a_server_that_caps_max_results_silently(client: AssetsClient) -> None:
    """Asked for 500, the server sends 100 a page and echoes neither maxResults nor isLast: only an
    empty page ends the search (assets-api.md §5), so no object goes unread."""
    for start, count in ((0, 100), (100, 100), (200, 40), (240, 0)):
        page = _page(start, count)
        del page["maxResults"], page["isLast"]
        _aql(page, start)
    pages = list(client.iter_aql_pages("objectTypeId = 23"))
    assert sum(len(p.objects) for p in pages) == 240
    assert len(responses.calls) == 4


@responses.activate
def test_a_short_page_with_is_last_false_and_no_echo_is_not_the_end(client: AssetsClient) -> None:
    first = _page(0, 100, is_last="false")
    del first["maxResults"]
    _aql(first, 0)
    _aql(_page(100, 7, is_last="true"), 100)
    assert sum(len(p.objects) for p in client.iter_aql_pages("objectTypeId = 23")) == 107


@responses.activate
def test_aql_raises_when_the_server_ignores_start_at(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/aql", json=_page(0, 500))
    with pytest.raises(PagingLoopError):
        list(client.iter_aql_pages("objectTypeId = 23"))


@responses.activate
def test_aql_is_retried_as_idempotent_after_a_503(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/aql", status=503)
    responses.post(f"{BASE}/object/aql", json=_page(0, 2, is_last=True))
    assert sum(len(p.objects) for p in client.iter_aql_pages("objectTypeId = 23")) == 2


@responses.activate
def test_aql_spec_example_parses(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/aql", json=fixture("object_aql_response.json"))
    pages = list(client.iter_aql_pages("objectType = Office AND Name LIKE SYD"))
    assert pages[0].objects[0]["objectKey"] == "ITSM-88"
    assert len(pages[0].attributes) == 6


@responses.activate
def test_auth_failure_propagates(client: AssetsClient) -> None:
    responses.post(f"{BASE}/object/aql", status=401, json={"errorMessages": ["nope"]})
    with pytest.raises(ApiAuthError):
        list(client.iter_aql_pages("objectTypeId = 23"))


# -- Data Center --------------------------------------------------------------------------------

DC = "https://jira.contoso.test"


def _dc_page(number: int, pages: int, entries: list[dict[str, Any]], total: int) -> dict[str, Any]:
    body = copy.deepcopy(fixture("legacy_navlist_aql_response.json"))
    body.update(
        objectEntries=entries, pageNumber=number, pageSize=pages, totalFilterCount=total, pageObjectSize=2
    )
    return body


@responses.activate
def test_datacenter_search_is_page_based_with_integer_ids() -> None:
    client = AssetsClient.datacenter(make_http(), site_url=DC, auth=BearerAuth(FakeSecret("pat")))
    entries = [
        {"id": i, "objectKey": f"E-{i}", "label": "x", "objectType": {"id": 1}, "attributes": []}
        for i in range(1, 6)
    ]
    for number, chunk in ((1, entries[0:2]), (2, entries[2:4]), (3, entries[4:5])):
        responses.get(
            f"{DC}/rest/assets/1.0/aql/objects",
            json=_dc_page(number, 3, chunk, 5),
            match=[
                matchers.query_param_matcher(
                    {
                        "qlQuery": "objectTypeId = 1",
                        "page": str(number),
                        "resultPerPage": "2",
                        "includeAttributes": "true",
                    }
                )
            ],
        )
    pages = list(client.iter_aql_pages("objectTypeId = 1", page_size=2))
    assert [len(p.objects) for p in pages] == [2, 2, 1]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer pat"


@responses.activate
def test_datacenter_search_without_page_count_reads_to_the_empty_page() -> None:
    """A Data Center answer without pageSize (the number of pages) or totalFilterCount: every page
    is read until one comes back empty, not just the first."""
    client = AssetsClient.datacenter(make_http(), site_url=DC)
    entries = [
        {"id": i, "objectKey": f"E-{i}", "label": "x", "objectType": {"id": 1}, "attributes": []}
        for i in range(1, 6)
    ]
    for number, chunk in ((1, entries[0:2]), (2, entries[2:4]), (3, entries[4:5]), (4, [])):
        body = {"objectEntries": chunk, "pageNumber": number}
        responses.get(
            f"{DC}/rest/assets/1.0/aql/objects",
            json=body,
            match=[matchers.query_param_matcher({"page": str(number)}, strict_match=False)],
        )
    pages = list(client.iter_aql_pages("objectTypeId = 1", page_size=2))
    assert sum(len(p.objects) for p in pages) == 5
    assert len(responses.calls) == 4


@responses.activate
def test_datacenter_search_raises_when_the_server_repeats_a_page() -> None:
    client = AssetsClient.datacenter(make_http(), site_url=DC)
    entries = [{"id": 1, "objectKey": "E-1", "label": "x", "objectType": {"id": 1}, "attributes": []}]
    responses.get(f"{DC}/rest/assets/1.0/aql/objects", json={"objectEntries": entries})
    with pytest.raises(PagingLoopError):
        list(client.iter_aql_pages("objectTypeId = 1", page_size=1))


@responses.activate
def test_datacenter_fixture_single_page() -> None:
    client = AssetsClient.datacenter(make_http(), site_url=DC)
    responses.get(f"{DC}/rest/assets/1.0/aql/objects", json=fixture("legacy_navlist_aql_response.json"))
    pages = list(client.iter_aql_pages("objectType = Office"))
    assert len(pages) == 1
    assert pages[0].objects[0]["objectKey"] == "ITSM-88"


@responses.activate
def test_datacenter_writes_send_integer_ids() -> None:
    client = AssetsClient.datacenter(make_http(), site_url=DC, auth=BasicAuth("svc", "pw"))
    responses.post(f"{DC}/rest/assets/1.0/object/create", json={"id": 7, "objectKey": "E-7"}, status=201)
    responses.get(
        f"{DC}/rest/assets/1.0/objectschema/list",
        json={"objectschemas": [{"id": 3, "objectSchemaKey": "ENTRA", "name": "E"}]},
    )
    client.create_object("1", [{"objectTypeAttributeId": "12", "objectAttributeValues": [{"value": "x"}]}])
    body = json.loads(responses.calls[0].request.body)
    assert body == {
        "objectTypeId": 1,
        "attributes": [{"objectTypeAttributeId": 12, "objectAttributeValues": [{"value": "x"}]}],
    }
    assert [(s.id, s.key) for s in client.list_schemas()] == [("3", "ENTRA")]


def test_cloud_base_url() -> None:
    client = AssetsClient.cloud(make_http(), workspace_id="ws-1", api_url=API + "/")
    assert client.base_url == f"{API}/jsm/assets/workspace/ws-1/v1"
    assert client.wire_id("12") == "12"


@responses.activate
def test_get_object_reads_one_and_none_when_gone(client: AssetsClient) -> None:
    responses.get(f"{BASE}/object/88", json=fixture("object_get_response.json"))
    responses.get(f"{BASE}/object/89", status=404, json={"errorMessages": ["gone"]})
    found = client.get_object("88")
    assert found is not None
    assert found["objectKey"] == "ITSM-88"
    assert client.get_object("89") is None
