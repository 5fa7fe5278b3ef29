"""App workers over time, with real processes: idle stop and cold starts (ANCHOR_IDLE_TIMEOUT=1), an app
slower than the health timeout (ANCHOR_HEALTH_TIMEOUT=4), a build over its timeout (ANCHOR_BUILD_TIMEOUT=2),
rollback to a stopped version, and production workers after a platform restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from anchor_deploy.adapters.local.caddy_process import socket_dir
from tests.e2e.apps_support import (
    app_files,
    app_platform,
    as_bytes,
    build_log,
    edge_get,
    flask_source,
    get_json,
    host_of,
    processes_mentioning,
    production_host,
    up_log,
    wait_until,
    worker_pids,
)
from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy

HEALTH_TIMEOUT = 4


@pytest.fixture(scope="module")
def idle_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    anchor = app_platform(
        tmp_path_factory.mktemp("idle") / "data",
        ANCHOR_IDLE_TIMEOUT="1",
        ANCHOR_HEALTH_TIMEOUT=str(HEALTH_TIMEOUT),
    ).start()
    try:
        yield anchor
    finally:
        anchor.stop()


def _measure(name: str, value: float) -> None:
    print(f"\n[measure] {name}: {value:.3f}s")


def _workers(anchor: AnchorProcess) -> Path:
    """<data>/run/sockets/worker (or its short /tmp fallback when the data dir path is long)."""
    return socket_dir(anchor.data_dir / "run") / "worker"


def _wait_stopped(anchor: AnchorProcess, deployment_id: str, timeout: float = 15) -> None:
    sock = _workers(anchor) / f"{deployment_id}.sock"
    wait_until(lambda: not sock.exists(), timeout, f"the idle worker of {deployment_id} stopping")
    wait_until(lambda: not worker_pids(deployment_id), 10, "its process exiting")
    assert not (_workers(anchor) / f"{deployment_id}.sock.up").exists()


def _timed_get(anchor: AnchorProcess, host: str, path: str = "/") -> tuple[float, dict]:
    started = time.monotonic()
    response = edge_get(anchor, host, path)
    took = time.monotonic() - started
    assert response.status_code == 200, (response.status_code, response.text[:300])
    # Cold (through the activator) or warm, one Date and one Server header, as the app sent them.
    for name in ("date", "server"):
        assert len(response.headers.get_list(name)) <= 1, response.headers
    return took, response.json()


def _try_json(anchor: AnchorProcess, host: str) -> dict | None:
    try:
        response = edge_get(anchor, host)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _stays_up(anchor: AnchorProcess, deployment_id: str, host: str, seconds: float = 1.5) -> None:
    """One worker process answers throughout: it is not killed and restarted behind our back."""
    instances = {get_json(anchor, host)["pid"]}
    pids = set(worker_pids(deployment_id))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        instances.add(get_json(anchor, host)["pid"])
        pids.update(worker_pids(deployment_id))
        time.sleep(0.1)
    exits = up_log(anchor).count(f"worker {deployment_id} exited")
    assert len(instances) == 1 and len(pids) == 1 and exits == 0, (
        f"{deployment_id}'s worker did not stay up: instances {sorted(instances)}, host pids {sorted(pids)}, "
        f"{exits} exits in the log"
    )


# -- 6. idle stop and cold start --------------------------------------------------------------------------
def test_idle_preview_worker_stops_and_the_first_request_starts_it_again(
    idle_platform: AnchorProcess,
) -> None:
    anchor = idle_platform
    with anchor.api() as api:
        ensure_project(api, "cold")
        d = upload_and_deploy(api, "cold", as_bytes(app_files("v1")), target="preview")
        assert d["status"] == "READY" and not d["isProduction"]
    host = host_of(d["url"])
    _wait_stopped(anchor, d["id"])

    # Static files need no worker: the edge serves them and the app stays stopped.
    static = anchor.edge(host, "/hello.txt")
    assert static.status_code == 200 and static.text == "static file of v1\n"
    time.sleep(0.2)
    assert worker_pids(d["id"]) == []

    first, answer = _timed_get(anchor, host, "/")
    assert answer["version"] == "v1"
    _measure("cold start: first request to a stopped preview worker", first)
    assert first < 15
    assert (_workers(anchor) / f"{d['id']}.sock").exists()
    assert (_workers(anchor) / f"{d['id']}.sock.up").exists()
    assert len(worker_pids(d["id"])) == 1
    warm, again = _timed_get(anchor, host, "/other")
    _measure("the next request, worker running", warm)
    assert again == {"version": "v1", "path": "/other", "servedBy": "app"}

    # Five first requests at once: all answered, by one worker.
    _wait_stopped(anchor, d["id"])
    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _i: _timed_get(anchor, host, "/")[1], range(5)))
    _measure("cold start: 5 concurrent first requests, all answered", time.monotonic() - started)
    assert {a["version"] for a in answers} == {"v1"}
    assert len({a["pid"] for a in answers}) == 1
    assert len(worker_pids(d["id"])) == 1


def test_rollback_to_a_stopped_version_serves_it_and_its_worker_stays_up(
    idle_platform: AnchorProcess,
) -> None:
    anchor = idle_platform
    project = "dormant"
    with anchor.api() as api:
        ensure_project(api, project)
        v1 = upload_and_deploy(api, project, as_bytes(app_files("v1")))
        upload_and_deploy(api, project, as_bytes(app_files("v2")))
        upload_and_deploy(api, project, as_bytes(app_files("v3")))
        # Production (v3) and the previous one (v2) are kept warm; v1 is neither and goes idle.
        _wait_stopped(anchor, v1["id"])
        started = time.monotonic()
        moved = api.post(f"/v1/projects/{project}/rollback", json={"deploymentId": v1["id"]})
        assert moved.status_code == 200, moved.text
        _measure("rollback API call to a stopped version", time.monotonic() - started)
    took, answer = _timed_get(anchor, production_host(project))
    _measure("first production request after rolling back to a stopped version", took)
    assert answer["version"] == "v1"
    time.sleep(1.5)  # longer than the idle timeout: production is warm, so it must not stop
    _stays_up(anchor, v1["id"], production_host(project))


# -- 8. timeouts ------------------------------------------------------------------------------------------
def test_app_slower_than_the_health_timeout_fails_and_is_stopped(idle_platform: AnchorProcess) -> None:
    anchor = idle_platform
    project = "sluggish"
    slow = flask_source("slow", prelude="import time\ntime.sleep(120)")
    with anchor.api() as api:
        ensure_project(api, project)
        good = upload_and_deploy(api, project, as_bytes(app_files("good")))
        started = time.monotonic()
        bad = upload_and_deploy(api, project, as_bytes(app_files("slow", source=slow)))
        took = time.monotonic() - started
        log = "\n".join(build_log(api, bad["id"]))
        assert api.get(f"/v1/projects/{project}").json()["productionDeploymentId"] == good["id"]
    _measure(f"build of an app slower than ANCHOR_HEALTH_TIMEOUT={HEALTH_TIMEOUT}", took)
    assert bad["status"] == "ERROR"
    assert f"no answer within {HEALTH_TIMEOUT}s" in log or "timed out" in log, log
    assert took < HEALTH_TIMEOUT + 15
    wait_until(lambda: not worker_pids(bad["id"]), 10, "the slow app's process stopping")
    assert get_json(anchor, production_host(project))["version"] == "good"


def test_build_over_its_timeout_is_stopped(tmp_path: Path) -> None:
    """ANCHOR_BUILD_TIMEOUT=2: making a fresh environment takes longer, so the build is killed mid-step."""
    anchor = app_platform(tmp_path / "data", ANCHOR_BUILD_TIMEOUT="2").start()
    try:
        with anchor.api() as api:
            ensure_project(api, "hasty")
            started = time.monotonic()
            d = upload_and_deploy(api, "hasty", as_bytes(app_files("v1")))
            took = time.monotonic() - started
            log = "\n".join(build_log(api, d["id"]))
        _measure("build stopped by ANCHOR_BUILD_TIMEOUT=2", took)
        assert d["status"] == "ERROR" and "timed out" in log, log
        assert "timed out" in d["error"]
        assert took < 2 + 10
        envs = anchor.data_dir / "envs"
        wait_until(lambda: not processes_mentioning(str(envs)), 10, "the build's processes stopping")
        assert [p.name for p in envs.iterdir()] == [], "the half-made environment is removed"
    finally:
        anchor.stop()


# -- production workers after a restart of the platform ------------------------------------------------------
def test_production_worker_after_a_platform_restart_answers_and_stays_up(
    idle_platform: AnchorProcess,
) -> None:
    anchor = idle_platform
    project = "restarted"
    with anchor.api() as api:
        ensure_project(api, project)
        d = upload_and_deploy(api, project, as_bytes(app_files("v1")))
    assert get_json(anchor, production_host(project))["version"] == "v1"
    anchor.stop()
    anchor.start()  # same data dir and ports
    answer = wait_until(lambda: _try_json(anchor, production_host(project)), 20, "production answering again")
    assert answer["version"] == "v1"
    time.sleep(0.5)  # let the start-up warm-up settle
    _stays_up(anchor, d["id"], production_host(project))
    with anchor.api() as api:
        assert json.loads(api.get(f"/v1/deployments/{d['id']}").text)["status"] == "READY"
