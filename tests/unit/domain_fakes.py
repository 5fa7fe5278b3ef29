"""In-memory fakes of the custom-domain ports (DNS, issuer, served certificates, edge, probe, zone), a clock
the test moves by hand and a reversible SecretBox, for DomainService tests."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from anchor_deploy.model.errors import EdgeError, InvalidInput, IssuanceFailed
from anchor_deploy.ports.domains import Certificate, DnsAnswer, DnsOutcome

if TYPE_CHECKING:
    from anchor_deploy.ports.domains import (
        DnsLookup,
        DomainEdge,
        Issuer,
        ServedCertificates,
        TlsProbe,
        ValidationZone,
    )
    from anchor_deploy.ports.runtime import SecretBox


class Clock:
    """Stands still until the test moves it."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def to(self, when: float) -> float:
        self.now = when
        return self.now


class XorBox:
    """A reversible SecretBox: what it seals differs from the plaintext and only it can open it."""

    PREFIX = b"xor1:"

    def __init__(self, key: int = 0x5A) -> None:
        self._key = key

    def seal(self, plaintext: bytes) -> bytes:
        return self.PREFIX + bytes(b ^ self._key for b in plaintext)

    def open(self, sealed: bytes) -> bytes:
        if not sealed.startswith(self.PREFIX):
            raise InvalidInput("sealed value was not made with this box")
        return bytes(b ^ self._key for b in sealed[len(self.PREFIX) :])


