"""Helpers for the Python-app end-to-end tests: offline platforms, app sources, logs, worker processes.

App builds install from a local wheelhouse (pip --no-index), never from PyPI: `make test` (scripts/test)
fills it and exports ANCHOR_TEST_WHEELHOUSE. Every app here that can use the same requirements.txt text does,
so one platform builds each environment once and reuses it for every later deployment.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import AnchorProcess, sha

FLASK_REQUIREMENTS = "flask\n"
FASTAPI_REQUIREMENTS = "fastapi\n"
REQUIREMENTS = {"flask": FLASK_REQUIREMENTS, "fastapi": FASTAPI_REQUIREMENTS}


def wheelhouse() -> Path:
    """The local wheelhouse, or a failure that says how to make it (never a silent skip)."""
    value = os.environ.get("ANCHOR_TEST_WHEELHOUSE")
    if not value:
        pytest.fail(
            "ANCHOR_TEST_WHEELHOUSE is not set: the app tests build offline from a local wheelhouse. "
            "Run `make test` (scripts/test fills .cache/wheelhouse and exports it), or fill it yourself with "
            "`pip download -d .cache/wheelhouse uvicorn==<the platform's version> flask fastapi` and export "
            "ANCHOR_TEST_WHEELHOUSE=$PWD/.cache/wheelhouse",
            pytrace=False,
        )
    path = Path(value)
    if not any(path.glob("uvicorn-*.whl")) or not any(path.glob("flask-*.whl")):
        pytest.fail(
            f"ANCHOR_TEST_WHEELHOUSE={path} lacks the uvicorn or flask wheels; run `make test` to fill it",
            pytrace=False,
        )
    return path


def app_platform(data_dir: Path, **settings: str) -> AnchorProcess:
    """A platform whose builds install only from the wheelhouse; ``settings`` are extra ANCHOR_* values."""
    extra = {"ANCHOR_PIP_ARGS": f"--no-index --find-links {wheelhouse()}", **settings}
    return AnchorProcess(data_dir, extra_env=extra)


@contextlib.contextmanager
def running_app_platform(data_dir: Path, edge_server: str = "caddy") -> Iterator[AnchorProcess]:
    """``app_platform`` started on ``edge_server`` ("caddy" or "nginx"), stopped on leaving."""
    anchor = app_platform(data_dir)
    anchor.edge_server = edge_server
    anchor.start()
    try:
        yield anchor
    finally:
        anchor.stop()


# -- app sources -------------------------------------------------------------------------------------------
def flask_source(version: str, prelude: str = "", routes: str = "") -> str:
    """A Flask app answering JSON with its version and $GREETING at '/', and at any other path."""
    return f"""\
import hashlib
import os
import sys
import uuid

from flask import Flask, jsonify

VERSION = {version!r}
# Which worker process answered: its pid inside its sandbox's PID namespace is no name for it (every
# sandbox counts from 1), so each process carries a random instance id.
INSTANCE = f"{{os.getpid()}}-{{uuid.uuid4().hex[:12]}}"
{prelude}
app = Flask(__name__, static_folder=None)


def _token_digest():
    token = os.environ.get("TOKEN")
    return hashlib.sha256(token.encode()).hexdigest() if token is not None else None


@app.get("/")
def index():
    return jsonify(version=VERSION, greeting=os.environ.get("GREETING"), framework="flask",
                   token_sha256=_token_digest(), pid=INSTANCE)
{routes}

@app.get("/<path:anything>")
def anything(anything):
    from flask import request

    # The date validators an app is sent (the edge keeps them from static files only).
    fields = ("If-Modified-Since", "If-Unmodified-Since")
    dates = {{k: request.headers[k] for k in fields if k in request.headers}}
    extra = {{"dates": dates}} if dates else {{}}
    return jsonify(version=VERSION, path="/" + anything, servedBy="app", **extra)
"""


def fastapi_source(version: str) -> str:
    return f"""\
import os
import uuid

from fastapi import FastAPI

VERSION = {version!r}
INSTANCE = f"{{os.getpid()}}-{{uuid.uuid4().hex[:12]}}"
app = FastAPI()


