"""Python web apps with real processes: Flask and FastAPI builds (offline, from a local wheelhouse), frozen
environment variables and secrets, rollbacks between app versions under load, environment reuse and a worker
killed with SIGKILL. (Failing builds and refused inputs: test_apps_failures.py; idle stop, cold starts and
timeouts: test_apps_lifecycle.py.)

One platform serves the whole module (each test uses its own project); apps share one requirements.txt text
per framework, so each environment is built once and every later deployment reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.apps_support import (
    FLASK_REQUIREMENTS,
    app_files,
    as_bytes,
    build_log,
    cli_deploy,
    etag_of,
    flask_source,
    get_json,
    host_of,
    production_host,
    running_app_platform,
    runtime_log,
    up_log,
    wait_until,
    worker_pids,
    write_tree,
)
from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    with running_app_platform(tmp_path_factory.mktemp("apps") / "data") as anchor:
        yield anchor


@pytest.fixture(scope="module")
def edge_platform(request: pytest.FixtureRequest, edge_server: str) -> Iterator[AnchorProcess]:
    """For the tests run on both edges: the module's platform on Caddy, a platform of its own on nginx."""
    if edge_server == "caddy":
        yield request.getfixturevalue("platform")
        return
    data = request.getfixturevalue("tmp_path_factory").mktemp("apps-nginx") / "data"
    with running_app_platform(data, edge_server) as anchor:
        yield anchor


FUTURE_DATE = "Fri, 01 Jan 2100 00:00:00 GMT"
PAST_DATE = "Thu, 01 Jan 1970 00:00:01 GMT"


def _measure(name: str, value: float) -> None:
    print(f"\n[measure] {name}: {value:.3f}s")


def _set_env(api: httpx.Client, project: str, key: str, value: str, secret: bool = False) -> None:
    response = api.post(f"/v1/projects/{project}/env", json={"key": key, "value": value, "secret": secret})
    assert response.status_code == 201, response.text


# -- 1. frozen env, rollback, immutable URLs, static files -----------------------------------------------
@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_env_is_frozen_per_version_and_rollback_serves_the_old_version(
    platform: AnchorProcess, tmp_path: Path, framework: str
) -> None:
    project = f"{framework}-greet"
    with platform.api() as api:
        ensure_project(api, project)
        _set_env(api, project, "GREETING", "one")
        v1, took1, code1 = cli_deploy(
            platform, write_tree(tmp_path / "v1", app_files("v1", framework)), project
        )
        assert code1 == 0 and v1["status"] == "READY", v1
        assert v1["kind"] == "app" and v1["app"]["static"] == "public"
        prod = production_host(project)
        assert get_json(platform, prod)["greeting"] == "one"

        _set_env(api, project, "GREETING", "two")
        v2, took2, code2 = cli_deploy(
            platform, write_tree(tmp_path / "v2", app_files("v2", framework)), project
        )
        assert code2 == 0 and v2["status"] == "READY", v2
        _measure(f"{framework} deploy v1 (cli, incl. environment build unless reused)", took1)
        _measure(f"{framework} deploy v2 (cli, environment reused)", took2)
        answer = get_json(platform, prod)
        assert (answer["version"], answer["greeting"], answer["framework"]) == ("v2", "two", framework)
        assert {"key": "GREETING", "value": "two", "secret": False} in [
            {k: v[k] for k in ("key", "value", "secret")}
            for v in api.get(f"/v1/projects/{project}/env").json()["env"]
        ]

    moved = json.loads(platform.cli("rollback", project, "--json").stdout)
    assert (moved["fromDeploymentId"], moved["toDeploymentId"]) == (v2["id"], v1["id"])
    answer = get_json(platform, prod)
    assert (answer["version"], answer["greeting"]) == ("v1", "one"), "rollback must bring back v1's own env"

    for deployment, version, greeting in ((v1, "v1", "one"), (v2, "v2", "two")):
        host = host_of(deployment["url"])
        answer = get_json(platform, host)
        assert (answer["version"], answer["greeting"], answer["framework"]) == (version, greeting, framework)
        # public/ is served by the edge itself: the file's bytes with the edge's content-hash ETag.
        static = platform.edge(host, "/hello.txt")
        assert static.status_code == 200 and static.text == f"static file of {version}\n"
        assert static.headers["etag"] == etag_of(f"static file of {version}\n")
        assert static.headers["server"] == "Caddy"
        # Other paths, including the app's own source files, go to the app (never served as files).
        for path in ("/some/page", "/app.py", "/requirements.txt"):
            routed = get_json(platform, host, path)
            assert routed == {"version": version, "path": path, "servedBy": "app"}
        # The date validators the edge keeps from static files reach the app as they were sent.
        dates = {"If-Modified-Since": FUTURE_DATE, "If-Unmodified-Since": PAST_DATE}
        if framework == "flask":
            assert platform.edge(host, "/some/page", headers=dates).json()["dates"] == dates
        dated = platform.edge(host, "/hello.txt", headers=dates)
        assert (dated.status_code, dated.text) == (200, f"static file of {version}\n")
    assert platform.edge(prod, "/hello.txt").text == "static file of v1\n"


