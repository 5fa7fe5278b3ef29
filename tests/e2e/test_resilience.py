"""Zero failed requests under load, crash recovery, edge restarts and clean shutdown (on Caddy and nginx)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy

BODY_A = b"A" * 65536
BODY_B = b"B" * 65536


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.edges
def test_100_rollbacks_under_load_fail_no_request(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "hot")
        a = upload_and_deploy(api, "hot", {"index.html": BODY_A, "app.js": b"a"})
        b = upload_and_deploy(api, "hot", {"index.html": BODY_B, "app.js": b"bb"})
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0, "mixed": 0, "a": 0, "b": 0}
    failures: list[str] = []
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(base_url=anchor.edge_url, headers={"Host": "hot.localhost"}, timeout=10) as client:
            deadline = time.monotonic() + 120
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    response = client.get("/")
                except httpx.HTTPError as exc:
                    with lock:
                        counts["failed"] += 1
                        failures.append(repr(exc))
                    continue
                with lock:
                    if response.status_code != 200:
                        counts["failed"] += 1
                        failures.append(f"{response.status_code}")
                    elif response.content == BODY_A:
                        counts["a"] += 1
                    elif response.content == BODY_B:
                        counts["b"] += 1
                    else:
                        counts["mixed"] += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        with anchor.api() as api:
            for i in range(100):
                target = a["id"] if i % 2 == 0 else b["id"]
                response = api.post("/v1/projects/hot/rollback", json={"deploymentId": target})
                assert response.status_code == 200, response.text
                expected = BODY_A if target == a["id"] else BODY_B
                # The switch is visible at the edge right after the API answers.
                assert anchor.edge("hot.localhost").content == expected
                time.sleep(0.01)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert counts["failed"] == 0, failures[:5]
    assert counts["mixed"] == 0
    assert counts["a"] > 0 and counts["b"] > 0
    with anchor.api() as api:
        assert len(api.get("/v1/projects/hot/alias-history").json()["history"]) == 102


def test_crash_after_commit_before_edge_converges_on_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = AnchorProcess(data).start()
    try:
        with first.api() as api:
            ensure_project(api, "crash")
            a = upload_and_deploy(api, "crash", {"index.html": b"A"})
            upload_and_deploy(api, "crash", {"index.html": b"B"})
        assert first.edge("crash.localhost").text == "B"
    finally:
        first.stop()

    faulty = AnchorProcess(data, extra_env={"ANCHOR_FAULT": "rollback:after_commit"}).start()
    try:
        with faulty.api() as api, pytest.raises(httpx.HTTPError):
            api.post("/v1/projects/crash/rollback", json={})
        assert faulty.proc is not None
        assert faulty.proc.wait(timeout=20) == -signal.SIGKILL
        # The database committed the rollback; the edge was never told.
        assert not os.readlink(data / "edge" / "a" / "crash.localhost").endswith(a["id"])
    finally:
        faulty.stop()

    again = AnchorProcess(data).start()
    try:
        with again.api() as api:
            project = api.get("/v1/projects/crash").json()
            history = api.get("/v1/projects/crash/alias-history").json()["history"]
        assert project["productionDeploymentId"] == a["id"] and project["pinned"] is True
        assert history[-1]["reason"] == "rollback"
        assert again.edge("crash.localhost").text == "A"
    finally:
        again.stop()


@pytest.mark.edges
def test_killed_edge_server_is_restarted_and_sites_come_back(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "phoenix")
        upload_and_deploy(api, "phoenix", {"index.html": b"alive"})
    old_pid = anchor.edge_pid()
    os.kill(old_pid, signal.SIGKILL)

    def back() -> bool:
        try:
            return anchor.edge_pid() != old_pid and anchor.edge("phoenix.localhost").text == "alive"
        except (httpx.HTTPError, OSError, ValueError):
            return False

    _wait(back, timeout=30)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.edges
def test_sigterm_stops_everything(tmp_path: Path, edge_server: str) -> None:
    platform = AnchorProcess(tmp_path / "data", edge_server=edge_server).start()
    edge = platform.edge_pid()
    platform.signal(signal.SIGTERM)
    assert platform.proc is not None and platform.proc.returncode == 0
    _wait(lambda: not Path(f"/proc/{edge}").exists())
    for port in (platform.api_port, platform.http_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.edges
def test_sigkill_of_the_supervisor_takes_the_edge_down_and_restart_recovers(
    tmp_path: Path, edge_server: str
) -> None:
    data = tmp_path / "data"
    platform = AnchorProcess(data, edge_server=edge_server).start()
    with platform.api() as api:
        ensure_project(api, "orphan")
        upload_and_deploy(api, "orphan", {"index.html": b"still here"})
    edge = platform.edge_pid()
    platform.signal(signal.SIGKILL)
    _wait(lambda: not Path(f"/proc/{edge}").exists())
    # Nothing of the edge keeps serving (nginx's workers go with their master).
    _wait(lambda: not _accepts(platform.http_port))
    again = AnchorProcess(
        data, api_port=platform.api_port, http_port=platform.http_port, edge_server=edge_server
    ).start()
    try:
        assert again.edge("orphan.localhost").text == "still here"
    finally:
        again.stop()
