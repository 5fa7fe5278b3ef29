"""Control planes for tests/e2e/test_two_control_planes.py: the services of one control-plane process on a
shared database, made by a provider's factory, and a child process that runs one of them.

A factory (``FACTORIES``) takes where the shared state is (``Shared``), the lease timing and the test's hooks,
and returns a ControlPlane: the local provider's on one data dir, the AWS provider's (providers/aws.py's
assembly) on one stack of one moto server, every process with its own build scratch. The child
(``python -m tests.e2e.control_planes '<json>'``) speaks in lines on stdout: ``ready`` once assembled (and
started, for builders), then what its role reports; it stops when its stdin closes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.lambda_functions import deployment_alias
from anchor_deploy.adapters.local.caddy_edge import SymlinkEdge
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.entities import HostKind, HostRoute, Project, Token
from anchor_deploy.model.names import production_host
from anchor_deploy.ports import BlobStore, Edge, Store
from anchor_deploy.providers.aws import AwsLifecycle, build_platform
from anchor_deploy.services.aliases import AliasService, Faults
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.runner import (
    LeasedBuilds,
    LeaseKeeper,
    LeaseTiming,
    Runner,
    same_machine_liveness,
)
from anchor_deploy.settings import Settings
from tests.e2e.aws_platform import CACHE_POLICY, served_by_alias

REPO = Path(__file__).resolve().parents[2]
BASE = "localhost"
ADMIN = Token("tok_admin", "admin", None, 0.0)
BUILD_START = "building "  # the first line DeploymentService.build writes to a deployment's build log


@dataclass
class ControlPlane:
    """One control-plane process's services on the shared database (no API, no edge server)."""

    store: Store
    blobs: BlobStore
    edge: Edge
    aliases: AliasService
    deployments: DeploymentService
    runner: Runner
    builds: LeasedBuilds
    served_file: Callable[[str, str], bytes]  # (deployment id, path): the bytes its data plane serves there
    closers: list[Callable[[], None]] = field(default_factory=list)
    # What this process asked of its data plane: "edge:point" per Edge.point, and on AWS every API call
    # as "service:Operation" (retries not counted)
    calls: Counter[str] = field(default_factory=Counter)

    def start(self) -> None:
        self.builds.start()
        self.runner.start()

    def stop(self) -> None:
        self.builds.stop()
        self.runner.stop()
        for close in self.closers:
            close()

    def project(self, name: str) -> Project:
        found = self.store.project_by_name(name)
        if found is None:
            project = Project(f"prj_{secrets.token_hex(6)}", name, time.time())
            host = HostRoute(production_host(name, BASE), HostKind.ALIAS, project.id, None)
            self.store.add_project(project, [host])
            found = project
        return found


@dataclass(frozen=True)
class Shared:
    """Where the state the control planes share is: ``folder`` (the local provider's data dir; on AWS each
    process's build scratch goes under it) and, on AWS, the stack whose table, bucket and functions they
    share (on the moto server the standard AWS variables name)."""

    folder: Path
    stack: str = ""


@dataclass(frozen=True)
class Hooks:
    """What a test makes a control plane do besides its work: ``during_build(deployment id)`` runs while a
    build is under way (its status BUILDING, its lease held): a test blocks it there to kill the process."""

    during_build: Callable[[str], None] = lambda _deployment_id: None
    reclaim_dead: bool = False  # take a dead local holder's leases at once (the local provider's assembly)


