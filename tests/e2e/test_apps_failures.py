"""Python web apps that must not go live, with real processes: builds that fail (import error, failing
health check, a requirement missing from the wheelhouse) leave production alone and say why in the build log;
uploads and requirements that would reach outside the upload are refused; build logs followed by the CLI and
as server-sent events end with the final status.

One platform serves the whole module (each test uses its own project); builds install offline from the
local wheelhouse, and the working apps share one requirements.txt, so its environment is built once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apps_support import (
    FLASK_REQUIREMENTS,
    app_files,
    app_platform,
    as_bytes,
    build_log,
    cli_deploy,
    flask_source,
    get_json,
    host_of,
    production_host,
    wait_until,
    worker_pids,
    write_tree,
)
from tests.e2e.harness import AnchorProcess, ensure_project, sha, upload_and_deploy, wait_final
from tests.unit.test_requirements import REFUSED


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    anchor = app_platform(tmp_path_factory.mktemp("apps-failing") / "data").start()
    try:
        yield anchor
    finally:
        anchor.stop()


def _measure(name: str, value: float) -> None:
    print(f"\n[measure] {name}: {value:.3f}s")


# -- 4. failed builds -------------------------------------------------------------------------------------
FAILURES: dict[str, tuple[dict[str, str], list[str]]] = {
    "import_error": (
        app_files(
            "bad", source=flask_source("bad", prelude='raise RuntimeError("anchor-test: cannot start")')
        ),
        ["anchor-test: cannot start", "RuntimeError"],
    ),
    "health_500": (
        app_files(
            "sick",
            source=flask_source(
                "sick", routes='\n@app.get("/health")\ndef health():\n    return "unhealthy", 500\n'
            ),
            extra={"anchor.toml": '[app]\nentry = "app:app"\nhealth_path = "/health"\n'},
        ),
        ["GET /health answered 500"],
    ),
    "missing_requirement": (
        app_files("lacking", requirements=FLASK_REQUIREMENTS + "no-such-package-anchor==1.0\n"),
        ["no-such-package-anchor", "pip install failed"],
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failed_build_ends_in_error_with_its_cause_and_production_unchanged(
    platform: AnchorProcess, tmp_path: Path, case: str
) -> None:
    project = f"broken-{case.replace('_', '-')}"
    files, causes = FAILURES[case]
    with platform.api() as api:
        ensure_project(api, project)
        good = upload_and_deploy(api, project, as_bytes(app_files("good")))
        assert good["status"] == "READY"
    bad, took, code = cli_deploy(platform, write_tree(tmp_path / case, files), project)
    _measure(f"failed build ({case})", took)
    assert code == 1 and bad["status"] == "ERROR", bad
    assert bad["error"]
    with platform.api() as api:
        log = "\n".join(build_log(api, bad["id"]))
        for cause in causes:
            assert cause in log, log
        assert "build failed" in log
        project_now = api.get(f"/v1/projects/{project}").json()
        assert project_now["productionDeploymentId"] == good["id"]
    assert get_json(platform, production_host(project))["version"] == "good"
    assert platform.edge(host_of(bad["url"])).status_code == 404  # a failed build gets no URL
    wait_until(lambda: not worker_pids(bad["id"]), 10, "the failed version's worker stopped")
    if case == "missing_requirement":  # the half-made environment is removed
        leftovers = (
            [
                p
                for p in (platform.data_dir / "envs").iterdir()
                if "no-such-package" in (p / "anchor-requirements.txt").read_text(errors="replace")
            ]
            if (platform.data_dir / "envs").is_dir()
            else []
        )
        assert leftovers == []


# -- 8. refused inputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "public/../../x"])
def test_manifest_paths_escaping_the_upload_are_refused(platform: AnchorProcess, path: str) -> None:
    files = as_bytes(app_files("v1"))
    manifest = [{"path": p, "sha256": sha(b), "size": len(b), "mode": 0o644} for p, b in files.items()]
    manifest.append({"path": path, "sha256": sha(b"x"), "size": 1, "mode": 0o644})
    with platform.api() as api:
        ensure_project(api, "escape")
        response = api.post(
            "/v1/projects/escape/deployments", json={"files": manifest, "target": "production"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_manifest"
        assert api.get("/v1/projects/escape/deployments").json()["deployments"] == []


def test_app_static_dir_escaping_the_upload_is_refused(platform: AnchorProcess) -> None:
    files = as_bytes(app_files("v1"))
    manifest = [{"path": p, "sha256": sha(b), "size": len(b), "mode": 0o644} for p, b in files.items()]
    with platform.api() as api:
        ensure_project(api, "escape")
        for app in ({"entry": "app:app", "static": "../deployments"}, {"entry": "../app:app"}):
            response = api.post("/v1/projects/escape/deployments", json={"files": manifest, "app": app})
            assert response.status_code == 422, response.text


def _deploy_requirements(platform: AnchorProcess, project: str, requirements: str) -> tuple[int, str, str]:
    """Deploy an app with these requirements: (HTTP status of the create, final status, build log)."""
    files = as_bytes(app_files("v1", requirements=requirements))
    with platform.api() as api:
        ensure_project(api, project)
        manifest = [{"path": p, "sha256": sha(b), "size": len(b), "mode": 0o644} for p, b in files.items()]
        for digest, data in {sha(b): b for b in files.values()}.items():
            api.put(f"/v1/blobs/{digest}", content=data)
        response = api.post(
            f"/v1/projects/{project}/deployments", json={"files": manifest, "target": "preview"}
        )
        if response.status_code == 422:
            return 422, "", response.text
        assert response.status_code == 201, response.text
        deployment = wait_final(api, response.json()["id"], timeout=120)
        return 201, deployment["status"], "\n".join(build_log(api, deployment["id"]))


@pytest.mark.parametrize(
    "requirements",
    [
        "-r /etc/passwd\n",
        "file:///etc/passwd\n",
        "passwd @ file:///etc/passwd\n",
        "flask\n  --requirement=/etc/passwd\n",
        "-c /etc/passwd\n",
    ],
)
def test_requirements_that_read_server_files_are_refused(platform: AnchorProcess, requirements: str) -> None:
    created, status, log = _deploy_requirements(platform, "reqs", requirements)
    assert created == 422 or status == "ERROR", log
    assert "root:x:" not in log
    assert "$ pip install" not in log, "refused before pip runs"


def test_requirement_path_outside_the_upload_is_refused_before_pip(platform: AnchorProcess) -> None:
    """A local path that does not start with '.' or '/' still walks out of the build directory."""
    created, status, log = _deploy_requirements(platform, "reqs-path", "bin/" + "../" * 12 + "etc\n")
    assert created == 422 or status == "ERROR", log
    assert "root:x:" not in log
    assert "$ pip install" not in log, f"pip was asked to read a directory of the server:\n{log}"


@pytest.mark.parametrize(("line", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_every_refused_requirement_line_is_refused_by_the_platform(
    platform: AnchorProcess, line: str, reason: str
) -> None:
    """The unit table's refused lines, each deployed as line 3 of an app's requirements.txt through the API:
    refused with the line number and the reason before pip runs, nothing installed, and neither the line's
    paths nor the server's own paths in the answer or the build log."""
    envs = platform.data_dir / "envs"
    envs_before = sorted(p.name for p in envs.iterdir()) if envs.is_dir() else []
    requirements = f"flask\n# pinned below\n{line}\n"
    files = as_bytes(app_files("v1", requirements=requirements))
    with platform.api() as api:
        ensure_project(api, "reqs-table")
        for digest, data in {sha(b): b for b in files.values()}.items():
            api.put(f"/v1/blobs/{digest}", content=data)
        manifest = [{"path": p, "sha256": sha(b), "size": len(b), "mode": 0o644} for p, b in files.items()]
        response = api.post(
            "/v1/projects/reqs-table/deployments", json={"files": manifest, "target": "preview"}
        )
        if response.status_code == 422:
            message, log = response.json()["error"]["message"], ""
        else:
            assert response.status_code == 201, response.text
            deployment = wait_final(api, response.json()["id"], timeout=120)
            assert deployment["status"] == "ERROR", deployment
            message, log = deployment["error"], "\n".join(build_log(api, deployment["id"]))
            assert f"build failed: {message}" in log, log
    assert message.startswith("requirements line 3: ") and reason in message, message
    assert "/" not in message
    assert "$ pip install" not in log, f"refused before pip runs:\n{log}"
    for leak in [str(platform.data_dir), *(part for part in line.split() if "/" in part)]:
        assert leak not in message and leak not in log, (leak, message, log)
    assert (sorted(p.name for p in envs.iterdir()) if envs.is_dir() else []) == envs_before, (
        "nothing installed"
    )


