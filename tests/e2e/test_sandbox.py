"""An attacker holding only a project token deploys an app that tries every way out of its sandbox.

Every attempt must fail (reading the platform's environment, the admin token, the secret key, the database,
another project's files; Caddy's admin socket; writing outside /tmp; a port reachable from the host), and
whatever it starts (a `setsid` child, a double-forked grandchild) must be gone once its version stops: idle,
project deletion, or `kill -9` of the platform. Each attempt has a control that shows the probe works (its
own /tmp is writable, the children really ran), so a broken probe cannot pass for a sandbox.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import anchor_deploy
from tests.e2e.apps_support import (
    app_platform,
    build_log,
    host_of,
    processes_mentioning,
    wait_until,
    worker_pids,
)
from tests.e2e.harness import AnchorProcess, ensure_project, free_port, upload_and_deploy

ESCAPE_APP = Path(__file__).parent / "apps" / "escape"
PARENT_SECRET = "parent-environment-secret-" + secrets.token_hex(8)
ADMIN_SECRET = "anc_admin_" + secrets.token_hex(16)
VICTIM_SECRET = "victim-secret-" + secrets.token_hex(8)


def _escape_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in ESCAPE_APP.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    process = app_platform(
        tmp_path_factory.mktemp("sandbox") / "data",
        ANCHOR_IDLE_TIMEOUT="3",
        ANCHOR_ADMIN_TOKEN=ADMIN_SECRET,
    )
    process.extra_env["ESCAPE_TEST_PARENT_SECRET"] = PARENT_SECRET
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _project_token(anchor: AnchorProcess, project: str) -> str:
    with anchor.api() as api:
        ensure_project(api, project)
        created = api.post("/v1/tokens", json={"name": f"{project}-ci", "project": project})
        assert created.status_code == 201, created.text
        return str(created.json()["token"])


def _deploy(anchor: AnchorProcess, project: str, token: str, target: str = "production") -> dict[str, Any]:
    with anchor.api(token) as api:
        deployment = upload_and_deploy(api, project, _escape_files(), target=target)
    assert deployment["status"] == "READY", deployment
    return deployment


def _attack(anchor: AnchorProcess, host: str, plan: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{anchor.edge_url}/attack", headers={"Host": host}, content=json.dumps(plan), timeout=60
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _victim(anchor: AnchorProcess) -> dict[str, Any]:
    """Another project with a secret variable and an app of its own: what the attacker is after."""
    with anchor.api() as api:
        ensure_project(api, "victim")
        put = api.post(
            "/v1/projects/victim/env", json={"key": "PAYMENT_KEY", "value": VICTIM_SECRET, "secret": True}
        )
        assert put.status_code in (200, 201), put.text
        deployment = upload_and_deploy(api, "victim", _escape_files())
    assert deployment["status"] == "READY", deployment
    return deployment


def _start_children(anchor: AnchorProcess, deployment: dict[str, Any]) -> str:
    """Have the app start a setsid child and a double-forked grandchild; return the marker they carry."""
    marker = "escape-marker-" + secrets.token_hex(6)
    answer = _attack(anchor, host_of(deployment["url"]), {"marker": marker})
    assert answer["spawn"]["ok"], answer["spawn"]
    wait_until(lambda: len(processes_mentioning(marker)) >= 2, 10, "the children running")
    return marker


def _wait_gone(marker: str, what: str, timeout: float = 15) -> None:
    wait_until(lambda: not processes_mentioning(marker), timeout, what)


def test_an_app_deployed_with_a_project_token_cannot_escape(anchor: AnchorProcess) -> None:
    victim = _victim(anchor)
    token = _project_token(anchor, "attacker")
    deployment = _deploy(anchor, "attacker", token, target="preview")
    data = anchor.data_dir.resolve()
    sockets = data / "run" / "sockets"
    victim_app = next((data / "deployments" / victim["id"]).rglob("app.py"))
    port = free_port()
    marker = "escape-marker-" + secrets.token_hex(6)
    assert anchor.proc is not None
    plan = {
        "read": [
            str(data / "admin-token"),
            str(data / "secrets.key"),
            str(data / "anchor.db"),
            str(data / "ca" / "root.key"),
            str(victim_app),
            str(Path(anchor_deploy.__file__).parent / "providers" / "local.py"),  # the platform's code
            str(Path(sys.prefix) / "pyvenv.cfg"),  # the platform's Python environment
            "/etc/shadow",
            "/tmp/escape-probe.txt",  # control: written below, its own /tmp
        ],
        "write": [
            "/tmp/escape-probe.txt",  # control: the only writable place
            str(data / "pwned.txt"),
            str(next((data / "deployments" / deployment["id"]).rglob("app.py"))),
            str(data / "envs" / "pwned.txt"),
            "/etc/pwned.txt",
            "/usr/pwned.txt",
        ],
        "connect": [str(sockets / "caddy-admin.sock"), str(sockets / "activator.sock")],
        "bind": [port],
        "environ_pids": [anchor.proc.pid, 1, os.getpid()],
        "marker": marker,
    }
    answer = _attack(anchor, host_of(deployment["url"]), plan)

    # Controls: the probe itself works.
    assert answer["write"]["/tmp/escape-probe.txt"]["ok"], answer["write"]
    assert answer["read"]["/tmp/escape-probe.txt"]["ok"], answer["read"]
    assert answer["spawn"]["ok"], answer["spawn"]
    wait_until(
        lambda: len(processes_mentioning(marker)) >= 2, 10, "the setsid child and the grandchild running"
    )

    # Who it runs as, and with which environment.
    if os.geteuid() == 0:
        assert answer["uid"] >= 1_000_000_000, answer["uid"]
    dump = json.dumps(answer)
    for secret in (ADMIN_SECRET, PARENT_SECRET, VICTIM_SECRET):
        assert secret not in dump
    assert not [k for k in answer["environ"] if k.startswith("ANCHOR_")], answer["environ"]
    assert "ESCAPE_TEST_PARENT_SECRET" not in answer["environ"]
    assert "ESCAPE_TEST_PARENT_SECRET" not in json.dumps(answer["environ_of"])

    # Every attempt fails.
    escaped = {p: r for p, r in answer["read"].items() if r["ok"] and p != "/tmp/escape-probe.txt"}
    assert escaped == {}, escaped
    written = {p: r for p, r in answer["write"].items() if r["ok"] and p != "/tmp/escape-probe.txt"}
    assert written == {}, written
    assert not (data / "pwned.txt").exists() and not (data / "envs" / "pwned.txt").exists()
    connected = {p: r for p, r in answer["connect"].items() if r["ok"]}
    assert connected == {}, connected
    environ = {pid: r for pid, r in answer["environ_of"].items() if r["ok"] and "ANCHOR_" in r["value"]}
    assert environ == {}, environ
    # A port it binds (in its own network namespace) is not reachable from the machine.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass

    # Idle stop: the worker and everything it started are gone.
    wait_until(lambda: not worker_pids(deployment["id"]), 20, "the idle preview worker stopping")
    _wait_gone(marker, "the attacker's children dying with the idle worker")


def test_deleting_the_project_stops_its_workers_and_their_children(anchor: AnchorProcess) -> None:
    token = _project_token(anchor, "doomed")
    deployment = _deploy(anchor, "doomed", token)
    marker = _start_children(anchor, deployment)
    assert worker_pids(deployment["id"])
    with anchor.api() as api:
        assert api.delete("/v1/projects/doomed").status_code in (200, 204)
    wait_until(lambda: not worker_pids(deployment["id"]), 10, "the deleted project's worker stopping")
    _wait_gone(marker, "the deleted project's processes dying", timeout=10)


def test_kill_9_of_the_platform_leaves_no_process_of_any_app(tmp_path: Path) -> None:
    anchor = app_platform(tmp_path / "data").start()
    try:
        token = _project_token(anchor, "survivor")
        deployment = _deploy(anchor, "survivor", token)
        marker = _start_children(anchor, deployment)
        anchor.signal(signal.SIGKILL)
        _wait_gone(marker, "the app's processes dying with the platform", timeout=10)
        wait_until(lambda: not worker_pids(deployment["id"]), 10, "the worker dying with the platform")
        wait_until(lambda: not processes_mentioning(str(anchor.data_dir)), 10, "no process of the data dir")
        anchor.start()
        again = httpx.get(f"{anchor.edge_url}/", headers={"Host": host_of(deployment["url"])}, timeout=30)
        assert again.status_code == 200 and again.json()["ok"]
    finally:
        anchor.stop()


def _broken_bwrap(folder: Path) -> str:
    """A PATH whose bwrap fails as it does on a machine without user namespaces."""
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_without_a_working_sandbox_apps_are_refused_in_one_line_and_sites_still_serve(tmp_path: Path) -> None:
    anchor = app_platform(tmp_path / "data")
    anchor.extra_env["PATH"] = _broken_bwrap(tmp_path / "bin")
    anchor.start()
    try:
        said = anchor.log_tail()
        lines = [line for line in said.splitlines() if line.startswith(("apps ", "WARNING"))]
        assert len(lines) == 1 and "apps will not run" in lines[0] and "ANCHOR_APP_SANDBOX=off" in lines[0], (
            said
        )
        assert "Traceback" not in said
        with anchor.api() as api:
            health = api.get("/v1/health").json()
            assert health["sandbox"]["ok"] is False
            ensure_project(api, "site")
            site = upload_and_deploy(api, "site", {"index.html": b"<h1>still here</h1>"})
            ensure_project(api, "refused")
            app = upload_and_deploy(api, "refused", _escape_files())
        assert site["status"] == "READY"
        assert app["status"] == "ERROR" and "ANCHOR_APP_SANDBOX=off" in app["error"], app
    finally:
        anchor.stop()


def test_with_the_sandbox_switched_off_apps_run_and_the_operator_is_warned(tmp_path: Path) -> None:
    anchor = app_platform(tmp_path / "data", ANCHOR_APP_SANDBOX="off")
    anchor.extra_env["PATH"] = _broken_bwrap(tmp_path / "bin")
    anchor.start()
    try:
        assert "WARNING: ANCHOR_APP_SANDBOX=off" in anchor.log_tail()
        with anchor.api() as api:
            ensure_project(api, "unboxed")
            app = upload_and_deploy(api, "unboxed", _escape_files())
        assert app["status"] == "READY", app
        assert app["app"]["limits"]["sandbox"] == "off"
    finally:
        anchor.stop()


def test_inspect_and_ls_show_the_limits_an_app_runs_with(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "limits")
        deployment = upload_and_deploy(api, "limits", _escape_files())
    expected = {
        "sandbox": "bwrap",
        "memoryBytes": 512 * 1024 * 1024,
        "maxProcesses": 256,
        "openFiles": 1024,
        "startupCpuSeconds": 60.0,
        "network": "none",
        "tmpBytes": 256 * 1024 * 1024,
    }
    inspected = json.loads(anchor.cli("inspect", deployment["id"], "--json").stdout)
    assert inspected["app"]["limits"] == expected
    listed = json.loads(anchor.cli("ls", "limits", "--json").stdout)
    assert [d["app"]["limits"] for d in listed["deployments"]] == [expected]
    human = anchor.cli("inspect", deployment["id"]).stdout
    assert "memory 512 MiB" in human and "256 processes" in human and "network none" in human, human
    missing = anchor.cli("inspect", "dpl_doesnotexist", check=False)
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr


_HOGS = {
    # Writes 400 MiB (bytes * n fills every page, unlike a zeroed bytearray).
    "memory": "big = b'x' * (400 * 1024 * 1024)\n",
    # 100 threads against a limit of 32 processes and threads.
    "processes": "import threading, time\n"
    "for _ in range(100):\n"
    "    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n",
    # Spins at import: the health check never passes, the CPU guard stops it.
    "cpu": "while True:\n    pass\n",
}


@pytest.mark.timeout(240)
def test_limits_stop_apps_that_take_too_much_and_leave_others_running(tmp_path: Path) -> None:
    anchor = app_platform(
        tmp_path / "data",
        ANCHOR_APP_MEMORY=str(128 * 1024 * 1024),
        ANCHOR_APP_MAX_PROCESSES="32",
        ANCHOR_APP_STARTUP_CPU="2",
        ANCHOR_HEALTH_TIMEOUT="30",
    ).start()
    try:
        with anchor.api() as api:
            ensure_project(api, "modest")
            modest = upload_and_deploy(api, "modest", _escape_files())
            outcomes = {}
            for kind, prelude in _HOGS.items():
                ensure_project(api, f"hog-{kind}")
                files = _escape_files()
                files["app.py"] = prelude.encode() + files["app.py"]
                outcomes[kind] = upload_and_deploy(api, f"hog-{kind}", files)
            logs = {kind: "\n".join(build_log(api, d["id"])) for kind, d in outcomes.items()}
        assert modest["status"] == "READY", modest  # the limits leave room for a normal app
        for kind, deployment in outcomes.items():
            assert deployment["status"] == "ERROR", (kind, deployment)
        assert "ANCHOR_APP_STARTUP_CPU" in outcomes["cpu"]["error"], outcomes["cpu"]["error"]
        assert "thread" in logs["processes"].lower(), logs["processes"]
        memory = outcomes["memory"]["error"] + logs["memory"]
        assert "ANCHOR_APP_MEMORY" in memory or "MemoryError" in memory, memory
        for deployment in outcomes.values():
            assert worker_pids(deployment["id"]) == []
        answer = httpx.get(f"{anchor.edge_url}/", headers={"Host": host_of(modest["url"])}, timeout=30)
        assert answer.status_code == 200
    finally:
        anchor.stop()
