"""What the CloudFront and ACM rules share: the limits, the lock, names and which distribution uses what."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from moto.cloudfront.models import cloudfront_backends

PARTITION = "aws"
CLOUDFRONT_CERTIFICATE_REGION = "us-east-1"
REQUESTED_NAMES = "rules_requested_names"  # set on moto's CertBundle: its names in request order

# One change at a time: moto's threaded server would otherwise let two updates with the same IfMatch both
# pass the check, or a certificate be deleted while an update attaches it.
LOCK = threading.RLock()


@dataclass(frozen=True)
class Limits:
    max_aliases: int
    max_distributions: int
    deploy_seconds: float
    names_per_certificate: int
    max_certificates: int
    record_seconds: float  # how long after a request DescribeCertificate shows no validation record yet
    validation_timeout_seconds: float  # pending this long: VALIDATION_TIMED_OUT (72 h on AWS)

    @classmethod
    def from_environment(cls) -> Limits:
        return cls(
            max_aliases=int(os.environ.get("MOTO_RULES_MAX_ALIASES", "100")),
            max_distributions=int(os.environ.get("MOTO_RULES_MAX_DISTRIBUTIONS", "500")),
            deploy_seconds=float(os.environ.get("MOTO_RULES_DEPLOY_SECONDS", "0.5")),
            names_per_certificate=int(os.environ.get("MOTO_RULES_NAMES_PER_CERTIFICATE", "10")),
            max_certificates=int(os.environ.get("MOTO_RULES_MAX_CERTIFICATES", "2500")),
            record_seconds=float(os.environ.get("MOTO_RULES_RECORD_SECONDS", "0")),
            validation_timeout_seconds=float(
                os.environ.get("MOTO_RULES_VALIDATION_TIMEOUT_SECONDS", "259200")
            ),
        )


LIMITS = Limits.from_environment()


def normal(name: str) -> str:
    return name.strip().rstrip(".").lower()


def covers(certificate_name: str, alias: str) -> bool:
    """``*.x`` covers one more label (``a.x``; not ``x``, not ``a.b.x``); any other name only itself."""
    pattern, host = normal(certificate_name), normal(alias)
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    label, _, rest = host.partition(".")
    return bool(label) and label != "*" and rest == pattern[2:]


def account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


def certificate_names(certificate: Any) -> list[str]:
    """A certificate's names, in request order where the request was seen (moto keeps them in a set)."""
    requested: list[str] | None = certificate.__dict__.get(REQUESTED_NAMES)
    if requested:
        return requested
    names = [str(certificate.common_name)] if certificate.common_name else []
    return names + [str(name) for name in certificate.sans if str(name) not in names]


def distributions_of(account_id: str) -> Iterator[Any]:
    yield from list(cloudfront_backends[account_id][PARTITION].distributions.values())


def certificate_users(account_id: str, arn: str) -> list[str]:
    """The ARNs of the distributions whose viewer certificate is this certificate."""
    return [
        distribution.arn
        for distribution in distributions_of(account_id)
        if distribution.distribution_config.ViewerCertificate.acm_certificate_arn == arn
    ]
