"""App workers at speed, seen from inside the app: uvicorn runs on uvloop and httptools (installed into the
app's environment from the wheelhouse by the build), and the edge keeps its upstream connections to a
version's worker alive, one after another and four at once, instead of dialing its socket for every request:
Caddy per dial string, nginx per keep-alive slot (worker_slots.py); after a rollback, no request reaches
the other version's worker over a kept connection. Both edges (marked ``edges``).

The app is a bare ASGI callable with no requirements of its own, so its environment (uvicorn and the
speed-ups only) builds in a few seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.apps_support import (
    as_bytes,
    build_log,
    get_json,
    host_of,
    production_host,
    running_app_platform,
    wheelhouse,
)
from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy

PROBE = """\
import asyncio
import itertools

VERSION = "v1"
_connections = itertools.count(1)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    cycle = getattr(send, "__self__", None)  # uvicorn's per-request cycle object, if send is its method
    flow = getattr(cycle, "flow", None)  # uvicorn's flow control: one object per connection
    if flow is not None and not hasattr(flow, "probe_number"):
        flow.probe_number = next(_connections)
    body = '{"version": "%s", "loop": "%s", "protocol": "%s", "connection": %d}' % (
        VERSION,
        type(asyncio.get_running_loop()).__module__,
        type(cycle).__module__,
        getattr(flow, "probe_number", 0),
    )
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})
"""


pytestmark = pytest.mark.edges


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, edge_server: str) -> Iterator[AnchorProcess]:
    house = wheelhouse()
    if not any(house.glob("uvloop-*.whl")) or not any(house.glob("httptools-*.whl")):
        pytest.fail(
            f"{house} lacks the uvloop or httptools wheels; run `make test` to refill it", pytrace=False
        )
    with running_app_platform(tmp_path_factory.mktemp("apps-speed") / "data", edge_server) as anchor:
        yield anchor


def test_worker_runs_uvloop_and_httptools_and_the_edge_reuses_its_connections(
    platform: AnchorProcess, tmp_path: Path
) -> None:
    files = {"app.py": PROBE, "requirements.txt": "", "public/hello.txt": "static\n"}
    with platform.api() as api:
        ensure_project(api, "speed")
        deployment = upload_and_deploy(api, "speed", as_bytes(files))
        assert deployment["status"] == "READY", deployment
        log = "\n".join(build_log(api, deployment["id"]))
    assert "httptools==" in log and "uvloop==" in log, log[-2000:]
    host = production_host("speed")
    first = get_json(platform, host)
    assert first["loop"].startswith("uvloop"), first
    assert first["protocol"] == "uvicorn.protocols.http.httptools_impl", first
    seen = {get_json(platform, host)["connection"] for _ in range(100)}
    # Sequential requests through the edge's keep-alive pool to this version: one connection, a few at most
    # (the pool may open another after an idle one timed out); one per request would be 100.
    assert 0 not in seen, "the app could not tell its connections apart"
    assert 1 <= len(seen) <= 3, sorted(seen)
    # Four clients at once, 25 requests each: at most four upstream connections are busy at a time and the
    # pool keeps them (Caddy up to 32 idle per upstream, each nginx worker process 16 per slot), so a few
    # more than four at most.
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: _connections_used(platform, host, 25), range(4)))
    together = set().union(*batches)
    assert 0 not in together and len(together) <= 8, sorted(together)


def _connections_used(platform: AnchorProcess, host: str, requests: int) -> set[int]:
    with httpx.Client(base_url=platform.edge_url, headers={"Host": host}, timeout=30) as client:
        return {int(client.get("/").json()["connection"]) for _ in range(requests)}


def test_after_a_rollback_no_request_reaches_the_other_versions_worker(platform: AnchorProcess) -> None:
    versions = {}
    with platform.api() as api:
        ensure_project(api, "switch")
        for version in ("v1", "v2"):
            files = {
                "app.py": PROBE.replace('VERSION = "v1"', f'VERSION = "{version}"'),
                "requirements.txt": "",
            }
            deployment = upload_and_deploy(api, "switch", as_bytes(files))
            assert deployment["status"] == "READY", deployment
            versions[version] = deployment
    host = production_host("switch")
    with httpx.Client(base_url=platform.edge_url, headers={"Host": host}, timeout=30) as client:
        before = [client.get("/").json() for _ in range(20)]
        assert {answer["version"] for answer in before} == {"v2"}, before
        moved = json.loads(platform.cli("rollback", "switch", "--json").stdout)
        assert moved["toDeploymentId"] == versions["v1"]["id"], moved
        # Same client connection to the edge, whose upstream pool just served v2: every answer is v1's now.
        after = [client.get("/").json() for _ in range(50)]
    assert {answer["version"] for answer in after} == {"v1"}, after
    # v2 still answers on its own URL, through its own worker.
    assert get_json(platform, host_of(versions["v2"]["url"]))["version"] == "v2"
