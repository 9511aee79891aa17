"""The Assets client against the sandbox's HTTPS server on 127.0.0.1 (real TLS, real sockets).

Request counts come from the sandbox's own stats (``GET {control_url}/stats``), not from the
client: what the server saw is what a real workspace would have billed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("importer.sandbox.app")

from importer.assets.client import AssetsClient, BasicAuth, discover_workspace
from importer.assets.objects import AssetsObjects
from importer.assets.schema import apply_schema, resolve_schema
from importer.http import Http, HttpSettings, RateLimiter
from importer.sandbox import app
from importer.sandbox.assets_objects import create_object, inputs_by_name

from .test_assets_sandbox import REQUIREMENTS, _desired


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with app.Sandbox(users=3, devices=3, seed=7, jira_accounts=False) as sandbox:
        yield sandbox


@pytest.fixture
def http(server: Any) -> Iterator[Http]:
    info = server.info()
    client_http = Http(
        "assets",
        HttpSettings(ca_bundle=info["ca_bundle"], max_retries=3),
        limiter=RateLimiter(60_000, burst=1000),
    )
    yield client_http
    client_http.close()


def _client(server: Any, http: Http) -> AssetsClient:
    info = server.info()
    auth = BasicAuth(info["jira_email"], info["jira_api_token"])
    workspace = discover_workspace(http, info["site_url"], auth=auth)
    assert workspace == info["workspace_id"]
    return AssetsClient.cloud(http, workspace_id=workspace, api_url=info["assets_api_url"], auth=auth)


def _requests(http: Http, server: Any, method: str, suffix: str) -> int:
    stats = http.get_json(server.info()["control_url"] + "/stats")
    return sum(
        r["count"]
        for r in stats["requests"]
        if r["service"] == "assets" and r["method"] == method and r["route"].endswith(suffix)
    )


@pytest.mark.slow
def test_bootstrap_round_trip_and_bulk_read_cost_over_https(server: Any, http: Http) -> None:
    client = _client(server, http)
    first = apply_schema(client, "ENTRA", REQUIREMENTS)
    assert first.created_types == ("Entra User", "Entra Device")
    server.reset_stats()
    second = apply_schema(client, "ENTRA", REQUIREMENTS)
    assert second.created == 0
    assert _requests(http, server, "POST", "") == 0
    assert _requests(http, server, "PUT", "") == 0

    resolved = resolve_schema(client, "ENTRA", REQUIREMENTS)
    user = resolved.type("Entra User")
    objects = AssetsObjects(client)
    boss = objects.create_object(user, {"Entra Object ID": "boss", "Name": "Boss"})
    account = server.assets.add_jira_user("zoe@contoso.test", "Zoë")
    desired = _desired(resolved, boss, account, 0)
    objects.create_object(user, desired)
    key = str(desired["Entra Object ID"])
    assert objects.find_by_keys(user, [key])[key].values == desired

    store = server.assets.store
    with store.lock:
        type_rec = store.find_type("Entra User", int(server.assets.schema_id))
        for i in range(20_000 - 2):
            values = {"Entra Object ID": f"00000000-0000-4000-8000-{i:012d}", "Name": f"User {i}"}
            create_object(store, type_rec.id, inputs_by_name(store, type_rec.id, values))
    server.reset_stats()
    result = objects.read_objects(user)
    assert len(result.objects) == 20_000
    assert _requests(http, server, "POST", "/object/aql") == 40
