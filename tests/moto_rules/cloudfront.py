"""CloudFront's rules on moto's backend: ETag and IfMatch, aliases and their certificate, quotas, deploy time.

Hooks (moto 5.2): ``CloudFrontBackend.create_distribution_with_tags`` (CreateDistribution goes through it
too), ``update_distribution`` and ``delete_distribution`` are wrapped or replaced; ``Distribution.status`` (a
moto ManagedState property) is replaced by one computed from the deploy time set on each change;
``ViewerCertificate.__init__`` is wrapped so a config read back names its ACM certificate as AWS does. The
errors are moto ``CloudFrontException`` subclasses whose code is a shape of botocore's CloudFront model, which
gives the HTTP status (412 PreconditionFailed, 409 CNAMEAlreadyExists and DistributionNotDisabled, else 400).
"""

from __future__ import annotations

import time
from typing import Any

from moto.acm.models import acm_backends
from moto.cloudfront import models
from moto.cloudfront.exceptions import CloudFrontException, InvalidIfMatchVersion, NoSuchDistribution

from tests.moto_rules.common import (
    CLOUDFRONT_CERTIFICATE_REGION,
    LIMITS,
    LOCK,
    certificate_names,
    covers,
    normal,
)

DEPLOYED_AT = "rules_deployed_at"  # set on moto's Distribution: the monotonic time it becomes Deployed


class PreconditionFailed(CloudFrontException):
    def __init__(self) -> None:
        super().__init__(
            "PreconditionFailed",
            "The precondition given in one or more of the request header fields evaluated to false.",
        )


class CNAMEAlreadyExists(CloudFrontException):
    def __init__(self, alias: str) -> None:
        super().__init__(
            "CNAMEAlreadyExists",
            f"One or more of the CNAMEs you provided are already associated with another resource: {alias}",
        )


class InvalidViewerCertificate(CloudFrontException):
    def __init__(self, reason: str) -> None:
        super().__init__("InvalidViewerCertificate", reason)


class TooManyDistributionCNAMEs(CloudFrontException):
    def __init__(self) -> None:
        super().__init__(
            "TooManyDistributionCNAMEs",
            f"Your request contains more CNAMEs than are allowed per distribution ({LIMITS.max_aliases}).",
        )


class TooManyDistributions(CloudFrontException):
    def __init__(self) -> None:
        super().__init__(
            "TooManyDistributions",
            "Processing your request would cause you to exceed the maximum number of distributions allowed "
            f"({LIMITS.max_distributions}).",
        )


class DistributionNotDisabled(CloudFrontException):
    def __init__(self) -> None:
        super().__init__(
            "DistributionNotDisabled",
            "The distribution you are trying to delete is not disabled, or its disabling is not deployed.",
        )


def aliases_of(config: dict[str, Any]) -> list[str]:
    """The aliases of a request's DistributionConfig (before moto parses it)."""
    aliases = config.get("Aliases") or {}
    return [str(item) for item in aliases.get("Items") or []]


def distribution_aliases(distribution: Any) -> list[str]:
    aliases = distribution.distribution_config.Aliases or {}
    return [str(item) for item in aliases.get("Items") or []]


def mark_in_progress(distribution: Any) -> None:
    setattr(distribution, DEPLOYED_AT, time.monotonic() + LIMITS.deploy_seconds)


def distribution_status(distribution: Any) -> str:
    deployed_at: float = distribution.__dict__.get(DEPLOYED_AT, 0.0)
    return "InProgress" if time.monotonic() < deployed_at else "Deployed"


def check_viewer_certificate(account_id: str, config: dict[str, Any]) -> None:
    aliases = aliases_of(config)
    viewer = config.get("ViewerCertificate") or {}
    arn = str(viewer.get("ACMCertificateArn") or "")
    if not arn:
        if aliases:
            raise InvalidViewerCertificate(
                "To add an alternate domain name (CNAME) to a CloudFront distribution, you must attach a "
                f"trusted certificate that covers it ({', '.join(aliases)}); the default one covers none."
            )
        return
    if viewer.get("CloudFrontDefaultCertificate") is True:
        raise InvalidViewerCertificate(
            "Name either an ACM certificate or the CloudFront default certificate."
        )
    if viewer.get("SSLSupportMethod") != "sni-only" or not viewer.get("MinimumProtocolVersion"):
        raise InvalidViewerCertificate(
            "An ACM certificate is served with SSLSupportMethod sni-only and a MinimumProtocolVersion."
        )
    names = certificate_names(issued_certificate(account_id, arn))
    uncovered = [alias for alias in aliases if not any(covers(name, alias) for name in names)]
    if uncovered:
        raise InvalidViewerCertificate(
            f"The certificate {arn} does not cover the alternate domain names {', '.join(uncovered)}: "
            "a distribution's certificate must cover every one of its alternate domain names."
        )


