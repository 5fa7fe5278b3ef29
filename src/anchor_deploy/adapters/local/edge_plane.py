"""The local edge as a DomainPlane: a custom domain is served by Caddy from a certificate file installed by
name (SNI) and a link from the name to its project's production host, proven by a real TLS handshake.

The link names the production host, not a deployment, so a rollback moves nothing here. Certificate files
and links are data planes made to match the domain rows (``converge``)."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from anchor_deploy.model.domain_diagnosis import SERVED, probe_name
from anchor_deploy.model.domains import DnsRecord, Domain
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import EdgeError, InvalidInput
from anchor_deploy.model.names import production_host
from anchor_deploy.ports.domains import Certificate, DomainEdge, ServedCertificates, TlsProbe
from anchor_deploy.ports.issuance import Attachment, AttachState, QuotaUse
from anchor_deploy.ports.runtime import SecretBox

log = logging.getLogger(__name__)


class EdgeRows(Protocol):
    """What the plane reads of the store."""

    def domain(self, name: str) -> Domain | None: ...

    def domain_certificate(self, name: str) -> tuple[bytes, bytes] | None: ...

    def project_by_id(self, project_id: str) -> Project | None: ...


class EdgePlane:
    kind = "edge"

    def __init__(
        self,
        rows: EdgeRows,
        box: SecretBox,
        certificates: ServedCertificates,
        edge: DomainEdge,
        probe: TlsProbe,
        base_domain: str,
        edge_hostname: str,
        edge_addresses: tuple[str, ...],
        fault: Callable[[str], None] = lambda _point: None,
    ) -> None:
        self._rows = rows
        self._box = box
        self._certificates = certificates
        self._edge = edge
        self._probe = probe
        self._base_domain = base_domain
        self.edge_hostname = edge_hostname
        self.edge_addresses = edge_addresses
        self._fault = fault
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def admit(self, domain: Domain, project: Project, held: Sequence[Domain]) -> None:
        """The edge takes any number of names: the per-project quota is the domain service's."""

    def routing_records(self, domain: Domain, project: Project, apex: bool) -> list[DnsRecord]:
        routed = domain.name if domain.name.startswith("*.") else domain.base_name
        if not apex:
            return [DnsRecord("CNAME", routed, self.edge_hostname, "routing")]
        note = "an ALIAS/ANAME record to the edge works too"
        return [
            DnsRecord("AAAA" if ":" in address else "A", routed, address, "routing", note)
            for address in self.edge_addresses
        ]

    def attach(self, domain: Domain, project: Project) -> Attachment:
        """Install the certificate and the link, then prove it with a real handshake."""
        try:
            with self._lock(domain.name):
                if not self._install(domain):
                    return Attachment(AttachState.PENDING, "the domain is being removed")
            served = self._probe.served_serial(probe_name(domain))
        except EdgeError as exc:
            return Attachment(AttachState.FAILED, str(exc))
        assert domain.certificate is not None
        if served != domain.certificate.serial:
            return Attachment(
                AttachState.FAILED, f"the edge served certificate {served}, not {domain.certificate.serial}"
            )
        return Attachment(AttachState.ACTIVE)

    def _install(self, domain: Domain) -> bool:
        """Install the certificate files and link the name; False if the domain turned out to be going.

        Another control-plane process may remove the domain meanwhile: its removal marks the row first,
        then detaches; so the row is read again after linking, and what was installed for a domain being
        removed is taken down again. Whichever comes last, the name ends detached."""
        info = domain.certificate
        assert info is not None
        if self._certificates.serial(domain.name) != info.serial:
            stored = self._rows.domain_certificate(domain.name)
            if stored is None:
                raise EdgeError("the certificate is missing from the database")
            chain, sealed_key = stored
            self._certificates.put(
                domain.name,
                Certificate(
                    chain,
                    self._box.open(sealed_key),
                    info.serial,
                    datetime.datetime.fromtimestamp(info.not_before, datetime.UTC),
                    datetime.datetime.fromtimestamp(info.not_after, datetime.UTC),
                    info.issuer,
                ),
            )
        project = self._rows.project_by_id(domain.project_id)
        if project is None:
            raise EdgeError("the project is gone")
        self._edge.attach(domain.name, production_host(project.name, self._base_domain))
        fresh = self._rows.domain(domain.name)
        if fresh is None or fresh.deleting or fresh.project_id != domain.project_id:
            self._edge.detach(domain.name)
            self._certificates.remove(domain.name)
            return False
        return True

    def detach(self, domain: Domain) -> bool:
        with self._lock(domain.name):
            self._edge.detach(domain.name)
            self._fault("domain:after_detach")
            self._certificates.remove(domain.name)
        with self._guard:  # a later domain of that name gets a lock of its own
            self._locks.pop(domain.name, None)
        return True

    def forget_project(self, project_id: str) -> None:
        """Each domain of the project was detached by its removal: nothing is held per project."""

    def converge(self, domains: Sequence[Domain]) -> dict[str, list[str]]:
        """Install what an issued domain lacks, drop what no live domain owns. Idempotent."""
        report: dict[str, list[str]] = {"installed": [], "dropped": []}
        live = {d.name: d for d in domains if not d.deleting and d.certificate_status in SERVED}
        attached = self._edge.attached()
        for name, domain in live.items():
            assert domain.certificate is not None
            project = self._rows.project_by_id(domain.project_id)
            host = production_host(project.name, self._base_domain) if project else None
            stale = self._certificates.serial(name) != domain.certificate.serial or attached.get(name) != host
            if stale:
                try:
                    with self._lock(name):
                        self._install(domain)
                    report["installed"].append(name)
                except (EdgeError, ValueError, InvalidInput) as exc:
                    log.warning("could not install %s at the edge: %s", name, exc)
        for name in set(attached) - set(live):
            with self._lock(name):
                if not self._is_live(name):  # looked at again: it may have been issued since the snapshot
                    self._edge.detach(name)
                    report["dropped"].append(name)
        for name in set(self._certificates.names()) - set(live):
            with self._lock(name):
                if not self._is_live(name):
                    self._certificates.remove(name)
                    report["dropped"].append(name)
        return report

    def _is_live(self, name: str) -> bool:
        domain = self._rows.domain(name)
        return domain is not None and not domain.deleting and domain.certificate_status in SERVED

    def quotas(self, project: Project | None) -> list[QuotaUse]:
        """The edge has no quota of its own."""
        return []
