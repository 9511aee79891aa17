"""100,000 users and 100,000 devices: generation and page times (printed; the README keeps them)."""

from __future__ import annotations

import time

import pytest

from importer.sandbox.app import Sandbox
from importer.sandbox.testing import get_token, graph_getter, http_session


@pytest.mark.slow
def test_a_100k_tenant_loads_and_serves_pages() -> None:
    started = time.perf_counter()
    with Sandbox(users=100_000, devices=100_000, seed=1) as sb, http_session(sb) as session:
        print(f"\nstart {time.perf_counter() - started:.1f}s; phases {sb.timings}")
        get = graph_getter(sb, session, get_token(sb, session))
        timings: dict[str, float] = {}

        def timed(name: str, target: str, **options: object) -> dict[str, object]:
            begin = time.perf_counter()
            response = get(target, **options)
            timings[name] = time.perf_counter() - begin
            assert response.status_code == 200, response.text[:300]
            return response.json()  # type: ignore[no-any-return]

        select = "id,displayName,userPrincipalName,mail,accountEnabled,department,jobTitle,employeeId"
        first = timed("users page 999", "/v1.0/users", top=999, select=select)
        assert len(first["value"]) == 999  # type: ignore[arg-type]
        timed("users page 999 (2nd)", str(first["@odata.nextLink"]))
        timed("devices page 999", "/v1.0/devices", top=999)
        delta = timed("users delta first page", "/v1.0/users/delta", select=select)
        timed("users delta next page", str(delta["@odata.nextLink"]))
        timed("managedDevices page 1000", "/v1.0/deviceManagement/managedDevices")
        disabled = timed("users disabled filter", "/v1.0/users", top=999, filter="accountEnabled eq false")
        assert disabled["value"]
        sb.mutate(update_users=500, add_devices=100)
        begin = time.perf_counter()
        pages = 0
        link = str(delta["@odata.nextLink"])
        while link:  # finish the round, then read the changes
            body = get(link).json()
            pages += 1
            link = body.get("@odata.nextLink") or ""
            delta_link = body.get("@odata.deltaLink")
        timings[f"users delta rest of round ({pages} pages)"] = time.perf_counter() - begin
        changes = timed("users delta changes page", str(delta_link))
        assert changes["value"]
        for name, seconds in timings.items():
            print(f"{name}: {seconds * 1000:.0f} ms")