@app.get("/")
def index():
    return {{"version": VERSION, "greeting": os.environ.get("GREETING"), "framework": "fastapi",
            "pid": INSTANCE}}


@app.get("/{{anything:path}}")
def anything(anything: str):
    return {{"version": VERSION, "path": "/" + anything, "servedBy": "app"}}
"""


def app_files(
    version: str,
    framework: str = "flask",
    requirements: str | None = None,
    source: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The files of an app upload: app.py, requirements.txt and one static file under public/."""
    if source is None:
        source = flask_source(version) if framework == "flask" else fastapi_source(version)
    return {
        "app.py": source,
        "requirements.txt": REQUIREMENTS[framework] if requirements is None else requirements,
        "public/hello.txt": f"static file of {version}\n",
        **(extra or {}),
    }


def write_tree(directory: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


def as_bytes(files: dict[str, str]) -> dict[str, bytes]:
    return {path: text.encode() for path, text in files.items()}


# -- the platform, through its CLI and API ---------------------------------------------------------------
def cli_deploy(
    anchor: AnchorProcess, directory: Path, project: str, prod: bool = True
) -> tuple[dict[str, Any], float, int]:
    """`anchor deploy DIR --project P --create [--prod] --json`: the deployment, the wall time, the exit
    code (--create: the first deploy of a test makes its project)."""
    args = ["deploy", str(directory), "--project", project, "--create", "--json"]
    args += ["--prod"] if prod else []
    started = time.monotonic()
    done = anchor.cli(*args, check=False)
    elapsed = time.monotonic() - started
    try:
        deployment = json.loads(done.stdout)
    except ValueError as exc:
        raise AssertionError(
            f"anchor deploy printed no JSON ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        ) from exc
    return deployment, elapsed, done.returncode


def build_log(api: httpx.Client, deployment_id: str) -> list[str]:
    response = api.get(f"/v1/deployments/{deployment_id}/logs", params={"limit": 10_000})
    assert response.status_code == 200, response.text
    return [line["text"] for line in response.json()["lines"]]


def runtime_log(api: httpx.Client, deployment_id: str) -> list[str]:
    response = api.get(f"/v1/deployments/{deployment_id}/logs", params={"source": "runtime"})
    assert response.status_code == 200, response.text
    return list(response.json()["lines"])


def host_of(url: str) -> str:
    return url.split("//", 1)[1].rsplit(":", 1)[0]


def production_host(project: str) -> str:
    return f"{project}.localhost"


def edge_get(anchor: AnchorProcess, host: str, path: str = "/", timeout: float = 30) -> httpx.Response:
    """Like the harness's edge(), with a longer timeout (a cold start may be in the way)."""
    return httpx.get(f"{anchor.edge_url}{path}", headers={"Host": host}, timeout=timeout)


def get_json(anchor: AnchorProcess, host: str, path: str = "/") -> dict[str, Any]:
    response = anchor.edge(host, path)
    assert response.status_code == 200, (host, path, response.status_code, response.text[:300])
    return dict(response.json())


def etag_of(content: str) -> str:
    return f'"{sha(content.encode())}"'


def up_log(anchor: AnchorProcess) -> str:
    """The whole output of `anchor up` (the harness keeps it beside the data dir)."""
    return (anchor.data_dir.parent / f"{anchor.data_dir.name}-up.log").read_text(errors="replace")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        time.sleep(interval)


# -- worker processes --------------------------------------------------------------------------------------
def worker_sockets(anchor: AnchorProcess) -> Path:
    return anchor.data_dir / "run" / "sockets" / "worker"


def worker_pids(deployment_id: str) -> list[int]:
    """Host pids of the live app processes whose command line has `--uds` and names the deployment (its
    worker), from /proc; the sandbox's own processes (bwrap), whose command lines hold the same, are not."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"bwrap"):
            continue
        if b"--uds" in argv and any(deployment_id.encode() in arg for arg in argv):
            found.append(int(entry.name))
    return sorted(found)


def processes_mentioning(text: str) -> list[int]:
    """Live processes with ``text`` anywhere in their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
