"""Custom domains: claim a name, show its DNS records, poll DNS until the validation CNAME is seen, get a
certificate issued, attach the name to the edge, renew at two thirds of the lifetime, remove cleanly.

The domain row is the source of truth. Every step saves what it found (``statusReason`` is never empty
while something is pending) and when to look again; the certificate files and the edge links are data
planes that ``converge`` makes match the rows, so a crash at any point ends in the same state.

Checks run on the DomainWorker's few threads, shared fairly between projects (a per-project share of the
threads, round-robin between projects); an API call that wants a check now (GET, retry) asks the worker
for it and waits a short bound for the result, so no API thread waits on DNS."""

from __future__ import annotations

import datetime
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from typing import Protocol

from anchor_deploy.model.domain_policy import caa_names, check_new_domain_name, is_apex
from anchor_deploy.model.domains import (
    DEFAULT_QUOTA,
    LABEL_ALPHABET,
    CdnStatus,
    CertificateStatus,
    DnsRecord,
    DnsStatus,
    Domain,
    DomainName,
    IssuedInfo,
    backoff,
    dns_records,
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
    EdgeError,
    Forbidden,
    InvalidInput,
    IssuanceFailed,
    NotFound,
    NotOffered,
)
from anchor_deploy.model.names import production_host
from anchor_deploy.ports.domains import (
    Certificate,
    DnsAnswer,
    DnsLookup,
    DnsOutcome,
    DomainEdge,
    DomainRepositories,
    Issuer,
    ServedCertificates,
    TlsProbe,
    ValidationZone,
)
from anchor_deploy.ports.names import PublicSuffixes, UnicodeScripts
from anchor_deploy.ports.runtime import SecretBox

log = logging.getLogger(__name__)

ISSUE_ATTEMPTS = 3  # consecutive issuance failures before FAILED (then only a retry restarts it)
REFUSED = "the certificate authority refused:"
RECHECK = 3600.0  # an active domain's DNS routing is looked at again every hour
_SERVED = (CertificateStatus.ISSUED, CertificateStatus.EXPIRED)
_RETRYABLE = (CertificateStatus.FAILED, CertificateStatus.VALIDATION_TIMED_OUT)


@dataclass(frozen=True)
class DomainSettings:
    base_domain: str
    validation_zone: str
    edge_hostname: str
    edge_addresses: tuple[str, ...]
    validation_deadline: float = 72 * 3600.0
    check_min: float = 5.0
    check_max: float = 300.0
    caa_identity: str = ""  # the CA's CAA domain ("letsencrypt.org"); empty: no CAA warning
    quota: int = DEFAULT_QUOTA  # custom domains per project (ANCHOR_DOMAIN_QUOTA)
    check_wait: float = 1.0  # how long GET and retry wait for the check they start before answering
    unavailable: str = ""  # the provider offers no custom domains, and this says why


@dataclass(frozen=True)
class DomainView:
    """A domain with what the API shows beside it."""

    domain: Domain
    unicode_name: str
    records: list[DnsRecord]
    checking: bool = False  # a check is queued or running: the state shown is the last one recorded


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