# -- 2. secrets ---------------------------------------------------------------------------------------------
def test_secret_values_are_never_shown_logged_or_stored_in_plain_text(
    platform: AnchorProcess, tmp_path: Path
) -> None:
    project = "secretive"
    value = "tok-" + secrets.token_hex(16)
    with platform.api() as api:
        ensure_project(api, project)
    shown = platform.cli("env", "set", project, "TOKEN", value, "--secret")
    assert value not in shown.stdout + shown.stderr
    listed = platform.cli("env", "ls", project, "--json")
    assert value not in listed.stdout
    loud = 'print("TOKEN=" + os.environ["TOKEN"], flush=True)'
    d, _took, code = cli_deploy(
        platform,
        write_tree(tmp_path / "app", app_files("v1", source=flask_source("v1", prelude=loud))),
        project,
    )
    assert code == 0 and d["status"] == "READY", d

    with platform.api() as api:
        listing = api.get(f"/v1/projects/{project}/env")
        assert value not in listing.text
        assert [(v["key"], v["value"], v["secret"]) for v in listing.json()["env"]] == [("TOKEN", None, True)]
        # The app does get the real value.
        token_digest = get_json(platform, host_of(d["url"]))["token_sha256"]
        assert token_digest == hashlib.sha256(value.encode()).hexdigest()

        lines = wait_until(
            lambda: [line for line in runtime_log(api, d["id"]) if "TOKEN=" in line],
            10,
            "the print in the runtime log",
        )
        assert any("TOKEN=[secret]" in line for line in lines), lines
        assert not any(value in line for line in runtime_log(api, d["id"]))
        cli_runtime = platform.cli("logs", d["id"], "--runtime")
        assert "TOKEN=[secret]" in cli_runtime.stdout and value not in cli_runtime.stdout
        assert not any(value in line for line in build_log(api, d["id"]))
        assert value not in api.get(f"/v1/deployments/{d['id']}").text

    # An app that fails with the secret in its error message: the build log still shows [secret].
    leaky = 'raise RuntimeError("bad token " + os.environ["TOKEN"])'
    failed, _took, code = cli_deploy(
        platform,
        write_tree(tmp_path / "leaky", app_files("v2", source=flask_source("v2", prelude=leaky))),
        project,
    )
    assert code != 0 and failed["status"] == "ERROR", failed
    with platform.api() as api:
        log = build_log(api, failed["id"])
        assert any("bad token [secret]" in line for line in log), log
        assert not any(value in line for line in log)
        assert value not in api.get(f"/v1/deployments/{failed['id']}").text

    # Nowhere on disk in plain text: the database (and its journal), logs, deployments, blobs.
    database = platform.data_dir / "anchor.db"
    assert database.is_file()
    checked = 0
    for path in platform.data_dir.rglob("*"):
        if "envs" in path.relative_to(platform.data_dir).parts or not path.is_file() or path.is_symlink():
            continue
        assert value.encode() not in path.read_bytes(), f"the secret is in plain text in {path}"
        checked += 1
    assert checked > 10
    assert value not in up_log(platform)


