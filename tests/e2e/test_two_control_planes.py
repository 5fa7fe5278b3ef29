"""Two control-plane processes on ONE shared database, each assembling the services itself
(tests/e2e/control_planes.py): every job is done once, moves are serialized, and a killed process's build is
taken over. Parametrized by provider: local (one data dir) and aws (one stack on one moto server: DynamoDB,
S3 and Lambda shared, what a deployment serves read as its Lambda version would answer)."""

from __future__ import annotations

import itertools
import json
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from anchor_deploy.model.entities import DeploymentStatus, HostKind, MoveReason, Project
from anchor_deploy.model.names import deployment_host, production_host
from anchor_deploy.services.runner import LeaseTiming
from tests.aws_support import MotoServer
from tests.e2e.aws_platform import alias_version, bootstrap, function_of, version_of_deployment
from tests.e2e.control_planes import (
    ADMIN,
    BASE,
    BUILD_START,
    FACTORIES,
    SEES_DEAD_HOLDERS,
    ControlPlane,
    Hooks,
    Shared,
    expect,
    spawn,
)
from tests.e2e.harness import sha

TIMING = LeaseTiming(ttl=3.0, heartbeat=1.0, poll=0.2)


@pytest.fixture(params=sorted(FACTORIES))
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def moto_env(provider: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """On aws: the standard AWS variables of an emptied moto server, set here and given to the children."""
    if provider != "aws":
        return {}
    server: MotoServer = request.getfixturevalue("aws")
    return server.environ()


@pytest.fixture
def shared(provider: str, moto_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Shared:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o700)
    if provider != "aws":
        return Shared(folder)
    stack = "cp2-" + secrets.token_hex(3)
    bootstrap(request.getfixturevalue("moto"), stack)
    return Shared(folder, stack)


@pytest.fixture
def plane(provider: str, shared: Shared) -> ControlPlane:
    """The test's own view of the shared state: it queues work and reads the outcome; it runs nothing."""
    return FACTORIES[provider](shared, TIMING, Hooks())


@pytest.fixture
def children(moto_env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(**config: Any) -> subprocess.Popen[str]:
        child = spawn(config, moto_env)
        started.append(child)
        return child

    yield start
    for child in started:
        if child.stdin is not None and not child.stdin.closed:
            child.stdin.close()
    for child in started:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def config(provider: str, shared: Shared, role: str, **extra: Any) -> dict[str, Any]:
    timing = {"ttl": TIMING.ttl, "heartbeat": TIMING.heartbeat, "poll": TIMING.poll}
    where = {"shared": str(shared.folder), "stack": shared.stack}
    return {"provider": provider, **where, "role": role, "timing": timing, **extra}


def queue(plane: ControlPlane, project: Project, count: int) -> list[str]:
    ids = []
    for n in range(count):
        body = f"<h1>version {n}</h1>".encode()
        plane.blobs.put(sha(body), iter([body]), 1 << 20)
        files = [{"path": "index.html", "sha256": sha(body), "size": len(body)}]
        ids.append(plane.deployments.create(project, {"files": files, "target": "preview"}, ADMIN).id)
    return ids


def status(plane: ControlPlane, deployment_id: str) -> DeploymentStatus:
    deployment = plane.store.deployment(deployment_id)
    assert deployment is not None
    return deployment.status


def wait_ready(plane: ControlPlane, ids: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while any(not status(plane, d).is_final for d in ids):
        assert time.monotonic() < deadline, [(d, status(plane, d)) for d in ids]
        time.sleep(0.1)
    assert {d: status(plane, d) for d in ids} == dict.fromkeys(ids, DeploymentStatus.READY)


def wait_released(plane: ControlPlane, ids: list[str], timeout: float = 20) -> None:
    """Every build lease given back (its builder releases it once the build, READY set, has returned)."""
    deadline = time.monotonic() + timeout
    while held := [d for d in ids if plane.store.lease_holder(f"build:{d}") is not None]:
        assert time.monotonic() < deadline, f"build leases still held: {held}"
        time.sleep(0.1)


def build_starts(plane: ControlPlane, deployment_id: str) -> list[float]:
    """When each run of the deployment's build began (its build log's first line, once per run)."""
    return [at for _seq, at, line in plane.store.read_log(deployment_id) if line.startswith(BUILD_START)]


def test_queued_deployments_are_built_once_each_by_two_processes(
    provider: str, shared: Shared, plane: ControlPlane, children: Callable[..., subprocess.Popen[str]]
) -> None:
    ids = queue(plane, plane.project("site"), 20)
    first, second = (children(**config(provider, shared, "build")) for _ in range(2))
    holders = {expect(first, "ready")[0], expect(second, "ready")[0]}
    assert len(holders) == 2
    wait_ready(plane, ids)
    assert {d: len(build_starts(plane, d)) for d in ids} == dict.fromkeys(ids, 1)
    wait_released(plane, ids)
    served = plane.edge.current()
    for n, deployment_id in enumerate(ids):
        host = deployment_host("site", deployment_id, BASE)
        assert served[host] == (HostKind.DEPLOYMENT, deployment_id)
        assert plane.served_file(deployment_id, "index.html") == f"<h1>version {n}</h1>".encode()


def test_rollbacks_sent_to_both_processes_at_once_are_serialized_and_production_ends_on_the_last(
    provider: str, shared: Shared, plane: ControlPlane, children: Callable[..., subprocess.Popen[str]]
) -> None:
    project = plane.project("site")
    ids = queue(plane, project, 6)
    for deployment_id in ids:
        plane.deployments.build(deployment_id)
    plane.aliases.promote(project, ids[0], ADMIN)
    targets = [ids[(n * 5 + 1) % len(ids)] for n in range(50)]
    movers = [
        children(**config(provider, shared, "rollbacks", project="site", targets=targets[half::2], threads=4))
        for half in (0, 1)
    ]
    for mover in movers:
        expect(mover, "ready")
    for mover in movers:  # both at once
        assert mover.stdin is not None
        mover.stdin.write("go\n")
        mover.stdin.flush()
    answers = [expect(mover, "moves") for mover in movers]
    reported = [json.loads(moves) for moves, _calls in answers]
    calls = sum((Counter(json.loads(made)) for _moves, made in answers), Counter[str]())
    history = plane.store.alias_history(project.id)
    rollbacks = [move for move in history if move.reason == MoveReason.ROLLBACK]
    assert len(rollbacks) == 50
    assert sorted(m.id for m in rollbacks) == sorted(reported[0] + reported[1])
    assert sorted(m.to_deployment_id for m in rollbacks) == sorted(targets)
    for before, move in itertools.pairwise(history):  # one serial chain, no move lost
        assert move.from_deployment_id == before.to_deployment_id, (before, move)
    final = plane.store.project_by_id(project.id)
    assert final is not None and final.pinned
    assert final.production_deployment_id == history[-1].to_deployment_id
    assert plane.edge.current()[production_host("site", BASE)] == (
        HostKind.ALIAS,
        history[-1].to_deployment_id,
    )
    # every rollback applied production once, plus a round more each time the database moved meanwhile
    assert 50 <= calls["edge:point"] <= 50 * 5
    if provider == "aws":
        function = function_of(project.id)
        assert function is not None
        production = alias_version(function, "production")
        assert production is not None and production != "$LATEST"
        assert production == version_of_deployment(function, history[-1].to_deployment_id)
        # one UpdateAlias at most per round (none where the alias already named the version), no other
        # alias made or moved
        assert 1 <= calls["lambda:UpdateAlias"] <= calls["edge:point"]
        assert calls["lambda:CreateAlias"] == 0


@pytest.mark.parametrize("reclaim_dead", [False, True], ids=["after-expiry", "dead-holder-seen"])
def test_a_build_whose_process_was_killed_is_taken_over_and_ends_ready(
    provider: str,
    shared: Shared,
    plane: ControlPlane,
    children: Callable[..., subprocess.Popen[str]],
    reclaim_dead: bool,
) -> None:
    if reclaim_dead and provider not in SEES_DEAD_HOLDERS:
        pytest.skip(f"{provider}: a lease is taken over only once it expires (holders run anywhere)")
    (deployment_id,) = queue(plane, plane.project("site"), 1)
    victim = children(**config(provider, shared, "build", hang=True))
    holder = expect(victim, "ready")[0]
    expect(victim, "building")  # its build is under way and blocked there
    assert status(plane, deployment_id) == DeploymentStatus.BUILDING
    survivor = children(**config(provider, shared, "build", reclaim_dead=reclaim_dead))
    expect(survivor, "ready")
    time.sleep(TIMING.poll * 3)  # the survivor polls meanwhile: the lease is held, so it does not build
    assert len(build_starts(plane, deployment_id)) == 1
    lease = plane.store.lease_holder(f"build:{deployment_id}")
    assert lease is not None and lease[0] == holder
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    wait_ready(plane, [deployment_id], timeout=60)
    starts = build_starts(plane, deployment_id)
    assert len(starts) == 2  # the victim's start, and the survivor's from the beginning
    if reclaim_dead:
        assert starts[1] < lease[1]  # a holder seen dead on this machine: taken before its lease expired
    else:
        assert starts[1] >= lease[1]  # taken over only once the lease had expired
    wait_released(plane, [deployment_id])
    assert plane.edge.current()[deployment_host("site", deployment_id, BASE)] == (
        HostKind.DEPLOYMENT,
        deployment_id,
    )
    assert plane.served_file(deployment_id, "index.html") == b"<h1>version 0</h1>"
