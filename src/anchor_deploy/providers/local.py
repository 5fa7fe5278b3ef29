"""Builds the local provider's adapters and services from settings. The only module that knows them all."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import shlex
import time
from pathlib import Path
from typing import IO, Any

from anchor_deploy import __version__
from anchor_deploy.adapters.acme_issuer import AcmeIssuer
from anchor_deploy.adapters.delegated_issuer import DelegatedIssuer
from anchor_deploy.adapters.dns_lookup import DnsPythonLookup
from anchor_deploy.adapters.fernet_box import FernetBox
from anchor_deploy.adapters.forge_status import ForgeStatusReporter
from anchor_deploy.adapters.local.activator import Activator
from anchor_deploy.adapters.local.backup_export import BackupExporter
from anchor_deploy.adapters.local.backup_restore import restore_archive, verify_archive
from anchor_deploy.adapters.local.caddy_config import HttpsEdge, edge_config
from anchor_deploy.adapters.local.caddy_edge import SymlinkDomainEdge, SymlinkEdge
from anchor_deploy.adapters.local.caddy_process import CaddyProcess, socket_dir
from anchor_deploy.adapters.local.cert_files import CertificateEndpoint, CertificateFiles
from anchor_deploy.adapters.local.cgroups import CgroupLimits
from anchor_deploy.adapters.local.dns_server import ZoneServer
from anchor_deploy.adapters.local.edge_plane import EdgePlane
from anchor_deploy.adapters.local.edge_process import EdgeProcess
from anchor_deploy.adapters.local.edge_rules import EdgePaths, WorkerSockets
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles
from anchor_deploy.adapters.local.git_fetch import SandboxGitFetcher
from anchor_deploy.adapters.local.git_http import LocalGitHttp, local_api_url
from anchor_deploy.adapters.local.internal_ca import InternalCA, InternalIssuer
from anchor_deploy.adapters.local.nginx_config import NJS_MODULE, NginxHttps
from anchor_deploy.adapters.local.nginx_config import render as render_nginx
from anchor_deploy.adapters.local.nginx_process import NginxProcess, check_installed
from anchor_deploy.adapters.local.process_run import BuildSandbox
from anchor_deploy.adapters.local.sandbox import JobLimits, Mount, Network, Sandbox, SandboxMode
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.adapters.local.tls_probe import EdgeTlsProbe
from anchor_deploy.adapters.local.venv_builder import VenvBuilder
from anchor_deploy.adapters.local.worker_runtime import WorkerPolicy, WorkerRuntime
from anchor_deploy.adapters.public_suffix_list import BundledPublicSuffixes
from anchor_deploy.model.entities import HostKind
from anchor_deploy.model.logs import BuildLogCap
from anchor_deploy.ports.domains import KeyedIssuer
from anchor_deploy.ports.runtime import SpecLoader, WorkerSpec
from anchor_deploy.providers.local_parts import LocalLifecycle, LocalRoot, LocalStatus
from anchor_deploy.providers.platform import Platform
from anchor_deploy.providers.services import Adapters, DomainAdapters, assemble, faults_from
from anchor_deploy.services.git_builds import GitParts
from anchor_deploy.services.operator import BackupService
from anchor_deploy.services.runner import same_machine_liveness
from anchor_deploy.settings import Settings, parse_addr

log = logging.getLogger(__name__)


def build_platform(settings: Settings, with_caddy: bool = True) -> Platform:
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    faults = faults_from(settings)
    store = SqliteStore(
        data / "anchor.db", clock=time.time, fault=faults.hit, busy_timeout=settings.db_busy_timeout
    )
    store.build_log_cap = BuildLogCap(settings.build_log_max_lines, settings.build_log_max_bytes)
    blobs = FsBlobStore(data / "blobs")
    files = FsDeploymentFiles(data / "deployments", blobs)
    edge = SymlinkEdge(data / "edge", data / "deployments")
    sockets = socket_dir(data / "run")
    sandbox, policy, build_box = sandbox_for(settings, data)
    envs = VenvBuilder(data / "envs", build_box, shlex.split(settings.pip_args))
    specs = _SpecRelay()
    runtime = WorkerRuntime(
        sockets,
        data / "logs" / "runtime",
        specs.load,
        settings.idle_timeout,
        policy,
        log_max_bytes=settings.log_max_bytes,
        is_app=lambda deployment_id: _is_app(store, deployment_id),
    )
    certificates = CertificateFiles(data / "certificates")
    internal_ca = InternalCA(data / "ca")
    zone_server = _zone_server(settings)
    domain_edge = SymlinkDomainEdge(data / "edge" / "c", edge.kind_root(HostKind.ALIAS))
    status = LocalStatus(sandbox)
    box = FernetBox.from_key_file(data / "secrets.key")
    lookup = DnsPythonLookup(settings.resolver_list)
    issuer = DelegatedIssuer(
        _issuer(settings, data, zone_server, internal_ca),
        lookup,
        settings.validation_zone_name,
        store.domain_certificate,
        BundledPublicSuffixes().public_suffix,
        settings.caa_identity if settings.issuer == "acme" else "",
        on_revoke_refused=lambda why: log.warning("could not revoke a removed domain's certificate: %s", why),
    )
    plane = EdgePlane(
        store,
        box,
        certificates,
        domain_edge,
        EdgeTlsProbe(parse_addr(settings.https_addr, "ANCHOR_HTTPS_ADDR")),
        settings.base_domain,
        settings.edge_host,
        settings.edge_address_list,
        fault=faults.hit,
    )
    remote = LocalGitHttp(data / "git", local_api_url(settings.api_addr), settings.git_hook_timeout)
    fetcher = SandboxGitFetcher(
        build_box,
        blobs,
        data / "git-fetch",
        max_file_size=settings.max_blob_size,
        memory_bytes=settings.build_memory,
        timeout=settings.build_timeout,
        private_roots=(data,),
    )
    adapters = Adapters(
        store=store,
        blobs=blobs,
        files=files,
        edge=edge,
        environments=envs,
        runtime=runtime,
        box=box,
        domains=DomainAdapters(lookup=lookup, issuer=issuer, plane=plane, zone=zone_server),
        status=status,
        root_certificate=LocalRoot(internal_ca),
        lease_holder_alive=same_machine_liveness(),  # processes sharing a data dir share this machine
        git_remote=remote,
        git=GitParts(store, fetcher, ForgeStatusReporter(), remote.repository_url),
    )
    services = assemble(settings, adapters, faults=faults)
    specs.source = services.apps.spec  # workers restarted by the runtime are built from the database
    activator = Activator(
        sockets / "activator.sock", runtime, services.apps.spec, runtime.socket, settings.health_timeout
    )
    backups = BackupExporter(data, blobs, services.retention.collection_paused, __version__, time.time)
    endpoint = CertificateEndpoint(certificates)
    if with_caddy:
        https = HttpsEdge(settings.https_addr, settings.https_port, endpoint.url)
        workers = WorkerSockets(sockets, activator.socket_path)
        status.edge_server = _edge_server(settings, data, edge, sockets, workers, domain_edge, https)
    lifecycle = LocalLifecycle(
        settings,
        files,
        backups,
        runtime,
        activator,
        endpoint,
        internal_ca,
        edge_server=status.edge_server,
        zone_server=zone_server,
        sandbox=sandbox,
        blobs=blobs,
    )
    return Platform(settings, services, lifecycle, BackupService(backups))


def _is_app(store: SqliteStore, deployment_id: str) -> bool | None:
    deployment = store.deployment(deployment_id)
    return None if deployment is None else deployment.app is not None


class _SpecRelay:
    """The runtime is built before the services that say how to run a deployment: it asks through this."""

    source: SpecLoader | None = None

    def load(self, deployment_id: str) -> WorkerSpec | None:
        return self.source(deployment_id) if self.source else None


def _zone_server(settings: Settings) -> ZoneServer | None:
    if settings.issuer != "acme":
        return None
    host, port = parse_addr(settings.dns_addr, "ANCHOR_DNS_ADDR")
    return ZoneServer(settings.validation_zone_name, host, port)


def _issuer(settings: Settings, data: Path, zone_server: ZoneServer | None, ca: InternalCA) -> KeyedIssuer:
    if zone_server is None:
        return InternalIssuer(ca, datetime.timedelta(seconds=settings.certificate_lifetime))
    return AcmeIssuer(
        settings.acme_directory,
        data / "acme",
        zone_server,
        email=settings.acme_email or None,
        ca_bundle=settings.acme_ca_bundle or None,
    )


def restore_backup(archive: IO[bytes], data_dir: Path) -> dict[str, Any]:
    """`anchor restore`: a backup into an empty data dir (the platform is not running on it)."""
    return restore_archive(archive, data_dir)


def verify_backup(archive: IO[bytes]) -> dict[str, Any]:
    """`anchor backup` checks what it received before keeping it."""
    return verify_archive(archive)


def sandbox_for(settings: Settings, data: Path) -> tuple[Sandbox, WorkerPolicy, BuildSandbox]:
    """The sandbox for user code, and how app workers and builds are confined in it."""
    mode = SandboxMode(settings.app_sandbox)
    tag = hashlib.sha256(str(data).encode()).hexdigest()[:12]
    cgroups = CgroupLimits.detect(tag) if mode is SandboxMode.BWRAP else CgroupLimits.disabled("sandbox off")
    sandbox = Sandbox(mode, cgroups)
    limits = JobLimits(settings.app_memory, settings.app_max_processes, settings.app_open_files)
    policy = WorkerPolicy(
        sandbox,
        limits,
        Network(settings.app_network),
        settings.app_startup_cpu,
        settings.sandbox_uid_base,
        settings.app_tmp_bytes,
    )
    # Local paths in ANCHOR_PIP_ARGS (a wheelhouse for --find-links) are the operator's: builds see them.
    paths = {Path(a.removeprefix("file://")) for a in shlex.split(settings.pip_args)}
    extra = tuple(Mount(p) for p in sorted(paths) if p.is_absolute() and p.exists())
    box = BuildSandbox(
        sandbox, settings.app_max_processes, settings.app_open_files, settings.sandbox_uid_base, extra
    )
    return sandbox, policy, box


def _edge_server(
    settings: Settings,
    data: Path,
    edge: SymlinkEdge,
    sockets: Path,
    workers: WorkerSockets,
    domain_edge: SymlinkDomainEdge,
    https: HttpsEdge,
) -> EdgeProcess:
    """The web server reading the edge's symlink tree: Caddy, or nginx (ANCHOR_EDGE=nginx)."""
    run_dir = data / "run"
    run_dir.mkdir(exist_ok=True)
    alias_hosts, deployment_hosts = edge.kind_root(HostKind.ALIAS), edge.kind_root(HostKind.DEPLOYMENT)
    paths = EdgePaths(alias_hosts, deployment_hosts, data / "deployments", domain_edge.root)
    if settings.edge != "nginx":
        return _caddy(settings, data, run_dir, paths, sockets, workers, https)
    check_installed(settings.nginx_bin, needs_njs=True, njs_module=NJS_MODULE)
    log_path = data / "logs" / "nginx.log"
    files = render_nginx(
        http_listen=settings.http_addr,
        paths=paths,
        workers=workers,
        run_dir=run_dir,
        error_log=log_path,
        https=NginxHttps(settings.https_addr, settings.https_port, data / "certificates"),
    )
    return NginxProcess(
        settings.nginx_bin, files, run_dir, log_path, parse_addr(settings.http_addr, "ANCHOR_HTTP_ADDR")
    )


def _caddy(
    settings: Settings,
    data: Path,
    run_dir: Path,
    paths: EdgePaths,
    sockets: Path,
    workers: WorkerSockets,
    https: HttpsEdge,
) -> CaddyProcess:
    socket = sockets / "caddy-admin.sock"
    config = edge_config(
        http_listen=settings.http_addr,
        admin_socket=socket,
        paths=paths,
        storage_root=data / "caddy-storage",
        workers=workers,
        https=https,
    )
    return CaddyProcess(
        settings.caddy_bin,
        config,
        run_dir,
        data / "logs" / "caddy.log",
        parse_addr(settings.http_addr, "ANCHOR_HTTP_ADDR"),
        socket,
    )
