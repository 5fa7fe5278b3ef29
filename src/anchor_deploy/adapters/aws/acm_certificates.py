"""ACM certificates for CloudFront: requested, read and deleted in us-east-1 whatever the platform's region
(CloudFront takes viewer certificates from us-east-1 only).

Every certificate is requested with DNS validation, certificate transparency logging and the platform's
tags, under an idempotency token: ACM answers a request repeated with the same token (within an hour) with
the certificate it made the first time, so a request retried after a crash makes no second certificate.
ACM keeps the private key; the platform only ever holds the ARN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.client_errors import is_error
from anchor_deploy.adapters.aws.lambda_functions import ClientSource
from anchor_deploy.model.domains import DnsRecord

CERTIFICATE_REGION = "us-east-1"  # where CloudFront reads viewer certificates from
TOKEN_LENGTH = 32  # ACM: an idempotency token is 1 to 32 word characters
MAX_SUBJECT = 64  # ACM: the DomainName (the subject's common name) is at most 64 characters
ALL_STATUSES = (
    "PENDING_VALIDATION",
    "ISSUED",
    "INACTIVE",
    "EXPIRED",
    "VALIDATION_TIMED_OUT",
    "REVOKED",
    "FAILED",
)
VALIDATED = "SUCCESS"  # ACM's ValidationStatus of a name whose validation succeeded


def idempotency_token(*parts: str) -> str:
    """A token ACM accepts (hex digits are word characters) that is the same for the same parts."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return digest[:TOKEN_LENGTH]


def unique(names: Sequence[str]) -> list[str]:
    """``names`` without repeats, in their first order."""
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class AcmCertificate:
    """One certificate as DescribeCertificate reports it."""

    arn: str
    status: str  # ACM's own: PENDING_VALIDATION, ISSUED, FAILED, VALIDATION_TIMED_OUT, EXPIRED, REVOKED…
    names: tuple[str, ...]
    records: tuple[DnsRecord, ...] = ()  # the validation CNAMEs; empty until ACM has filled in every one
    validation: dict[str, str] = field(default_factory=dict)  # name -> ValidationStatus
    not_before: float | None = None
    not_after: float | None = None
    serial: str = ""
    issuer: str = ""
    failure_reason: str = ""  # ACM's FailureReason code ("" when none)
    renewal_status: str = ""  # RenewalSummary.RenewalStatus ("" before any managed renewal)
    renewal_pending: tuple[str, ...] = ()  # names whose renewal validation has not succeeded
    in_use_by: tuple[str, ...] = ()  # ARNs of what uses it (CloudFront distributions)
    revocation_reason: str = ""  # ACM's RevocationReason of a REVOKED certificate
    renewal_reason: str = ""  # RenewalSummary.RenewalStatusReason (why a renewal failed)

    @property
    def awaiting(self) -> tuple[str, ...]:
        """The names whose validation has not succeeded yet."""
        return tuple(name for name in self.names if self.validation.get(name) != VALIDATED)