def local_control_plane(where: Shared, timing: LeaseTiming, hooks: Hooks = Hooks()) -> ControlPlane:
    """The local provider's services on one data dir (as providers/local.py assembles them, minus the
    edge server, app runtime and domains)."""
    shared = where.folder
    store = SqliteStore(shared / "anchor.db")
    blobs = FsBlobStore(shared / "blobs")
    files = FsDeploymentFiles(shared / "deployments", blobs)
    edge = SymlinkEdge(shared / "edge", shared / "deployments")
    _hook_materialize(files, hooks)
    calls = _count_points(edge, Counter())
    sync = EdgeSync(store, edge)
    aliases = AliasService(store, sync, BASE, Faults())
    deployments = DeploymentService(store, blobs, files, aliases, sync, BASE, 1 << 20, time.time)
    alive = same_machine_liveness() if hooks.reclaim_dead else (lambda _holder: True)
    keeper = LeaseKeeper(store, timing, holder_alive=alive)
    builds = LeasedBuilds(store, keeper, deployments.build, workers=2)
    deployments.on_created = builds.submit

    def served_file(deployment_id: str, path: str) -> bytes:
        return (shared / "deployments" / deployment_id / "public" / path).read_bytes()

    return ControlPlane(
        store, blobs, edge, aliases, deployments, Runner(keeper), builds, served_file, calls=calls
    )


def aws_control_plane(where: Shared, timing: LeaseTiming, hooks: Hooks = Hooks()) -> ControlPlane:
    """The AWS provider's services as providers/aws.py assembles them, on the stack of ``where``. Its
    leases have the default liveness (a holder may run on any machine): they are taken over only when they
    expire. Its runner runs no singleton loops, like the local one here: the builds' leases only."""
    if hooks.reclaim_dead:
        raise ValueError("the AWS provider takes a lease over only once it expires")
    settings = Settings(
        provider="aws",
        aws_stack=where.stack,
        aws_invoke="sandbox",
        aws_cache_policy=CACHE_POLICY,
        data_dir=where.folder / f"scratch-{os.getpid()}-{secrets.token_hex(3)}",
        base_domain=BASE,
        build_workers=2,
        lease_ttl=timing.ttl,
        lease_heartbeat=timing.heartbeat,
        lease_poll=timing.poll,
    )
    settings.validate()
    clients = AwsClients()
    one_request_at_a_time(clients.client("dynamodb"), where.folder / "dynamodb.lock")
    calls = clients.count_calls()
    platform = build_platform(settings, clients=clients)
    services, adapters, lifecycle = platform.services, platform.services.adapters, platform.lifecycle
    assert isinstance(lifecycle, AwsLifecycle)
    _hook_materialize(adapters.files, hooks)
    _count_points(adapters.edge, calls)
    resources = lifecycle.resources

    def served_file(deployment_id: str, path: str) -> bytes:
        deployment = adapters.store.deployment(deployment_id)
        assert deployment is not None, deployment_id
        function = resources.function_prefix + deployment.project_id
        served = served_by_alias(resources.stack, function, deployment_alias(deployment_id), f"/{path}")
        assert served.status == 200, (deployment_id, path, served)
        return served.body

    return ControlPlane(
        adapters.store,
        adapters.blobs,
        adapters.edge,
        services.aliases,
        services.deployments,
        Runner(services.runner.keeper),
        services.builds,
        served_file,
        closers=[lifecycle.stop],
        calls=calls,
    )


def one_request_at_a_time(client: Any, lock: Path) -> None:
    """Every DynamoDB request of every process holding ``lock`` waits for the one under way: moto's server
    answers requests on many threads with no isolation between them (a transaction's conditions are checked
    and its writes made without a lock, and a refused one puts back a copy of the table taken before it
    began, erasing what others wrote meanwhile), where DynamoDB isolates each request. The processes still
    race between their reads and their conditional writes, as on DynamoDB (tests/contract/dynamo_support.py
    does the same within one process)."""

    def before(context: dict[str, Any], **_kwargs: Any) -> None:
        held = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)  # its own open file: threads exclude each other
        fcntl.flock(held, fcntl.LOCK_EX)
        context["moto_lock"] = held

    def after(context: dict[str, Any], **_kwargs: Any) -> None:
        held = context.pop("moto_lock", None)
        if held is not None:
            os.close(held)  # releases the lock (a killed process's goes with it)

    client.meta.events.register("before-call.dynamodb", before)
    client.meta.events.register("after-call.dynamodb", after)
    client.meta.events.register("after-call-error.dynamodb", after)


