"""The DnsLookup port with dnspython: asks the configured recursive resolvers (or the system's), never
caches, and turns every outcome into a DnsAnswer that a status reason can quote."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from anchor_deploy.ports.domains import DnsAnswer, DnsOutcome


class DnsPythonLookup:
    def __init__(self, resolvers: tuple[tuple[str, int], ...] = (), timeout: float = 3.0) -> None:
        if resolvers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [address for address, _ in resolvers]
            ports = {port for _, port in resolvers}
            if len(ports) == 1:
                resolver.port = ports.pop()
            else:
                resolver.nameserver_ports = {address: port for address, port in resolvers}
        else:
            resolver = dns.resolver.Resolver()
        resolver.lifetime = timeout
        resolver.timeout = min(timeout, 2.0)
        resolver.cache = None
        self._resolver = resolver
        self.described = ", ".join(f"{a}:{p}" for a, p in resolvers) or "the system's resolvers"

    def query(self, name: str, rdtype: str) -> DnsAnswer:
        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return DnsAnswer(DnsOutcome.NXDOMAIN)
        except dns.resolver.NoNameservers as exc:
            return DnsAnswer(DnsOutcome.ERROR, detail=f"the resolvers failed: {_short(exc)}")
        except dns.exception.Timeout:
            return DnsAnswer(DnsOutcome.ERROR, detail=f"no answer from {self.described} in time")
        except dns.exception.DNSException as exc:
            return DnsAnswer(DnsOutcome.ERROR, detail=_short(exc))
        wanted = dns.rdatatype.from_text(rdtype)
        owner = dns.name.from_text(name)
        values: list[str] = []
        for rrset in answer.response.answer:
            # Only the records at the name itself: a CNAME query stops at the first hop, and an A query
            # that went through a CNAME is still an answer for the name.
            if rrset.rdtype != wanted or (wanted == dns.rdatatype.CNAME and rrset.name != owner):
                continue
            for rdata in rrset:
                values.append(_text(rdata, wanted))
        if not values:
            return DnsAnswer(DnsOutcome.NODATA)
        return DnsAnswer(DnsOutcome.OK, tuple(sorted(set(values))))


def _text(rdata: object, rdtype: dns.rdatatype.RdataType) -> str:
    if rdtype == dns.rdatatype.CNAME:
        return str(rdata.target).rstrip(".").lower()  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.CAA:
        value = rdata.value.decode(errors="replace")  # type: ignore[attr-defined]
        return f"{rdata.tag.decode(errors='replace').lower()} {value}"  # type: ignore[attr-defined]
    return str(rdata).lower()


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
