"""The life of a custom domain as a state machine, one check at a time: plan the next step from the row
(model/domain_diagnosis.plan), execute it with the issuer and the plane, save what was found and when to
look again. Every step saves its reason (never empty while something is pending), so a crash at any point
ends in the same state on the next check; ``converge`` makes the plane match the rows.

Steps: request a certificate, poll the issuer until it is issued (or refused a few times, or failed, or
the deadline passed), attach it to the plane until active, then watch routing, renewal and expiry; when
removed, detach, release the certificate, withdraw the records, free the name (each retried until done)."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from anchor_deploy.model.domain_diagnosis import (
    SERVED,
    Step,
    missing_validation,
    plan,
    routing_diagnosis,
)
from anchor_deploy.model.domains import (
    CdnStatus,
    CertificateStatus,
    DnsRecord,
    DnsStatus,
    Domain,
    FailureKind,
    backoff,
)
from anchor_deploy.model.errors import IssuanceFailed
from anchor_deploy.ports.domains import DnsLookup, DomainRepositories, ValidationZone
from anchor_deploy.ports.issuance import (
    AttachState,
    DomainPlane,
    IssuanceState,
    Issuer,
    Progress,
    RecordAutomation,
)
from anchor_deploy.ports.runtime import SecretBox

log = logging.getLogger(__name__)

ISSUE_ATTEMPTS = 3  # consecutive refusals before FAILED (then only a retry restarts it)
REFUSED = "the certificate authority refused:"
RECHECK = 3600.0  # an active domain's DNS routing is looked at again every hour


@dataclass(frozen=True)
class Timing:
    validation_deadline: float = 72 * 3600.0
    check_min: float = 5.0
    check_max: float = 300.0


@dataclass
class DomainLifecycle:
    store: DomainRepositories
    issuer: Issuer
    plane: DomainPlane
    lookup: DnsLookup
    box: SecretBox
    timing: Timing
    clock: Callable[[], float]
    records_of: Callable[[Domain], list[DnsRecord]]  # every record of a domain (the view's)
    automation: RecordAutomation
    zone: ValidationZone | None = None
    edge_addresses: tuple[str, ...] = ()
    fault: Callable[[str], None] = lambda point: None
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    # -- one check ---------------------------------------------------------------------------------
    def step(self, name: str, wait: bool = True) -> bool:
        """One check of one domain. With wait=False, a check that another thread is running now is not
        repeated: this waits (a few seconds at most) for it to finish instead, and returns False."""
        lock = self.lock(name)
        if not lock.acquire(blocking=wait):
            if lock.acquire(timeout=10):
                lock.release()
            return False
        try:
            self._execute(self.store.domain(name))
            return True
        finally:
            lock.release()

    def _execute(self, domain: Domain | None) -> None:
        if domain is None:
            return
        outdated = domain.certificate is not None and self.issuer.outdated(domain.certificate.issuer)
        step = plan(domain, self.clock(), self.issuer.renews_itself, outdated, bool(domain.certificate_ref))
        if step == Step.FINISH_REMOVAL:
            self.finish_removal(domain)
        elif step == Step.TIME_OUT:
            self._time_out(domain)
        elif step in (Step.REQUEST, Step.POLL):
            self._validate(domain, step == Step.REQUEST)
        elif step == Step.RENEW:
            self._renew(*self._routed(domain))
        elif step == Step.ATTACH:
            self._attach(*self._routed(domain))
        elif step == Step.MAINTAIN:
            self._maintain(*self._routed(domain))

    def check_one(self, name: str) -> None:
        """One step of one domain; an unexpected error is logged and the domain looked at again later."""
        try:
            self.step(name)
        except Exception:
            log.exception("checking domain %s failed; it is looked at again later", name)
            domain = self.store.domain(name)
            if domain is not None and not domain.deleting:
                self.store.save_domain(replace(domain, next_check_at=self.clock() + self.timing.check_max))
            elif domain is not None:
                later = self.clock() + self.timing.check_max
                self.store.defer_domain_removal(name, later, domain.failures + 1, domain.status_reason)

    def later(self, failures: int) -> float:
        return self.clock() + backoff(failures, self.timing.check_min, self.timing.check_max)

    def _save(self, domain: Domain, **changes: object) -> Domain:
        updated = replace(domain, **changes)  # type: ignore[arg-type]
        self.store.save_domain(updated)
        return updated

    # -- validation and issuance -------------------------------------------------------------------
    def _time_out(self, domain: Domain) -> None:
        hours = self.timing.validation_deadline / 3600
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

    def _validate(self, domain: Domain, request: bool) -> None:
        now = self.clock()
        written = ""
        if request:
            try:
                order = self.issuer.request(domain)
            except IssuanceFailed as exc:
                self._refused(replace(domain, last_checked_at=now), exc.message)
                return
            records = order.records or domain.validation_records
            domain = self._save(domain, certificate_ref=order.reference, validation_records=records)
            written = self._publish(domain)
        progress = self.issuer.poll(domain)
        checked, note = self._routed(domain)
        if progress.records and progress.records != domain.validation_records:
            checked = replace(checked, validation_records=progress.records)
            written = self._publish(checked)
        if progress.state == IssuanceState.PENDING:
            self._save(
                checked,
                status_reason=progress.reason + (f" (DNS: {written})" if written else ""),
                failure=FailureKind.VALIDATION,
                failures=checked.failures + 1,
                next_check_at=self.later(checked.failures),
            )
        elif progress.state == IssuanceState.REFUSED:
            self._refused(checked, progress.reason)
        elif progress.state == IssuanceState.FAILED:
            self._save(
                checked,
                certificate_status=progress.status,
                status_reason=f"{progress.reason}; fix it, then retry",
                failure=FailureKind.REFUSED,
                next_check_at=None,
            )
        else:
            self._issued(checked, progress, note)

    def _refused(self, domain: Domain, why: str) -> None:
        """Consecutive refusals (not DNS misses) count toward FAILED."""
        failures = domain.failures + 1 if domain.failure == FailureKind.REFUSED else 1
        if failures >= ISSUE_ATTEMPTS:
            self._save(
                domain,
                certificate_status=CertificateStatus.FAILED,
                status_reason=f"{REFUSED} {why}; fix it, then retry",
                failure=FailureKind.REFUSED,
                failures=failures,
                next_check_at=None,
            )
            return
        self._save(
            domain,
            status_reason=f"{REFUSED} {why}; trying again",
            failure=FailureKind.REFUSED,
            failures=failures,
            next_check_at=self.later(failures),
        )

    def _issued(self, domain: Domain, progress: Progress, note: str) -> None:
        issued = progress.certificate
        assert issued is not None
        updated = replace(
            domain,
            certificate_status=CertificateStatus.ISSUED,
            certificate=issued.info,
            certificate_ref=issued.reference,
            renewal_status=issued.renewal,
            status_reason=note,
            failure=FailureKind.NONE,
            failures=0,
        )
        material = issued.material
        sealed = None if material is None else (material.chain_pem, self.box.seal(material.key_pem))
        if not self.store.save_domain(updated, sealed):
            # Removed while the authority was working: this certificate must not outlive the domain.
            self.issuer.release(domain, orphan=issued)
            return
        self.fault("domain:after_issue")
        self._attach(updated, note)

    # -- the plane ---------------------------------------------------------------------------------
    def _attach(self, domain: Domain, note: str) -> None:
        project = self.store.project_by_id(domain.project_id)
        if project is None:
            return
        attachment = self.plane.attach(domain, project)
        if attachment.state == AttachState.FAILED:
            failures = domain.failures + 1 if domain.failure == FailureKind.EDGE else 1
            self._save(
                domain,
                cdn_status=CdnStatus.FAILED,
                status_reason=(
                    f"the edge could not serve {domain.name} over HTTPS yet: {attachment.reason}; retrying"
                ),
                failure=FailureKind.EDGE,
                failures=failures,
                next_check_at=self.later(failures),
            )
            return
        served = attachment.served
        if served is not None:
            domain = replace(domain, certificate=served.info, renewal_status=served.renewal)
            if self.clock() >= served.info.not_after:
                domain = replace(domain, certificate_status=CertificateStatus.EXPIRED)
        if attachment.state == AttachState.PENDING:
            self._save(
                domain,
                cdn_status=CdnStatus.PENDING,
                status_reason=attachment.reason,
                next_check_at=self.clock() + self.timing.check_min,
            )
            return
        if domain.cdn_status != CdnStatus.ACTIVE:  # the routing target may be known only now (AWS)
            self._publish(domain)
        self._save(
            domain,
            cdn_status=CdnStatus.ACTIVE,
            status_reason=self._renewal_warning(domain) or note,
            failure=FailureKind.NONE,
            failures=0,
            next_check_at=self._next_routine(domain),
        )

    def _routed(self, domain: Domain) -> tuple[Domain, str]:
        """The domain with its routing records looked at now, and what to fix about them ("" if nothing)."""
        records = self.records_of(domain)
        status, note = routing_diagnosis(domain, records, self.lookup.query, self.edge_addresses)
        return replace(domain, dns_status=status, last_checked_at=self.clock()), note

    def _renewal_warning(self, domain: Domain) -> str:
        """For authorities that renew by themselves: a warning when a validation record they need is gone."""
        if not self.issuer.renews_itself or domain.certificate is None:
            return ""
        gone = missing_validation(self.issuer.records(domain), self.lookup.query)
        if not gone:
            return ""
        expires = _when(domain.certificate.not_after)
        shown = ", ".join(f"CNAME {r.name} -> {r.value}" for r in gone)
        return (
            f"warning: the validation record {shown} is no longer in DNS; the certificate cannot be renewed "
            f"without it and expires {expires}: add it back"
        )

    def _next_routine(self, domain: Domain) -> float:
        now = self.clock()
        assert domain.certificate is not None
        # A routing record not seen yet (often added after validation) is looked for again soon.
        recheck = RECHECK if domain.dns_status == DnsStatus.OK else self.timing.check_max
        if self.issuer.renews_itself:
            return now + recheck
        return min(domain.certificate.renew_after(), now + recheck)

    def _maintain(self, domain: Domain, note: str) -> None:
        """Issued and active: keep it attached (the plane reports the certificate it serves and its renewal),
        watch the routing record and the validation records a renewal needs."""
        if self.issuer.renews_itself:
            self._attach(domain, note)
            return
        self._save(domain, status_reason=note, next_check_at=self._next_routine(domain))

    def _renew(self, domain: Domain, note: str) -> None:
        progress = self.issuer.renew(domain)
        if progress.state != IssuanceState.ISSUED or progress.certificate is None:
            self._renewal_failed(domain, progress.reason)
            return
        self._issued(replace(domain, cdn_status=CdnStatus.PENDING), progress, note)

    def _renewal_failed(self, domain: Domain, why: str) -> None:
        assert domain.certificate is not None
        failures = domain.failures + 1 if domain.failure == FailureKind.RENEWAL else 1
        when = _when(domain.certificate.not_after)
        if self.clock() >= domain.certificate.not_after:
            status = CertificateStatus.EXPIRED
            reason = f"the certificate EXPIRED at {when} and renewal keeps failing: {why}; retrying"
        else:
            status = domain.certificate_status
            reason = f"renewal failed: {why}; the current certificate stays served until {when}; retrying"
        later = self.later(failures)
        if self.clock() < domain.certificate.not_after:
            later = min(later, domain.certificate.not_after)  # look again when it expires, to say so
        self._save(
            domain,
            certificate_status=status,
            status_reason=reason,
            failure=FailureKind.RENEWAL,
            failures=failures,
            next_check_at=later,
        )

    # -- removal and convergence -------------------------------------------------------------------
    def finish_removal(
        self, domain: Domain, with_the_project: bool = False, records: list[DnsRecord] | None = None
    ) -> bool:
        """Detach, release the certificate, withdraw the records, free the name; each part idempotent. A
        part that cannot finish yet (CloudFront still holding a certificate) is tried again with backoff,
        unless the domain goes ``with_the_project``: then its project's plane was taken down as a whole
        (DomainPlane.forget_project) and what is left of it here goes at once, best effort. ``records``:
        the domain's records as they were before (default: as the plane has them now)."""
        if records is None:
            records = self.records_of(domain)  # as they are while the plane still holds the name
        done = self.plane.detach(domain) and self.issuer.release(domain)
        if with_the_project and not done:
            released = self.issuer.release(domain)
            log.info("domain %s goes with its project (certificate released: %s)", domain.name, released)
        elif not done:
            failures = domain.failures + 1 if domain.failure == FailureKind.REMOVAL else 1
            reason = "being removed: waiting for the CDN to let go of the certificate"
            self.store.defer_domain_removal(domain.name, self.later(failures), failures, reason)
            return False
        self.automation.withdraw(domain, records)
        if self.zone is not None:
            self.zone.withdraw(domain.validation_target(self.zone.zone))
        self.store.delete_domain(domain.name)
        with self._guard:  # a later domain of that name gets a lock of its own
            self._locks.pop(domain.name, None)
        return True

    def _publish(self, domain: Domain) -> str:
        """Write the domain's records into a linked zone, if its project linked one; what was done."""
        note = self.automation.publish(domain, self.records_of(domain))
        if note:
            log.info("domain %s: %s", domain.name, note)
        return note

    def converge(self) -> dict[str, list[str]]:
        """Finish removals, have outdated certificates replaced soon, make the plane match the rows.
        Idempotent; run at start-up and by the worker."""
        report: dict[str, list[str]] = {"removed": []}
        rows = self.store.all_domains()
        for domain in rows:
            if domain.deleting:
                with self.lock(domain.name):
                    if self.finish_removal(domain):
                        report["removed"].append(domain.name)
            elif (
                domain.certificate_status in SERVED
                and domain.certificate is not None
                and self.issuer.outdated(domain.certificate.issuer)
            ):
                self._reissue_soon(domain.name)
        report.update(self.plane.converge(self.store.all_domains()))
        return report

    def _reissue_soon(self, name: str) -> None:
        """A certificate its issuer wants replaced (a new local CA root): due now, so the check renews it."""
        with self.lock(name):
            fresh = self.store.domain(name)
            if fresh is not None and not fresh.deleting and (fresh.next_check_at or 0) > self.clock():
                self._save(fresh, next_check_at=self.clock())


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