@dataclass
class DomainService:
    store: DomainRepositories
    lookup: DnsLookup
    issuer: Issuer
    certificates: ServedCertificates
    edge: DomainEdge
    probe: TlsProbe
    box: SecretBox
    settings: DomainSettings
    clock: Callable[[], float]
    to_ascii: Callable[[str], str]
    to_unicode: Callable[[str], str]
    suffixes: PublicSuffixes
    scripts: UnicodeScripts
    zone: ValidationZone | None = None
    on_change: Callable[[], None] = lambda: None  # wakes the worker
    fault: Callable[[str], None] = lambda point: None  # test-only crash points
    checks: CheckRunner | None = None  # None: checks asked for by GET and retry run in the caller's thread
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    # -- API use cases -----------------------------------------------------------------------------
    def parse(self, raw: object) -> DomainName:
        """A name as typed, normalized; the rules for adding one are checked by ``add`` alone, so a domain
        stored under older rules can still be looked at and removed."""
        return parse_domain_name(raw, self.to_ascii, self.to_unicode)

    def is_apex(self, name: str) -> bool:
        return is_apex(name, self.suffixes.public_suffix)

    def view(self, domain: Domain) -> DomainView:
        s = self.settings
        apex = self.is_apex(domain.name)
        records = dns_records(domain, s.validation_zone, s.edge_hostname, s.edge_addresses, apex)
        checking = self.checks is not None and self.checks.busy(domain.name)
        return DomainView(domain, to_unicode_name(domain.name, self.to_unicode), records, checking)

    def add(self, project: Project, raw_name: object) -> DomainView:
        if self.settings.unavailable:
            raise NotOffered(self.settings.unavailable)
        name = self.parse(raw_name)
        suffix_of, scripts_of = self.suffixes.public_suffix, self.scripts.scripts
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
        domain = replace(domain, status_reason=self._waiting_reason(domain, None))
        quota = self.settings.quota
        if not self.store.add_domain_within(domain, quota):
            raise DomainQuotaExceeded(
                f"project {project.name!r} already has {quota} custom domains, its quota "
                f"(ANCHOR_DOMAIN_QUOTA={quota}); remove one first, or ask the operator to raise "
                "ANCHOR_DOMAIN_QUOTA"
            )
        self.on_change()
        return self.view(domain)

    def list_domains(self, project: Project) -> list[DomainView]:
        return [self.view(d) for d in self.store.project_domains(project.id) if not d.deleting]

    def quota(self, project: Project) -> DomainQuota:
        used = sum(not d.deleting for d in self.store.project_domains(project.id))
        return DomainQuota(self.settings.quota, used)

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
        """Ask for a check of a pending domain now (joining one that is queued or running). Returns the
        domain as recorded before it (``checking`` while the check has not finished) and the check's
        future, or None for a domain that is not pending. The API waits on the future without a thread."""
        domain = self._own(project, raw_name)
        if domain.certificate_status != CertificateStatus.PENDING_VALIDATION:
            return self.view(domain), None
        started = self._check_soon(domain)
        return self.view(domain), started

    def _check_soon(self, domain: Domain) -> Future[None]:
        if self.checks is not None:
            return self.checks.request(domain.name, domain.project_id)
        done: Future[None] = Future()
        self.step(domain.name, wait=False)  # no worker (unit tests, tools): in the caller's thread
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
        if domain.certificate_status not in _RETRYABLE and domain.cdn_status != CdnStatus.FAILED:
            raise DomainNotRetryable(
                f"{domain.name} is {domain.certificate_status.value} (cdn {domain.cdn_status.value}); "
                "retry is for FAILED or VALIDATION_TIMED_OUT certificates and failed edge attachments"
            )
        now = self.clock()
        if domain.certificate_status in _RETRYABLE:
            domain = replace(
                domain,
                certificate_status=CertificateStatus.PENDING_VALIDATION,
                validation_deadline=now + self.settings.validation_deadline,
                status_reason="retrying: " + self._waiting_reason(domain, None),
            )
        domain = replace(domain, failures=0, next_check_at=now)
        self.store.save_domain(domain)
        self.on_change()
        return self._check_soon(domain)

    def remove(self, project: Project, raw_name: object) -> DomainView:
        """Stop serving the name, delete its certificate (revoking an ACME one), withdraw its TXT, release
        the name. Returns the domain as it was, for the records the user may now delete."""
        domain = self._own(project, raw_name)
        view = self.view(domain)
        marked = self.store.mark_domain_deleting(domain.name)
        if marked is not None:
            with self._lock(domain.name):
                self._finish_removal(marked)
        return view

    def deletable_records(self, removed: DomainView) -> list[tuple[DnsRecord, bool]]:
        """The records of a removed domain, each with whether the user may delete it now: the validation
        CNAME stays while the name's wildcard twin (``x`` and ``*.x`` share it) is still on the platform."""
        sibling = self.store.domain(validation_sibling(removed.domain.name))
        still = sibling.name if sibling is not None and not sibling.deleting else None
        return records_after_removal(removed.records, still)

    def remove_all(self, project: Project) -> None:
        """Every domain of a project that is being deleted (the rows would cascade, but unserved first)."""
        for domain in self.store.project_domains(project.id):
            if not domain.deleting:  # one being removed is finished by whoever removes it
                self.remove(project, domain.name)

    # -- the state machine -------------------------------------------------------------------------
    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def step(self, name: str, wait: bool = True) -> bool:
        """One check of one domain. With wait=False, a check that another thread is running now is not
        repeated: this waits (a few seconds at most) for it to finish instead, and returns False."""
        lock = self._lock(name)
        if not lock.acquire(blocking=wait):
            if lock.acquire(timeout=10):
                lock.release()
            return False
        try:
            domain = self.store.domain(name)
            if domain is None:
                return True
            if domain.deleting:
                self._finish_removal(domain)
            elif domain.certificate_status == CertificateStatus.PENDING_VALIDATION:
                self._validate(domain)
            elif domain.certificate_status in _SERVED:
                self._maintain(domain)
            return True
        finally:
            lock.release()

    def run_due(self, limit: int = 200, per_project: int | None = None) -> int:
        """One pass over the due domains in this thread, taken fairly: round-robin between projects (at
        most ``per_project`` of each), never-checked ones first. The DomainWorker schedules on its own."""
        due = self.store.domains_due_fairly(self.clock(), per_project or limit, limit)
        for domain in due:
            self.check_one(domain.name)
        return len(due)

    def check_one(self, name: str) -> None:
        """One step of one domain; an unexpected error is logged and the domain looked at again later."""
        try:
            self.step(name)
        except Exception:
            log.exception("checking domain %s failed; it is looked at again later", name)
            domain = self.store.domain(name)
            if domain is not None and not domain.deleting:
                self.store.save_domain(replace(domain, next_check_at=self.clock() + self.settings.check_max))

    def _later(self, failures: int) -> float:
        return self.clock() + backoff(failures, self.settings.check_min, self.settings.check_max)

    def _waiting_reason(self, domain: Domain, found: DnsAnswer | None) -> str:
        target = domain.validation_target(self.settings.validation_zone)
        if found is None:
            return f"waiting for the validation record: add CNAME {domain.challenge_name} -> {target}"
        if found.outcome == DnsOutcome.OK:
            return (
                f"CNAME {domain.challenge_name} points to {found.describe()} at the resolver; "
                f"it must point to {target}"
            )
        return f"CNAME {domain.challenge_name} not found at the resolver; found {found.describe()}"

    def _validate(self, domain: Domain) -> None:
        now = self.clock()
        if now >= domain.validation_deadline:
            hours = self.settings.validation_deadline / 3600
            reason = (
                f"the validation record was not seen within {hours:g} h "
                f"(last check: {domain.status_reason}); fix the record, then retry"
            )
            self._save(
                domain,
                certificate_status=CertificateStatus.VALIDATION_TIMED_OUT,
                status_reason=reason,
                next_check_at=None,
            )
            return
        found = self.lookup.query(domain.challenge_name, "CNAME")
        dns_status, routing_note = self._routing(domain)
        target = domain.validation_target(self.settings.validation_zone)
        checked = replace(domain, dns_status=dns_status, last_checked_at=now)
        if found.outcome != DnsOutcome.OK or target not in found.values:
            reason = self._waiting_reason(domain, found) + self._caa_note(domain)
            self._save(
                checked,
                status_reason=reason,
                failures=domain.failures + 1,
                next_check_at=self._later(domain.failures),
            )
            return
        try:
            certificate = self.issuer.issue([domain.name], target)
        except IssuanceFailed as exc:
            # Consecutive refusals (not DNS misses) count toward FAILED.
            failures = domain.failures + 1 if domain.status_reason.startswith(REFUSED) else 1
            if failures >= ISSUE_ATTEMPTS:
                self._save(
                    checked,
                    certificate_status=CertificateStatus.FAILED,
                    status_reason=f"{REFUSED} {exc.message}; fix it, then retry",
                    failures=failures,
                    next_check_at=None,
                )
            else:
                self._save(
                    checked,
                    status_reason=f"{REFUSED} {exc.message}; trying again",
                    failures=failures,
                    next_check_at=self._later(failures),
                )
            return
        issued = self._store_certificate(checked, certificate, routing_note)
        self.fault("domain:after_issue")
        if issued is not None:
            self._attach(issued)

    def _store_certificate(self, domain: Domain, certificate: Certificate, note: str) -> Domain | None:
        info = IssuedInfo(
            certificate.serial,
            certificate.issuer,
            certificate.not_before.timestamp(),
            certificate.not_after.timestamp(),
        )
        issued = replace(
            domain,
            certificate_status=CertificateStatus.ISSUED,
            certificate=info,
            status_reason=note,
            failures=0,
        )
        sealed = (certificate.chain_pem, self.box.seal(certificate.key_pem))
        if not self.store.save_domain(issued, sealed):
            # Removed while the CA was working: this certificate must not outlive the domain.
            self._revoke_quietly(certificate.chain_pem)
            return None
        return issued

    def _attach(self, domain: Domain) -> None:
        """Install the certificate and the edge link, then prove it with a real handshake."""
        try:
            if not self._install(domain):
                return
            served = self.probe.served_serial(self._probe_name(domain))
        except EdgeError as exc:
            self._cdn_failed(domain, str(exc))
            return
        assert domain.certificate is not None
        if served != domain.certificate.serial:
            self._cdn_failed(domain, f"the edge served certificate {served}, not {domain.certificate.serial}")
            return
        self._save(domain, cdn_status=CdnStatus.ACTIVE, failures=0, next_check_at=self._next_routine(domain))

    def _cdn_failed(self, domain: Domain, why: str) -> None:
        failures = domain.failures + 1
        self._save(
            domain,
            cdn_status=CdnStatus.FAILED,
            status_reason=f"the edge could not serve {domain.name} over HTTPS yet: {why}; retrying",
            failures=failures,
            next_check_at=self._later(failures),
        )

    def _install(self, domain: Domain) -> bool:
        """Install the certificate files and attach the name; False if the domain turned out to be going.

        The per-name lock serializes this process's threads only: another control-plane process may remove
        the domain meanwhile. Its removal marks the row first, then detaches; so the row is read again after
        attaching, and what was installed for a domain being removed is taken down again. Whichever comes
        last, the name ends detached (and the domain worker's converge drops any leftover)."""
        assert domain.certificate is not None
        if self.certificates.serial(domain.name) != domain.certificate.serial:
            stored = self.store.domain_certificate(domain.name)
            if stored is None:
                raise EdgeError("the certificate is missing from the database")
            chain, sealed_key = stored
            info = domain.certificate
            self.certificates.put(
                domain.name,
                Certificate(
                    chain,
                    self.box.open(sealed_key),
                    info.serial,
                    datetime.datetime.fromtimestamp(info.not_before, datetime.UTC),
                    datetime.datetime.fromtimestamp(info.not_after, datetime.UTC),
                    info.issuer,
                ),
            )
        project = self.store.project_by_id(domain.project_id)
        if project is None:
            raise EdgeError("the project is gone")
        self.edge.attach(domain.name, production_host(project.name, self.settings.base_domain))
        fresh = self.store.domain(domain.name)
        if fresh is None or fresh.deleting or fresh.project_id != domain.project_id:
            self.edge.detach(domain.name)
            self.certificates.remove(domain.name)
            return False
        return True

    def _probe_name(self, domain: Domain) -> str:
        return "anchor-probe." + domain.base_name if domain.name.startswith("*.") else domain.name

    def _next_routine(self, domain: Domain) -> float:
        now = self.clock()
        assert domain.certificate is not None
        # A routing record not seen yet (often added after validation) is looked for again soon.
        recheck = RECHECK if domain.dns_status == DnsStatus.OK else self.settings.check_max
        return min(domain.certificate.renew_after(), now + recheck)

    def _maintain(self, domain: Domain) -> None:
        """An issued domain: renew when due, keep it attached, watch the routing record and the expiry."""
        certificate = domain.certificate
        assert certificate is not None
        now = self.clock()
        dns_status, note = self._routing(domain)
        domain = replace(domain, dns_status=dns_status, last_checked_at=now)
        if now >= certificate.renew_after() or self.issuer.outdated(certificate.issuer):
            self._renew(domain, note)
            return
        if domain.cdn_status != CdnStatus.ACTIVE:
            self._attach(replace(domain, status_reason=note))
            return
        self._save(domain, status_reason=note, next_check_at=self._next_routine(domain))

    def _renew(self, domain: Domain, note: str) -> None:
        assert domain.certificate is not None
        target = domain.validation_target(self.settings.validation_zone)
        found = self.lookup.query(domain.challenge_name, "CNAME")
        try:
            if found.outcome != DnsOutcome.OK or target not in found.values:
                raise IssuanceFailed(self._waiting_reason(domain, found))
            certificate = self.issuer.issue([domain.name], target)
        except IssuanceFailed as exc:
            self._renewal_failed(domain, exc.message)
            return
        renewed = self._store_certificate(replace(domain, cdn_status=CdnStatus.PENDING), certificate, note)
        if renewed is not None:
            self._attach(renewed)

    def _renewal_failed(self, domain: Domain, why: str) -> None:
        assert domain.certificate is not None
        failures = domain.failures + 1
        expires = datetime.datetime.fromtimestamp(domain.certificate.not_after, datetime.UTC)
        when = expires.strftime("%Y-%m-%d %H:%M:%S UTC")
        if self.clock() >= domain.certificate.not_after:
            status = CertificateStatus.EXPIRED
            reason = f"the certificate EXPIRED at {when} and renewal keeps failing: {why}; retrying"
        else:
            status = domain.certificate_status
            reason = f"renewal failed: {why}; the current certificate stays served until {when}; retrying"
        later = self._later(failures)
        if self.clock() < domain.certificate.not_after:
            later = min(later, domain.certificate.not_after)  # look again when it expires, to say so
        self._save(
            domain, certificate_status=status, status_reason=reason, failures=failures, next_check_at=later
        )

    def _routing(self, domain: Domain) -> tuple[DnsStatus, str]:
        """Is the routing record pointing at the edge? (It does not block issuance.)"""
        name = "anchor-probe." + domain.base_name if domain.name.startswith("*.") else domain.name
        apex = self.is_apex(domain.name)
        edge_host = self.settings.edge_hostname
        if not apex:
            found = self.lookup.query(name, "CNAME")
            if found.outcome == DnsOutcome.OK:
                if edge_host in found.values:
                    return DnsStatus.OK, ""
                return DnsStatus.MISCONFIGURED, (
                    f"CNAME {domain.name} points to {found.describe()}; point it to {edge_host}"
                )
            if found.outcome == DnsOutcome.ERROR:
                return DnsStatus.UNKNOWN, f"the routing record could not be checked: {found.detail}"
        addresses: set[str] = set()
        for rdtype in ("A", "AAAA"):
            answer = self.lookup.query(name, rdtype)
            if answer.outcome == DnsOutcome.ERROR:
                return DnsStatus.UNKNOWN, f"the routing record could not be checked: {answer.detail}"
            addresses.update(answer.values)
        wanted = set(self.settings.edge_addresses)
        if addresses and addresses <= wanted:
            return DnsStatus.OK, ""
        expected = f"CNAME {edge_host}" if not apex else "A/AAAA " + ", ".join(sorted(wanted))
        shown = ", ".join(sorted(addresses)) or "nothing"
        return DnsStatus.MISCONFIGURED, f"{domain.name} resolves to {shown}; add {expected} to reach the edge"

    def _caa_note(self, domain: Domain) -> str:
        """A warning when a CAA record at the name (or the closest parent with one) forbids our CA."""
        identity = self.settings.caa_identity
        if not identity:
            return ""
        for at in caa_names(domain.name, self.suffixes.public_suffix):
            answer = self.lookup.query(at, "CAA")
            if answer.outcome != DnsOutcome.OK:
                continue
            tag = "issuewild" if domain.name.startswith("*.") else "issue"
            allowed = [v.split(" ", 1)[1] for v in answer.values if v.startswith(tag + " ")]
            if not allowed and tag == "issuewild":
                allowed = [v.split(" ", 1)[1] for v in answer.values if v.startswith("issue ")]
            if not allowed or any(a.split(";")[0].strip() == identity for a in allowed):
                return ""
            return (
                f". Warning: the CAA record at {at} allows only {', '.join(allowed)}; "
                f'add CAA 0 {tag} "{identity}" or the certificate cannot be issued'
            )
        return ""

    def _save(self, domain: Domain, **changes: object) -> Domain:
        updated = replace(domain, **changes)  # type: ignore[arg-type]
        self.store.save_domain(updated)
        return updated

    # -- removal and convergence -------------------------------------------------------------------
    def _finish_removal(self, domain: Domain) -> None:
        self.edge.detach(domain.name)
        self.fault("domain:after_detach")
        self.certificates.remove(domain.name)
        stored = self.store.domain_certificate(domain.name)
        if stored is not None and domain.certificate_status in _SERVED:
            self._revoke_quietly(stored[0])
        if self.zone is not None:
            self.zone.withdraw(domain.validation_target(self.settings.validation_zone))
        self.store.delete_domain(domain.name)
        with self._guard:  # a later domain of that name gets a lock of its own
            self._locks.pop(domain.name, None)

    def _revoke_quietly(self, chain_pem: bytes) -> None:
        try:
            self.issuer.revoke(chain_pem)
        except IssuanceFailed as exc:
            log.warning("could not revoke a removed domain's certificate: %s", exc.message)

    def converge(self) -> dict[str, list[str]]:
        """Make certificate files and edge links match the rows: finish removals, install what an issued
        domain lacks, drop what no domain owns. Idempotent; run at start-up and by the worker."""
        report: dict[str, list[str]] = {"removed": [], "installed": [], "dropped": []}
        rows = {d.name: d for d in self.store.all_domains()}
        for domain in rows.values():
            if domain.deleting:
                with self._lock(domain.name):
                    self._finish_removal(domain)
                report["removed"].append(domain.name)
        live = {n: d for n, d in rows.items() if not d.deleting and d.certificate_status in _SERVED}
        attached = self.edge.attached()
        for name, domain in live.items():
            assert domain.certificate is not None
            if self.issuer.outdated(domain.certificate.issuer):
                self._reissue_soon(name)
            project = self.store.project_by_id(domain.project_id)
            host = production_host(project.name, self.settings.base_domain) if project else None
            assert domain.certificate is not None
            stale = self.certificates.serial(name) != domain.certificate.serial or attached.get(name) != host
            if stale:
                try:
                    with self._lock(name):
                        self._install(domain)
                    report["installed"].append(name)
                except (EdgeError, ValueError, InvalidInput) as exc:
                    log.warning("could not install %s at the edge: %s", name, exc)
        for name in set(attached) - set(live):
            with self._lock(name):
                if not self._is_live(name):  # looked at again: it may have been issued since the snapshot
                    self.edge.detach(name)
                    report["dropped"].append(name)
        for name in set(self.certificates.names()) - set(live):
            with self._lock(name):
                if not self._is_live(name):
                    self.certificates.remove(name)
                    report["dropped"].append(name)
        return report

    def _reissue_soon(self, name: str) -> None:
        """A certificate its issuer wants replaced (a new local CA root): due now, so the check renews it."""
        with self._lock(name):
            fresh = self.store.domain(name)
            if fresh is not None and not fresh.deleting and (fresh.next_check_at or 0) > self.clock():
                self._save(fresh, next_check_at=self.clock())

    def _is_live(self, name: str) -> bool:
        domain = self.store.domain(name)
        return domain is not None and not domain.deleting and domain.certificate_status in _SERVED
