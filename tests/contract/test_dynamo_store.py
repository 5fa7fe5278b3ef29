"""What only the DynamoDB store has to prove (the shared contract runs in test_store_contract.py): project
deletion in bounded writes and resumable, alias moves racing between two store objects, every list read
page after page, manifests bigger than one transaction, exact times.

moto checks transaction conditions and refuses a transaction of more than 100 items, but it isolates no
request from another (see dynamo_support.py) and never answers with a TransactionConflict cancellation or
UnprocessedItems; those two answers of DynamoDB are played with botocore's Stubber here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.dynamo_codec import encode, project_pk
from anchor_deploy.adapters.aws.dynamo_logs import LINE_BYTES_MAX
from anchor_deploy.adapters.aws.dynamo_store import DynamoStore
from anchor_deploy.adapters.aws.dynamo_table import DynamoTable
from anchor_deploy.model.entities import Deployment, HostKind, HostRoute, MoveReason, Project, Target, Token
from anchor_deploy.model.errors import Conflict, DeploymentNotFound, NameTaken, StoreBusy
from anchor_deploy.model.logs import BuildLogCap
from anchor_deploy.model.manifest import ManifestFile
from tests.contract.dynamo_support import TABLE, CallLog, dynamo_store, record_calls, store_on_table
from tests.contract.test_build_log_contract import DROPPED, HEAD, check_shape
from tests.contract.test_store_contract import (
    FILES,
    Q,
    add_deployment,
    add_project,
    make_ready,
    new_domain,
)
from tests.support import TickingClock, sha


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def store(request: pytest.FixtureRequest, clock: TickingClock) -> Iterator[DynamoStore]:
    yield dynamo_store(request, clock)


def every_item(store: DynamoStore) -> list[dict[str, Any]]:
    """The whole table (a Scan: the test looks at everything; the store itself never scans)."""
    client = store.table.client
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": TABLE}
    while True:
        page = client.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def keys_of(store: DynamoStore) -> set[str]:
    return {f"{i['pk']['S']}|{i['sk']['S']}" for i in every_item(store)}


def big_project(store: DynamoStore, deployments: int) -> tuple[Project, list[str]]:
    """A project with ``deployments`` deployments, logs, a token, a domain, env and alias history."""
    site = add_project(store, "site", "www.example.com")
    hosts = ["site.test", "www.example.com"]
    ids = []
    for i in range(deployments):
        ids.append(add_deployment(store, site, f"a{i}", created_at=float(i)).id)
        hosts.append(f"site-a{i}.test")
    for dpl_id in ids[:3]:
        store.append_log(dpl_id, [f"line {n}" for n in range(30)])
    ready = make_ready(store, store.deployment(ids[0]) or pytest.fail("missing"))
    store.move_production(site.id, None, ready.id, MoveReason.DEPLOY, "ci", False)
    store.add_token(Token("tok_site", "ci", site.id, 1.0), "site-hash")
    store.add_domain(new_domain(site, "shop.example.com"))
    store.set_env(site.id, "KEY", b"sealed", True)
    return site, hosts


# -- deletion --------------------------------------------------------------------------------------
def test_a_big_project_is_deleted_in_bounded_batches_and_nothing_is_left(store: DynamoStore) -> None:
    keep = add_project(store, "keep")
    kept = add_deployment(store, keep, "k1")
    before = keys_of(store)
    site, hosts = big_project(store, 260)
    held = len(keys_of(store) - before)
    log = record_calls(store.table.client)

    released = store.delete_project(site.id)
    made = list(log.calls)

    assert "Scan" not in {name for name, _ in made}
    assert sorted(released) == sorted(hosts)
    assert keys_of(store) == before, "every item of the project is gone, the other project's stay"
    assert store.deployment(kept.id) == kept and [p.name for p in store.list_projects()] == ["keep"]
    batches = [n for name, n in made if name == "BatchWriteItem"]
    assert batches and max(batches) <= 25
    assert sum(batches) == held - 2, "every item once, but the project's and its name claim"
    assert [n for name, n in made if name == "TransactWriteItems"] == [2]  # those two, last
    add_project(store, "site", "www.example.com")  # the name and hosts are free again


class Interrupted(Exception):
    """The process "killed" between two batches."""


def interrupt_batch(store: DynamoStore, after: int) -> CallLog:
    """Make every BatchWriteItem after the first ``after`` fail before it is sent."""
    log = CallLog()

    def fail(model: Any, **_kwargs: Any) -> None:
        log.calls.append((model.name, 0))
        if len(log.calls) > after:
            raise Interrupted

    store.table.client.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", fail)
    return log


@pytest.mark.parametrize("resume", ["resume_deletions", "delete_project again"])
def test_a_deletion_cut_short_hides_the_project_and_is_finished_later(
    store: DynamoStore, clock: TickingClock, resume: str
) -> None:
    keep = add_project(store, "keep")
    before = keys_of(store)
    site, hosts = big_project(store, 40)
    interrupt_batch(store, after=1)

    with pytest.raises(Interrupted):
        store.delete_project(site.id)

    # Marked deleting: gone for every reader, its hosts serve nothing, nothing can be added to it.
    assert store.project_by_id(site.id) is None and store.project_by_name("site") is None
    assert [p.name for p in store.list_projects()] == ["keep"]
    assert store.token_by_hash("site-hash") is None, "the first batch: the project's tokens stop working"
    assert store.host_target("site.test") is None and store.project_hosts(site.id) == []
    assert all(route.project_id == keep.id for route, _ in store.host_targets())
    with pytest.raises(NameTaken):  # the name is held until the deletion is finished
        store.add_project(Project("prj_again", "site", 2.0), [])
    assert len(keys_of(store) - before) > 40, "only the first batch went"

    other = store_on_table(clock)  # e.g. the reconciler of another process
    if resume == "resume_deletions":
        finished = other.resume_deletions()
        assert list(finished) == [site.id]
        released = finished[site.id]
    else:
        released = other.delete_project(site.id)
    assert set(released) <= set(hosts) and len(released) >= len(hosts) - 25
    assert keys_of(store) == before
    assert other.resume_deletions() == {}
    add_project(store, "site", "www.example.com")


# -- alias moves between two stores ----------------------------------------------------------------
def test_two_stores_moving_production_from_the_same_target_one_wins(
    store: DynamoStore, clock: TickingClock
) -> None:
    site = add_project(store, "site")
    a, b, c = (make_ready(store, add_deployment(store, site, s)) for s in ("a1", "a2", "a3"))
    store.move_production(site.id, None, a.id, MoveReason.DEPLOY, "ci", False)
    other = store_on_table(clock)
    raced: list[str] = []

    def other_moves_first(model: Any, **_kwargs: Any) -> None:
        if model.name == "TransactWriteItems" and not raced:
            raced.append(
                other.move_production(site.id, a.id, b.id, MoveReason.PROMOTE, "bob", False).to_deployment_id
            )

    # This store has read production (a) and is about to write when the other store moves it.
    store.table.client.meta.events.register("before-parameter-build.dynamodb", other_moves_first)
    with pytest.raises(Conflict):
        store.move_production(site.id, a.id, c.id, MoveReason.PROMOTE, "alice", True)

    assert raced == [b.id]
    history = store.alias_history(site.id)
    assert [(m.from_deployment_id, m.to_deployment_id, m.token_name) for m in history] == [
        (None, a.id, "ci"),
        (a.id, b.id, "bob"),
    ]
    assert (store.project_by_id(site.id) or site).production_deployment_id == b.id
    assert (store.project_by_id(site.id) or site).pinned is False


def test_two_stores_racing_on_threads_one_wins_and_one_history_row(
    store: DynamoStore, clock: TickingClock
) -> None:
    site = add_project(store, "site")
    targets = [make_ready(store, add_deployment(store, site, f"a{i}")).id for i in range(6)]
    stores = [store, store_on_table(clock)]
    start = threading.Barrier(len(targets))
    outcomes: dict[str, str] = {}

    def move(i: int) -> None:
        start.wait(timeout=10)
        try:
            stores[i % 2].move_production(site.id, None, targets[i], MoveReason.DEPLOY, "ci", False)
            outcomes[targets[i]] = "won"
        except Conflict:
            outcomes[targets[i]] = "conflict"

    threads = [threading.Thread(target=move, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [t for t, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == len(targets) and len(winners) == 1
    assert [(m.from_deployment_id, m.to_deployment_id) for m in store.alias_history(site.id)] == [
        (None, winners[0])
    ]


def test_a_transaction_conflict_is_tried_again(clock: TickingClock) -> None:
    """DynamoDB cancels a transaction that meets another one in flight (moto never does): played here."""
    clients = AwsClients(boto_session())
    store = DynamoStore(clients, TABLE, clock)
    project = {"pk": project_pk("prj_1"), "sk": "PROJECT", "id": "prj_1", "name": "site", "created_at": 1.0}
    project |= {"pinned": False, "number": 1, "moves": 0, "deploys": 1, "domains": 0, "state": "live"}
    conflict = {"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]}
    with Stubber(store.table.client) as stub:
        stub.add_response("get_item", {"Item": encode(project)})
        stub.add_client_error(
            "transact_write_items", "TransactionCanceledException", "conflict", 400, modeled_fields=conflict
        )
        stub.add_response("transact_write_items", {})  # the same transaction, sent again
        move = store.move_production("prj_1", None, "dpl_1", MoveReason.DEPLOY, "ci", False)
        stub.assert_no_pending_responses()
    assert (move.id, move.from_deployment_id, move.to_deployment_id) == (1, None, "dpl_1")


def test_unprocessed_batch_writes_are_sent_again() -> None:
    """DynamoDB may leave part of a BatchWriteItem unprocessed (moto never does): played here."""
    client = AwsClients(boto_session()).client("dynamodb")
    table = DynamoTable(client, TABLE)
    keys = [(f"K#{i}", "S") for i in range(30)]
    left = [{"DeleteRequest": {"Key": {"pk": {"S": "K#3"}, "sk": {"S": "S"}}}}]
    with Stubber(client) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": {TABLE: left}})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {TABLE: left}})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}})
        assert table.batch_delete(keys) == 3
        stub.assert_no_pending_responses()


def boto_session() -> boto3.Session:
    """A session of its own: a stubbed client never reaches the network."""
    return boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")


# -- pages, big manifests, exact numbers -----------------------------------------------------------
def test_every_list_follows_its_pages(request: pytest.FixtureRequest, clock: TickingClock) -> None:
    store = dynamo_store(request, clock, page_size=2)
    log = record_calls(store.table.client)
    names = [f"p{i}" for i in range(7)]
    projects = [add_project(store, name) for name in reversed(names)]
    site = projects[-1]
    ids = [add_deployment(store, site, f"d{i}", created_at=float(i)).id for i in range(5)]
    for i in range(5):
        store.add_token(Token(f"tok_{i}", "ci", None, float(i)), f"hash-{i}")
        store.set_env(site.id, f"K{i}", b"v", False)
        store.add_domain(new_domain(site, f"w{i}.example.com", next_check_at=float(10 - i)))
    for previous, target in zip([None, *ids], ids, strict=False):
        store.set_status(target, Q)  # a repeated status is allowed and changes nothing
        store.move_production(site.id, previous, target, MoveReason.DEPLOY, "ci", False)
    store.append_log(ids[0], [f"line {n}" for n in range(9)])
    log.calls.clear()

    assert [p.name for p in store.list_projects()] == names
    assert [d.id for d in store.list_deployments(site.id)] == ids[::-1]
    assert [d.id for d in store.deployments_with_status([Q])] == ids
    assert [t.id for t in store.list_tokens()] == [f"tok_{i}" for i in range(5)]
    assert [k for k, *_ in store.list_env(site.id)] == [f"K{i}" for i in range(5)]
    assert [m.to_deployment_id for m in store.alias_history(site.id)] == ids
    assert [d.name for d in store.project_domains(site.id)] == [f"w{i}.example.com" for i in range(5)]
    assert [d.name for d in store.domains_due(100.0, limit=3)] == [f"w{i}.example.com" for i in (4, 3, 2)]
    assert len(store.domains_due_fairly(100.0, 5, 10)) == 5
    assert len(store.host_targets()) == 7 + 5
    assert [text for _, _, text in store.read_log(ids[0], after=2)] == [f"line {n}" for n in range(2, 9)]
    queries = len([name for name, _ in log.calls if name == "Query"])
    assert queries >= 40, "two items a page: every list took several pages"


def test_a_manifest_bigger_than_a_transaction_is_written_before_it(store: DynamoStore) -> None:
    store.chunk_bytes = 64  # every 64 bytes of manifest or sealed environment its own item: hundreds
    site = add_project(store, "site")
    files = [ManifestFile(f"assets/{i}/file-{i}.js", sha(str(i).encode()), i, 0o644) for i in range(400)]
    dpl = Deployment("dpl_big", site.id, Q, Target.PREVIEW, 1.0, len(files), 9)
    before = keys_of(store)
    with pytest.raises(NameTaken):  # refused: the chunks written first are taken back
        store.add_deployment(dpl, files, HostRoute("site.test", HostKind.DEPLOYMENT, site.id, dpl.id))
    assert keys_of(store) == before
    sealed = bytes(range(256)) * 8  # 32 chunks of 64 bytes
    store.add_deployment(dpl, files, HostRoute("big.test", HostKind.DEPLOYMENT, site.id, dpl.id), sealed)
    chunks = [k for k in keys_of(store) if k.startswith("DEPLOY#dpl_big|MANIFEST#")]
    assert len(chunks) > 100
    assert store.manifest(dpl.id) == files and store.sealed_env(dpl.id) == sealed
    assert store.delete_deployment(dpl.id) == ["big.test"]
    assert keys_of(store) == before


def test_times_come_back_bit_for_bit(store: DynamoStore) -> None:
    site = add_project(store, "site")
    for i, at in enumerate([0.1 + 0.2, 1e-7, 1_700_000_000.123456789, 2.0**-40, 123456789.98765432]):
        dpl = Deployment(f"dpl_{i}", site.id, Q, Target.PREVIEW, at, 0, 0, ready_at=at * 3)
        store.add_deployment(dpl, FILES, HostRoute(f"t{i}.test", HostKind.DEPLOYMENT, site.id, dpl.id))
        assert store.deployment(dpl.id) == dpl
        store.add_token(Token(f"tok_{i}", "ci", None, at, last_used_at=at / 7), f"hash-{i}")
        assert store.token_by_hash(f"hash-{i}") == Token(f"tok_{i}", "ci", None, at, last_used_at=at / 7)


def test_a_transaction_over_100_items_is_refused_by_moto_and_never_sent_by_the_store(
    store: DynamoStore,
) -> None:
    site = add_project(store, "site")
    with pytest.raises(ClientError, match="100"):  # refused whole by DynamoDB, and by moto too
        store.table.client.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": f"X#{i}"}, "sk": {"S": "X"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for i in range(101)
            ]
        )
    with pytest.raises(ValueError, match="1 to 100"):
        store.table.transact(
            [store.table.check(project_pk(site.id), "PROJECT", "attribute_exists(pk)")] * 101
        )


# -- build logs (the build-log contract's cases, on smaller logs: moto takes ~10 ms a call) ------------
def test_build_log_cap_keeps_head_marker_and_newest_lines(store: DynamoStore) -> None:
    store.build_log_cap = BuildLogCap(max_lines=30, max_bytes=1_000_000, head_lines=HEAD)
    dpl = add_deployment(store, add_project(store, "site"), "a1").id
    appended = [f"line {i}" for i in range(1, 151)]
    for line in appended:
        store.append_log(dpl, [line])
        assert len(store.read_log(dpl)) <= 30
    assert check_shape(store.read_log(dpl), appended) > 100
    batch = [f"batch line {i}" for i in range(250)]  # more than one transaction's worth at once
    store.append_log(dpl, batch)
    rows = store.read_log(dpl)
    assert len(rows) <= 30 and len(rows) >= 25
    assert check_shape(rows, appended + batch) > 350
    assert len([text for _, _, text in rows if DROPPED.match(text)]) == 1


def test_build_log_byte_cap_and_a_follower_that_never_repeats_a_line(store: DynamoStore) -> None:
    cap = BuildLogCap(max_lines=1000, max_bytes=8 * 1024, head_lines=HEAD)
    store.build_log_cap = cap
    dpl = add_deployment(store, add_project(store, "site"), "a1").id
    seen: list[tuple[int, str]] = []
    after = 0
    appended: list[str] = []
    for burst in (6, 20, 1, 40, 2):  # the first past the head: the marker is then the first row missed
        for _ in range(burst):
            appended.append(f"{len(appended) + 1:06d} " + "é" * 500)  # about 1 KiB in UTF-8
            store.append_log(dpl, [appended[-1]])
        rows = store.read_log(dpl, after)
        got_all = [seq for seq, _at, _text in rows] == list(range(after + 1, len(appended) + 1))
        assert got_all or DROPPED.match(rows[0][2]), "lines went missing without a marker"
        seen += [(seq, text) for seq, _at, text in rows]
        after = rows[-1][0]
    assert sum(len(text.encode()) for _, _, text in store.read_log(dpl)) <= cap.max_bytes
    assert check_shape(store.read_log(dpl), appended) > 40
    seqs = [seq for seq, _text in seen]
    assert seqs == sorted(set(seqs)) and seen[-1] == (len(appended), appended[-1])


def test_log_lines_of_a_deleted_deployment_are_not_written(store: DynamoStore) -> None:
    site = add_project(store, "site")
    dpl = add_deployment(store, site, "a1").id
    store.append_log(dpl, ["one"])
    store.delete_deployment(dpl)
    store.append_log(dpl, ["two"])  # a build still running when its deployment went: nothing is left
    assert store.read_log(dpl) == [] and not [k for k in keys_of(store) if k.startswith(f"DEPLOY#{dpl}")]


def test_transactions_that_keep_meeting_others_end_busy(clock: TickingClock) -> None:
    """Conflicts that do not clear (played with Stubber) end as StoreBusy (503 busy), nothing written."""
    store = DynamoStore(AwsClients(boto_session()), TABLE, clock)
    conflict = {"CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]}
    with Stubber(store.table.client) as stub:
        for _ in range(4):
            stub.add_client_error(
                "transact_write_items",
                "TransactionCanceledException",
                "conflict",
                400,
                modeled_fields=conflict,
            )
        with pytest.raises(StoreBusy):
            store.add_token(Token("tok_1", "admin", None, 1.0), "hash-1")
        stub.assert_no_pending_responses()


def test_sealed_environments_in_chunks_and_long_log_lines(store: DynamoStore) -> None:
    store.chunk_bytes = 64
    site = add_project(store, "site")
    sealed = bytes(range(256)) * 2  # 8 chunks, all inside the deployment's transaction
    dpl = Deployment("dpl_env", site.id, Q, Target.PREVIEW, 1.0, len(FILES), 2)
    store.add_deployment(dpl, FILES, HostRoute("env.test", HostKind.DEPLOYMENT, site.id, dpl.id), sealed)
    assert store.sealed_env(dpl.id) == sealed and store.manifest(dpl.id) == FILES
    assert store.sealed_env(add_deployment(store, site, "plain").id) == b""
    with pytest.raises(DeploymentNotFound):
        store.sealed_env("dpl_nope")
    huge = "x" * 100 + "é" * LINE_BYTES_MAX  # twice the stored limit in UTF-8
    store.append_log(dpl.id, ["short", huge])
    (_, _, first), (_, _, second) = store.read_log(dpl.id)
    assert first == "short" and second.startswith("x" * 100) and second.endswith(" more bytes]")
    assert len(second.encode()) <= LINE_BYTES_MAX + 100