@pytest.mark.parametrize("key", ["PATH", "ANCHOR_X", "1A", "A-B"])
def test_reserved_and_invalid_env_keys_are_refused(platform: AnchorProcess, key: str) -> None:
    with platform.api() as api:
        ensure_project(api, "keys")
        response = api.post("/v1/projects/keys/env", json={"key": key, "value": "x"})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_input"
        assert key not in [v["key"] for v in api.get("/v1/projects/keys/env").json()["env"]]
    done = platform.cli("env", "set", "keys", key, "x", check=False)
    assert done.returncode == 1 and "error" in done.stderr


# -- 3. rollbacks under load -------------------------------------------------------------------------------
@pytest.mark.edges
def test_50_rollbacks_between_app_versions_under_load(edge_platform: AnchorProcess) -> None:
    platform = edge_platform
    project = "swing"
    with platform.api() as api:
        ensure_project(api, project)
        v1 = upload_and_deploy(api, project, as_bytes(app_files("v1")))
        v2 = upload_and_deploy(api, project, as_bytes(app_files("v2")))
    assert v1["status"] == v2["status"] == "READY"
    host = production_host(project)
    versions = {v1["id"]: "v1", v2["id"]: "v2"}
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"v1": 0, "v2": 0}
    failures: list[str] = []

    def load() -> None:
        try:
            with httpx.Client(base_url=platform.edge_url, headers={"Host": host}, timeout=10) as client:
                deadline = time.monotonic() + 120
                for _ in range(100_000):
                    if stop.is_set() or time.monotonic() > deadline:
                        return
                    try:
                        response = client.get("/")
                    except httpx.HTTPError as exc:
                        with lock:
                            failures.append(repr(exc))
                        continue
                    with lock:
                        if response.status_code != 200:
                            failures.append(f"{response.status_code}: {response.text[:200]}")
                        elif response.json().get("version") in counts:
                            counts[response.json()["version"]] += 1
                        else:
                            failures.append(f"unexpected body {response.text[:200]}")
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            with lock:
                failures.append(f"load thread crashed: {exc!r}")

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    worst_visible = 0.0
    worst_polls = 0
    late: list[str] = []
    try:
        wait_until(lambda: sum(counts.values()) > 20, 10, "load running")
        with (
            platform.api() as api,
            httpx.Client(base_url=platform.edge_url, headers={"Host": host}, timeout=10) as probe,
        ):
            targets = [v1["id"], v2["id"]] * 25  # production is v2: the first rollback goes to v1
            for number, target in enumerate(targets):
                response = api.post(f"/v1/projects/{project}/rollback", json={"deploymentId": target})
                assert response.status_code == 200, response.text
                returned = time.monotonic()
                for poll in range(1, 6):
                    sent = time.monotonic() - returned
                    seen = probe.get("/").json()["version"]
                    if seen == versions[target]:
                        worst_visible = max(worst_visible, sent)
                        worst_polls = max(worst_polls, poll)
                        break
                    if time.monotonic() - returned > 0.05:
                        late.append(f"switch {number}: still {seen} after {poll} polls")
                        break
                else:
                    late.append(f"switch {number}: not visible after 5 polls")
        time.sleep(0.2)  # keep loading a moment after the last switch
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    _measure("worst time from rollback answer to a request reaching the new version", worst_visible)
    print(
        f"[measure] requests during 50 rollbacks: {counts}, failures {len(failures)}, "
        f"worst polls {worst_polls}"
    )
    assert failures == [], failures[:10]
    assert late == [], late
    assert counts["v1"] > 0 and counts["v2"] > 0
    with platform.api() as api:
        history = api.get(f"/v1/projects/{project}/alias-history").json()["history"]
    assert [m["reason"] for m in history].count("rollback") == 50
    assert get_json(platform, host)["version"] == "v2"


