"""ACM's rules on moto's backend: certificates in use, quotas, and validation that depends on DNS.

Hooks (moto 5.2): ``CertBundle.check`` (moto calls it on every read of a certificate: describe, get, list;
it is where moto issues a certificate once MOTO_ACM_VALIDATION_WAIT has passed), ``CertBundle.describe``
(validation records and InUseBy), ``AWSCertificateManagerBackend.delete_certificate`` and
``request_certificate``. The errors are moto ``AWSError`` (JSON) subclasses with ACM's exception names.
moto's RequestCertificate handler refuses more than 10 SubjectAlternativeNames itself: it is replaced by one
that leaves the names quota to the backend, so MOTO_RULES_NAMES_PER_CERTIFICATE may also raise it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from moto import settings as moto_settings
from moto.acm import models
from moto.acm.responses import AWSCertificateManagerResponse
from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.route53.models import route53_backends

from tests.moto_rules.common import (
    LIMITS,
    LOCK,
    PARTITION,
    REQUESTED_NAMES,
    account_of,
    certificate_names,
    certificate_users,
    normal,
)


class ResourceInUseException(AWSError):
    TYPE = "ResourceInUseException"


class LimitExceededException(AWSError):
    TYPE = "LimitExceededException"


def validation_record(account_id: str, name: str) -> tuple[str, str]:
    """(record name, CNAME value) ACM shows for a name: one per name and account; ``*.x`` shares ``x``'s."""
    base = normal(name).removeprefix("*.")
    label = hashlib.sha256(f"name:{account_id}:{base}".encode()).hexdigest()[:32]
    value = hashlib.sha256(f"value:{account_id}:{base}".encode()).hexdigest()
    target = "".join(chr(ord("a") + int(char, 16) % 26) for char in value[32:42])
    return f"_{label}.{base}.", f"_{value[:32]}.{target}.acm-validations.aws."


def public_zones_covering(account_id: str, record_name: str) -> list[Any]:
    name = normal(record_name)
    return [
        zone
        for zone in list(route53_backends[account_id][PARTITION].zones.values())
        if not zone.private_zone and (name == normal(zone.name) or name.endswith("." + normal(zone.name)))
    ]


def zone_holds(zone: Any, record_name: str, value: str) -> bool:
    return any(
        rrset.type == "CNAME"
        and normal(rrset.name) == normal(record_name)
        and any(normal(str(record)) == normal(value) for record in rrset.records or [])
        for rrset in list(zone.rrsets)
    )


def name_validated(certificate: Any, name: str) -> bool:
    """The name's record is in a moto zone that covers it, or no moto zone covers it and the wait is over."""
    account_id = account_of(certificate.arn)
    record_name, value = validation_record(account_id, name)
    zones = public_zones_covering(account_id, record_name)
    if zones:
        return any(zone_holds(zone, record_name, value) for zone in zones)
    return age(certificate) > moto_settings.ACM_VALIDATION_WAIT


def age(certificate: Any) -> float:
    return float((utcnow() - certificate.created_at).total_seconds())


def validation_options(certificate: Any) -> list[dict[str, Any]]:
    """One option per name in request order, each with its own record and validation status."""
    account_id = account_of(certificate.arn)
    options = []
    for name in certificate_names(certificate):
        record_name, value = validation_record(account_id, name)
        validated = certificate.status == "ISSUED" or (
            certificate.status == "PENDING_VALIDATION" and name_validated(certificate, name)
        )
        options.append(
            {
                "DomainName": name,
                "ValidationDomain": name,
                "ValidationStatus": "SUCCESS" if validated else certificate.status,
                "ValidationMethod": "DNS",
            }
        )
        if age(certificate) >= LIMITS.record_seconds:  # AWS fills the record in a few seconds after a request
            options[-1]["ResourceRecord"] = {"Name": record_name, "Type": "CNAME", "Value": value}
    return options


def names_requested(domain_name: str, alternative_names: Iterable[str] | None) -> list[str]:
    return list(dict.fromkeys([domain_name, *(alternative_names or [])]))


def patch_acm() -> None:
    bundle_class = models.CertBundle
    backend_class = models.AWSCertificateManagerBackend
    original_check = bundle_class.check
    original_describe = bundle_class.describe
    original_delete = backend_class.delete_certificate
    original_request = backend_class.request_certificate

    def check(self: Any) -> None:
        if self.type != "AMAZON_ISSUED" or self.status != "PENDING_VALIDATION":
            original_check(self)
        elif all(name_validated(self, name) for name in certificate_names(self)):
            self.status = "ISSUED"
        elif age(self) > LIMITS.validation_timeout_seconds:
            self.status = "VALIDATION_TIMED_OUT"

    def describe(self: Any) -> dict[str, Any]:
        answer: dict[str, Any] = original_describe(self)
        described = answer["Certificate"]
        described["InUseBy"] = certificate_users(account_of(self.arn), self.arn)
        if "DomainValidationOptions" in described:
            described["DomainValidationOptions"] = validation_options(self)
        return answer

    def delete_certificate(self: Any, arn: str) -> None:
        with LOCK:
            if arn in self._certificates and certificate_users(self.account_id, arn):
                raise ResourceInUseException(f"Certificate {arn} in account {self.account_id} is in use.")
            original_delete(self, arn)

    def request_certificate(
        self: Any, domain_name: str, idempotency_token: str, *args: Any, **kwargs: Any
    ) -> str:
        alternative_names = args[0] if args else kwargs.get("subject_alt_names")
        names = names_requested(domain_name, alternative_names)
        distinct = len({normal(name) for name in names})
        if distinct > LIMITS.names_per_certificate:
            raise LimitExceededException(
                f"A certificate has at most {LIMITS.names_per_certificate} domain names, not {distinct}."
            )
        with LOCK:
            known = self._get_arn_from_idempotency_token(idempotency_token) if idempotency_token else None
            if known is None and len(self._certificates) >= LIMITS.max_certificates:
                raise LimitExceededException(
                    f"The account already has {LIMITS.max_certificates} certificates."
                )
            arn: str = original_request(self, domain_name, idempotency_token, *args, **kwargs)
        self._certificates[arn].__dict__.setdefault(REQUESTED_NAMES, names)  # a repeated request: the first's
        return arn

    setattr(bundle_class, "check", check)
    setattr(bundle_class, "describe", describe)
    setattr(backend_class, "delete_certificate", delete_certificate)
    setattr(backend_class, "request_certificate", request_certificate)
    setattr(AWSCertificateManagerResponse, "request_certificate", handle_request_certificate)


def handle_request_certificate(self: Any) -> ActionResult:
    """RequestCertificate's parameters handed to the backend, which checks the names quota."""
    arn = self.acm_backend.request_certificate(
        self._get_param("DomainName"),
        self._get_param("IdempotencyToken"),
        self._get_param("SubjectAlternativeNames"),
        self._get_param("Tags"),
        self._get_param("CertificateAuthorityArn"),
        self._get_param("Options"),
    )
    return ActionResult(result={"CertificateArn": arn})