def issued_certificate(account_id: str, arn: str) -> Any:
    certificate = acm_backends[account_id][CLOUDFRONT_CERTIFICATE_REGION]._certificates.get(arn)
    if certificate is None:
        raise InvalidViewerCertificate(f"The SSL certificate {arn} doesn't exist or isn't in us-east-1.")
    certificate.check()
    if certificate.status != "ISSUED":
        raise InvalidViewerCertificate(f"The SSL certificate {arn} is {certificate.status}, not ISSUED.")
    return certificate


def check_aliases(backend: Any, config: dict[str, Any], updating: str | None) -> None:
    """The aliases' quota, their certificate, then that no other distribution has one of them."""
    aliases = aliases_of(config)
    if len(aliases) > LIMITS.max_aliases:
        raise TooManyDistributionCNAMEs()
    check_viewer_certificate(backend.account_id, config)
    wanted = {normal(alias): alias for alias in aliases}
    for other in list(backend.distributions.values()):
        if other.distribution_id == updating:
            continue
        taken = [alias for alias in distribution_aliases(other) if normal(alias) in wanted]
        if taken:
            raise CNAMEAlreadyExists(wanted[normal(taken[0])])


def current(backend: Any, distribution_id: str, if_match: Any) -> Any:
    """The distribution, if IfMatch names its current ETag."""
    distribution = backend.distributions.get(distribution_id)
    if distribution is None:
        raise NoSuchDistribution()
    if not if_match:
        raise InvalidIfMatchVersion()
    if if_match != distribution.etag:
        raise PreconditionFailed()
    return distribution


def patch_cloudfront() -> None:
    backend_class = models.CloudFrontBackend
    original_create = backend_class.create_distribution_with_tags
    original_update = backend_class.update_distribution

    def create_distribution_with_tags(
        self: Any, distribution_config: dict[str, Any], tags: list[dict[str, str]]
    ) -> tuple[Any, str, str]:
        with LOCK:
            reference = distribution_config.get("CallerReference", "")
            if self._distribution_with_caller_reference(reference) is None:  # else moto's own answer
                if len(self.distributions) >= LIMITS.max_distributions:
                    raise TooManyDistributions()
                check_aliases(self, distribution_config, updating=None)
            made, location, etag = original_create(self, distribution_config, tags)
            mark_in_progress(made)
            return made, location, etag

    def update_distribution(
        self: Any, dist_config: dict[str, Any], _id: str, if_match: Any
    ) -> tuple[Any, str, str]:
        with LOCK:
            distribution = current(self, _id, if_match)
            if not dist_config:
                raise NoSuchDistribution()
            check_aliases(self, dist_config, updating=_id)
            original_update(self, dist_config, _id, if_match)
            distribution.etag = models.random_id()
            mark_in_progress(distribution)
            return distribution, distribution.location, distribution.etag

    def delete_distribution(self: Any, distribution_id: str, if_match: Any) -> None:
        with LOCK:
            distribution = current(self, distribution_id, if_match)
            if distribution.distribution_config.Enabled or distribution_status(distribution) != "Deployed":
                raise DistributionNotDisabled()
            del self.distributions[distribution_id]

    setattr(backend_class, "create_distribution_with_tags", create_distribution_with_tags)
    setattr(backend_class, "update_distribution", update_distribution)
    setattr(backend_class, "delete_distribution", delete_distribution)
    setattr(models.Distribution, "status", property(distribution_status, lambda self, value: None))
    patch_viewer_certificate()


def patch_viewer_certificate() -> None:
    """moto says CloudFrontDefaultCertificate true (source "cloudfront") even beside an ACM certificate, so a
    config read back and sent again (a read-modify-write) would name both: answer as AWS does instead."""
    original_init = models.ViewerCertificate.__init__

    def init(self: Any, config: dict[str, Any]) -> None:
        original_init(self, config)
        if self.acm_certificate_arn:
            self.cloud_front_default_certificate = config.get("CloudFrontDefaultCertificate", False)
            self.certificate_source = "acm"
            self.certificate = self.acm_certificate_arn

    setattr(models.ViewerCertificate, "__init__", init)
