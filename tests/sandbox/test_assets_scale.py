"""100,000 objects in one type: paging and lookups stay fast (timings printed, never asserted)."""

from __future__ import annotations

import gc
import time

import pytest

from importer.sandbox.aql import quote_aql
from importer.sandbox.assets_objects import create_object
from importer.sandbox.assets_testing import AssetsCaller, make_service, make_type

COUNT = 100_000
PAGE = 500


@pytest.mark.slow
def test_paging_and_lookups_over_100k_objects() -> None:
    service = make_service()
    api = AssetsCaller(service)
    type_id, ids = make_type(
        api,
        "Entra Device",
        [
            {"name": "Entra Object Id", "type": 0, "defaultTypeId": 0, "uniqueAttribute": True},
            {"name": "Operating System", "type": 0, "defaultTypeId": 0},
            {"name": "Last Sign-in", "type": 0, "defaultTypeId": 6},
        ],
    )
    timings: dict[str, float] = {}

    started = time.perf_counter()
    store = service.store
    with store.lock:
        for n in range(COUNT):
            inputs: list[tuple[int, list[object]]] = [
                (int(ids["Name"]), [f"PC-{n:06d}"]),
                (int(ids["Entra Object Id"]), [f"device-{n:06d}"]),
                (int(ids["Operating System"]), ["Windows" if n % 4 else "macOS"]),
                (int(ids["Last Sign-in"]), ["2024-05-01T10:00:00Z"]),
            ]
            create_object(store, int(type_id), inputs)
    timings["create 100k objects (store level)"] = time.perf_counter() - started
    began = time.perf_counter()
    gc.collect()  # else the first pages pay for the generation-2 pass the bulk load left pending
    timings["one full garbage collection after the load"] = time.perf_counter() - began

    def timed(label: str, start: int, **query: object) -> dict[str, object]:
        began = time.perf_counter()
        response = api.aql(f"objectTypeId = {type_id}", startAt=start, maxResults=PAGE, **query)
        timings[label] = time.perf_counter() - began
        assert response.status == 200
        return dict(response.body)

    first = timed("page 1 of 200 (with attributes)", 0)
    middle = timed("page 101 of 200", 50_000)
    last = timed("page 200 of 200", COUNT - PAGE)
    timed("page 200 without attributes", COUNT - PAGE, includeAttributes=False)
    assert (first["total"], first["isLast"], last["isLast"]) == (COUNT, False, True)
    assert len(last["values"]) == PAGE  # type: ignore[arg-type]
    assert middle["values"][0]["label"] == "PC-050000"  # type: ignore[index]

    keys = ", ".join(quote_aql(f"device-{n:06d}") for n in range(0, COUNT, COUNT // 50))
    began = time.perf_counter()
    lookup = api.aql(f'objectTypeId = {type_id} AND "Entra Object Id" IN ({keys})', maxResults=100)
    timings["IN lookup of 50 unique keys"] = time.perf_counter() - began
    assert lookup.body["total"] == 50

    began = time.perf_counter()
    scan = api.post(
        "/object/aql/totalcount", {"qlQuery": f'objectTypeId = {type_id} AND "Operating System" = macOS'}
    )
    timings["count by a non-unique attribute (full scan)"] = time.perf_counter() - began
    assert scan.body == {"totalCount": COUNT // 4}

    began = time.perf_counter()
    start, pages = 0, 0
    while True:
        body = api.aql(
            f"objectTypeId = {type_id}", startAt=start, maxResults=PAGE, includeAttributes=False
        ).body
        start += len(body["values"])
        pages += 1
        if body["isLast"]:
            break
    timings["read all 200 pages without attributes"] = time.perf_counter() - began
    assert (start, pages) == (COUNT, COUNT // PAGE)

    print()
    for label, seconds in timings.items():
        print(f"  {label:<45} {seconds * 1000:10.1f} ms")
