"""What only the DynamoDB backend has: the table it creates, TTL attributes, batches, errors."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from state_fixtures import FakeClock

from importer.errors import CredentialError, FatalError, LeaseLostError, RetriableError
from importer.state import Approval, CachedAccount, DeltaState, IdMapChanges, IdMapEntry, RunRecord
from importer.state._dynamo_io import DynamoTable
from importer.state.dynamodb import DynamoStateStore


def client(endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name="eu-west-1", endpoint_url=endpoint)


def a_store(table: str, endpoint: str, clock: FakeClock | None = None) -> DynamoStateStore:
    return DynamoStateStore(
        table, instance="contoso", region="eu-west-1", endpoint_url=endpoint, clock=clock or FakeClock()
    )


def a_run(clock: FakeClock) -> RunRecord:
    return RunRecord(
        run_id="r1",
        instance="contoso",
        started_at=clock.now,
        mode="full",
        trigger="manual",
        outcome="success",
    )


def test_init_creates_the_documented_table(dynamo_table: str, atomic_moto: str) -> None:
    store = a_store(dynamo_table, atomic_moto)
    assert "created" in store.prepare()
    described = client(atomic_moto).describe_table(TableName=dynamo_table)["Table"]
    assert sorted((k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]) == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = client(atomic_moto).describe_time_to_live(TableName=dynamo_table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    assert "exists" in store.prepare()


def test_a_missing_table_is_a_clear_error(dynamo_table: str, atomic_moto: str) -> None:
    with pytest.raises(FatalError, match=r"does not exist.*importer state init"):
        a_store(dynamo_table, atomic_moto).get_delta("users")


def test_a_table_with_another_key_schema_is_refused(dynamo_table: str, atomic_moto: str) -> None:
    client(atomic_moto).create_table(
        TableName=dynamo_table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(FatalError, match="another key schema"):
        a_store(dynamo_table, atomic_moto).init()


def test_expiring_items_carry_the_ttl_attribute_and_the_lease_does_not(
    dynamo_table: str, atomic_moto: str
) -> None:
    clock = FakeClock()
    store = a_store(dynamo_table, atomic_moto, clock)
    store.init()
    lease = store.acquire_lease("me", duration_s=60)
    store.commit(lease, deltas={}, id_maps={}, run=a_run(clock))
    store.add_approval(Approval(plan_hash="p", approved_at=clock.now, approved_by="ops"))
    store.put_accounts([CachedAccount(key="k", account_id=None, cached_at=clock.now)])
    items = client(atomic_moto).scan(TableName=dynamo_table)["Items"]
    by_kind = {item["kind"]["S"]: item for item in items}
    day = 86400
    start = int(clock.now.timestamp())
    assert int(by_kind["run"]["expires_at"]["N"]) == start + 60 * day
    assert int(by_kind["approval"]["expires_at"]["N"]) == start + 60 * day
    assert int(by_kind["account"]["expires_at"]["N"]) == start + 7 * day
    assert "expires_at" not in by_kind["lease"]  # a TTL deletion would reset the fence
    assert {item["pk"]["S"] for item in items} <= {
        "inst#contoso",
        "inst#contoso#run",
        "inst#contoso#approval",
        "inst#contoso#account",
    }


def test_the_client_uses_botocores_standard_retry_mode(dynamo_table: str, atomic_moto: str) -> None:
    store = a_store(dynamo_table, atomic_moto)
    assert store._db.client.meta.config.retries["mode"] == "standard"


def test_a_lease_lost_after_the_id_map_batches_keeps_the_watermark(
    dynamo_table: str, atomic_moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A takeover between the fence check and the final transaction: delta links and the run record
    are not written; only id-map entries are, which is harmless (see the module docstring)."""
    clock = FakeClock()
    stale_host, new_host = (
        a_store(dynamo_table, atomic_moto, clock),
        a_store(dynamo_table, atomic_moto, clock),
    )
    stale_host.init()
    stale = stale_host.acquire_lease("host-a", duration_s=30)
    assert stale is not None

    def taken_over_meanwhile(lease: object) -> None:
        clock.advance(seconds=120)
        assert new_host.acquire_lease("host-b", duration_s=30) is not None

    monkeypatch.setattr(stale_host, "_check_fence", taken_over_meanwhile)
    delta = DeltaState(source="users", link="STALE", select_fingerprint="f", updated_at=clock.now)
    upserts = {"g1": IdMapEntry(object_id="o1", content_hash="h")}
    with pytest.raises(LeaseLostError, match="delta links and run record were not written"):
        stale_host.commit(
            stale, deltas={"users": delta}, id_maps={"users": IdMapChanges(upserts=upserts)}, run=a_run(clock)
        )
    assert new_host.get_delta("users") is None
    assert new_host.list_runs() == []
    assert new_host.get_id_entries("users", ["g1"]) == upserts