# -- 5. environment reuse ---------------------------------------------------------------------------------
def test_same_requirements_reuse_one_environment(platform: AnchorProcess) -> None:
    project = "reuse"
    with platform.api() as api:
        ensure_project(api, project)
        first = upload_and_deploy(api, project, as_bytes(app_files("r1")))
        started = time.monotonic()
        second = upload_and_deploy(api, project, as_bytes(app_files("r2")))
        _measure("build with a reused environment (api, to READY)", time.monotonic() - started)
        assert first["status"] == second["status"] == "READY"
        first_log, second_log = build_log(api, first["id"]), build_log(api, second["id"])
    reused = [line for line in second_log if "reusing environment" in line]
    assert len(reused) == 1, second_log
    assert not any("pip install" in line or "Installing" in line for line in second_log), second_log
    key = reused[0].split("reusing environment ", 1)[1].split()[0]
    assert any(key in line for line in first_log)  # the same environment as the first build
    same_set = [
        p.name
        for p in (platform.data_dir / "envs").iterdir()
        if (p / "anchor-requirements.txt").is_file()
        and (p / "anchor-requirements.txt").read_text() == FLASK_REQUIREMENTS
    ]
    assert same_set == [key]
    assert get_json(platform, host_of(second["url"]))["version"] == "r2"


# -- 7. a killed worker comes back ------------------------------------------------------------------------
def test_worker_killed_with_sigkill_is_restarted_and_requests_wait(platform: AnchorProcess) -> None:
    project = "crashy"
    with platform.api() as api:
        ensure_project(api, project)
        d = upload_and_deploy(api, project, as_bytes(app_files("v1")))
    host = production_host(project)
    first_pid = get_json(platform, host)["pid"]  # the answering process's instance id
    first_host_pids = worker_pids(d["id"])
    assert len(first_host_pids) == 1

    stop = threading.Event()
    results: list[tuple[float, float, str]] = []  # (sent, answered, outcome)

    def load() -> None:
        with httpx.Client(base_url=platform.edge_url, headers={"Host": host}, timeout=30) as client:
            for _ in range(20_000):
                if stop.is_set():
                    return
                sent = time.monotonic()
                try:
                    response = client.get("/")
                    outcome = "ok" if response.status_code == 200 else f"{response.status_code}"
                except httpx.HTTPError as exc:
                    outcome = repr(exc)
                results.append((sent, time.monotonic(), outcome))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(results) > 20, 10, "load running")
        killed_at = time.monotonic()
        os.kill(first_host_pids[0], signal.SIGKILL)
        answer = wait_until(
            lambda: (a := _try_json(platform, host)) and a["pid"] != first_pid and a,
            20,
            "a new worker answering",
        )
        recovered = time.monotonic() - killed_at
        # The new worker stays: no further exits, restarts or new pids for a while.
        time.sleep(1.5)
        later = worker_pids(d["id"])
        again = _try_json(platform, host)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=40)
    during = [r for r in results if r[1] >= killed_at]
    failed = [r for r in during if r[2] != "ok"]
    slowest = max((r[1] - r[0] for r in during), default=0.0)
    _measure("SIGKILL to the URL answering from a new worker", recovered)
    _measure("slowest request around the restart", slowest)
    exits = up_log(platform).count(f"worker {d['id']} exited")
    print(
        f"[measure] requests after the kill: {len(during)}, failed: {len(failed)} {failed[:3]}; exits {exits}"
    )
    assert answer["version"] == "v1"
    assert exits == 1, f"the worker exited {exits} times after one SIGKILL: the restarted worker keeps dying"
    assert len(later) == 1 and later != first_host_pids, f"worker processes after the restart: {later}"
    assert again is not None and again["pid"] == answer["pid"], (
        f"the restarted worker {answer['pid']} was replaced by {later} within 2s"
    )
    # Requests sent after the kill wait for the new worker instead of failing; only a request already
    # in flight to the killed process may fail (at most one per load thread).
    assert [r for r in failed if r[0] > killed_at + 0.01] == []
    assert len(failed) <= len(threads)
    assert get_json(platform, host_of(d["url"]))["version"] == "v1"


def _try_json(anchor: AnchorProcess, host: str) -> dict[str, Any] | None:
    try:
        response = anchor.edge(host, "/")
    except httpx.HTTPError:
        return None
    return dict(response.json()) if response.status_code == 200 else None
