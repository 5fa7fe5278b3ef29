"""Builds the local provider's adapters and services from settings. The only module that knows them all."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from anchor_deploy.adapters.caddy_config import edge_config
from anchor_deploy.adapters.caddy_edge import SymlinkEdge
from anchor_deploy.adapters.caddy_process import CaddyProcess, admin_socket_path
from anchor_deploy.adapters.fs_blobs import FsBlobStore, FsDeploymentFiles
from anchor_deploy.adapters.sqlite_store import SqliteStore
from anchor_deploy.model.entities import HostKind
from anchor_deploy.services.aliases import AliasService, Faults
from anchor_deploy.services.auth import TokenService
from anchor_deploy.services.deployments import BuildQueue, DeploymentService
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.projects import ProjectService
from anchor_deploy.services.reconcile import Reconciler
from anchor_deploy.settings import Settings, parse_addr


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Platform:
    settings: Settings
    store: SqliteStore
    blobs: FsBlobStore
    files: FsDeploymentFiles
    edge: SymlinkEdge
    tokens: TokenService
    projects: ProjectService
    deployments: DeploymentService
    aliases: AliasService
    builds: BuildQueue
    reconciler: Reconciler
    caddy: CaddyProcess | None

    def start(self) -> str | None:
        """Converge the edge on the database, start Caddy and the loops; return a new admin secret."""
        secret = self.tokens.ensure_admin(self.settings.admin_token)
        self.files.sweep_temporaries()
        self.builds.start()
        self.reconciler.run_once(startup=True)
        if self.caddy:
            self.caddy.start()
        self.reconciler.start()
        return secret

    def stop(self) -> None:
        self.reconciler.stop()
        self.builds.stop()
        if self.caddy:
            self.caddy.stop()


def build_platform(settings: Settings, with_caddy: bool = True) -> Platform:
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    clock = time.time
    store = SqliteStore(data / "anchor.db", clock=clock)
    blobs = FsBlobStore(data / "blobs")
    files = FsDeploymentFiles(data / "deployments", blobs)
    edge = SymlinkEdge(data / "edge", data / "deployments")
    sync = EdgeSync(store, edge)
    faults = Faults(settings.fault, _kill_self)
    aliases = AliasService(store, sync, settings.base_domain, faults)
    deployments = DeploymentService(
        store, blobs, files, aliases, sync, settings.base_domain, settings.max_blob_size, clock
    )
    builds = BuildQueue(deployments.build, settings.build_workers)
    deployments.on_created = builds.submit
    reconciler = Reconciler(store, files, edge, aliases, builds.submit, files.present)
    sync.on_failure = reconciler.request
    projects = ProjectService(store, edge, files, settings.base_domain, clock, reconciler.request)
    caddy = _caddy(settings, data, edge) if with_caddy else None
    return Platform(
        settings,
        store,
        blobs,
        files,
        edge,
        TokenService(store, clock),
        projects,
        deployments,
        aliases,
        builds,
        reconciler,
        caddy,
    )


def _caddy(settings: Settings, data: Path, edge: SymlinkEdge) -> CaddyProcess:
    run_dir = data / "run"
    run_dir.mkdir(exist_ok=True)
    socket = admin_socket_path(run_dir)
    config = edge_config(
        http_listen=settings.http_addr,
        admin_socket=socket,
        alias_root=edge.kind_root(HostKind.ALIAS),
        deployment_root=edge.kind_root(HostKind.DEPLOYMENT),
        storage_root=data / "caddy-storage",
    )
    return CaddyProcess(
        settings.caddy_bin,
        config,
        run_dir,
        data / "logs" / "caddy.log",
        parse_addr(settings.http_addr, "ANCHOR_HTTP_ADDR"),
        socket,
    )
