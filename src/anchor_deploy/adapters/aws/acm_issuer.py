"""The ACM issuer: each custom domain gets its own DNS-validated ACM certificate (us-east-1), whose status is
the domain's certificateStatus, one to one, and whose validation CNAME is the domain's validation record.

ACM keeps the key and renews by itself; the platform holds the ARN (``Domain.certificate_ref``). A request
carries an idempotency token made of the name and the attempt's validation deadline: a request repeated
after a crash answers the same certificate, while a retry (which sets a new deadline) gets a fresh one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.acm_certificates import (
    AcmCertificate,
    AcmCertificates,
    idempotency_token,
)
from anchor_deploy.adapters.aws.client_errors import error_code
from anchor_deploy.model.domains import CertificateStatus, DnsRecord, Domain, IssuedInfo
from anchor_deploy.model.errors import IssuanceFailed
from anchor_deploy.ports.issuance import IssuanceState, IssuedCertificate, Order, Progress

REQUEST_KIND = "anchor-domain"  # keeps these tokens apart from other certificates' (serving ones)
VANISHED = "the certificate was deleted outside the platform; retry requests a new one"
NOT_READABLE = "ACM has not made the new certificate readable yet; it is asked for again on the next check"
NOT_PUBLISHED = "AWS has not published the validation record yet; it is asked for again on the next check"
RETRY = "retry requests a new certificate"

FAILURE_REASONS = {
    "CAA_ERROR": "a CAA record of the domain does not allow Amazon to issue certificates for it: add a CAA "
    "record allowing amazon.com (or remove the one that restricts it)",
    "NO_AVAILABLE_CONTACTS": "ACM found no contact address to validate the domain",
    "ADDITIONAL_VERIFICATION_REQUIRED": "Amazon needs more information before it issues a certificate for "
    "this name: ask AWS Support",
    "DOMAIN_NOT_ALLOWED": "Amazon does not issue certificates for this name (a name or label it does not "
    "allow, or one reported as malicious)",
    "INVALID_PUBLIC_DOMAIN": "the name is not a valid public domain name (its top-level domain is unknown)",
    "DOMAIN_VALIDATION_DENIED": "Amazon is not allowed to issue a certificate for this name",
    "SLR_NOT_FOUND": "ACM's service-linked role is missing from the AWS account",
    "OTHER": "ACM failed for a reason it does not name (OTHER): if a retry fails too, ask AWS Support",
}
REFUSALS = {
    "LimitExceededException": "an ACM quota is reached (certificates per account, or requests per year)",
    "InvalidDomainValidationOptionsException": "ACM does not take this name for DNS validation",
    "InvalidParameterException": "ACM does not take this request",
    "TooManyTagsException": "ACM refuses the platform's tags",
    "TagPolicyException": "the account's tag policy refuses the platform's tags",
    "InvalidTagException": "ACM refuses the platform's tags",
}


def failure_words(code: str) -> str:
    """ACM's FailureReason code in words a user can act on."""
    if code.startswith("PCA_"):
        return f"the private certificate authority could not issue it ({code})"
    words = FAILURE_REASONS.get(code)
    if words is None:
        return f"ACM failed ({code})" if code else "ACM failed without saying why"
    return words


