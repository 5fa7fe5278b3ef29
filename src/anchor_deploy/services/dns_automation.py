"""DNS automation: a project links a DNS zone it controls (Route 53, or a server taking RFC 2136 updates
signed with its TSIG key), and from then on the records its custom domains need are written there for the
user: created when a domain's records are known, deleted when it is removed.

``DnsLinks`` is the API's use cases (link, unlink, list); ``ZoneAutomation`` is the domain service's
ports.issuance.RecordAutomation. A project's records are only ever written for that project's own domains,
into that project's own links: a record is placed in the linked zone that is its name or the closest parent
of it, and only if its name is the domain's name or below it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from anchor_deploy.model.dns_links import (
    DEFAULT_ALGORITHM,
    RFC2136,
    ROUTE53,
    DnsLink,
    parse_server,
    parse_tsig_key,
    parse_zone,
    parse_zone_id,
)
from anchor_deploy.model.domain_policy import registrable_domain
from anchor_deploy.model.domains import DnsRecord, Domain, validation_sibling
from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import (
    AnchorError,
    DnsLinkNotFound,
    DnsUpdateFailed,
    Forbidden,
    InvalidInput,
    InvalidName,
)
from anchor_deploy.ports.dns_zones import DnsLinkRepository, DnsZoneWriter, DnsZoneWriters
from anchor_deploy.ports.names import PublicSuffixes
from anchor_deploy.ports.runtime import SecretBox
from anchor_deploy.ports.store import DomainRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkRequest:
    """A link as asked for, unchecked: ``target`` is the hosted zone id (route53) or HOST[:PORT]."""

    zone: object
    kind: str
    target: object
    key_name: object = None
    key_algorithm: object = DEFAULT_ALGORITHM
    key_secret: object = None


@dataclass
class DnsLinks:
    store: DnsLinkRepository
    box: SecretBox
    suffixes: PublicSuffixes
    to_ascii: Callable[[str], str]
    to_unicode: Callable[[str], str]
    clock: Callable[[], float]

    def zone_name(self, raw: object) -> str:
        return parse_zone(raw, self.to_ascii, self.to_unicode)

    def link(self, project: Project, request: LinkRequest, token: Token) -> DnsLink:
        """Check and store a link, its TSIG secret sealed. A Route 53 zone is written with the platform's
        own AWS credentials, so only an admin token may link one; an RFC 2136 link carries its own key."""
        zone = self.zone_name(request.zone)
        if registrable_domain(zone, self.suffixes.public_suffix) is None:
            raise InvalidName(
                f"{zone} is a public suffix (on the Public Suffix List); link your own domain, such as "
                f"example.{zone}, or a zone below it"
            )
        sealed: bytes | None = None
        if request.kind == ROUTE53:
            if not token.is_admin:
                raise Forbidden(
                    "a Route 53 zone is written with the platform's own AWS credentials: linking one needs "
                    "an admin token"
                )
            link = DnsLink(zone, project.id, ROUTE53, parse_zone_id(request.target), created_at=self.clock())
        elif request.kind == RFC2136:
            server = parse_server(request.target)
            key = parse_tsig_key(request.key_name, request.key_algorithm, request.key_secret)
            link = DnsLink(zone, project.id, RFC2136, server, key.name, key.algorithm, self.clock())
            sealed = self.box.seal(key.secret)
        else:
            raise InvalidInput("a DNS link is 'route53' (a hosted zone id) or 'rfc2136' (a server and a key)")
        self.store.add_dns_link(link, sealed)
        return link

    def list_links(self, project: Project) -> list[DnsLink]:
        return self.store.dns_links(project.id)

    def unlink(self, project: Project, raw_zone: object) -> DnsLink:
        """Forget the link; records written through it stay in the zone (they still serve the domains)."""
        zone = self.zone_name(raw_zone)
        found = next((link for link in self.store.dns_links(project.id) if link.zone == zone), None)
        if found is None or not self.store.remove_dns_link(project.id, zone):
            raise DnsLinkNotFound(f"project {project.name!r} has no link of the zone {zone}")
        return found


def _owned(domain: Domain, record: DnsRecord) -> bool:
    """A record of ``domain`` sits at its name or below it (``_acme-challenge.``, ACM's ``_x.``, ``*.``)."""
    name = record.name.lower().rstrip(".")
    return name == domain.base_name or name.endswith("." + domain.base_name)


def _shown(records: Sequence[DnsRecord]) -> str:
    return ", ".join(f"{r.type} {r.name}" for r in records)


def _record_sets(records: Sequence[DnsRecord]) -> list[list[DnsRecord]]:
    sets: dict[tuple[str, str], list[DnsRecord]] = {}
    for record in records:
        sets.setdefault((record.name.lower().rstrip("."), record.type), []).append(record)
    return list(sets.values())


@dataclass
class ZoneAutomation:
    """ports.issuance.RecordAutomation on the projects' linked zones."""

    links: DnsLinkRepository
    writers: DnsZoneWriters
    box: SecretBox
    domains: DomainRepository | None = None  # to keep a validation record a wildcard twin still needs

    def placed(self, domain: Domain, records: Sequence[DnsRecord]) -> list[tuple[DnsLink, list[DnsRecord]]]:
        """The domain's records by the project's linked zone that holds them (the closest); records of no
        linked zone, or not at the domain's name or below, are left to the user."""
        links = sorted(self.links.dns_links(domain.project_id), key=lambda link: -len(link.zone))
        placed: dict[str, tuple[DnsLink, list[DnsRecord]]] = {}
        for record in records:
            if not record.value:  # a target not known yet (on AWS, before the first production deployment)
                continue
            if not _owned(domain, record):
                log.warning(
                    "not writing %s %s for %s: not at or below its name",
                    record.type,
                    record.name,
                    domain.name,
                )
                continue
            link = next((link for link in links if link.holds(record.name)), None)
            if link is not None:
                placed.setdefault(link.zone, (link, []))[1].append(record)
        return list(placed.values())

    def publish(self, domain: Domain, records: Sequence[DnsRecord]) -> str:
        return "; ".join(self._publish(link, group) for link, group in self.placed(domain, records))

    def withdraw(self, domain: Domain, records: Sequence[DnsRecord]) -> None:
        """Delete the records, but the validation record while the domain's twin (``x`` for ``*.x`` and the
        other way round, which validate through the same name) is still on the platform."""
        twin = None if self.domains is None else self.domains.domain(validation_sibling(domain.name))
        if twin is not None and not twin.deleting:
            records = [r for r in records if r.purpose != "validation"]
        for link, group in self.placed(domain, records):
            try:
                self._writer(link).delete(group)
                log.info("deleted from %s for %s: %s", link.describe(), domain.name, _shown(group))
            except DnsUpdateFailed as exc:
                log.warning("could not delete %s from %s: %s", _shown(group), link.describe(), exc.message)

    def _publish(self, link: DnsLink, records: list[DnsRecord]) -> str:
        """One write for the zone's records; if it is refused, each record set on its own, so the ones the
        zone takes are written and the note says which were not and why."""
        try:
            writer = self._writer(link)
        except DnsUpdateFailed as exc:
            return f"could not write to {link.zone}: {exc.message}"
        try:
            writer.upsert(records)
            return f"created in {link.describe()}: {_shown(records)}"
        except DnsUpdateFailed as exc:
            sets = _record_sets(records)
            if len(sets) == 1:
                return f"could not write to {link.zone}: {exc.message}"
        written: list[DnsRecord] = []
        refused: list[str] = []
        for group in sets:
            try:
                writer.upsert(group)
                written += group
            except DnsUpdateFailed as failure:
                refused.append(f"{_shown(group[:1])}: {failure.message}")
        notes = [f"created in {link.describe()}: {_shown(written)}"] if written else []
        notes += [f"could not write to {link.zone}: {reason}" for reason in refused]
        return "; ".join(notes)

    def _writer(self, link: DnsLink) -> DnsZoneWriter:
        secret = None
        if link.kind == RFC2136:
            sealed = self.links.dns_link_secret(link.zone)
            secret = None if sealed is None else self._open(sealed, link)
        return self.writers.writer_for(link, secret)

    def _open(self, sealed: bytes, link: DnsLink) -> bytes:
        try:
            return self.box.open(sealed)
        except AnchorError:
            raise DnsUpdateFailed(
                f"the TSIG secret of {link.zone} cannot be opened (the platform's key changed?): link the "
                "zone again"
            ) from None
