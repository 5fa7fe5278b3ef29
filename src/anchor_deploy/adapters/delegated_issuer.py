"""The local issuers (the internal CA, ACME) as an asynchronous Issuer: validation by CNAME delegation.

The user points ``_acme-challenge.<name>`` at ``<label>.<validation zone>`` once, for the life of the
domain; the platform answers the challenges in that zone. A poll looks the CNAME up and, once it is seen,
gets the certificate issued there and then (these authorities are synchronous and hand the key back)."""

from __future__ import annotations

from collections.abc import Callable

from anchor_deploy.model.domain_diagnosis import SERVED, caa_warning, record_present, waiting_reason
from anchor_deploy.model.domain_policy import PublicSuffixOf
from anchor_deploy.model.domains import CertificateStatus, DnsRecord, Domain, IssuedInfo
from anchor_deploy.model.errors import IssuanceFailed
from anchor_deploy.ports.domains import Certificate, DnsLookup, KeyedIssuer
from anchor_deploy.ports.issuance import IssuanceState, IssuedCertificate, Order, Progress

ChainOf = Callable[[str], "tuple[bytes, bytes] | None"]
"""The stored (chain, sealed key) of a domain's certificate (the store's ``domain_certificate``)."""


class DelegatedIssuer:
    renews_itself = False

    def __init__(
        self,
        keyed: KeyedIssuer,
        lookup: DnsLookup,
        validation_zone: str,
        stored_certificate: ChainOf,
        public_suffix: PublicSuffixOf,
        caa_identity: str = "",
        on_revoke_refused: Callable[[str], None] = lambda _why: None,
    ) -> None:
        self._keyed = keyed
        self._lookup = lookup
        self._zone = validation_zone
        self._stored = stored_certificate
        self._public_suffix = public_suffix
        self._caa_identity = caa_identity
        self._on_revoke_refused = on_revoke_refused
        self.kind = keyed.kind

    def records(self, domain: Domain) -> tuple[DnsRecord, ...]:
        target = domain.validation_target(self._zone)
        note = "keep it: certificate renewals use it"
        return (DnsRecord("CNAME", domain.challenge_name, target, "validation", note),)

    def request(self, domain: Domain) -> Order:
        return Order("", self.records(domain))

    def poll(self, domain: Domain) -> Progress:
        return self._issue(domain, CertificateStatus.PENDING_VALIDATION, IssuanceState.PENDING, caa=True)

    def renew(self, domain: Domain) -> Progress:
        return self._issue(domain, domain.certificate_status, IssuanceState.REFUSED, caa=False)

    def _issue(self, domain: Domain, status: CertificateStatus, unseen: IssuanceState, caa: bool) -> Progress:
        records = self.records(domain)
        record = records[0]
        found = self._lookup.query(record.name, "CNAME")
        if not record_present(record, found):
            reason = waiting_reason(record, found)
            if caa:
                reason += caa_warning(
                    domain.name, self._caa_identity, self._lookup.query, self._public_suffix
                )
            return Progress(unseen, status, records, reason)
        try:
            certificate = self._keyed.issue([domain.name], record.value)
        except IssuanceFailed as exc:
            return Progress(IssuanceState.REFUSED, status, records, exc.message)
        issued = IssuedCertificate(certificate.serial, _info(certificate), certificate)
        return Progress(IssuanceState.ISSUED, CertificateStatus.ISSUED, records, "", issued)

    def release(self, domain: Domain, orphan: IssuedCertificate | None = None) -> bool:
        if orphan is not None:
            chain = orphan.material.chain_pem if orphan.material is not None else None
        else:
            stored = self._stored(domain.name) if domain.certificate_status in SERVED else None
            chain = stored[0] if stored is not None else None
        if chain is not None:
            try:
                self._keyed.revoke(chain)
            except IssuanceFailed as exc:
                self._on_revoke_refused(exc.message)
        return True

    def outdated(self, issuer: str) -> bool:
        return self._keyed.outdated(issuer)


def _info(certificate: Certificate) -> IssuedInfo:
    return IssuedInfo(
        certificate.serial,
        certificate.issuer,
        certificate.not_before.timestamp(),
        certificate.not_after.timestamp(),
    )
