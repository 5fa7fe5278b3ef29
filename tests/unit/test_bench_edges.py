"""The issue 14 benchmark helpers that decide what is measured and what counts: which server holds an edge
port (read from the kernel), which edges a run may take, and how a rollback phase turns into targets."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def edges() -> Iterator[Any]:
    sys.path.insert(0, str(BENCH))
    try:
        import edge_phases

        yield edge_phases
    finally:
        sys.path.remove(str(BENCH))


def test_the_process_holding_a_listening_port_is_found_and_a_closed_port_has_none(edges: Any) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        found = edges.listening_processes(port)
        assert os.getpid() in found
        assert found[os.getpid()] == Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert edges.listening_processes(port) == {}


def test_edge_kind_names_the_server_from_its_processes(edges: Any) -> None:
    assert edges.edge_kind({10: "nginx", 11: "nginx"}) == "nginx"
    assert edges.edge_kind({10: "caddy"}) == "caddy"
    assert edges.edge_kind({10: "python3"}) is None
    assert edges.edge_kind({}) is None


@pytest.mark.parametrize("value", ["nginx", "nginx,caddy", "caddy,apache", ""])
def test_a_run_starts_on_caddy_and_knows_only_the_two_edges(edges: Any, value: str) -> None:
    with pytest.raises(Exception, match="caddy first"):
        edges.edges_to_run(value)


def test_edges_to_run_keeps_the_order_given(edges: Any) -> None:
    assert edges.edges_to_run(" caddy , nginx ") == ["caddy", "nginx"]
    assert edges.edges_to_run("caddy") == ["caddy"]


def _phase(projects: int, api_p99: float, visible_p99: float, failed: int, invisible: int) -> dict[str, Any]:
    loaded = {
        "api_ms": {"p99": api_p99},
        "visible_ms": {"p99": visible_p99},
        "api_errors": 0,
        "not_visible_within_s": {"count": invisible},
    }
    return {"projects": projects, "loaded": loaded, "load": {"failed": failed}}


def test_rollback_targets_per_edge_and_size(edges: Any) -> None:
    rollback = {
        "caddy": {"one": _phase(1, 12.0, 4.9, 0, 0), "many": _phase(10_000, 49.0, 6.0, 0, 1)},
        "nginx": {"one": _phase(1, 51.0, 5.0, 2, 0)},
    }
    found: dict[str, Any] = {}
    edges.rollback_targets(rollback, lambda name, value, goal, met: found.__setitem__(name, (value, met)))
    assert found["caddy: rollback API p99 (ms), 1 project(s), under load"] == (12.0, True)
    visible = "caddy: rollback call -> edge serves new, p99 (ms), {} project(s), under load"
    assert found[visible.format(1)] == (4.9, True)
    assert found[visible.format(10_000)] == (6.0, False)
    # a switch that never became visible is a failure, like a failed load request
    assert found["caddy: failed requests during switches, 10000 project(s)"] == (1, False)
    assert found["caddy: call->edge p99, N projects vs 1 (larger/smaller)"] == (1.22, True)
    assert found["nginx: rollback API p99 (ms), 1 project(s), under load"] == (51.0, False)
    assert found["nginx: rollback call -> edge serves new, p99 (ms), 1 project(s), under load"] == (5.0, True)
    assert found["nginx: failed requests during switches, 1 project(s)"] == (2, False)
    assert not any(name.startswith("nginx: call->edge p99, N projects") for name in found)
