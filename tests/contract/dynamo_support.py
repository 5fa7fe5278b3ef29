"""DynamoStore on the tests' moto server, and watching the calls it makes.

moto's server answers requests on many threads with no isolation between them: a TransactWriteItems checks
its conditions and writes without a lock, and on a refusal puts back a copy of the whole table taken before
it started, erasing what another thread wrote meanwhile. DynamoDB isolates every request. So the store's
client here sends one request at a time (``one_call_at_a_time``): the store's threads still race each
other between their reads and their conditional writes, as they do on DynamoDB; only the emulator's
own missing isolation is taken away.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.dynamo_schema import create_table
from anchor_deploy.adapters.aws.dynamo_store import DynamoStore
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.ports.fakes import FakeStore

TABLE = "anchor-test"
_MOTO_LOCK = threading.Lock()  # one request at a time to the emulator, from every client of this process


def one_call_at_a_time(client: Any) -> None:
    def before(context: dict[str, Any], **_kwargs: Any) -> None:
        if not _MOTO_LOCK.acquire(timeout=60):
            raise RuntimeError("a DynamoDB call waited 60 s for the previous one")
        context["moto_lock_held"] = True

    def after(context: dict[str, Any], **_kwargs: Any) -> None:
        if context.pop("moto_lock_held", False):
            _MOTO_LOCK.release()

    client.meta.events.register("before-call.dynamodb", before)
    client.meta.events.register("after-call.dynamodb", after)
    client.meta.events.register("after-call-error.dynamodb", after)


def make_table() -> None:
    """The store's table on the moto server (the ``aws`` fixture must be active)."""
    create_table(AwsClients(), TABLE)


def store_on_table(clock: Callable[[], float], page_size: int | None = None) -> DynamoStore:
    """Another DynamoStore (its own clients, as another process would have) on the table."""
    clients = AwsClients()
    one_call_at_a_time(clients.client("dynamodb"))
    return DynamoStore(clients, TABLE, clock, page_size=page_size)


def dynamo_store(
    request: pytest.FixtureRequest, clock: Callable[[], float], page_size: int | None = None
) -> DynamoStore:
    """A DynamoStore on a fresh table of the test's moto server (reset for every test)."""
    request.getfixturevalue("aws")
    make_table()
    return store_on_table(clock, page_size)


# The stores every store contract suite runs on ("dynamo-paged": DynamoDB answering two items a page).
EVERY_STORE = ["sqlite", "fake", "dynamo"]


def store_for(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Callable[[], float]
) -> SqliteStore | FakeStore | DynamoStore:
    """The store a contract suite's fixture parameter names: a new SQLite file, the fake, or DynamoDB."""
    kind = request.param
    if kind == "sqlite":
        return SqliteStore(tmp_path / "anchor.db", clock=clock)
    if kind.startswith("dynamo"):
        return dynamo_store(request, clock, page_size=2 if kind == "dynamo-paged" else None)
    return FakeStore(clock=clock)


@dataclass
class CallLog:
    """The DynamoDB calls a client made: (operation, number of items written) in order."""

    calls: list[tuple[str, int]] = field(default_factory=list)


def _written(operation: str, params: dict[str, Any]) -> int:
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in params.get("RequestItems", {}).values())
    return 1 if operation in ("PutItem", "UpdateItem", "DeleteItem") else 0


def record_calls(client: Any) -> CallLog:
    log = CallLog()

    def before(model: Any, params: dict[str, Any], **_kwargs: Any) -> None:
        log.calls.append((model.name, _written(model.name, params)))

    client.meta.events.register("before-parameter-build.dynamodb", before)
    return log
