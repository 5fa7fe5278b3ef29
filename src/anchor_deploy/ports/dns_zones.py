"""Ports for DNS zones a project linked (model/dns_links.py): writing records into one (Route 53, RFC 2136)
and keeping the links in the store, each with its TSIG secret sealed at rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.domains import DnsRecord


class DnsZoneWriter(Protocol):
    """Writes records into one linked zone. Records that share a name and a type are one record set.

    Types: CNAME, A, AAAA, TXT, and ALIAS (the value a CloudFront domain: Route 53 writes an alias A and
    AAAA record set; a server of RFC 2136 cannot, and says so)."""

    def upsert(self, records: Sequence[DnsRecord]) -> None:
        """Create each record set, or replace what the zone has at that name and type. DnsUpdateFailed with
        the server's or AWS's words if the zone refused or could not be reached."""
        ...

    def delete(self, records: Sequence[DnsRecord]) -> None:
        """Delete the records (only the values given: a record the user changed since stays); one that is
        not there is no error. DnsUpdateFailed as ``upsert``."""
        ...


class DnsZoneWriters(Protocol):
    def writer_for(self, link: DnsLink, secret: bytes | None) -> DnsZoneWriter:
        """The writer of ``link``'s zone; ``secret``: the TSIG secret (opened) for RFC 2136, else None."""
        ...


class DnsLinkRepository(Protocol):
    def add_dns_link(self, link: DnsLink, sealed_secret: bytes | None) -> None:
        """Store the link with its sealed TSIG secret. ZoneLinked if any project has linked the zone
        already; ProjectNotFound for a project that does not exist."""
        ...

    def dns_links(self, project_id: str) -> list[DnsLink]:
        """The project's links, by zone name."""
        ...

    def dns_link_secret(self, zone: str) -> bytes | None:
        """The sealed TSIG secret of the link of ``zone`` (None: no link, or one without a secret)."""
        ...

    def remove_dns_link(self, project_id: str, zone: str) -> bool:
        """Forget the project's link of ``zone``; False if the project has none. A project's links go
        with the project."""
        ...