# -- 9. build logs: CLI follow and SSE --------------------------------------------------------------------
def _sse_events(
    anchor: AnchorProcess, deployment_id: str, timeout: float = 60
) -> list[tuple[str, Any, float]]:
    """The stream's events as (event, data, arrival time); bounded by ``timeout``."""
    events: list[tuple[str, Any, float]] = []
    deadline = time.monotonic() + timeout
    with (
        anchor.api() as api,
        api.stream("GET", f"/v1/deployments/{deployment_id}/logs", params={"follow": 1}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = "", ""
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise AssertionError(f"the stream did not end within {timeout}s: {events[-5:]}")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
            elif line == "" and event:
                events.append((event, json.loads(data), time.monotonic()))
                event, data = "", ""
    return events


def test_logs_follow_in_the_cli_and_as_server_sent_events(platform: AnchorProcess) -> None:
    project = "follow"
    slow = flask_source("v1", prelude='import time\ntime.sleep(1.5)\nprint("slow start done", flush=True)')
    with platform.api() as api:
        ensure_project(api, project)
        d = upload_and_deploy(api, project, as_bytes(app_files("v1", source=slow)), wait=False)
    cli_result: dict[str, subprocess.CompletedProcess[str]] = {}
    follower = threading.Thread(
        target=lambda: cli_result.setdefault("done", platform.cli("logs", d["id"], "--follow")), daemon=True
    )
    follower.start()
    events = _sse_events(platform, d["id"])
    follower.join(timeout=60)

    kinds = [kind for kind, _data, _at in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1 and set(kinds[:-1]) == {"line"}, kinds
    assert events[-1][1] == {"status": "READY"}
    # It followed a live build: the first lines came before the app's 1.5 s start, the end after it.
    assert events[-1][2] - events[0][2] > 1.0
    lines = [data for kind, data, _at in events if kind == "line"]
    assert [line["seq"] for line in lines] == sorted({line["seq"] for line in lines})
    texts = [line["text"] for line in lines]
    assert texts[0].startswith(f"building {d['id']}") and texts[-1] == "ready"
    with platform.api() as api:
        assert texts == build_log(api, d["id"])

    done = cli_result["done"]
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == texts
    assert "READY" in done.stderr

    # A failed build's stream ends with its status too.
    with platform.api() as api:
        bad = upload_and_deploy(
            api, project, as_bytes(app_files("x", source=flask_source("x", prelude="raise SystemExit(3)")))
        )
    assert bad["status"] == "ERROR"
    events = _sse_events(platform, bad["id"])
    assert events[-1][:2] == ("end", {"status": "ERROR"})
    assert any("exited with code 3" in data["text"] for kind, data, _at in events if kind == "line")


def test_logs_follow_json_prints_only_json(platform: AnchorProcess) -> None:
    """`--json` is for scripts: with --follow its output must still be JSON (one document, or a stream of
    documents such as JSON lines), ending with the final status."""
    with platform.api() as api:
        ensure_project(api, "follow-json")
        d = upload_and_deploy(api, "follow-json", as_bytes(app_files("v1")))
    out = platform.cli("logs", d["id"], "--follow", "--json").stdout
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(out):
        if out[at].isspace():
            at += 1
            continue
        try:
            document, at = decoder.raw_decode(out, at)
        except ValueError:
            raise AssertionError(f"not JSON at offset {at}: {out[at : at + 80]!r}") from None
        documents.append(document)
    assert documents[-1] == {"status": "READY"}
