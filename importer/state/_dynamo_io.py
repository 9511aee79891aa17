"""DynamoDB plumbing for the state store: the client, error translation, batches and pages.

Throttling (``ProvisionedThroughputExceededException``, ``ThrottlingException``) and transient
5xx are retried by botocore's *standard* retry mode (token bucket, capped exponential backoff
with jitter), configured on the client; nothing here sleeps or loops on an error code (only
``init`` waits, with botocore's own waiter, for a new table to become active). What a
batch call hands back unprocessed is written (or read) again one item at a time, through the
same client, so those single calls get the same standard retries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from importer.errors import ConfigError, CredentialError, FatalError, RetriableError

__all__ = ["ConditionFailed", "DynamoTable", "Item", "TableMissing", "n", "opt_s", "s"]

Item = dict[str, dict[str, Any]]  # a DynamoDB item in the low-level client's attribute-value form

_BATCH_WRITE = 25  # BatchWriteItem's maximum requests per call
_BATCH_GET = 100  # BatchGetItem's maximum keys per call
_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
_TRANSIENT = {"InternalServerError", "ServiceUnavailable", "TransactionConflictException"}
_DENIED = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "InvalidSignatureException",
}


def s(value: str) -> dict[str, str]:
    """A string attribute value."""
    return {"S": value}


def n(value: int) -> dict[str, str]:
    """A number attribute value."""
    return {"N": str(value)}


def opt_s(value: str | None) -> dict[str, Any]:
    """A string attribute value, or NULL."""
    return {"NULL": True} if value is None else {"S": value}


class TableMissing(FatalError):
    """The state table does not exist (yet)."""


class ConditionFailed(Exception):
    """A conditional write or a transaction's condition check did not hold."""