class FakeDnsLookup:
    """Answers from a mutable table (name, rdtype) -> DnsAnswer; anything else does not exist."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], DnsAnswer] = {}
        self.queries: list[tuple[str, str]] = []

    def query(self, name: str, rdtype: str) -> DnsAnswer:
        self.queries.append((name, rdtype))
        return self.answers.get((name, rdtype), DnsAnswer(DnsOutcome.NXDOMAIN))

    def set(self, name: str, rdtype: str, *values: str) -> None:
        self.answers[(name, rdtype)] = DnsAnswer(DnsOutcome.OK, tuple(values))

    def cname(self, name: str, target: str) -> None:
        self.set(name, "CNAME", target)

    def fail(self, name: str, rdtype: str, detail: str) -> None:
        self.answers[(name, rdtype)] = DnsAnswer(DnsOutcome.ERROR, detail=detail)

    def clear(self, name: str, rdtype: str) -> None:
        self.answers.pop((name, rdtype), None)


class FakeIssuer:
    """Issues stub certificates with increasing serials, valid from the clock's now for ``lifetime``.
    ``refusals`` are used up one per issue() call before ``refuse`` (a standing refusal) is looked at."""

    kind = "internal"

    def __init__(self, clock: Callable[[], float], lifetime: float = 90 * 86400.0) -> None:
        self._clock = clock
        self.lifetime = lifetime
        self.refusals: list[str] = []
        self.refuse: str | None = None
        self.refuse_revoke: str | None = None
        self.during_issue: Callable[[], None] | None = None
        self.calls: list[tuple[tuple[str, ...], str]] = []
        self.issued: list[Certificate] = []
        self.revoked: list[bytes] = []
        self.outdated_issuers: set[str] = set()
        self.issuer_name = "CN=Fake CA"
        self._serial = 0x1000

    def issue(self, names: Sequence[str], validation_fqdn: str) -> Certificate:
        self.calls.append((tuple(names), validation_fqdn))
        if self.during_issue is not None:
            self.during_issue()
        if self.refusals:
            raise IssuanceFailed(self.refusals.pop(0))
        if self.refuse is not None:
            raise IssuanceFailed(self.refuse)
        self._serial += 1
        serial = format(self._serial, "x")
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        body = f"{serial}:{','.join(names)}"
        certificate = Certificate(
            chain_pem=f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode(),
            key_pem=f"-----BEGIN PRIVATE KEY-----\nkey-{serial}\n-----END PRIVATE KEY-----\n".encode(),
            serial=serial,
            not_before=now,
            not_after=now + datetime.timedelta(seconds=self.lifetime),
            issuer=self.issuer_name,
        )
        self.issued.append(certificate)
        return certificate

    def revoke(self, chain_pem: bytes) -> None:
        if self.refuse_revoke is not None:
            raise IssuanceFailed(self.refuse_revoke)
        self.revoked.append(chain_pem)

    def outdated(self, issuer: str) -> bool:
        return issuer in self.outdated_issuers


class FakeServedCertificates:
    """Certificates by name; ``events`` records every put and remove in order."""

    def __init__(self) -> None:
        self.installed: dict[str, Certificate] = {}
        self.events: list[tuple[str, str, str | None]] = []  # (op, name, serial)
        self._lock = threading.Lock()

    def put(self, name: str, certificate: Certificate) -> None:
        with self._lock:
            self.installed[name] = certificate
            self.events.append(("put", name, certificate.serial))

    def remove(self, name: str) -> None:
        with self._lock:
            gone = self.installed.pop(name, None)
            self.events.append(("remove", name, gone.serial if gone else None))

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self.installed)

    def serial(self, name: str) -> str | None:
        with self._lock:
            found = self.installed.get(name)
            return None if found is None else found.serial

    def lookup(self, server_name: str) -> Certificate | None:
        """What a handshake for ``server_name`` would get: the exact name, then the wildcard one level up."""
        with self._lock:
            if server_name in self.installed:
                return self.installed[server_name]
            if "." in server_name:
                return self.installed.get("*." + server_name.split(".", 1)[1])
            return None


class FakeDomainEdge:
    """Custom-domain links by name; ``fail`` makes attach raise EdgeError."""

    def __init__(self) -> None:
        self.links: dict[str, str] = {}
        self.events: list[tuple[str, str]] = []
        self.fail: str | None = None

    def attach(self, name: str, production_host: str) -> None:
        if self.fail is not None:
            raise EdgeError(self.fail)
        self.links[name] = production_host
        self.events.append(("attach", name))

    def detach(self, name: str) -> None:
        self.links.pop(name, None)
        self.events.append(("detach", name))

    def attached(self) -> Mapping[str, str]:
        return dict(self.links)

    def route(self, server_name: str) -> str | None:
        if server_name in self.links:
            return self.links[server_name]
        if "." in server_name:
            return self.links.get("*." + server_name.split(".", 1)[1])
        return None


class FakeProbe:
    """Serves what the fake edge and certificates hold: the installed serial for a routed name.
    ``error`` makes it raise EdgeError, ``served`` makes it report that serial instead."""

    def __init__(self, certificates: FakeServedCertificates, edge: FakeDomainEdge) -> None:
        self._certificates = certificates
        self._edge = edge
        self.error: str | None = None
        self.served: str | None = None
        self.probed: list[str] = []

    def served_serial(self, name: str) -> str:
        self.probed.append(name)
        if self.error is not None:
            raise EdgeError(self.error)
        if self.served is not None:
            return self.served
        if self._edge.route(name) is None:
            raise EdgeError(f"no route for {name} at the edge")
        certificate = self._certificates.lookup(name)
        if certificate is None:
            raise EdgeError(f"TLS handshake for {name} failed: no certificate")
        return certificate.serial


@dataclass
class FakeZone:
    zone: str
    records: dict[str, tuple[str, ...]] = field(default_factory=dict)
    withdrawn: list[str] = field(default_factory=list)

    def publish(self, fqdn: str, values: Sequence[str]) -> None:
        self.records[fqdn] = tuple(values)

    def withdraw(self, fqdn: str) -> None:
        self.records.pop(fqdn, None)
        self.withdrawn.append(fqdn)

    def published(self) -> Mapping[str, tuple[str, ...]]:
        return dict(self.records)


if TYPE_CHECKING:

    def _fakes_satisfy_their_ports(
        lookup: FakeDnsLookup,
        issuer: FakeIssuer,
        certificates: FakeServedCertificates,
        edge: FakeDomainEdge,
        probe: FakeProbe,
        zone: FakeZone,
        box: XorBox,
    ) -> tuple[DnsLookup, Issuer, ServedCertificates, DomainEdge, TlsProbe, ValidationZone, SecretBox]:
        return lookup, issuer, certificates, edge, probe, zone, box
