"""The services built from a provider's adapters: the same assembly for every provider (local, AWS) and
for the unit tests (the fakes of ports/fakes.py). Callbacks between services are passed to constructors
where the order allows it, and set in ``_connect`` where two of them need each other."""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from anchor_deploy.adapters.dns_zone_writers import ZoneWriters
from anchor_deploy.adapters.idna_labels import idna_to_ascii, idna_to_unicode
from anchor_deploy.adapters.public_suffix_list import BundledPublicSuffixes
from anchor_deploy.adapters.unicode_scripts import UcdScripts
from anchor_deploy.model.entities import AliasMove, Project
from anchor_deploy.ports import BlobChecker, BlobStore, DeploymentFiles, Edge
from anchor_deploy.ports.dns_zones import DnsZoneWriters
from anchor_deploy.ports.domains import DnsLookup, DomainStore, ValidationZone
from anchor_deploy.ports.git_remote import GitHttpBackend
from anchor_deploy.ports.issuance import DomainPlane, Issuer
from anchor_deploy.ports.names import PublicSuffixes, UnicodeScripts
from anchor_deploy.ports.operations import ProviderStatus, PublicUrls, RootCertificate
from anchor_deploy.ports.runtime import AppRuntime, EnvironmentBuilder, SecretBox
from anchor_deploy.services.aliases import AliasService, Faults
from anchor_deploy.services.apps import AppBuilds, BuildSettings, EnvService
from anchor_deploy.services.auth import TokenService
from anchor_deploy.services.deployments import DeploymentService
from anchor_deploy.services.dns_automation import DnsLinks, ZoneAutomation
from anchor_deploy.services.domain_worker import DomainWorker
from anchor_deploy.services.domains import DomainService, DomainSettings, NameRules
from anchor_deploy.services.edge_sync import EdgeSync
from anchor_deploy.services.git_builds import GitBuilds, GitParts
from anchor_deploy.services.git_deploys import GitDeploys
from anchor_deploy.services.health import HealthService
from anchor_deploy.services.integrity import IntegrityService
from anchor_deploy.services.operator import AuthorityService
from anchor_deploy.services.projects import ProjectService
from anchor_deploy.services.reconcile import Reconciler
from anchor_deploy.services.retention import Retention
from anchor_deploy.services.runner import LeasedBuilds, LeaseKeeper, LeaseTiming, PeriodicJob, Runner
from anchor_deploy.services.scrub import Scrubber
from anchor_deploy.services.sessions import SessionService
from anchor_deploy.services.uploads import UploadService
from anchor_deploy.services.urls import UrlService
from anchor_deploy.settings import Settings

log = logging.getLogger(__name__)


class CheckedBlobStore(BlobStore, BlobChecker, Protocol):
    """A blob store whose stored copies fsck and the scrub can check."""


@dataclass(frozen=True)
class DomainAdapters:
    """What custom domains need of a provider."""

    lookup: DnsLookup
    issuer: Issuer  # gets certificates issued (the local CA or ACME by CNAME delegation, or ACM)
    plane: DomainPlane  # puts an issued name in front of production (the local edge, or CloudFront)
    zone: ValidationZone | None = None  # the validation zone's DNS server, when the platform runs one
    zones: DnsZoneWriters = field(default_factory=ZoneWriters)  # the users' linked zones (Route 53, RFC 2136)
    suffixes: PublicSuffixes = field(default_factory=BundledPublicSuffixes)
    scripts: UnicodeScripts = field(default_factory=UcdScripts)
    to_ascii: Callable[[str], str] = idna_to_ascii
    to_unicode: Callable[[str], str] = idna_to_unicode


@dataclass(frozen=True)
class Adapters:
    """One adapter per port: what a provider plugs into the services."""

    store: DomainStore
    blobs: CheckedBlobStore
    files: DeploymentFiles
    edge: Edge
    environments: EnvironmentBuilder
    runtime: AppRuntime
    box: SecretBox  # seals env values, frozen environments and certificate keys at rest
    domains: DomainAdapters
    status: ProviderStatus
    root_certificate: RootCertificate | None = None  # the platform's own CA, if it has one
    # Whether a lease holder still runs, as far as the provider can tell (the local one sees its machine's
    # processes); by default every holder is alive and its leases are taken over when they expire.
    lease_holder_alive: Callable[[str], bool] = lambda _holder: True
    urls: PublicUrls | None = None  # the provider's own URLs (None: the host names under the base domain)
    git: GitParts | None = None  # git deploys: the store's git side, the sandboxed fetcher, the forge
    git_remote: GitHttpBackend | None = None  # each project's git remote over HTTP (None: not here)