class AcmCertificates:
    """The certificates the platform requests, in us-east-1."""

    def __init__(
        self,
        clients: ClientSource,
        tags: Mapping[str, str] | None = None,
        on_request: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_request``: told of every certificate requested (ACM's yearly request quota counts them)."""
        self._acm = clients.regional("acm", CERTIFICATE_REGION)
        self.tags = dict(tags or {})
        self._on_request = on_request

    def request(self, names: Sequence[str], token: str) -> str:
        """Request one DNS-validated certificate for ``names``; the ARN. Its subject is the first name of at
        most 64 characters (ACM's limit on DomainName; every name is in SubjectAlternativeNames, up to 253);
        ValueError when there is none. The same ``token`` within an hour answers the same certificate."""
        wanted = unique(names)
        if not wanted:
            raise ValueError("a certificate needs at least one name")
        subject = next((name for name in wanted if len(name) <= MAX_SUBJECT), None)
        if subject is None:
            raise ValueError(
                f"ACM needs one name of at most {MAX_SUBJECT} characters as a certificate's subject"
            )
        answer = self._acm.request_certificate(
            DomainName=subject,
            SubjectAlternativeNames=wanted,
            ValidationMethod="DNS",
            IdempotencyToken=token,
            Options={"CertificateTransparencyLoggingPreference": "ENABLED"},
            **({"Tags": self._tag_list()} if self.tags else {}),
        )
        self._on_request()
        return str(answer["CertificateArn"])

    def describe(self, arn: str) -> AcmCertificate | None:
        """The certificate as ACM reports it now; None when it does not exist (any more)."""
        try:
            answer = self._acm.describe_certificate(CertificateArn=arn)
        except ClientError as exc:
            if is_error(exc, "ResourceNotFoundException"):
                return None
            raise
        return certificate_from(answer["Certificate"])

    def delete(self, arn: str) -> bool:
        """Delete the certificate: True when it is gone (now or before), False while something still uses
        it (ResourceInUseException: CloudFront lets go some time after an update; call again later)."""
        try:
            self._acm.delete_certificate(CertificateArn=arn)
        except ClientError as exc:
            if is_error(exc, "ResourceNotFoundException"):
                return True
            if is_error(exc, "ResourceInUseException"):
                return False
            raise
        return True

    def listed(self) -> list[tuple[str, tuple[str, ...]]]:
        """ARN and names of every certificate in us-east-1 that carries all of our tags (every certificate
        when there are no tags), whatever its status."""
        found = []
        for summary in self._summaries():
            arn = str(summary["CertificateArn"])
            if self.tags and not self._carries_our_tags(arn):
                continue
            names = summary_names(summary)
            if names is None:
                described = self.describe(arn)
                if described is None:
                    continue  # deleted between the listing and now
                names = described.names
            found.append((arn, names))
        return found

    def _summaries(self) -> Iterator[dict[str, Any]]:
        paginator = self._acm.get_paginator("list_certificates")
        for page in paginator.paginate(CertificateStatuses=list(ALL_STATUSES)):
            yield from page.get("CertificateSummaryList") or []

    def _carries_our_tags(self, arn: str) -> bool:
        try:
            tags = self._acm.list_tags_for_certificate(CertificateArn=arn).get("Tags") or []
        except ClientError as exc:
            if is_error(exc, "ResourceNotFoundException"):
                return False  # deleted between the listing and now
            if is_error(exc, "AccessDeniedException"):
                return False  # the role reads the tags of the stack's own certificates only
            raise
        held = {str(tag["Key"]): str(tag.get("Value", "")) for tag in tags}
        return all(held.get(key) == value for key, value in self.tags.items())

    def _tag_list(self) -> list[dict[str, str]]:
        return [{"Key": key, "Value": value} for key, value in self.tags.items()]


def certificate_from(raw: Mapping[str, Any]) -> AcmCertificate:
    """An AcmCertificate from DescribeCertificate's ``Certificate``."""
    options = list(raw.get("DomainValidationOptions") or [])
    renewal = raw.get("RenewalSummary") or {}
    return AcmCertificate(
        arn=str(raw["CertificateArn"]),
        status=str(raw.get("Status", "")),
        names=tuple(
            n for n in unique([str(raw.get("DomainName", "")), *raw.get("SubjectAlternativeNames", [])]) if n
        ),
        records=validation_records(options),
        validation={str(o["DomainName"]): str(o.get("ValidationStatus", "")) for o in options},
        not_before=_epoch(raw.get("NotBefore")),
        not_after=_epoch(raw.get("NotAfter")),
        serial=str(raw.get("Serial", "")),
        issuer=str(raw.get("Issuer", "")),
        failure_reason=str(raw.get("FailureReason", "")),
        renewal_status=str(renewal.get("RenewalStatus", "")),
        renewal_pending=tuple(
            str(o["DomainName"])
            for o in renewal.get("DomainValidationOptions") or []
            if o.get("ValidationStatus") != VALIDATED
        ),
        in_use_by=tuple(str(user) for user in raw.get("InUseBy") or []),
        revocation_reason=str(raw.get("RevocationReason", "")),
        renewal_reason=str(renewal.get("RenewalStatusReason", "")),
    )


def validation_records(options: Sequence[Mapping[str, Any]]) -> tuple[DnsRecord, ...]:
    """The validation CNAMEs of DomainValidationOptions, one per distinct record (a wildcard and its apex
    share one); empty while ACM has not filled in the record of every name yet."""
    if not options or any(not o.get("ResourceRecord") for o in options):
        return ()
    records: dict[tuple[str, str], DnsRecord] = {}
    for option in options:
        record = option["ResourceRecord"]
        name, value = _dns_name(record["Name"]), _dns_name(record["Value"])
        records.setdefault(
            (name, value),
            DnsRecord(str(record.get("Type", "CNAME")), name, value, "validation"),
        )
    return tuple(records.values())


def summary_names(summary: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The names of a ListCertificates summary (SubjectAlternativeNameSummaries holds the subject too);
    None when the summary does not hold them all (more than ACM lists, or an emulator that lists none)."""
    alternates = summary.get("SubjectAlternativeNameSummaries")
    if not alternates or summary.get("HasAdditionalSubjectAlternativeNames"):
        return None
    return tuple(unique([str(summary.get("DomainName", "")), *(str(n) for n in alternates)]))


def _dns_name(name: object) -> str:
    return str(name).strip().lower().rstrip(".")


def _epoch(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None
