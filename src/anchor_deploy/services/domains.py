"""Custom domains, the use cases: claim a name, show its DNS records, look at it (a check at once), retry,
remove, the quotas. The domain's life (issuance, the plane, renewal, removal) is the DomainLifecycle's;
checks run on the DomainWorker's threads, shared fairly between projects: an API call that wants a check
now (GET, retry) asks the worker for it and waits a short bound for the result, so no API thread waits on
DNS or on a certificate authority."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from typing import Protocol

from anchor_deploy.model.domain_diagnosis import RETRYABLE, waiting_reason
from anchor_deploy.model.domain_policy import check_new_domain_name, is_apex
from anchor_deploy.model.domains import (
    DEFAULT_QUOTA,
    LABEL_ALPHABET,
    CdnStatus,
    CertificateStatus,
    DnsRecord,
    Domain,
    DomainName,
    FailureKind,
    parse_domain_name,
    records_after_removal,
    to_unicode_name,
    validation_sibling,
)
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import (
    DomainNotFound,
    DomainNotRetryable,
    DomainQuotaExceeded,
    DomainTaken,
    Forbidden,
    NotFound,
)
from anchor_deploy.ports.domains import DnsLookup, DomainRepositories, ValidationZone
from anchor_deploy.ports.issuance import DomainPlane, Issuer, NoAutomation, QuotaUse, RecordAutomation
from anchor_deploy.ports.names import PublicSuffixes, UnicodeScripts
from anchor_deploy.ports.runtime import SecretBox
from anchor_deploy.services.domain_lifecycle import DomainLifecycle, Timing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DomainSettings:
    base_domain: str
    edge_addresses: tuple[str, ...]  # the edge's own addresses: a routing record pointing there counts too
    validation_deadline: float = 72 * 3600.0
    check_min: float = 5.0
    check_max: float = 300.0
    quota: int = DEFAULT_QUOTA  # custom domains per project (ANCHOR_DOMAIN_QUOTA)
    check_wait: float = 1.0  # how long GET and retry wait for the check they start before answering


@dataclass(frozen=True)
class DomainView:
    """A domain with what the API shows beside it."""

    domain: Domain
    unicode_name: str
    records: list[DnsRecord]
    checking: bool = False  # a check is queued or running: the state shown is the last one recorded
    removing: bool = False  # removed, but not finished yet (the CDN still holds the name or a certificate)


@dataclass(frozen=True)
class DomainQuota:
    limit: int
    used: int


class CheckRunner(Protocol):
    """Runs domain checks in the background (the DomainWorker)."""

    def request(self, name: str, project_id: str) -> Future[None]:
        """Check ``name`` as soon as its project's share of the threads allows; a check of it that is queued
        or running already is joined, not repeated. The future is done when that check has finished."""
        ...

    def busy(self, name: str) -> bool:
        """A check of ``name`` is queued or running."""
        ...


@dataclass(frozen=True)
class NameRules:
    """What the names of custom domains are checked with (the libraries stay at the edge of the system)."""

    to_ascii: Callable[[str], str]
    to_unicode: Callable[[str], str]
    suffixes: PublicSuffixes
    scripts: UnicodeScripts


@dataclass
class DomainService:
    store: DomainRepositories
    issuer: Issuer
    plane: DomainPlane
    lookup: DnsLookup
    box: SecretBox
    settings: DomainSettings
    clock: Callable[[], float]
    names: NameRules
    zone: ValidationZone | None = None
    automation: RecordAutomation = field(default_factory=NoAutomation)
    on_change: Callable[[], None] = lambda: None  # wakes the worker
    fault: Callable[[str], None] = lambda point: None  # test-only crash points
    checks: CheckRunner | None = None  # None: checks asked for by GET and retry run in the caller's thread
    lifecycle: DomainLifecycle = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.lifecycle = DomainLifecycle(
            self.store,
            self.issuer,
            self.plane,
            self.lookup,
            self.box,
            Timing(s.validation_deadline, s.check_min, s.check_max),
            self.clock,
            self.records,
            self.automation,
            self.zone,
            s.edge_addresses,
            lambda point: self.fault(point),
        )

    # -- API use cases -----------------------------------------------------------------------------
    def parse(self, raw: object) -> DomainName:
        """A name as typed, normalized; the rules for adding one are checked by ``add`` alone, so a domain
        stored under older rules can still be looked at and removed."""
        return parse_domain_name(raw, self.names.to_ascii, self.names.to_unicode)

    def is_apex(self, name: str) -> bool:
        return is_apex(name, self.names.suffixes.public_suffix)

    def records(self, domain: Domain) -> list[DnsRecord]:
        """The records the user adds at their DNS provider (or that a linked zone gets): the validation
        record(s) the issuer asked for, for the life of the domain (renewals use them too), and the routing
        record(s) that send visitors to the plane."""
        validation = list(domain.validation_records or self.issuer.records(domain))
        project = self.store.project_by_id(domain.project_id)
        if project is None:
            return validation
        return validation + self.plane.routing_records(domain, project, self.is_apex(domain.name))

    def view(self, domain: Domain) -> DomainView:
        checking = self.checks is not None and self.checks.busy(domain.name)
        return DomainView(
            domain, to_unicode_name(domain.name, self.names.to_unicode), self.records(domain), checking
        )

    def add(self, project: Project, raw_name: object) -> DomainView:
        name = self.parse(raw_name)
        suffix_of, scripts_of = self.names.suffixes.public_suffix, self.names.scripts.scripts
        check_new_domain_name(name, self.settings.base_domain, suffix_of, scripts_of)
        now = self.clock()
        label = "".join(secrets.choice(LABEL_ALPHABET) for _ in range(20))
        domain = Domain(
            name=name.ascii,
            project_id=project.id,
            validation_label=label,
            created_at=now,
            validation_deadline=now + self.settings.validation_deadline,
            next_check_at=now,
        )
        going = self.store.domain(name.ascii)
        if going is not None and going.deleting:
            raise DomainTaken(
                f"{name.ascii} is still being removed ({going.status_reason or 'finishing'}); add it again "
                "once that is done"
            )
        domain = replace(domain, validation_records=self.issuer.records(domain))
        domain = replace(domain, status_reason=self._first_wait(domain))
        self.plane.admit(domain, project, self.store.project_domains(project.id))
        quota = self.settings.quota
        if not self.store.add_domain_within(domain, quota):
            raise DomainQuotaExceeded(
                f"project {project.name!r} already has {quota} custom domains, its quota "
                f"(ANCHOR_DOMAIN_QUOTA={quota}); remove one first, or ask the operator to raise "
                "ANCHOR_DOMAIN_QUOTA"
            )
        self.on_change()
        return self.view(domain)

    def _first_wait(self, domain: Domain) -> str:
        records = self.issuer.records(domain)
        if not records:
            return "waiting for the certificate authority to name the validation record"
        return waiting_reason(records[0], None)

    def list_domains(self, project: Project) -> list[DomainView]:
        return [self.view(d) for d in self.store.project_domains(project.id) if not d.deleting]

    def quota(self, project: Project) -> DomainQuota:
        used = sum(not d.deleting for d in self.store.project_domains(project.id))
        return DomainQuota(self.settings.quota, used)

    def quotas(self, project: Project | None) -> list[QuotaUse]:
        """Every quota that places custom domains, with its use: the project's own (if given), then the
        plane's (certificates, distributions and their names on CloudFront)."""
        own = []
        if project is not None:
            q = self.quota(project)
            scope = f"project {project.name}"
            own.append(
                QuotaUse(
                    "domains_per_project",
                    "custom domains per project",
                    q.limit,
                    q.used,
                    scope,
                    "ANCHOR_DOMAIN_QUOTA",
                )
            )
        return own + self.plane.quotas(project)

    def _own(self, project: Project, raw_name: object) -> Domain:
        name = self.parse(raw_name).ascii
        domain = self.store.domain(name)
        if domain is None or domain.project_id != project.id or domain.deleting:
            raise DomainNotFound(f"domain {name} is not added to project {project.name!r}")
        return domain

    def project_of(self, raw_name: object, visible: Callable[[str], Project]) -> Project:
        """The project holding a domain, if ``visible`` lets the caller see it (else DomainNotFound, so a
        token learns nothing of other projects' domains)."""
        name = self.parse(raw_name).ascii
        domain = self.store.domain(name)
        project = self.store.project_by_id(domain.project_id) if domain and not domain.deleting else None
        if project is not None:
            try:
                return visible(project.name)
            except (Forbidden, NotFound):
                pass
        raise DomainNotFound(f"domain {name} is not added to any project you can see")

    def get(self, project: Project, raw_name: object, check: bool = True) -> DomainView:
        """The domain; a pending one gets a check at once (``start_check``), waited for at most
        ``check_wait`` seconds: after that the last recorded state is shown, with ``checking``."""
        if not check:
            return self.view(self._own(project, raw_name))
        before, started = self.start_check(project, raw_name)
        if started is not None and wait([started], timeout=self.settings.check_wait).done:
            return self.view(self._own(project, raw_name))
        return before

    def start_check(self, project: Project, raw_name: object) -> tuple[DomainView, Future[None] | None]:
        """Ask for a check of a pending domain now (joining one that is queued or running): one waiting for
        its certificate, or issued and not active at the edge yet (a GET is what attaches it, as soon as it
        can be). Returns the domain as recorded before it (``checking`` while the check has not finished)
        and the check's future, or None for a domain with nothing pending. The API waits on the future
        without a thread."""
        domain = self._own(project, raw_name)
        pending = domain.certificate_status == CertificateStatus.PENDING_VALIDATION or (
            domain.certificate_status == CertificateStatus.ISSUED and domain.cdn_status == CdnStatus.PENDING
        )
        if not pending:
            return self.view(domain), None
        started = self._check_soon(domain)
        return self.view(domain), started

    def _check_soon(self, domain: Domain) -> Future[None]:
        if self.checks is not None:
            return self.checks.request(domain.name, domain.project_id)
        done: Future[None] = Future()
        self.lifecycle.step(domain.name, wait=False)  # no worker (unit tests, tools): in the caller's thread
        done.set_result(None)
        return done

    def retry(self, project: Project, raw_name: object) -> DomainView:
        """``start_retry``, then the domain after waiting at most ``check_wait`` for its check."""
        wait([self.start_retry(project, raw_name)], timeout=self.settings.check_wait)
        name = self.parse(raw_name).ascii
        domain = self.store.domain(name)
        if domain is None:
            raise DomainNotFound(f"domain {name} is not added to project {project.name!r}")
        return self.view(domain)

    def start_retry(self, project: Project, raw_name: object) -> Future[None]:
        """Restart a FAILED or VALIDATION_TIMED_OUT certificate or a failed edge attachment, and ask for a
        check at once."""
        domain = self._own(project, raw_name)
        if domain.certificate_status not in RETRYABLE and domain.cdn_status != CdnStatus.FAILED:
            raise DomainNotRetryable(
                f"{domain.name} is {domain.certificate_status.value} (cdn {domain.cdn_status.value}); "
                "retry is for FAILED or VALIDATION_TIMED_OUT certificates and failed edge attachments"
            )
        now = self.clock()
        if domain.certificate_status in RETRYABLE:
            if not self.issuer.release(domain):  # the failed order's certificate goes; best effort
                log.info("the failed certificate of %s is still in use; it goes with the domain", domain.name)
            domain = replace(
                domain,
                certificate_status=CertificateStatus.PENDING_VALIDATION,
                validation_deadline=now + self.settings.validation_deadline,
                status_reason="retrying: " + self._first_wait(replace(domain, validation_records=())),
                certificate_ref="",  # a fresh order: the old one failed or timed out
            )
        domain = replace(domain, failures=0, failure=FailureKind.NONE, next_check_at=now)
        self.store.save_domain(domain)
        self.on_change()
        return self._check_soon(domain)

    def remove(self, project: Project, raw_name: object) -> DomainView:
        """Stop serving the name, delete its certificate (revoking an ACME one), withdraw its TXT, release
        the name. Returns the domain as it was, for the records the user may now delete."""
        domain = self._own(project, raw_name)
        view = self.view(domain)
        marked = self.store.mark_domain_deleting(domain.name)
        finished = True
        if marked is not None:
            with self.lifecycle.lock(domain.name):
                finished = self.lifecycle.finish_removal(marked)
            self.on_change()  # an unfinished removal is the worker's to finish
        return replace(view, removing=not finished)

    def deletable_records(self, removed: DomainView) -> list[tuple[DnsRecord, bool]]:
        """The records of a removed domain, each with whether the user may delete it now: the validation
        CNAME stays while the name's wildcard twin (``x`` and ``*.x`` share it) is still on the platform."""
        sibling = self.store.domain(validation_sibling(removed.domain.name))
        still = sibling.name if sibling is not None and not sibling.deleting else None
        return records_after_removal(removed.records, still)

    def remove_all(self, project: Project) -> None:
        """Every domain of a project that is being deleted (its rows go with it): marked, the project's
        whole plane taken down at once (its distributions on CloudFront), then each domain's certificate
        released and its records withdrawn, whether or not the plane has finished letting go: nothing of
        the project is left to finish it later."""
        held = self.store.project_domains(project.id)
        records = {domain.name: self.records(domain) for domain in held}  # before the plane forgets them
        for domain in held:
            self.store.mark_domain_deleting(domain.name)
        self.plane.forget_project(project.id)
        for domain in held:
            with self.lifecycle.lock(domain.name):
                self.lifecycle.finish_removal(domain, with_the_project=True, records=records[domain.name])

    def forget_project(self, project: Project) -> None:
        """After the project's data plane is gone (its functions and distributions): what the plane still
        keeps of it (certificates, bookkeeping) goes too. Resumable: the plane's converge finishes it."""
        try:
            self.plane.forget_project(project.id)
        except Exception:
            log.exception("the plane keeps part of deleted project %s; converge finishes it", project.name)

    # -- the lifecycle, for the worker and the tools ----------------------------------------------
    def step(self, name: str, wait: bool = True) -> bool:
        return self.lifecycle.step(name, wait)

    def run_due(self, limit: int = 200, per_project: int | None = None) -> int:
        """One pass over the due domains in this thread, taken fairly: round-robin between projects (at
        most ``per_project`` of each), never-checked ones first. The DomainWorker schedules on its own."""
        due = self.store.domains_due_fairly(self.clock(), per_project or limit, limit)
        for domain in due:
            self.lifecycle.check_one(domain.name)
        return len(due)

    def check_one(self, name: str) -> None:
        self.lifecycle.check_one(name)

    def converge(self) -> dict[str, list[str]]:
        return self.lifecycle.converge()
