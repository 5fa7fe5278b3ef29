"""Ports for getting a custom domain served: an issuer that may be asynchronous and keep the key (ACM) or
hand it back (the local CA, ACME), the plane that puts an issued name in front of production (the local
edge, or CloudFront), and DNS zones the platform may write records into for the user.

The domain service drives them as one state machine: ``Issuer.request`` once, ``Issuer.poll`` until the
certificate is issued (or fails), then ``DomainPlane.attach`` until the name is active; ``detach`` and
``Issuer.release`` on removal, each called again until it reports that it is done."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from anchor_deploy.model.domains import CertificateStatus, DnsRecord, Domain, IssuedInfo
from anchor_deploy.model.entities import Project
from anchor_deploy.ports.domains import Certificate


class IssuanceState(enum.StrEnum):
    PENDING = "pending"  # waiting: for the validation record, for the authority
    ISSUED = "issued"
    REFUSED = "refused"  # the authority refused this attempt; the service tries again, a few times
    FAILED = "failed"  # final until the user retries (FAILED, VALIDATION_TIMED_OUT, REVOKED, …)


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate as the issuer hands it over."""

    reference: str  # the issuer's name for it: an ACM ARN, or the serial for issuers that hand keys back
    info: IssuedInfo
    material: Certificate | None = None  # chain and key, from issuers that hand the key back; None: kept
    renewal: str = ""  # the authority's own renewal status, for issuers that renew by themselves (ACM)


@dataclass(frozen=True)
class Order:
    """What ``Issuer.request`` started."""

    reference: str  # the issuer's handle for the request (an ACM ARN); "" when it keeps none
    records: tuple[DnsRecord, ...] = ()  # validation records, when known already


@dataclass(frozen=True)
class Progress:
    """What ``Issuer.poll`` found."""

    state: IssuanceState
    status: CertificateStatus  # what the domain shows as certificateStatus
    records: tuple[DnsRecord, ...] = ()  # the validation records as known now (empty: not known yet)
    reason: str = ""  # PENDING: what is awaited; REFUSED and FAILED: why, in words a user can act on
    certificate: IssuedCertificate | None = None  # ISSUED: the certificate


class Issuer(Protocol):
    """Gets certificates issued for one domain at a time."""

    kind: str  # "internal", "acme", "acm"
    renews_itself: bool  # True: the authority renews (ACM); False: the service asks for a new one when due

    def records(self, domain: Domain) -> tuple[DnsRecord, ...]:
        """The validation records the user must publish, as far as the row tells (the issuer's own choice:
        a CNAME delegating ``_acme-challenge`` to the platform's zone, or ACM's CNAME)."""
        ...

    def request(self, domain: Domain) -> Order:
        """Start issuance for ``domain.name``: idempotent for one domain and one attempt (a request retried
        after a crash gets the same order). IssuanceFailed if the authority refuses to take it."""
        ...

    def poll(self, domain: Domain) -> Progress:
        """Where issuance of ``domain`` stands now (``domain.certificate_ref`` names the order). Never
        raises for what the authority or DNS answers: that is in the Progress."""
        ...

    def renew(self, domain: Domain) -> Progress:
        """For issuers that do not renew by themselves: a new certificate for an issued domain, now."""
        ...

    def release(self, domain: Domain, orphan: IssuedCertificate | None = None) -> bool:
        """Revoke or delete what was issued for ``domain`` (quietly if the authority refuses to revoke), or
        only ``orphan``: a certificate just handed over for a domain removed meanwhile, never stored.
        False: the authority cannot let go yet (a certificate still in use): call again later."""
        ...

    def outdated(self, issuer: str) -> bool:
        """Whether a certificate issued by ``issuer`` must be replaced before its renewal time."""
        ...


class AttachState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"


@dataclass(frozen=True)
class Attachment:
    """What ``DomainPlane.attach`` found or did."""

    state: AttachState
    reason: str = ""  # PENDING: what is awaited; FAILED: why, with the edge's or AWS's own words
    served: IssuedCertificate | None = None  # the certificate the plane serves for the name, if not the
    # domain's own (CloudFront: the distribution's certificate covering every alias on it)


@dataclass(frozen=True)
class QuotaUse:
    """One quota, its limit and how much of it is used."""

    code: str  # stable: "domains_per_project", "acm_certificates", "cloudfront_aliases", …
    name: str  # in words
    limit: int
    used: int
    scope: str  # "account", "project <name>", "distribution <id>"
    source: str  # where the limit comes from: "ANCHOR_DOMAIN_QUOTA", "Service Quotas", "AWS default"


class DomainPlane(Protocol):
    """The install step: puts an issued name in front of its project's production, takes it away again."""

    kind: str  # "edge" (the local Caddy edge), "cloudfront"

    def admit(self, domain: Domain, project: Project, held: Sequence[Domain]) -> None:
        """Before a new domain is stored: QuotaExceeded, naming the quota, when no placement exists for it
        (``held``: the project's other domains). Reserves nothing that outlives a failed add."""
        ...

    def routing_records(self, domain: Domain, project: Project, apex: bool) -> list[DnsRecord]:
        """The records that send visitors of ``domain`` to this plane."""
        ...

    def attach(self, domain: Domain, project: Project) -> Attachment:
        """Serve ``domain`` (its certificate issued) for the project's production; called again while
        PENDING, idempotent. Never touched by a rollback: it follows production by itself."""
        ...

    def detach(self, domain: Domain) -> bool:
        """Stop serving ``domain`` and free what it held here. False: not finished (CloudFront still
        deploying, or holding a certificate): call again later. Idempotent."""
        ...

    def forget_project(self, project_id: str) -> None:
        """A project is being deleted: take down everything it holds here (resumable by calling again)."""
        ...

    def converge(self, domains: Sequence[Domain]) -> dict[str, list[str]]:
        """Make the plane match the rows (every domain, deleting ones included): finish what a crash cut
        short, drop what no domain owns. Returns what it did, by kind."""
        ...

    def quotas(self, project: Project | None) -> list[QuotaUse]:
        """The plane's quotas with their use (and the project's own, if given)."""
        ...


class RecordAutomation(Protocol):
    """Creates and deletes a domain's DNS records in a zone the user linked (Route 53, RFC 2136)."""

    def publish(self, domain: Domain, records: Sequence[DnsRecord]) -> str:
        """Create or update ``records`` where a linked zone of the domain's project holds them. Returns a
        note for the domain ("" when no zone is linked): what was written, or why it could not be."""
        ...

    def withdraw(self, domain: Domain, records: Sequence[DnsRecord]) -> None:
        """Delete ``records`` written for ``domain`` (the ones no other domain still needs); best effort."""
        ...


class NoAutomation:
    """No zone is ever linked: the user adds every record."""

    def publish(self, domain: Domain, records: Sequence[DnsRecord]) -> str:
        return ""

    def withdraw(self, domain: Domain, records: Sequence[DnsRecord]) -> None:
        return None
