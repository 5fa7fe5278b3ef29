"""Builds the AWS provider's adapters and services: DynamoDB for the database, S3 for blobs and packages,
Lambda versions and aliases for deployments, CloudFront in front of production, KMS for secrets.

Everything AWS is reached through the standard AWS environment (region, credentials, profiles,
AWS_ENDPOINT_URL…); the resources come from the CloudFormation stack `anchor aws bootstrap` made
(ANCHOR_AWS_STACK). The control plane keeps no state of its own beyond caches: any number of processes
(`anchor up --provider aws`, or the control-plane Lambda) share the table, and background work is done
once through leases in it. Builds run here, in the build sandbox, and publish to Lambda.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import socket
import time
from dataclasses import dataclass

from anchor_deploy.adapters.aws.acm_certificates import AcmCertificates
from anchor_deploy.adapters.aws.acm_issuer import AcmIssuer
from anchor_deploy.adapters.aws.aws_quotas import AwsQuotas
from anchor_deploy.adapters.aws.cdn_domains import CloudFrontDomains
from anchor_deploy.adapters.aws.cdn_placements import PlacementBook
from anchor_deploy.adapters.aws.cdn_slots import SlotDriver
from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.cloudfront import CloudFrontDistributions, DistributionSettings
from anchor_deploy.adapters.aws.deployments import (
    LambdaAppRuntime,
    LambdaDeploymentFiles,
    LambdaEnvironments,
    ProductionCdn,
    Publisher,
)
from anchor_deploy.adapters.aws.dynamo_store import DynamoStore
from anchor_deploy.adapters.aws.kms_box import KmsBox
from anchor_deploy.adapters.aws.lambda_deps import LambdaDependencies
from anchor_deploy.adapters.aws.lambda_edge import LambdaEdge
from anchor_deploy.adapters.aws.lambda_functions import FunctionSettings, LambdaFunctions
from anchor_deploy.adapters.aws.lambda_invoke import LambdaInvoker
from anchor_deploy.adapters.aws.names import STACK_TAG, AwsResources, discover
from anchor_deploy.adapters.aws.public_urls import AwsPublicUrls
from anchor_deploy.adapters.aws.s3_blobs import S3BlobStore
from anchor_deploy.adapters.aws.sandbox_invoke import SandboxInvoker
from anchor_deploy.adapters.aws.unoffered import NoBlobChecks
from anchor_deploy.adapters.dns_lookup import DnsPythonLookup
from anchor_deploy.adapters.dns_zone_writers import ZoneWriters
from anchor_deploy.adapters.local.sandbox import Sandbox
from anchor_deploy.model.logs import BuildLogCap
from anchor_deploy.providers.local import sandbox_for
from anchor_deploy.providers.platform import Platform
from anchor_deploy.providers.services import Adapters, DomainAdapters, assemble, faults_from
from anchor_deploy.services.operator import BackupService
from anchor_deploy.services.runner import PeriodicJob
from anchor_deploy.settings import Settings

log = logging.getLogger(__name__)


def build_platform(
    settings: Settings, with_caddy: bool = True, clients: AwsClients | None = None
) -> Platform:
    """The AWS provider's platform (``with_caddy`` is the local provider's; there is no Caddy here).
    ``clients``: the AWS clients every adapter shares (a benchmark passes its own to count their calls)."""
    del with_caddy
    clients = clients or AwsClients()
    resources = discover(clients, settings.aws_stack)
    work = settings.data_dir.resolve()  # build scratch only: dependency caches, spooled uploads
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    faults = faults_from(settings)
    store = DynamoStore(clients, resources.table)
    store.build_log_cap = BuildLogCap(settings.build_log_max_lines, settings.build_log_max_bytes)
    blobs = S3BlobStore(clients, resources.bucket, spool_dir=work / "spool")
    box = KmsBox(clients, resources.key_arn)
    functions = LambdaFunctions(
        clients,
        FunctionSettings(
            role_arn=resources.runtime_role_arn,
            bucket=resources.bucket,
            prefix=resources.function_prefix,
        ),
    )
    cdn = CloudFrontDistributions(
        clients,
        DistributionSettings(
            cache_policy_id=settings.aws_cache_policy or None,
            tags={STACK_TAG: resources.stack},
            poll_seconds=settings.aws_cdn_poll,
        ),
    )
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    publisher = Publisher(functions, store, resources.bucket, holder)
    urls = AwsPublicUrls(functions, cdn)
    production_cdn = ProductionCdn(functions, cdn, urls.learned)
    edge = LambdaEdge(functions, store, on_production_created=production_cdn.production_created)
    sandbox, _policy, build_box = sandbox_for(settings, work)
    dependencies = LambdaDependencies(work / "lambda-deps", build_box, shlex.split(settings.pip_args))
    sandboxed = SandboxInvoker(build_box, work / "invoke") if settings.aws_invoke == "sandbox" else None
    runtime = LambdaAppRuntime(
        publisher,
        store,
        blobs,
        box,
        cdn,
        None if sandboxed else LambdaInvoker(clients),
        sandboxed,
        settings.build_memory,
    )
    status = AwsStatus(resources, sandbox, settings.aws_invoke)
    adapters = Adapters(
        store=store,
        blobs=NoBlobChecks(blobs),
        files=LambdaDeploymentFiles(publisher, blobs),
        edge=edge,
        environments=LambdaEnvironments(dependencies),
        runtime=runtime,
        box=box,
        domains=_domains(settings, clients, resources, store, cdn, holder),
        status=status,
        urls=urls,
    )
    services = assemble(settings, adapters, faults=faults)
    finish = DeletionResumer(store, runtime)
    services.runner.singleton("deletions", PeriodicJob("deletions", finish.run, 60.0))
    lifecycle = AwsLifecycle(resources, status, production_cdn, store, finish)
    return Platform(settings, services, lifecycle, BackupService(None))


def _domains(
    settings: Settings,
    clients: AwsClients,
    resources: AwsResources,
    store: DynamoStore,
    cdn: CloudFrontDistributions,
    holder: str,
) -> DomainAdapters:
    """Custom domains on AWS: a certificate of its own per domain from ACM (us-east-1, DNS validation),
    served from the project's CloudFront distributions, one certificate covering every alias of each."""
    book = PlacementBook(store.table, time.time)
    tags = {STACK_TAG: resources.stack}
    certificates = AcmCertificates(clients, tags=tags, on_request=book.count_request_now)  # counted a year
    driver = SlotDriver(clients, book, cdn, certificates, store, holder)
    plane = CloudFrontDomains(book, driver, cdn, certificates, AwsQuotas(clients, settings.aws_quotas))
    return DomainAdapters(
        lookup=DnsPythonLookup(settings.resolver_list),
        issuer=AcmIssuer(certificates, validation_window=settings.validation_deadline),
        plane=plane,
        zones=ZoneWriters(lambda: clients),
    )