@dataclass(frozen=True)
class Hooks:
    """Seams a caller may take over: tests observe them; None keeps the assembly's own."""

    submit_build: Callable[[str], None] | None = None  # default: the build queue
    on_edge_failure: Callable[[], None] | None = None  # default: ask the reconciler for a pass


@dataclass
class Services:
    """Every service, and the background loops the platform starts and stops."""

    tokens: TokenService
    sessions: SessionService
    projects: ProjectService
    deployments: DeploymentService
    aliases: AliasService
    env: EnvService
    apps: AppBuilds
    domains: DomainService
    integrity: IntegrityService
    uploads: UploadService
    health: HealthService
    authority: AuthorityService
    urls: UrlService
    sync: EdgeSync
    builds: LeasedBuilds
    runner: Runner  # the singleton loops, each while this process holds its lease, and the leases' heartbeat
    reconciler: Reconciler
    retention: Retention
    scrubber: Scrubber
    domain_worker: DomainWorker
    dns_links: DnsLinks
    git: GitDeploys
    adapters: Adapters  # what they run on (tests reach the store, blobs, files and edge through it)


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def faults_from(settings: Settings) -> Faults:
    """The test-only crash points of ANCHOR_FAULT: the process kills itself there."""
    return Faults(settings.fault, _kill_self)


def assemble(
    settings: Settings,
    adapters: Adapters,
    clock: Callable[[], float] = time.time,
    hooks: Hooks = Hooks(),
    faults: Faults | None = None,
) -> Services:
    """The services on ``adapters``, connected, not started (Platform.start starts their loops)."""
    a = adapters
    faults = faults or faults_from(settings)
    sync = EdgeSync(a.store, a.edge)
    aliases = AliasService(a.store, sync, settings.base_domain, faults, _keep_production_warm(a.runtime))
    env = EnvService(a.store, a.box)
    build_settings = BuildSettings(settings.build_timeout, settings.build_memory, settings.health_timeout)
    apps = AppBuilds(a.store, a.blobs, a.files, a.environments, a.runtime, env, build_settings)
    retention = Retention(
        a.store, a.files, a.edge, a.blobs, a.environments, a.runtime.discard, apps.requirements_of
    )
    deployments = DeploymentService(
        a.store,
        a.blobs,
        a.files,
        aliases,
        sync,
        settings.base_domain,
        settings.max_blob_size,
        clock,
        apps,
        env,
        on_ready=retention.prune,
    )
    timing = LeaseTiming(settings.lease_ttl, settings.lease_heartbeat_seconds, settings.lease_poll)
    runner = Runner(LeaseKeeper(a.store, timing, holder_alive=a.lease_holder_alive))
    builds = LeasedBuilds(a.store, runner.keeper, deployments.build, settings.build_workers)
    submit = hooks.submit_build or builds.submit
    reconciler = Reconciler(a.store, a.files, a.edge, aliases, submit, a.files.present)
    # A reconcile pass here, or of the process that runs the reconciler (services/runner.py Runner.request)
    on_edge_failure = hooks.on_edge_failure or functools.partial(runner.request, "reconcile")
    integrity = IntegrityService(a.store, a.blobs, a.files, reconciler, a.runtime.stop)
    scrubber = Scrubber(a.blobs, settings.scrub_interval, settings.scrub_rate)
    domains = _domains(settings, a, clock, faults)
    urls = UrlService(settings.public_url, settings.base_domain, a.urls)
    git_builds = GitBuilds(a.git, deployments, sync, a.box, env, urls, settings.base_domain, clock)
    projects = ProjectService(
        a.store,
        a.edge,
        a.files,
        settings.base_domain,
        clock,
        on_edge_failure,
        before_delete=domains.remove_all,
        after_delete=functools.partial(_after_delete, a.runtime, domains, a.git_remote),
    )
    tokens = TokenService(a.store, clock)
    services = Services(
        tokens=tokens,
        sessions=SessionService(a.store, tokens, clock, settings.session_lifetime),
        projects=projects,
        deployments=deployments,
        aliases=aliases,
        env=env,
        apps=apps,
        domains=domains,
        dns_links=_dns_links(a, clock),
        git=GitDeploys(git_builds, deployments, sync, a.box, clock, settings.git_webhook_max_bytes),
        integrity=integrity,
        uploads=UploadService(a.blobs, settings.max_blob_size),
        health=HealthService(a.status, reconciler, a.blobs, scrubber),
        authority=AuthorityService(a.root_certificate),
        urls=urls,
        sync=sync,
        builds=builds,
        runner=runner,
        reconciler=reconciler,
        retention=retention,
        scrubber=scrubber,
        domain_worker=DomainWorker(domains),
        adapters=a,
    )
    _connect(services, a, submit, on_edge_failure)
    _singletons(services)
    return services


