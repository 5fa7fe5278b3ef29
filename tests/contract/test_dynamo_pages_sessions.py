"""What only the DynamoDB store has to prove for the dashboard (the shared contracts are
test_session_contract.py and test_store_pages_contract.py): what a page or a sweep reads, batch reads that
ask again for what DynamoDB left unprocessed, and two sweeps at once counting each session once.

moto never leaves keys of a BatchGetItem unprocessed: that answer of DynamoDB is played with botocore's
Stubber here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.dynamo_codec import encode
from anchor_deploy.adapters.aws.dynamo_store import DynamoStore
from anchor_deploy.adapters.aws.dynamo_table import DynamoTable
from anchor_deploy.model.entities import MoveReason, Session, Token
from tests.contract.dynamo_support import TABLE, dynamo_store, store_on_table
from tests.contract.test_dynamo_store import boto_session
from tests.contract.test_store_contract import add_deployment, add_project
from tests.support import TickingClock, run_concurrently

NOW = 1_700_000_000.0


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Iterator[DynamoStore]:
    yield dynamo_store(request, TickingClock())


def watch_reads(client: Any) -> list[tuple[str, int]]:
    """(operation, items it returned) for every Query and BatchGetItem the client makes from now on."""
    seen: list[tuple[str, int]] = []

    def after(parsed: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        if model.name == "Query":
            seen.append(("Query", len(parsed.get("Items", []))))
        elif model.name == "BatchGetItem":
            seen.append(("BatchGetItem", sum(len(v) for v in parsed.get("Responses", {}).values())))

    client.meta.events.register("after-call.dynamodb", after)
    return seen


def test_a_history_page_reads_only_its_rows_whatever_the_offset(store: DynamoStore) -> None:
    site = add_project(store, "site")
    ids = [add_deployment(store, site, f"d{n}", created_at=float(n)).id for n in range(30)]
    for previous, target in zip([None, *ids], ids, strict=False):
        store.move_production(site.id, previous, target, MoveReason.DEPLOY, "ci", False)
    reads = watch_reads(store.table.client)
    page = store.alias_history_page(site.id, 5, 20)
    assert [m.to_deployment_id for m in page] == ids[::-1][20:25]
    assert reads == [("Query", 5)]


def test_a_deployment_page_reads_keys_then_fetches_only_the_page(store: DynamoStore) -> None:
    site = add_project(store, "site")
    ids = [add_deployment(store, site, f"d{n}", created_at=float(n)).id for n in range(12)]
    requests: list[dict[str, Any]] = []
    store.table.client.meta.events.register(
        "before-parameter-build.dynamodb.Query", lambda params, **_kw: requests.append(params)
    )
    reads = watch_reads(store.table.client)
    page = store.list_deployments(site.id, limit=3, offset=4)
    assert [d.id for d in page] == ids[::-1][4:7]
    assert reads == [("Query", 12), ("BatchGetItem", 3)]
    assert requests[0]["ProjectionExpression"] == "pk, created_at, #o", "only the sort keys are sent"


def test_unprocessed_batch_reads_are_asked_again_and_come_back_in_key_order() -> None:
    """DynamoDB may leave keys of a BatchGetItem unprocessed (moto never does): played here; 130 keys go
    in two calls of at most 100."""
    client = AwsClients(boto_session()).client("dynamodb")
    table = DynamoTable(client, TABLE)
    keys = [(f"K#{i:03d}", "S") for i in range(130)]

    def items(numbers: range) -> list[dict[str, Any]]:
        return [encode({"pk": f"K#{i:03d}", "sk": "S", "n": i}) for i in numbers]

    left = [{"pk": {"S": "K#007"}, "sk": {"S": "S"}}]
    with Stubber(client) as stub:
        stub.add_response(
            "batch_get_item",
            {"Responses": {TABLE: items(range(8, 100))}, "UnprocessedKeys": {TABLE: {"Keys": left}}},
        )
        stub.add_response(
            "batch_get_item",
            {"Responses": {TABLE: items(range(7, 8))}},
            {"RequestItems": {TABLE: {"Keys": left, "ConsistentRead": True}}},
        )
        stub.add_response("batch_get_item", {"Responses": {TABLE: items(range(100, 130))}})
        found = table.batch_get(keys)
        stub.assert_no_pending_responses()
    assert [int(i["n"]) for i in found] == list(range(7, 130)), "K#000..K#006 do not exist"


def test_the_sweep_reads_only_expired_sessions(store: DynamoStore) -> None:
    store.add_token(Token("tok_admin", "admin", None, 1.0), "token-hash")
    for n in range(6):
        store.add_session(Session(f"ses_{n}", "tok_admin", "c", NOW, NOW + 100 * n), f"hash-{n}")
    reads = watch_reads(store.table.client)
    assert store.delete_expired_sessions(NOW + 150) == 2
    assert reads[0] == ("Query", 2), "the index entries of sessions 0 and 1 only"


def test_two_sweeps_at_once_count_each_session_once(request: pytest.FixtureRequest) -> None:
    first = dynamo_store(request, TickingClock())
    second = store_on_table(TickingClock())
    first.add_token(Token("tok_admin", "admin", None, 1.0), "token-hash")
    for n in range(8):
        first.add_session(Session(f"ses_{n}", "tok_admin", "c", NOW, NOW + n), f"hash-{n}")
    counts: dict[str, int] = {}

    def sweep(name: str) -> None:
        counts[name] = (first if name == "first" else second).delete_expired_sessions(NOW + 5)

    assert run_concurrently(sweep, ["first", "second"]) == []
    assert counts["first"] + counts["second"] == 6
    assert [first.session_by_hash(f"hash-{n}") is None for n in range(8)] == [True] * 6 + [False] * 2
