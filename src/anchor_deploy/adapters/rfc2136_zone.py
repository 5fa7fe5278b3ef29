"""A linked zone on any server that takes RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS).

Each call is one UPDATE message over TCP for the link's zone, signed with the user's key: ``upsert``
replaces each record set (name and type) with the values given, ``delete`` deletes exactly the values
given (a record the user changed since stays; one that is not there is no error). The server's answer
is the outcome: anything but NOERROR is DnsUpdateFailed naming the rcode (NOTAUTH, REFUSED, …) or the
TSIG error (BADKEY, BADSIG, BADTIME)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.domains import DnsRecord
from anchor_deploy.model.errors import DnsUpdateFailed

TIMEOUT = 5.0  # seconds for the whole exchange
TTL = 300
WRITABLE = ("CNAME", "A", "AAAA", "TXT")
_RCODE_HINTS = {
    dns.rcode.NOTAUTH: "the server is not authoritative for the zone, or takes no updates signed by this key",
    dns.rcode.REFUSED: "the server's policy refused it: is this key allowed to update the zone?",
    dns.rcode.NOTZONE: "a name is outside the zone",
    dns.rcode.SERVFAIL: "the server failed to apply it",
}
_TSIG_ERRORS: dict[int, str] = {
    dns.rcode.BADKEY: "BADKEY (the server does not know a key of this name and algorithm)",
    dns.rcode.BADSIG: "BADSIG (the key's secret is not the server's)",
    dns.rcode.BADTIME: "BADTIME (the server's clock and this machine's differ too much)",
}


def _rdata(record: DnsRecord) -> dns.rdata.Rdata:
    value = record.value
    if record.type == "CNAME":
        value = value.rstrip(".") + "."
    elif record.type == "TXT" and not value.startswith('"'):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return dns.rdata.from_text(dns.rdataclass.IN, record.type, value, origin=dns.name.root, relativize=False)


def _record_sets(records: Sequence[DnsRecord]) -> dict[tuple[str, str], list[DnsRecord]]:
    sets: dict[tuple[str, str], list[DnsRecord]] = {}
    for record in records:
        if record.type == "ALIAS":
            raise DnsUpdateFailed(
                f"an ALIAS record ({record.name} to {record.value}) cannot be written by RFC 2136 dynamic "
                "update; add it by hand at your DNS provider (ALIAS, ANAME or flattened CNAME)"
            )
        if record.type not in WRITABLE:
            raise DnsUpdateFailed(f"a {record.type} record ({record.name}) is not one this platform writes")
        sets.setdefault((record.name.lower().rstrip("."), record.type), []).append(record)
    return sets


class Rfc2136ZoneWriter:
    def __init__(self, link: DnsLink, secret: bytes, timeout: float = TIMEOUT, ttl: int = TTL) -> None:
        self._link = link
        self._zone = dns.name.from_text(link.zone)
        self._key = dns.tsig.Key(link.key_name, secret, link.key_algorithm)
        self._timeout = timeout
        self._ttl = ttl

    def upsert(self, records: Sequence[DnsRecord]) -> None:
        sets = _record_sets(records)
        if not sets:
            return
        update = self._update()
        for (name, _type), members in sets.items():
            update.replace(dns.name.from_text(name), self._ttl, *(_rdata(r) for r in members))
        self._send(update, "write")

    def delete(self, records: Sequence[DnsRecord]) -> None:
        sets = _record_sets(records)
        if not sets:
            return
        update = self._update()
        for (name, _type), members in sets.items():
            update.delete(dns.name.from_text(name), *(_rdata(r) for r in members))
        self._send(update, "delete")

    def _update(self) -> dns.update.UpdateMessage:
        update = dns.update.UpdateMessage(self._zone)
        update.use_tsig(self._key)
        return update

    def _where(self) -> str:
        return f"{self._link.target} (zone {self._link.zone})"

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        host, port = self._link.server()
        try:
            with socket.create_connection((host, port), timeout=self._timeout) as sock:
                dns.query.send_tcp(sock, update)
                (length,) = struct.unpack("!H", _read(sock, 2))
                wire = _read(sock, length)
        except TimeoutError:
            raise DnsUpdateFailed(
                f"the DNS server {self._where()} did not answer the update within {self._timeout:g} s"
            ) from None
        except (OSError, EOFError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise DnsUpdateFailed(f"the DNS server {self._where()} could not be reached: {reason}") from None
        self._check(wire, update.mac, what)

    def _check(self, wire: bytes, request_mac: bytes | None, what: str) -> None:
        """The answer's rcode and TSIG error (a refusal comes unsigned); a success must be signed."""
        try:
            answer = dns.message.from_wire(wire, keyring=False)
        except dns.exception.DNSException as exc:
            raise DnsUpdateFailed(
                f"the DNS server {self._where()} sent an answer that is no DNS: {exc}"
            ) from None
        error = int(answer.tsig_error or 0) if answer.had_tsig else 0
        if error:
            words = _TSIG_ERRORS.get(error, f"TSIG error {error}")
            raise DnsUpdateFailed(
                f"the DNS server {self._where()} refused the key {self._link.key_name}: {words}"
            )
        rcode = answer.rcode()
        if rcode != dns.rcode.NOERROR:
            hint = _RCODE_HINTS.get(rcode, "")
            raise DnsUpdateFailed(
                f"the DNS server {self._where()} refused to {what} the records: {dns.rcode.to_text(rcode)}"
                + (f" ({hint})" if hint else "")
            )
        try:
            dns.message.from_wire(wire, keyring=self._key, request_mac=request_mac)
        except dns.exception.DNSException as exc:
            raise DnsUpdateFailed(
                f"the DNS server {self._where()} said it applied the update, but its answer is not signed "
                f"with the key: {exc}"
            ) from None


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError("the server closed the connection before answering")
        data += chunk
    return data
