"""Ports for custom domains: the store's quota-checked claim and fair queue of checks, DNS lookups, the
validation zone, certificate issuers, the served certificates, the edge's custom-domain hosts and the TLS
probe that proves a name is served."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from anchor_deploy.model.dns_answers import DnsAnswer, DnsOutcome
from anchor_deploy.model.domains import Domain
from anchor_deploy.ports.store import DomainRepository, ProjectRepository, Store


@dataclass(frozen=True)
class Certificate:
    chain_pem: bytes  # leaf first, then intermediates (and for the internal CA its root)
    key_pem: bytes
    serial: str  # hex, lowercase
    not_before: datetime.datetime
    not_after: datetime.datetime
    issuer: str  # the issuer's distinguished name as shown to users


class KeyedIssuer(Protocol):
    """A synchronous authority that hands the key back (the local CA, ACME): gets certificates issued for
    names whose ``_acme-challenge`` CNAME points at ``validation_fqdn``. It reaches the domain service as
    a ports.issuance.Issuer through adapters/delegated_issuer.py."""

    kind: str  # "internal" or "acme"

    def issue(self, names: Sequence[str], validation_fqdn: str) -> Certificate:
        """Blocking; IssuanceFailed with a readable reason when the authority refuses or times out."""
        ...

    def revoke(self, chain_pem: bytes) -> None:
        """Revoke a certificate this issuer issued; IssuanceFailed if the authority refuses."""
        ...

    def outdated(self, issuer: str) -> bool:
        """Whether a certificate issued by ``issuer`` (its issuer name) must be re-issued now, before its
        renewal time: e.g. the local CA's root was replaced."""
        ...


class ValidationZone(Protocol):
    """TXT records the platform publishes in its own validation zone (answered by its DNS server)."""

    zone: str

    def publish(self, fqdn: str, values: Sequence[str]) -> None:
        """Replace the TXT set at ``fqdn`` (a name inside ``zone``)."""
        ...

    def withdraw(self, fqdn: str) -> None:
        """Remove every TXT at ``fqdn``; idempotent."""
        ...

    def published(self) -> Mapping[str, tuple[str, ...]]: ...


class DnsLookup(Protocol):
    def query(self, name: str, rdtype: str) -> DnsAnswer:
        """One lookup of ``rdtype`` (CNAME, A, AAAA, CAA) at ``name``, never raising."""
        ...


class ServedCertificates(Protocol):
    """The certificates the edge hands out by SNI (a PEM bundle per name, keys kept 0600)."""

    def put(self, name: str, certificate: Certificate) -> None:
        """Install or replace atomically: a handshake sees the old or the new bundle, never a mix.
        EdgeError if it cannot be installed."""
        ...

    def remove(self, name: str) -> None:
        """EdgeError if it cannot be removed."""
        ...

    def names(self) -> list[str]: ...

    def serial(self, name: str) -> str | None:
        """The serial of the installed certificate, or None."""
        ...


class DomainEdge(Protocol):
    """Custom domains at the edge: ``name`` serves whatever ``production_host`` serves, following every
    rollback without being touched itself."""

    def attach(self, name: str, production_host: str) -> None: ...

    def detach(self, name: str) -> None: ...

    def attached(self) -> Mapping[str, str]:
        """name -> production host, as the edge has it now."""
        ...


class TlsProbe(Protocol):
    def served_serial(self, name: str) -> str:
        """Handshake with the edge for ``name`` and return the serial of the leaf it presented; raise
        EdgeError (with a readable message) if the handshake fails."""
        ...


class DomainQueue(Protocol):
    """What the domain service needs of the store beyond the Store port's rows: a claim that respects the
    per-project quota and a pick of due checks that one project's backlog cannot fill."""

    def add_domain_within(self, domain: Domain, quota: int) -> bool:
        """``add_domain``, unless the domain's project already holds ``quota`` domains (not counting ones
        being removed): then False and nothing is stored. The count and the insert are one transaction, so
        concurrent adds cannot pass the quota together. DomainTaken and ProjectNotFound as ``add_domain``."""
        ...

    def domains_due_fairly(self, now: float, per_project: int, limit: int) -> list[Domain]:
        """Due domains (deleting ones included), at most ``per_project`` of each project and ``limit`` in all,
        round-robin: every project's first comes before any project's second. Within a project (and within a
        round) never-checked domains come first, then the most overdue."""
        ...


class DomainStore(Store, DomainQueue, Protocol):
    """The whole store with its domain queue: what a provider's store offers."""


class DomainRepositories(DomainRepository, DomainQueue, ProjectRepository, Protocol):
    """The store as the domain service uses it: domains, their queue, their projects."""


__all__ = ["DnsAnswer", "DnsOutcome"]  # where they were before they moved to the model
