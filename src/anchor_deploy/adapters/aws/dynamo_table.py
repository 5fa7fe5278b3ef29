"""The DynamoDB calls the store makes, on one table: reads that follow every page, conditional writes,
transactions (at most 100 items) whose cancellation says which item's condition failed, batch deletes
(at most 25 keys a call) and batch reads (100) that retry what DynamoDB left unprocessed, and counts."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.dynamo_codec import Item, decode, encode, key
from anchor_deploy.model.errors import StoreBusy

TRANSACTION_MAX = 100  # items in one TransactWriteItems
BATCH_MAX = 25  # requests in one BatchWriteItem
BATCH_GET_MAX = 100  # keys in one BatchGetItem
_UNPROCESSED_ROUNDS = 8
_CONFLICT_ROUNDS = 4


class StoreContended(StoreBusy):
    """A write lost every round to other writers (compare-and-set, or transactions in flight on the same
    items); nothing changed, try again: the API answers 503 ``busy``, as for SQLite's write lock."""


class TransactionCanceled(Exception):
    """A transaction was refused: ``reasons[i]`` is the code for operation i (None: not the cause)."""

    def __init__(self, reasons: list[str | None]) -> None:
        super().__init__(f"transaction canceled: {reasons}")
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"

    @property
    def conflicted(self) -> bool:
        """Only other transactions in flight on the same items (or throttling) were the cause: worth trying
        again. (A retried call is idempotent: botocore gives each TransactWriteItems a ClientRequestToken.)"""
        codes = {r for r in self.reasons if r is not None}
        return bool(codes) and codes <= {"TransactionConflict", "ThrottlingError"}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _expression(
    condition: str | None, names: Mapping[str, str] | None, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if condition:
        found["ConditionExpression"] = condition
    if names:
        found["ExpressionAttributeNames"] = dict(names)
    if values:
        found["ExpressionAttributeValues"] = encode(values)
    return found


class DynamoTable:
    """One table through one low-level client. ``page_size`` caps each Query page (None: DynamoDB's 1 MB)."""

    def __init__(self, client: Any, name: str, page_size: int | None = None) -> None:
        self.client = client
        self.name = name
        self.page_size = page_size

    # -- operations (for transactions, or one by one through ``write``) ----------------------------
    def put(
        self,
        item: Item,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {"TableName": self.name, "Item": encode(item), **_expression(condition, names, values)}
        return {"Put": body}

    def update(
        self,
        pk: str,
        sk: str,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        expression = _expression(condition, names, values)
        return {
            "Update": {"TableName": self.name, "Key": key(pk, sk), "UpdateExpression": update, **expression}
        }

    def delete(
        self,
        pk: str,
        sk: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {"TableName": self.name, "Key": key(pk, sk), **_expression(condition, names, values)}
        return {"Delete": body}

    def check(
        self,
        pk: str,
        sk: str,
        condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {"TableName": self.name, "Key": key(pk, sk), **_expression(condition, names, values)}
        return {"ConditionCheck": body}

    # -- writes ------------------------------------------------------------------------------------
    def write(self, operation: dict[str, Any], returning: str | None = None) -> Item | None:
        """One Put/Update/Delete on its own; None if its condition failed, else the item ``returning``
        asks for (ALL_NEW, ALL_OLD; {} when nothing is asked or there was no old item)."""
        (kind, body), *_ = operation.items()
        call = {"Put": self.client.put_item, "Update": self.client.update_item}.get(
            kind, self.client.delete_item
        )
        extra = {"ReturnValues": returning} if returning else {}
        try:
            answer = call(**body, **extra)
        except ClientError as error:
            if _error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return decode(answer.get("Attributes", {}))

    def transact(self, operations: Sequence[dict[str, Any]]) -> None:
        """All of ``operations`` or none; TransactionCanceled with the per-operation reasons. One canceled
        only by other transactions in flight on its items is sent again (a few times, with backoff)."""
        if not 0 < len(operations) <= TRANSACTION_MAX:
            raise ValueError(f"a transaction holds 1 to {TRANSACTION_MAX} items, not {len(operations)}")
        for attempt in range(_CONFLICT_ROUNDS):
            try:
                self.client.transact_write_items(TransactItems=list(operations))
                return
            except ClientError as error:
                if _error_code(error) != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons") or []
                refused = TransactionCanceled(
                    [None if r.get("Code") in (None, "None") else str(r["Code"]) for r in reasons]
                )
                if not refused.conflicted:
                    raise refused from None
            time.sleep(min(0.02 * 2**attempt, 0.5))
        raise StoreContended(f"a transaction on {self.name} kept meeting others on the same items")

    def batch_delete(self, keys: Sequence[tuple[str, str]]) -> int:
        """Delete ``keys`` in BatchWriteItem calls of at most 25 (what DynamoDB leaves unprocessed is sent
        again with backoff); returns the number of calls made."""
        calls = 0
        for start in range(0, len(keys), BATCH_MAX):
            chunk = [{"DeleteRequest": {"Key": key(pk, sk)}} for pk, sk in keys[start : start + BATCH_MAX]]
            calls += self._batch_write(chunk)
        return calls

    def batch_put(self, items: Sequence[Item]) -> None:
        for start in range(0, len(items), BATCH_MAX):
            self._batch_write([{"PutRequest": {"Item": encode(i)}} for i in items[start : start + BATCH_MAX]])

    def _batch_write(self, requests: list[dict[str, Any]]) -> int:
        calls = 0
        for attempt in range(_UNPROCESSED_ROUNDS):
            answer = self.client.batch_write_item(RequestItems={self.name: requests})
            calls += 1
            requests = answer.get("UnprocessedItems", {}).get(self.name, [])
            if not requests:
                return calls
            time.sleep(min(0.05 * 2**attempt, 2.0))
        raise RuntimeError(f"DynamoDB left {len(requests)} writes unprocessed after {calls} calls")

    # -- reads -------------------------------------------------------------------------------------
    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[Item]:
        """Strongly consistent reads of ``keys`` in BatchGetItem calls of at most 100 (what DynamoDB leaves
        unprocessed is asked again with backoff); the items found, in the order of ``keys``."""
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(keys), BATCH_GET_MAX):
            wanted = [key(pk, sk) for pk, sk in keys[start : start + BATCH_GET_MAX]]
            for attempt in range(_UNPROCESSED_ROUNDS):
                request = {self.name: {"Keys": wanted, "ConsistentRead": True}}
                answer = self.client.batch_get_item(RequestItems=request)
                for raw in answer.get("Responses", {}).get(self.name, []):
                    item = decode(raw)
                    found[(str(item["pk"]), str(item["sk"]))] = item
                wanted = answer.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
                if not wanted:
                    break
                time.sleep(min(0.05 * 2**attempt, 2.0))
            else:
                raise RuntimeError(f"DynamoDB left {len(wanted)} reads unprocessed")
        return [found[k] for k in keys if k in found]

    def count(self, condition: str, values: Mapping[str, Any], index: str | None = None) -> int:
        """How many items match (a Query with Select COUNT, page after page: it costs the read capacity of
        the items counted, and sends none of them)."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "Select": "COUNT",
            **_expression(None, None, values),
        }
        if index:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = True
        if self.page_size:
            request["Limit"] = self.page_size
        total = 0
        while True:
            answer = self.client.query(**request)
            total += int(answer.get("Count", 0))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return total
            request["ExclusiveStartKey"] = last

    def get(self, pk: str, sk: str, projection: Sequence[str] = ()) -> Item | None:
        """A strongly consistent read of one item."""
        extra: dict[str, Any] = {}
        if projection:
            extra["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(projection)))
            extra["ExpressionAttributeNames"] = {f"#p{i}": name for i, name in enumerate(projection)}
        answer = self.client.get_item(TableName=self.name, Key=key(pk, sk), ConsistentRead=True, **extra)
        found = answer.get("Item")
        return None if found is None else decode(found)

    def query(
        self,
        condition: str,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        projection: str | None = None,
        filter_expression: str | None = None,
    ) -> Iterator[Item]:
        """Every matching item, page after page (following LastEvaluatedKey), at most ``limit`` of them.
        Reads of the table are strongly consistent; an index is read as it is (eventually consistent)."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ScanIndexForward": forward,
            **_expression(None, names, values),
        }
        if index:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = True
        if projection:
            request["ProjectionExpression"] = projection
        if filter_expression:
            request["FilterExpression"] = filter_expression
        yielded = 0
        while True:
            page = self.page_size
            if limit is not None and filter_expression is None:
                page = min(page or limit, limit - yielded)
            if page:
                request["Limit"] = page
            answer = self.client.query(**request)
            for raw in answer.get("Items", []):
                yield decode(raw)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last