@dataclass
class DeletionResumer:
    """A project deletion on DynamoDB is a resumable sequence of bounded batches: one cut short by a crash
    is finished here (at start-up, then every minute by the process holding ``loop:deletions``), with the
    project's function and distribution, which its deletion removes after the rows."""

    store: DynamoStore
    runtime: LambdaAppRuntime

    def run(self) -> None:
        for project_id in self.store.resume_deletions():
            self.runtime.stop_project(project_id, [])
            log.info("finished the deletion of project %s, cut short earlier", project_id)


@dataclass
class AwsStatus:
    """The AWS side in /v1/health: no edge process to watch (Lambda and CloudFront serve)."""

    resources: AwsResources
    sandbox: Sandbox
    invoke: str

    def edge_healthy(self) -> bool | None:
        return True

    def user_code(self) -> tuple[str | None, bool]:
        """Apps run in Lambda; their builds in the build sandbox here."""
        problem = self.sandbox.problem
        builds = f"sandbox unavailable: {problem}" if problem else self.sandbox.describe()
        return f"Lambda versions (builds: {builds})", problem is None


@dataclass
class AwsLifecycle:
    resources: AwsResources
    status: AwsStatus
    cdn: ProductionCdn
    store: DynamoStore
    deletions: DeletionResumer

    def prepare(self) -> None:
        """Probe the build sandbox (nothing else is local: the data plane is Lambda and CloudFront), and
        finish the project deletions a crash cut short before the first reconcile pass."""
        self.status.sandbox.probe()
        self.status.sandbox.cgroups.sweep()
        self.deletions.run()

    def serve(self) -> None:
        """Every project with a production deployment has its distribution (a crash between the first
        production alias and its distribution is repaired here)."""
        serving = [p.id for p in self.store.list_projects() if p.production_deployment_id is not None]
        for project_id, exc in self.cdn.converge(serving).items():  # the API starts all the same
            log.warning("CloudFront for project %s: %s (the next start tries again)", project_id, exc)

    def stop(self) -> None:
        """Lambda and CloudFront keep serving: nothing of the data plane runs here."""
        self.status.sandbox.cgroups.close()

    def notes(self) -> list[str]:
        r = self.resources
        lines = [
            f"AWS provider: stack {r.stack} in {r.region} (account {r.account}): table {r.table}, "
            f"bucket {r.bucket}, functions {r.function_prefix}*",
            "every deployment is a Lambda version; production is each function's `production` alias, "
            "behind a CloudFront distribution per project",
        ]
        if self.status.invoke == "sandbox":
            lines.append(
                "ANCHOR_AWS_INVOKE=sandbox: app health checks run the published package in the build "
                "sandbox (for emulators that cannot run code), not through Lambda"
            )
        return lines
