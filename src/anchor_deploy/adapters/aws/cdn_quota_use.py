"""Use against each quota custom domains on CloudFront run into, for ``GET /v1/quotas``."""

from __future__ import annotations

import time
from collections.abc import Sequence

from anchor_deploy.adapters.aws.aws_quotas import (
    ALIASES_PER_DISTRIBUTION,
    CERTIFICATES,
    DISTRIBUTIONS,
    NAMES_PER_CERTIFICATE,
    REQUESTS_PER_YEAR,
    AwsQuotas,
    QuotaSpec,
)
from anchor_deploy.adapters.aws.cdn_placements import PlacementBook, Slot
from anchor_deploy.ports.issuance import QuotaUse


def _use(quotas: AwsQuotas, spec: QuotaSpec, used: int, scope: str) -> QuotaUse:
    limit = quotas.limit(spec)
    return QuotaUse(spec.code, spec.name, limit.value, used, scope, limit.source)


def quota_uses(
    quotas: AwsQuotas,
    book: PlacementBook,
    slots: Sequence[Slot],
    scope: str,
    now: float,
) -> list[QuotaUse]:
    """Names per certificate and aliases per distribution at their fullest among ``slots`` (a project's, or
    every project's), the account's distributions and certificates, and the certificates requested this
    year (the project's own quota of custom domains is the domain service's)."""
    fullest_certificate = max((max(len(s.serving_names), len(s.pending_names)) for s in slots), default=0)
    fullest = max(slots, key=lambda s: len(s.aliases), default=None)
    alias_scope = f"distribution {fullest.distribution_id}" if fullest and fullest.distribution_id else scope
    year = time.gmtime(now).tm_year
    uses = [
        _use(quotas, NAMES_PER_CERTIFICATE, fullest_certificate, scope),
        _use(quotas, ALIASES_PER_DISTRIBUTION, len(fullest.aliases) if fullest else 0, alias_scope),
        _use(quotas, DISTRIBUTIONS, quotas.distributions(), "account"),
        _use(quotas, CERTIFICATES, quotas.certificates(), "account"),
        _use(quotas, REQUESTS_PER_YEAR, book.requests(year), f"account, certificates requested in {year}"),
    ]
    return uses