def _hook_materialize(files: Any, hooks: Hooks) -> None:
    """``hooks.during_build`` runs as a build materializes its deployment (BUILDING, its lease held)."""
    materialize = files.materialize

    def materialize_during_build(deployment_id: str, *args: Any, **kwargs: Any) -> None:
        hooks.during_build(deployment_id)
        materialize(deployment_id, *args, **kwargs)

    files.materialize = materialize_during_build


def _count_points(edge: Any, calls: Counter[str]) -> Counter[str]:
    """Count ``edge.point`` calls (one per EdgeSync round) in ``calls``, from any thread."""
    point = edge.point
    counting = threading.Lock()

    def counted_point(*args: Any, **kwargs: Any) -> None:
        with counting:
            calls.update(["edge:point"])
        point(*args, **kwargs)

    edge.point = counted_point
    return calls


FACTORIES: dict[str, Callable[[Shared, LeaseTiming, Hooks], ControlPlane]] = {
    "local": local_control_plane,
    "aws": aws_control_plane,
}
SEES_DEAD_HOLDERS = {"local"}  # providers that take a lease at once from a holder seen dead on this machine


# -- the child process ----------------------------------------------------------------------------------
_SAYING = threading.Lock()


def _say(*words: object) -> None:
    with _SAYING:  # one whole line at a time, whichever thread says it
        sys.stdout.write(" ".join(map(str, words)) + "\n")
        sys.stdout.flush()


def _build(plane: ControlPlane, _config: dict[str, Any]) -> None:
    _say("ready", plane.runner.keeper.holder)  # before its first claim
    plane.start()
    sys.stdin.read()  # until the test closes stdin (or kills this process)
    plane.stop()


def _rollbacks(plane: ControlPlane, config: dict[str, Any]) -> None:
    """Roll the project back to each target on a few threads at once, after ``go``; report the move ids."""
    project = plane.project(config["project"])
    _say("ready")
    sys.stdin.readline()  # go

    def rollback(target: str) -> int:
        return plane.aliases.rollback(project, target, ADMIN).id

    with ThreadPoolExecutor(config.get("threads", 4)) as pool:
        moves = list(pool.map(rollback, config["targets"]))
    _say("moves", json.dumps(moves, separators=(",", ":")), json.dumps(plane.calls, separators=(",", ":")))
    sys.stdin.read()


def _hung_build(_deployment_id: str) -> None:
    _say("building")
    threading.Event().wait()  # until killed


def main(argv: Sequence[str]) -> None:
    config: dict[str, Any] = json.loads(argv[0])
    hooks = Hooks(reclaim_dead=bool(config.get("reclaim_dead")))
    if config.get("hang"):
        hooks = dataclasses.replace(hooks, during_build=_hung_build)
    timing = LeaseTiming(**config["timing"])
    shared = Shared(Path(config["shared"]), config.get("stack", ""))
    plane = FACTORIES[config["provider"]](shared, timing, hooks)
    {"build": _build, "rollbacks": _rollbacks}[config["role"]](plane, config)


def spawn(config: dict[str, Any], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """A control-plane child process with ``env`` added to this one's environment (on AWS: the moto
    server's standard AWS variables); its first line (``ready …``) is read by ``expect``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.control_planes", json.dumps(config)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def expect(child: subprocess.Popen[str], word: str, timeout: float = 60) -> list[str]:
    """The child's next line, which must start with ``word``; its other words."""
    stdout = child.stdout
    assert stdout is not None
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = found[0] if found else ""
    words = line.split()
    assert words[:1] == [word], f"expected {word!r} from the control plane, got {line!r}"
    return words[1:]


if __name__ == "__main__":
    main(sys.argv[1:])