class DynamoTable:
    """One DynamoDB table, reached through one low-level client created on first use."""

    def __init__(self, name: str, *, region: str | None, endpoint_url: str | None, client: Any) -> None:
        self.name = name
        self._region = region
        self._endpoint_url = endpoint_url
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 DynamoDB client (created on first use, with the standard retry mode)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config
                from botocore.exceptions import NoRegionError

                config = Config(
                    retries={"mode": "standard", "max_attempts": 8},
                    connect_timeout=5,
                    read_timeout=30,
                )
                try:
                    self._client = boto3.session.Session().client(
                        "dynamodb", region_name=self._region, endpoint_url=self._endpoint_url, config=config
                    )
                except NoRegionError as exc:
                    raise ConfigError(
                        "state.region: no AWS region is configured for the DynamoDB state table"
                    ) from exc
            return self._client

    def close(self) -> None:
        """Close the client if this object created it."""
        with self._lock:
            if self._client is not None and self._owns_client:
                self._client.close()
                self._client = None

    @contextmanager
    def errors(self, operation: str) -> Iterator[None]:
        """Translate botocore errors into importer errors naming the table and the error code."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            where = f"DynamoDB {operation} on table {self.name!r}"
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(code) from exc
            if code == "TransactionCanceledException":
                reasons = [str(r.get("Code")) for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    raise ConditionFailed(code) from exc
                raise RetriableError(f"{where}: transaction cancelled ({', '.join(reasons)})") from exc
            if code == "ResourceNotFoundException":
                raise TableMissing(
                    f"{where}: the table does not exist; create it with `importer state init`"
                ) from exc
            if code in _THROTTLED or code in _TRANSIENT:
                raise RetriableError(f"{where}: {code} after retries") from exc
            if code in _DENIED:
                raise CredentialError(f"{where}: {code}") from exc
            raise FatalError(f"{where}: {code}") from exc
        except NoCredentialsError as exc:
            raise CredentialError(f"DynamoDB {operation}: no AWS credentials found") from exc
        except BotoCoreError as exc:
            raise RetriableError(
                f"DynamoDB {operation} on table {self.name!r}: {type(exc).__name__}"
            ) from exc

    def ensure(self, *, ttl_attribute: str) -> str:
        """Create the table (pk/sk strings, on-demand) and enable TTL if needed; say what was done."""
        done: list[str] = []
        try:
            table = self.call("describe_table")["Table"]
        except TableMissing:
            self.call(
                "create_table",
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            with self.errors("wait for table"):  # botocore's waiter polls until the table is ACTIVE
                waiter = self.client.get_waiter("table_exists")
                waiter.wait(TableName=self.name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
            table = self.call("describe_table")["Table"]
            done.append("created (on-demand)")
        keys = {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]}
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        if keys != {("pk", "HASH"), ("sk", "RANGE")} or types.get("pk") != "S" or types.get("sk") != "S":
            raise FatalError(
                f"DynamoDB table {self.name!r} exists with another key schema; the state table "
                "needs pk (string, partition key) and sk (string, sort key)"
            )
        ttl = self.call("describe_time_to_live").get("TimeToLiveDescription", {})
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            self.call(
                "update_time_to_live",
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
            )
            done.append(f"TTL enabled on {ttl_attribute}")
        elif ttl.get("AttributeName") != ttl_attribute:
            done.append(
                f"TTL is on attribute {ttl.get('AttributeName')!r}, not {ttl_attribute!r}: "
                "expired records are removed only by sweeps"
            )
        return "; ".join(done) if done else "exists, key schema and TTL ok"

    def call(self, operation: str, **kwargs: Any) -> Any:
        """Call one client operation on this table (``TableName`` is added)."""
        with self.errors(operation):
            return getattr(self.client, operation)(TableName=self.name, **kwargs)

    def get(self, key: Item) -> Item | None:
        """Read one item, strongly consistent."""
        found: Item | None = self.call("get_item", Key=key, ConsistentRead=True).get("Item")
        return found

    def query(self, **kwargs: Any) -> Iterator[Item]:
        """Every item a strongly consistent query returns, page after page."""
        start: Item | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self.call("query", ConsistentRead=True, **kwargs, **extra)
            yield from page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def count(self, **kwargs: Any) -> int:
        """How many items a query matches (``Select=COUNT``: no item data is returned)."""
        total = 0
        start: Item | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = self.call("query", ConsistentRead=True, Select="COUNT", **kwargs, **extra)
            total += int(page.get("Count", 0))
            start = page.get("LastEvaluatedKey")
            if not start:
                return total

    def batch_get(self, keys: Sequence[Item], **read: Any) -> list[Item]:
        """Read many items by key, 100 per call; unprocessed keys are read one by one."""
        found: list[Item] = []
        for start in range(0, len(keys), _BATCH_GET):
            request = {"Keys": list(keys[start : start + _BATCH_GET]), "ConsistentRead": True, **read}
            with self.errors("batch_get_item"):
                page = self.client.batch_get_item(RequestItems={self.name: request})
            found += page.get("Responses", {}).get(self.name, [])
            left = page.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
            for key in left:
                item = self.call("get_item", Key=key, ConsistentRead=True, **read).get("Item")
                if item is not None:
                    found.append(item)
        return found

    def batch_write(self, *, puts: Iterable[Item] = (), deletes: Iterable[Item] = ()) -> None:
        """Put and delete many items, 25 per call; unprocessed requests are sent one by one.

        Each key may appear once in all of ``puts`` and ``deletes`` together (a DynamoDB rule).
        """
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in puts]
        requests += [{"DeleteRequest": {"Key": key}} for key in deletes]
        for start in range(0, len(requests), _BATCH_WRITE):
            chunk = requests[start : start + _BATCH_WRITE]
            with self.errors("batch_write_item"):
                page = self.client.batch_write_item(RequestItems={self.name: chunk})
            for request in page.get("UnprocessedItems", {}).get(self.name, []):
                if "PutRequest" in request:
                    self.call("put_item", Item=request["PutRequest"]["Item"])
                else:
                    self.call("delete_item", Key=request["DeleteRequest"]["Key"])

    def transact(self, actions: Sequence[dict[str, Any]]) -> None:
        """Run ``TransactWriteItems``; raises ``ConditionFailed`` if a condition did not hold."""
        for action in actions:
            next(iter(action.values()))["TableName"] = self.name
        with self.errors("transact_write_items"):
            self.client.transact_write_items(TransactItems=list(actions))