class AcmIssuer:
    """Issuer port on ACM: one certificate per domain name, validated through ACM's CNAME."""

    kind = "acm"
    renews_itself = True

    def __init__(
        self,
        certificates: AcmCertificates,
        validation_window: float = 72 * 3600.0,
        settle_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``validation_window``: how long before its validation deadline a domain's certificate was
        requested (the platform's setting); ``settle_seconds``: how long after a request a certificate ACM
        does not find is taken as not readable yet (ACM makes a new certificate readable seconds after
        RequestCertificate answers) rather than deleted."""
        self.certificates = certificates
        self.validation_window = validation_window
        self.settle_seconds = settle_seconds
        self.clock = clock

    def records(self, domain: Domain) -> tuple[DnsRecord, ...]:
        return domain.validation_records

    def request(self, domain: Domain) -> Order:
        token = idempotency_token(REQUEST_KIND, domain.name, repr(float(domain.validation_deadline)))
        try:
            arn = self.certificates.request([domain.name], token)
        except ClientError as exc:
            code = error_code(exc)
            words = REFUSALS.get(code, "ACM refused the request")
            message = exc.response.get("Error", {}).get("Message", "")
            raise IssuanceFailed(f"{words}: {code}: {message}".rstrip(": ")) from exc
        except ValueError as exc:  # a name longer than ACM takes as a certificate's subject
            raise IssuanceFailed(f"{exc}; this name is {len(domain.name)} characters long") from exc
        try:
            described = self.certificates.describe(arn)
        except (ClientError, BotoCoreError):
            described = None  # the records are read on the first poll
        return Order(arn, described.records if described else ())

    def poll(self, domain: Domain) -> Progress:
        if not domain.certificate_ref:
            return Progress(
                IssuanceState.PENDING,
                CertificateStatus.PENDING_VALIDATION,
                reason="no certificate has been requested yet",
            )
        try:
            certificate = self.certificates.describe(domain.certificate_ref)
        except (ClientError, BotoCoreError) as exc:
            return Progress(
                IssuanceState.PENDING,
                domain.certificate_status,
                domain.validation_records,
                f"ACM could not be asked ({error_code(exc) or type(exc).__name__}); asked again later",
            )
        if certificate is None:
            return self._missing(domain)
        return progress_of(certificate)

    def _missing(self, domain: Domain) -> Progress:
        requested_at = domain.validation_deadline - self.validation_window
        if self.clock() - requested_at < self.settle_seconds:
            return Progress(IssuanceState.PENDING, CertificateStatus.PENDING_VALIDATION, reason=NOT_READABLE)
        return Progress(IssuanceState.FAILED, CertificateStatus.FAILED, reason=VANISHED)

    def renew(self, domain: Domain) -> Progress:
        return self.poll(domain)  # ACM renews by itself: this only reports where it stands

    def release(self, domain: Domain, orphan: IssuedCertificate | None = None) -> bool:
        """Delete the domain's certificate (or only ``orphan``); False while CloudFront still uses it."""
        arn = orphan.reference if orphan is not None else domain.certificate_ref
        if not arn:
            return True
        return self.certificates.delete(arn)

    def outdated(self, issuer: str) -> bool:
        return False


def progress_of(certificate: AcmCertificate) -> Progress:
    """Where a domain's certificate stands, from what ACM reports (its status carried over one to one)."""
    try:
        status = CertificateStatus(certificate.status)
    except ValueError:
        return Progress(
            IssuanceState.PENDING,
            CertificateStatus.PENDING_VALIDATION,
            certificate.records,
            f"ACM reports an unknown status {certificate.status!r}; checked again later",
        )
    if status is CertificateStatus.ISSUED:
        return Progress(
            IssuanceState.ISSUED,
            status,
            certificate.records,
            renewal_words(certificate),
            issued(certificate),
        )
    if status is CertificateStatus.PENDING_VALIDATION:
        return Progress(IssuanceState.PENDING, status, certificate.records, awaited_words(certificate))
    return Progress(IssuanceState.FAILED, status, certificate.records, failed_words(certificate, status))


def issued(certificate: AcmCertificate) -> IssuedCertificate:
    info = IssuedInfo(
        serial=certificate.serial,
        issuer=certificate.issuer,
        not_before=certificate.not_before or 0.0,
        not_after=certificate.not_after or 0.0,
    )
    return IssuedCertificate(certificate.arn, info, None, certificate.renewal_status)


def awaited_words(certificate: AcmCertificate) -> str:
    if not certificate.records:
        return NOT_PUBLISHED
    shown = "; ".join(f"{r.type} {r.name} -> {r.value}" for r in certificate.records)
    return f"waiting for ACM to see the validation record {shown}"


def failed_words(certificate: AcmCertificate, status: CertificateStatus) -> str:
    if status is CertificateStatus.VALIDATION_TIMED_OUT:
        return f"ACM did not find the validation record within 72 hours; {RETRY}"
    if status is CertificateStatus.REVOKED:
        why = f" ({certificate.revocation_reason})" if certificate.revocation_reason else ""
        return f"the certificate was revoked{why}; {RETRY}"
    if status is CertificateStatus.EXPIRED:
        return f"the certificate expired without being renewed; {RETRY}"
    if status is CertificateStatus.INACTIVE:
        return f"ACM reports the certificate inactive; {RETRY}"
    return f"ACM could not issue the certificate: {failure_words(certificate.failure_reason)}; {RETRY}"


def renewal_words(certificate: AcmCertificate) -> str:
    """A warning about ACM's managed renewal ("" when nothing is wrong with it)."""
    if certificate.renewal_status == "PENDING_VALIDATION":
        names = ", ".join(certificate.renewal_pending) or ", ".join(certificate.names)
        return (
            f"ACM's renewal waits for the validation record of {names}: it must stay in DNS, or the "
            "certificate expires"
        )
    if certificate.renewal_status == "FAILED":
        why = f" ({certificate.renewal_reason})" if certificate.renewal_reason else ""
        return f"ACM could not renew the certificate{why}; it is served until it expires"
    return ""
