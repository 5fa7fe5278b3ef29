"""The local provider's own parts around the services: what starts and stops with the platform (the edge,
the activator, the DNS server, the certificate endpoint, the worker runtime, the sandbox), how they are
reported in /v1/health, and the local CA's root."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from anchor_deploy.adapters.local.activator import Activator
from anchor_deploy.adapters.local.backup_export import BackupExporter
from anchor_deploy.adapters.local.cert_files import CertificateEndpoint
from anchor_deploy.adapters.local.dns_server import ZoneServer
from anchor_deploy.adapters.local.edge_process import EdgeProcess
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles
from anchor_deploy.adapters.local.internal_ca import InternalCA
from anchor_deploy.adapters.local.sandbox import Sandbox, SandboxMode
from anchor_deploy.adapters.local.worker_runtime import WorkerRuntime
from anchor_deploy.model.errors import EdgeError, NotFound
from anchor_deploy.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LocalStatus:
    """The local parts in /v1/health: the edge's web server (Caddy or nginx, once built) and the sandbox."""

    sandbox: Sandbox | None
    edge_server: EdgeProcess | None = None

    def edge_healthy(self) -> bool | None:
        return self.edge_server.healthy() if self.edge_server else None

    def user_code(self) -> tuple[str | None, bool]:
        if self.sandbox is None:
            return None, True
        return self.sandbox.describe(), self.sandbox.problem is None


@dataclass(frozen=True)
class LocalRoot:
    """The local CA's root certificate, to download."""

    ca: InternalCA

    def root_certificate(self) -> tuple[str, str]:
        path = self.ca.root_path
        try:
            return str(path), path.read_text()
        except OSError as exc:
            raise NotFound(f"the local CA's root certificate cannot be read: {exc.strerror or exc}") from exc


@dataclass
class LocalLifecycle:
    settings: Settings
    files: FsDeploymentFiles
    backups: BackupExporter
    runtime: WorkerRuntime
    activator: Activator
    certificate_endpoint: CertificateEndpoint
    internal_ca: InternalCA
    edge_server: EdgeProcess | None = None
    zone_server: ZoneServer | None = None
    sandbox: Sandbox | None = None
    blobs: FsBlobStore | None = None

    def prepare(self) -> None:
        self.files.sweep_temporaries()
        if self.blobs is not None:
            restamped = self.blobs.restamp()
            if restamped:
                log.info("gave %d blobs written by an earlier version their content stamp", restamped)
        self.backups.sweep()
        if self.sandbox is not None:
            self.sandbox.probe()
            self.sandbox.cgroups.sweep()
        self.runtime.start()

    def serve(self) -> None:
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
        if self.edge_server:
            self.edge_server.start()

    def stop(self) -> None:
        if self.edge_server:
            self.edge_server.stop()
        self.activator.stop()
        self.certificate_endpoint.stop()
        if self.zone_server:
            self.zone_server.stop()
        self.runtime.shutdown()
        if self.sandbox is not None:
            self.sandbox.cgroups.close()

    def notes(self) -> list[str]:
        settings = self.settings
        issuer = "local CA" if settings.issuer == "internal" else f"ACME {settings.acme_directory}"
        ca = self.internal_ca
        lines = [
            f"custom domains: https://{settings.https_addr} (certificates: {issuer}; "
            f"trust {ca.root_path} for the local CA)",
            self.sandbox_line(),
        ]
        if settings.edge == "nginx":
            lines.insert(0, f"edge: nginx ({settings.nginx_bin}; its log: logs/nginx.log in the data dir)")
        if ca.replaced_root is not None:
            lines.append(
                f"the local CA got a new root that strict TLS clients accept: trust {ca.root_path} "
                f"instead of the old one (kept as {ca.replaced_root.name}); "
                "its certificates are being re-issued"
            )
        if self.zone_server is not None:
            zone = settings.validation_zone_name
            lines.append(f"validation zone {zone} served by DNS at {settings.dns_addr} (UDP+TCP)")
        return lines

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