def _singletons(s: Services) -> None:
    """The loops one control-plane process runs for all of them sharing the database (services/runner.py)."""
    s.runner.singleton("reconcile", s.reconciler)
    s.runner.singleton("domains", s.domain_worker)
    if s.scrubber.enabled:
        s.runner.singleton("scrub", s.scrubber)
    s.runner.singleton("gc", PeriodicJob("gc", lambda: _collect_garbage(s.retention, s.git), 600.0))


def _collect_garbage(retention: Retention, git: GitDeploys) -> None:
    git.forget_old_deliveries()
    blobs, envs = retention.collect(time.time())
    if blobs or envs:
        log.info("collected %d unused blobs and %d unused environments", blobs, envs)


def _connect(
    s: Services, a: Adapters, submit: Callable[[str], None], on_edge_failure: Callable[[], None]
) -> None:
    """The hooks between parts that need each other, all set here."""
    s.deployments.on_created = submit  # a new deployment is queued for its build
    s.sync.on_failure = on_edge_failure  # a failed edge apply is retried by a reconciler pass
    a.blobs.on_stored = s.integrity.blob_stored  # a replaced damaged blob heals its deployments
    s.domains.on_change = functools.partial(s.runner.request, "domains")  # whichever process checks domains
    s.domains.checks = s.domain_worker
    s.deployments.source = s.git.builds  # a git deployment's build fetches its commit first
    s.retention.also_serving = s.git.builds.serving  # what a branch alias serves is kept


def _after_delete(
    runtime: AppRuntime,
    domains: DomainService,
    git_remote: GitHttpBackend | None,
    project: Project,
    ids: list[str],
) -> None:
    """The project's rows are gone: its runtime stops (on AWS its function and distributions go), then
    the domain plane lets go of what it kept for the project, and its git remote's repository goes."""
    runtime.stop_project(project.id, ids)
    domains.forget_project(project)
    if git_remote is not None:
        git_remote.remove(project.id)


def _keep_production_warm(runtime: AppRuntime) -> Callable[[Project, AliasMove], None]:
    # Production and the previous production stay warm; taken from the move itself, not the history,
    # so a rollback's cost does not grow with the number of earlier moves.
    def moved(project: Project, move: AliasMove) -> None:
        runtime.keep_warm(
            project.id, {move.to_deployment_id, move.from_deployment_id or move.to_deployment_id}
        )

    return moved


def _dns_links(a: Adapters, clock: Callable[[], float]) -> DnsLinks:
    d = a.domains
    return DnsLinks(a.store, a.box, d.suffixes, d.to_ascii, d.to_unicode, clock)


def _domains(settings: Settings, a: Adapters, clock: Callable[[], float], faults: Faults) -> DomainService:
    d = a.domains
    domain_settings = DomainSettings(
        base_domain=settings.base_domain,
        edge_addresses=settings.edge_address_list,
        validation_deadline=settings.validation_deadline,
        check_min=settings.domain_check_min,
        check_max=settings.domain_check_max,
        quota=settings.domain_quota,
    )
    return DomainService(
        a.store,
        d.issuer,
        d.plane,
        d.lookup,
        a.box,
        domain_settings,
        clock,
        NameRules(d.to_ascii, d.to_unicode, d.suffixes, d.scripts),
        d.zone,
        automation=ZoneAutomation(a.store, d.zones, a.box, a.store),
        fault=faults.hit,
    )
