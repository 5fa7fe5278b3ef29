"""The build log's cap, for every Store adapter (SqliteStore on a real file, the in-memory fake): the first
lines and the newest lines stay, one marker row says how many lines went between them, and log following
(``read_log(after=...)``) never repeats a line and sees the marker when lines it had not read were dropped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.logs import BuildLogCap
from anchor_deploy.ports.fakes import FakeStore
from tests.contract.test_store_contract import add_deployment, add_project
from tests.support import TickingClock

HEAD = 5
DROPPED = re.compile(r"^… (\d+) lines dropped \(build log cap reached")


@pytest.fixture(params=["sqlite", "fake"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteStore | FakeStore]:
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "anchor.db", clock=TickingClock())
    else:
        yield FakeStore(clock=TickingClock())


def deployment_id(store: SqliteStore | FakeStore, suffix: str = "1") -> str:
    return add_deployment(store, add_project(store, f"site{suffix}"), suffix).id


def check_shape(rows: list[tuple[int, float, str]], appended: list[str]) -> int:
    """The head, one marker, then the newest lines in order; returns the count the marker gives."""
    seqs = [seq for seq, _at, _text in rows]
    assert seqs == sorted(set(seqs)), "sequence numbers increase and are never repeated"
    assert [(seq, text) for seq, _at, text in rows[:HEAD]] == list(enumerate(appended[:HEAD], start=1))
    marker = DROPPED.match(rows[HEAD][2])
    assert marker, rows[HEAD]
    dropped = int(marker.group(1))
    newest = rows[HEAD + 1 :]
    assert [(seq, text) for seq, _at, text in newest] == [
        (seq, appended[seq - 1]) for seq in range(len(appended) - len(newest) + 1, len(appended) + 1)
    ]
    assert rows[HEAD][0] == newest[0][0] - 1, "the marker takes the seq of the last line dropped"
    assert HEAD + dropped + len(newest) == len(appended), "every line is kept or counted as dropped"
    return dropped


def test_short_log_is_kept_whole(store: SqliteStore | FakeStore) -> None:
    store.build_log_cap = BuildLogCap(max_lines=100, max_bytes=100_000, head_lines=HEAD)
    dpl = deployment_id(store)
    lines = [f"line {i}" for i in range(100)]
    for line in lines:
        store.append_log(dpl, [line])
    assert [text for _seq, _at, text in store.read_log(dpl)] == lines


def test_line_cap_keeps_head_marker_and_newest_lines(store: SqliteStore | FakeStore) -> None:
    store.build_log_cap = BuildLogCap(max_lines=100, max_bytes=1_000_000, head_lines=HEAD)
    dpl = deployment_id(store)
    appended = [f"Collecting package-{i}" for i in range(1, 2001)]
    for line in appended:
        store.append_log(dpl, [line])
        assert len(store.read_log(dpl)) <= 100
    rows = store.read_log(dpl)
    assert len(rows) >= 85, "trimmed to about 90 % of the cap, not to nothing"
    check_shape(rows, appended)
    # Batches too (a multi-line message is appended at once).
    batch = [f"batch line {i}" for i in range(500)]
    store.append_log(dpl, batch)
    rows = store.read_log(dpl)
    assert len(rows) <= 100
    check_shape(rows, appended + batch)


def test_byte_cap_holds_with_long_lines(store: SqliteStore | FakeStore) -> None:
    cap = BuildLogCap(max_lines=10_000, max_bytes=64 * 1024, head_lines=HEAD)
    store.build_log_cap = cap
    dpl = deployment_id(store)
    appended = [f"{i:06d} " + "é" * 500 for i in range(1, 1001)]  # about 1 KiB each in UTF-8
    for line in appended:
        store.append_log(dpl, [line])
        size = sum(len(text.encode()) for _seq, _at, text in store.read_log(dpl))
        # SqliteStore sums the size once a sixteenth of the cap was appended since its last look.
        assert size <= cap.max_bytes + cap.max_bytes // 16 + 1100
    rows = store.read_log(dpl)
    assert sum(len(text.encode()) for _seq, _at, text in rows) <= cap.max_bytes + cap.max_bytes // 16 + 1100
    assert check_shape(rows, appended) > 900


def test_marker_is_rewritten_not_repeated_as_more_lines_go(store: SqliteStore | FakeStore) -> None:
    store.build_log_cap = BuildLogCap(max_lines=50, max_bytes=1_000_000, head_lines=HEAD)
    dpl = deployment_id(store)
    appended: list[str] = []
    counts = []
    for i in range(1, 1001):
        appended.append(f"line {i}")
        store.append_log(dpl, [appended[-1]])
        rows = store.read_log(dpl)
        if len(rows) > HEAD and DROPPED.match(rows[HEAD][2]):
            counts.append(check_shape(rows, appended))
    markers = [text for _seq, _at, text in store.read_log(dpl) if DROPPED.match(text)]
    assert len(markers) == 1
    assert counts == sorted(counts) and counts[-1] > 900


def test_a_follower_never_repeats_a_line_and_sees_the_marker_for_lines_it_missed(
    store: SqliteStore | FakeStore,
) -> None:
    store.build_log_cap = BuildLogCap(max_lines=100, max_bytes=1_000_000, head_lines=HEAD)
    dpl = deployment_id(store)
    seen: list[tuple[int, str]] = []
    after = 0
    appended = 0
    for burst in (3, 50, 400, 7, 1000, 1, 60):  # bursts bigger than the cap between two polls
        for _ in range(burst):
            appended += 1
            store.append_log(dpl, [f"line {appended}"])
        rows = store.read_log(dpl, after)
        got_all = [seq for seq, _at, _text in rows] == list(range(after + 1, appended + 1))
        assert got_all or DROPPED.match(rows[0][2]), "lines went missing without a marker"
        seen += [(seq, text) for seq, _at, text in rows]
        after = rows[-1][0]
    seqs = [seq for seq, _text in seen]
    assert seqs == sorted(set(seqs))
    assert seen[-1] == (appended, f"line {appended}")
    # A follower that starts late, from inside the dropped range, gets the marker first.
    rows = store.read_log(dpl, HEAD + 2)
    assert DROPPED.match(rows[0][2]) and rows[-1][2] == f"line {appended}"


def test_logs_of_two_deployments_are_capped_separately(store: SqliteStore | FakeStore) -> None:
    store.build_log_cap = BuildLogCap(max_lines=100, max_bytes=1_000_000, head_lines=HEAD)
    big, small = deployment_id(store, "1"), deployment_id(store, "2")
    for i in range(500):
        store.append_log(big, [f"big {i}"])
        if i % 10 == 0:
            store.append_log(small, [f"small {i}"])
    assert len(store.read_log(big)) <= 100
    assert [text for _seq, _at, text in store.read_log(small)] == [f"small {i}" for i in range(0, 500, 10)]


def test_cut_keeps_the_newest_line_even_when_it_alone_is_over_the_cap() -> None:
    cap = BuildLogCap(max_lines=100, max_bytes=1000, head_lines=2)
    rows = [(1, 10), (2, 10), (3, 10), (4, 10), (5, 5000)]
    assert cap.cut(rows) == 5
    assert cap.cut([(1, 10), (2, 10), (3, 5000)]) is None  # nothing between the head and the newest line
    assert cap.cut([(1, 10), (2, 10), (3, 10)]) is None