class FlakyBatches:
    """A DynamoDB client stand-in whose batch calls leave every other request unprocessed."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.single_calls = 0

    @staticmethod
    def _key(key: dict[str, Any]) -> tuple[str, str]:
        return key["pk"]["S"], key["sk"]["S"]

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        for request in requests[::2]:
            if "PutRequest" in request:
                self.put_item(TableName=table, Item=request["PutRequest"]["Item"], count=False)
            else:
                self.delete_item(TableName=table, Key=request["DeleteRequest"]["Key"], count=False)
        return {"UnprocessedItems": {table: requests[1::2]} if requests[1::2] else {}}

    def batch_get_item(self, RequestItems: dict[str, dict[str, Any]]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        found = [self.items[self._key(k)] for k in keys[::2] if self._key(k) in self.items]
        return {"Responses": {table: found}, "UnprocessedKeys": {table: {"Keys": keys[1::2]}}}

    def put_item(self, *, TableName: str, Item: dict[str, Any], count: bool = True) -> dict[str, Any]:
        self.single_calls += count
        self.items[self._key(Item)] = Item
        return {}

    def delete_item(self, *, TableName: str, Key: dict[str, Any], count: bool = True) -> dict[str, Any]:
        self.single_calls += count
        self.items.pop(self._key(Key), None)
        return {}

    def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.single_calls += 1
        item = self.items.get(self._key(Key))
        return {"Item": item} if item else {}


def test_unprocessed_batch_requests_are_sent_again_one_by_one() -> None:
    fake = FlakyBatches()
    table = DynamoTable("t", region=None, endpoint_url=None, client=fake)
    puts = [{"pk": {"S": "p"}, "sk": {"S": f"s{i:03d}"}} for i in range(60)]
    table.batch_write(puts=puts)
    assert len(fake.items) == 60
    assert fake.single_calls == 12 + 12 + 5  # batches of 25, 25 and 10; every other one left over
    assert len(table.batch_get([{"pk": {"S": "p"}, "sk": {"S": f"s{i:03d}"}} for i in range(0, 60, 2)])) == 30
    table.batch_write(deletes=puts[:10])
    assert len(fake.items) == 50


def _raising(code: str) -> Any:
    class Raising:
        def get_item(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": code, "Message": "m"}}, "GetItem")

    return Raising()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param("ProvisionedThroughputExceededException", RetriableError, id="throttled"),
        pytest.param("ThrottlingException", RetriableError, id="throttling"),
        pytest.param("InternalServerError", RetriableError, id="5xx"),
        pytest.param("AccessDeniedException", CredentialError, id="denied"),
        pytest.param("ValidationException", FatalError, id="other"),
    ],
)
def test_aws_errors_become_importer_errors(code: str, error: type[Exception]) -> None:
    store = DynamoStateStore("t", instance="contoso", client=_raising(code))
    with pytest.raises(error, match=code):
        store.get_delta("users")
