"""Control planes for tests/e2e/test_two_control_planes.py: the services of one control-plane process on a
shared database, made by a provider's factory, and a child process that runs one of them.

A factory (``FACTORIES``) takes where the shared state is, the lease timing and the test's hooks, and
returns a ControlPlane; a second provider plugs in by adding its factory (on AWS: one moto backend for both
processes). The child (``python -m tests.e2e.control_planes '<json>'``) speaks in lines on stdout:
``ready`` once assembled (and started, for builders), then what its role reports; it stops when its stdin
closes.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchor_deploy.adapters.local.caddy_edge import SymlinkEdge
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.model.entities import HostKind, HostRoute, Project, Token
from anchor_deploy.model.names import production_host
from anchor_deploy.ports import BlobStore, Edge, Store
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
class Hooks:
    """What a test makes a control plane do besides its work: ``during_build(deployment id)`` runs while a
    build is under way (its status BUILDING, its lease held): a test blocks it there to kill the process."""

    during_build: Callable[[str], None] = lambda _deployment_id: None
    reclaim_dead: bool = False  # take a dead local holder's leases at once (the local provider's assembly)


def local_control_plane(shared: Path, timing: LeaseTiming, hooks: Hooks = Hooks()) -> ControlPlane:
    """The local provider's services on one data dir (as providers/local.py assembles them, minus the
    edge server, app runtime and domains)."""
    store = SqliteStore(shared / "anchor.db")
    blobs = FsBlobStore(shared / "blobs")
    files = FsDeploymentFiles(shared / "deployments", blobs)
    edge = SymlinkEdge(shared / "edge", shared / "deployments")
    materialize = files.materialize

    def materialize_during_build(deployment_id: str, *args: Any, **kwargs: Any) -> None:
        hooks.during_build(deployment_id)
        materialize(deployment_id, *args, **kwargs)

    files.materialize = materialize_during_build  # type: ignore[method-assign]
    sync = EdgeSync(store, edge)
    aliases = AliasService(store, sync, BASE, Faults())
    deployments = DeploymentService(store, blobs, files, aliases, sync, BASE, 1 << 20, time.time)
    alive = same_machine_liveness() if hooks.reclaim_dead else (lambda _holder: True)
    keeper = LeaseKeeper(store, timing, holder_alive=alive)
    builds = LeasedBuilds(store, keeper, deployments.build, workers=2)
    deployments.on_created = builds.submit

    def served_file(deployment_id: str, path: str) -> bytes:
        return (shared / "deployments" / deployment_id / "public" / path).read_bytes()

    return ControlPlane(store, blobs, edge, aliases, deployments, Runner(keeper), builds, served_file)


FACTORIES: dict[str, Callable[[Path, LeaseTiming, Hooks], ControlPlane]] = {"local": local_control_plane}


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
    _say("moves", json.dumps(moves, separators=(",", ":")))
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
    plane = FACTORIES[config["provider"]](Path(config["shared"]), timing, hooks)
    {"build": _build, "rollbacks": _rollbacks}[config["role"]](plane, config)


def spawn(config: dict[str, Any]) -> subprocess.Popen[str]:
    """A control-plane child process; its first line (``ready …``) is read by ``expect``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.control_planes", json.dumps(config)],
        cwd=REPO,
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
