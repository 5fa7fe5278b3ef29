"""The AWS quotas custom domains run into, and how much of each is used.

A limit comes from the operator's setting (``ANCHOR_AWS_QUOTA_*``) when one is given, else from Service
Quotas (the account's applied value, read once per process), else AWS's default. Service Quotas answers
for the quotas that have a code there; an account (or an emulator) that does not answer falls back to the
default, and the source says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.acm_certificates import ALL_STATUSES
from anchor_deploy.adapters.aws.lambda_functions import ClientSource

QUOTA_REGION = "us-east-1"  # CloudFront's quotas and ACM's for CloudFront live there


@dataclass(frozen=True)
class QuotaSpec:
    code: str  # stable, as QuotaUse.code
    name: str  # AWS's own name of the quota
    default: int  # AWS's default
    service: str  # Service Quotas service code
    quota_code: str  # Service Quotas quota code ("" : none)
    setting: str  # the platform's setting that overrides it


NAMES_PER_CERTIFICATE = QuotaSpec(
    "acm_names_per_certificate",
    "Domain names per ACM certificate",
    10,
    "acm",
    "L-FB94F0B0",
    "ANCHOR_AWS_QUOTA_NAMES_PER_CERTIFICATE",
)
ALIASES_PER_DISTRIBUTION = QuotaSpec(
    "cloudfront_aliases",
    "Alternate domain names (CNAMEs) per distribution",
    100,
    "cloudfront",
    "",
    "ANCHOR_AWS_QUOTA_ALIASES_PER_DISTRIBUTION",
)
DISTRIBUTIONS = QuotaSpec(
    "cloudfront_distributions",
    "Distributions per AWS account",
    500,
    "cloudfront",
    "L-24B04930",
    "ANCHOR_AWS_QUOTA_DISTRIBUTIONS",
)
CERTIFICATES = QuotaSpec(
    "acm_certificates", "ACM certificates", 2500, "acm", "L-F141DD1D", "ANCHOR_AWS_QUOTA_CERTIFICATES"
)
REQUESTS_PER_YEAR = QuotaSpec(
    "acm_requests_per_year",
    "ACM certificates requested in the last 365 days",
    5000,
    "acm",
    "",
    "ANCHOR_AWS_QUOTA_CERTIFICATE_REQUESTS",
)
SPECS = (NAMES_PER_CERTIFICATE, ALIASES_PER_DISTRIBUTION, DISTRIBUTIONS, CERTIFICATES, REQUESTS_PER_YEAR)


@dataclass(frozen=True)
class Limit:
    value: int
    source: str  # the setting's name, "Service Quotas" or "AWS default"


def how_to_raise(spec: QuotaSpec) -> str:
    where = f"Service Quotas ({spec.service}"
    where += f", {spec.quota_code})" if spec.quota_code else ")"
    return f'raise "{spec.name}" in {where}, then set {spec.setting} to the new value'


class AwsQuotas:
    """Limits (setting, Service Quotas, AWS default) and account-wide counts (distributions, certificates)."""

    def __init__(self, clients: ClientSource, overrides: dict[str, int] | None = None) -> None:
        self._clients = clients
        self._overrides = {code: value for code, value in (overrides or {}).items() if value > 0}
        self._read: dict[str, Limit] = {}
        self._lock = threading.Lock()

    def limit(self, spec: QuotaSpec) -> Limit:
        if spec.code in self._overrides:
            return Limit(self._overrides[spec.code], spec.setting)
        with self._lock:
            if spec.code not in self._read:
                self._read[spec.code] = self._service_quota(spec)
            return self._read[spec.code]

    def _service_quota(self, spec: QuotaSpec) -> Limit:
        if not spec.quota_code:
            return Limit(spec.default, "AWS default")
        try:
            client = self._clients.regional("service-quotas", QUOTA_REGION)
            answer = client.get_service_quota(ServiceCode=spec.service, QuotaCode=spec.quota_code)
            return Limit(int(answer["Quota"]["Value"]), "Service Quotas")
        except (ClientError, BotoCoreError, KeyError, ValueError):
            return Limit(spec.default, "AWS default")  # no answer (no right to ask, or an emulator)

    def slot_size(self) -> int:
        """Names one slot can take: one certificate covers them all, one distribution serves them all."""
        return max(
            1, min(self.limit(NAMES_PER_CERTIFICATE).value, self.limit(ALIASES_PER_DISTRIBUTION).value)
        )

    def distributions(self) -> int:
        """Distributions in the account (ours and any other)."""
        client = self._clients.client("cloudfront")
        count, marker = 0, dict[str, str]()
        while True:
            listing: dict[str, Any] = client.list_distributions(**marker)["DistributionList"]
            count += len(listing.get("Items", []))
            if not listing.get("IsTruncated"):
                return count
            marker = {"Marker": listing["NextMarker"]}

    def certificates(self) -> int:
        """ACM certificates in us-east-1 (every status counts, expired and revoked too)."""
        client = self._clients.regional("acm", QUOTA_REGION)
        pages = client.get_paginator("list_certificates").paginate(CertificateStatuses=list(ALL_STATUSES))
        return sum(len(page.get("CertificateSummaryList") or []) for page in pages)
