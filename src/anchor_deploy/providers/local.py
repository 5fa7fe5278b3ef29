"""Builds the local provider's adapters and services from settings. The only module that knows them all."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import shlex
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import idna

from anchor_deploy import __version__
from anchor_deploy.adapters.acme_issuer import AcmeIssuer
from anchor_deploy.adapters.dns_lookup import DnsPythonLookup
from anchor_deploy.adapters.fernet_box import FernetBox
from anchor_deploy.adapters.local.activator import Activator
from anchor_deploy.adapters.local.backup_export import BackupExporter
from anchor_deploy.adapters.local.backup_restore import restore_archive, verify_archive
from anchor_deploy.adapters.local.caddy_config import EdgePaths, HttpsEdge, WorkerSockets, edge_config
from anchor_deploy.adapters.local.caddy_edge import SymlinkDomainEdge, SymlinkEdge
from anchor_deploy.adapters.local.caddy_process import CaddyProcess, socket_dir
from anchor_deploy.adapters.local.cert_files import CertificateEndpoint, CertificateFiles
from anchor_deploy.adapters.local.cgroups import CgroupLimits
from anchor_deploy.adapters.local.dns_server import ZoneServer
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles
from anchor_deploy.adapters.local.internal_ca import InternalCA, InternalIssuer
from anchor_deploy.adapters.local.process_run import BuildSandbox
from anchor_deploy.adapters.local.sandbox import JobLimits, Mount, Network, Sandbox, SandboxMode
from anchor_deploy.adapters.local.sqlite_store import SqliteStore
from anchor_deploy.adapters.local.tls_probe import EdgeTlsProbe
from anchor_deploy.adapters.local.venv_builder import VenvBuilder
from anchor_deploy.adapters.local.worker_runtime import WorkerPolicy, WorkerRuntime
from anchor_deploy.adapters.public_suffix_list import BundledPublicSuffixes
from anchor_deploy.adapters.unicode_scripts import UcdScripts
from anchor_deploy.model.entities import HostKind
from anchor_deploy.model.errors import EdgeError
from anchor_deploy.model.logs import BuildLogCap
from anchor_deploy.ports.domains import Issuer
from anchor_deploy.services.aliases import AliasService, Faults
from anchor_deploy.services.apps import AppBuilds, BuildSettings, EnvService
from anchor_deploy.services.auth import AdminSetup, TokenService
from anchor_deploy.services.deployments import BuildQueue, DeploymentService
from anchor_deploy.services.domain_worker import DomainWorker
from anchor_deploy.services.domains import DomainService, DomainSettings
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.integrity import IntegrityService
from anchor_deploy.services.projects import ProjectService
from anchor_deploy.services.reconcile import Reconciler
from anchor_deploy.services.retention import Retention
from anchor_deploy.services.scrub import Scrubber
from anchor_deploy.settings import Settings, parse_addr

log = logging.getLogger(__name__)


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
    env: EnvService
    apps: AppBuilds
    runtime: WorkerRuntime
    activator: Activator
    retention: Retention
    domains: DomainService
    domain_worker: DomainWorker
    certificate_endpoint: CertificateEndpoint
    internal_ca: InternalCA
    backups: BackupExporter
    zone_server: ZoneServer | None = None
    sandbox: Sandbox | None = None
    integrity: IntegrityService = field(kw_only=True)
    scrubber: Scrubber = field(kw_only=True)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> AdminSetup:
        """Converge the edge on the database, start Caddy and the loops; return what became of the admin
        token (a new secret to show once, env admin tokens revoked)."""
        admin = self.tokens.ensure_admin(self.settings.admin_token)
        self.files.sweep_temporaries()
        self.backups.sweep()
        if self.sandbox is not None:
            self.sandbox.probe()
            self.sandbox.cgroups.sweep()
        self.runtime.start()
        self.builds.start()
        self.reconciler.run_once(startup=True)
        self.activator.start()
        if self.zone_server:
            try:
                self.zone_server.start()
            except OSError as exc:
                raise EdgeError(
                    f"the validation zone's DNS server cannot listen on {self.settings.dns_addr} "
                    f"(ANCHOR_DNS_ADDR): {exc.strerror or exc}"
                ) from exc
        self.certificate_endpoint.start()
        if self.caddy:
            self.caddy.start()
        self.reconciler.start()
        self.scrubber.start()
        self.domain_worker.start()
        threading.Thread(target=self._warm_production, name="warm-up", daemon=True).start()
        threading.Thread(target=self._collect_garbage, name="gc", daemon=True).start()
        return admin

    def sandbox_line(self) -> str:
        """One line for the operator: how user code is confined, or why apps will not run."""
        sandbox = self.sandbox
        if sandbox is None or sandbox.mode is SandboxMode.OFF:
            return "WARNING: ANCHOR_APP_SANDBOX=off: app builds and workers run with the platform's rights"
        if sandbox.problem:
            return (
                f"apps will not run: the app sandbox is unavailable ({sandbox.problem}); static sites are "
                "served as usual; set ANCHOR_APP_SANDBOX=off to run apps unsandboxed"
            )
        return f"apps run sandboxed: {sandbox.describe()}"

    def _collect_garbage(self, every: float = 600.0) -> None:
        while not self._stopping.wait(every):
            try:
                blobs, envs = self.retention.collect(time.time())
                if blobs or envs:
                    log.info("collected %d unused blobs and %d unused environments", blobs, envs)
            except Exception:
                log.exception("garbage collection failed")

    def _warm_production(self) -> None:
        kept = {project.id: self.aliases.warm_set(project) for project in self.store.list_projects()}
        for project_id, deployment_ids in kept.items():
            self.runtime.keep_warm(project_id, deployment_ids)
        # Environments READY apps lack (after a restore, say) are rebuilt, production's first; collection
        # waits, as it would not see an environment that is being made as in use.
        with self.retention.collection_paused():
            restored = set(self.apps.restore_environments(first=set().union(*kept.values())))
        # Read again: a deploy or rollback during a long rebuild has moved the warm sets since.
        for project in self.store.list_projects() if restored else []:
            current = self.aliases.warm_set(project)
            if current & restored:
                self.runtime.keep_warm(project.id, current)

    def stop(self) -> None:
        self._stopping.set()
        self.domain_worker.stop()
        self.reconciler.stop()
        self.scrubber.stop()
        self.builds.stop()
        if self.caddy:
            self.caddy.stop()
        self.activator.stop()
        self.certificate_endpoint.stop()
        if self.zone_server:
            self.zone_server.stop()
        self.runtime.shutdown()
        if self.sandbox is not None:
            self.sandbox.cgroups.close()


def build_platform(settings: Settings, with_caddy: bool = True) -> Platform:
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    clock = time.time
    faults = Faults(settings.fault, _kill_self)
    store = SqliteStore(
        data / "anchor.db", clock=clock, fault=faults.hit, busy_timeout=settings.db_busy_timeout
    )
    store.build_log_cap = BuildLogCap(settings.build_log_max_lines, settings.build_log_max_bytes)
    blobs = FsBlobStore(data / "blobs")
    files = FsDeploymentFiles(data / "deployments", blobs)
    edge = SymlinkEdge(data / "edge", data / "deployments")
    sync = EdgeSync(store, edge)
    aliases = AliasService(store, sync, settings.base_domain, faults)
    sockets = socket_dir(data / "run")
    box = FernetBox.from_key_file(data / "secrets.key")
    env = EnvService(store, box)
    sandbox, policy, build_box = _sandbox(settings, data)
    envs = VenvBuilder(data / "envs", build_box, shlex.split(settings.pip_args))
    apps_ref: list[AppBuilds] = []
    runtime = WorkerRuntime(
        sockets,
        data / "logs" / "runtime",
        lambda d: apps_ref[0].spec(d),
        settings.idle_timeout,
        policy,
        log_max_bytes=settings.log_max_bytes,
    )
    build_settings = BuildSettings(settings.build_timeout, settings.build_memory, settings.health_timeout)
    apps = AppBuilds(store, blobs, files, envs, runtime, env, build_settings)
    apps_ref.append(apps)
    # Production and the previous production stay warm; taken from the move itself, not the history,
    # so a rollback's cost does not grow with the number of earlier moves.
    aliases.on_moved = lambda project, move: runtime.keep_warm(
        project.id, {move.to_deployment_id, move.from_deployment_id or move.to_deployment_id}
    )
    activator = Activator(
        sockets / "activator.sock", runtime, apps.spec, runtime.socket, settings.health_timeout
    )
    deployments = DeploymentService(
        store, blobs, files, aliases, sync, settings.base_domain, settings.max_blob_size, clock, apps, env
    )
    builds = BuildQueue(deployments.build, settings.build_workers)
    deployments.on_created = builds.submit
    reconciler = Reconciler(store, files, edge, aliases, builds.submit, files.present)
    sync.on_failure = reconciler.request
    integrity = IntegrityService(store, blobs, files, reconciler, runtime.stop)
    blobs.on_stored = integrity.blob_stored
    scrubber = Scrubber(blobs, settings.scrub_interval, settings.scrub_rate)
    projects = ProjectService(store, edge, files, settings.base_domain, clock, reconciler.request)
    retention = Retention(store, files, edge, blobs, envs, runtime.discard, apps.requirements_of)
    backups = BackupExporter(data, blobs, retention.collection_paused, __version__, clock)
    deployments.on_ready = retention.prune
    workers = WorkerSockets(sockets, activator.socket_path)
    certificates = CertificateFiles(data / "certificates")
    endpoint = CertificateEndpoint(certificates)
    internal_ca = InternalCA(data / "ca")
    zone_server = None
    issuer: Issuer
    if settings.issuer == "acme":
        host, port = parse_addr(settings.dns_addr, "ANCHOR_DNS_ADDR")
        zone_server = ZoneServer(settings.validation_zone_name, host, port)
        issuer = AcmeIssuer(
            settings.acme_directory,
            data / "acme",
            zone_server,
            email=settings.acme_email or None,
            ca_bundle=settings.acme_ca_bundle or None,
        )
    else:
        issuer = InternalIssuer(internal_ca, datetime.timedelta(seconds=settings.certificate_lifetime))
    domain_settings = DomainSettings(
        base_domain=settings.base_domain,
        validation_zone=settings.validation_zone_name,
        edge_hostname=settings.edge_host,
        edge_addresses=settings.edge_address_list,
        validation_deadline=settings.validation_deadline,
        check_min=settings.domain_check_min,
        check_max=settings.domain_check_max,
        caa_identity=settings.caa_identity if settings.issuer == "acme" else "",
        quota=settings.domain_quota,
    )
    domain_edge = SymlinkDomainEdge(data / "edge" / "c", edge.kind_root(HostKind.ALIAS))
    domains = DomainService(
        store,
        DnsPythonLookup(settings.resolver_list),
        issuer,
        certificates,
        domain_edge,
        EdgeTlsProbe(parse_addr(settings.https_addr, "ANCHOR_HTTPS_ADDR")),
        box,
        domain_settings,
        clock,
        _idna_to_ascii,
        _idna_to_unicode,
        BundledPublicSuffixes(),
        UcdScripts(),
        zone_server,
    )
    domain_worker = DomainWorker(domains)
    domains.on_change = domain_worker.wake
    domains.checks = domain_worker
    domains.fault = faults.hit
    projects.before_delete = domains.remove_all
    projects.after_delete = lambda project, deployment_ids: runtime.stop_project(project.id, deployment_ids)
    https = HttpsEdge(settings.https_addr, settings.https_port, endpoint.url)
    caddy = _caddy(settings, data, edge, sockets, workers, domain_edge, https) if with_caddy else None
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
        env,
        apps,
        runtime,
        activator,
        retention,
        domains,
        domain_worker,
        endpoint,
        internal_ca,
        backups,
        zone_server,
        sandbox,
        integrity=integrity,
        scrubber=scrubber,
    )


def restore_backup(archive: IO[bytes], data_dir: Path) -> dict[str, Any]:
    """`anchor restore`: a backup into an empty data dir (the platform is not running on it)."""
    return restore_archive(archive, data_dir)


def verify_backup(archive: IO[bytes]) -> dict[str, Any]:
    """`anchor backup` checks what it received before keeping it."""
    return verify_archive(archive)


def _sandbox(settings: Settings, data: Path) -> tuple[Sandbox, WorkerPolicy, BuildSandbox]:
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


def _idna_to_ascii(label: str) -> str:
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from exc


def _idna_to_unicode(label: str) -> str:
    try:
        return str(idna.decode(label))
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from exc


def _caddy(
    settings: Settings,
    data: Path,
    edge: SymlinkEdge,
    sockets: Path,
    workers: WorkerSockets,
    domain_edge: SymlinkDomainEdge,
    https: HttpsEdge,
) -> CaddyProcess:
    run_dir = data / "run"
    run_dir.mkdir(exist_ok=True)
    socket = sockets / "caddy-admin.sock"
    config = edge_config(
        http_listen=settings.http_addr,
        admin_socket=socket,
        paths=EdgePaths(
            edge.kind_root(HostKind.ALIAS),
            edge.kind_root(HostKind.DEPLOYMENT),
            data / "deployments",
            domain_edge.root,
        ),
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
