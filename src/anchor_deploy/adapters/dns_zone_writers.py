"""The DnsZoneWriters port: a link's writer, Route 53 or RFC 2136. The AWS clients (and boto3) are made on
the first Route 53 link used, from the standard AWS environment: the local provider needs none until then."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from anchor_deploy.adapters.rfc2136_zone import Rfc2136ZoneWriter
from anchor_deploy.model.dns_links import ROUTE53, DnsLink
from anchor_deploy.model.errors import DnsUpdateFailed
from anchor_deploy.ports.dns_zones import DnsZoneWriter

if TYPE_CHECKING:
    from anchor_deploy.adapters.aws.clients import AwsClients


def _default_clients() -> AwsClients:
    from anchor_deploy.adapters.aws.clients import AwsClients  # boto3 only when used

    return AwsClients()


class ZoneWriters:
    def __init__(self, clients: Callable[[], AwsClients] = _default_clients) -> None:
        self._make_clients = clients
        self._clients: AwsClients | None = None
        self._lock = threading.Lock()

    def _aws(self) -> AwsClients:
        with self._lock:
            if self._clients is None:
                self._clients = self._make_clients()
            return self._clients

    def writer_for(self, link: DnsLink, secret: bytes | None) -> DnsZoneWriter:
        if link.kind == ROUTE53:
            from anchor_deploy.adapters.route53_zone import Route53ZoneWriter  # as above

            return Route53ZoneWriter(self._aws(), link.target, link.zone)
        if not secret:
            raise DnsUpdateFailed(f"the link of {link.zone} has no TSIG secret: link the zone again")
        return Rfc2136ZoneWriter(link, secret)
