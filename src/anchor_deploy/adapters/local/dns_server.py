"""A small authoritative DNS server (UDP and TCP) for the platform's validation zone.

Users delegate ``_acme-challenge.<their name>`` with a CNAME to ``<token>.<validation zone>``; the platform
publishes the ACME dns-01 TXT values there and this server answers for them. It can also serve a few static
records in extra zones (tests, or a user's zone the platform answers for) and follows CNAMEs between the zones
it serves. It never recurses: names outside its zones get REFUSED.

Answers come from an immutable snapshot that ``publish``/``withdraw`` replace whole, so a query sees the old
TXT set or the new one, never a mix. Names are kept lowercase, without the trailing dot.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.TXT
import dns.rrset

log = logging.getLogger(__name__)

StaticRecords = Iterable[tuple[str, str, str]] | Mapping[tuple[str, str], str | Sequence[str]]

_IN = dns.rdataclass.IN
_HEADER = struct.Struct("!HHHHHH")
_HEADER_SIZE = 12
_QR = 0x8000
_RD = 0x0100
_OPCODE_MASK = 0x7800
_MAX_CHAIN = 8  # CNAME hops followed inside the served zones
_OUR_PAYLOAD = 1232  # the EDNS payload we advertise and the most we send over UDP (DNS flag day 2020)
_PLAIN_UDP_LIMIT = 512
_TCP_LIMIT = 65535
_MAX_TCP_CONNECTIONS = 64
_MAX_TXT_STRING = 255
# SOA timers: tiny, the zone changes every few seconds while certificates are issued.
_SOA_REFRESH = 60
_SOA_RETRY = 10
_SOA_EXPIRE = 3600
_NEGATIVE_TTL = 1
_NOT_TYPES_FOR_STATIC = frozenset({dns.rdatatype.SOA})


def _parse_name(text: str) -> dns.name.Name:
    """A name given as text, absolute and lowercase; ValueError if it is not a valid DNS name."""
    if not isinstance(text, str):
        raise TypeError(f"a DNS name must be a str, not {type(text).__name__}")
    if not text.isascii():
        raise ValueError(f"{text!r}: use the ASCII (A-label) form of the name")
    stripped = text.strip()
    if not stripped or stripped == ".":
        raise ValueError(f"{text!r} is not a DNS name")
    try:
        return dns.name.from_text(stripped, origin=dns.name.root).canonicalize()
    except dns.exception.DNSException as exc:
        raise ValueError(f"{text!r} is not a valid DNS name: {exc}") from exc


def _key(name: dns.name.Name) -> str:
    return name.canonicalize().to_text(omit_final_dot=True)


def _zone_for(zones: Sequence[dns.name.Name], name: dns.name.Name) -> dns.name.Name | None:
    """The most specific served zone containing ``name`` (zones are sorted longest first)."""
    for zone in zones:
        if name.is_subdomain(zone):
            return zone
    return None


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    if not isinstance(value, str):
        raise TypeError(f"a TXT value must be a str, not {type(value).__name__}")
    raw = value.encode()
    if len(raw) > _MAX_TXT_STRING:
        raise ValueError(f"a TXT value is at most {_MAX_TXT_STRING} bytes (got {len(raw)})")
    return dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, [raw])


def _flatten(records: StaticRecords) -> list[tuple[str, str, str]]:
    if isinstance(records, Mapping):
        flat: list[tuple[str, str, str]] = []
        for (name, rdtype), values in records.items():
            for value in [values] if isinstance(values, str) else values:
                flat.append((name, rdtype, value))
        return flat
    return [(name, rdtype, value) for name, rdtype, value in records]


@dataclass(frozen=True)
class _Snapshot:
    """Everything a query reads, replaced whole on every change."""

    serial: int
    zones: tuple[dns.name.Name, ...]  # longest first
    nodes: Mapping[str, Mapping[dns.rdatatype.RdataType, dns.rdataset.Rdataset]]
    cnames: Mapping[str, dns.name.Name]
    existing: frozenset[str]  # owner names plus the empty non-terminals between them and their apex
    published: Mapping[str, tuple[str, ...]]


class ZoneServer:
    """Authoritative DNS for ``zone`` (the validation zone, where ``publish`` puts TXT sets) and for
    ``extra_zones``, which hold only SOA, NS and the ``records`` given here.

    ``records`` are ``(name, type, value)`` triples, or a mapping ``{(name, type): value or values}``. Values
    are zone-file text with absolute names (``"tok.acme.test"`` needs no trailing dot), except TXT values,
    which are the literal string. A name with a CNAME may hold nothing else; SOA is always generated and NS
    at an apex defaults to ``ns.<zone>``.
    """

    def __init__(
        self,
        zone: str,
        host: str = "127.0.0.1",
        port: int = 53,
        *,
        extra_zones: Iterable[str] = (),
        records: StaticRecords = (),
        ttl: int = 1,
        tcp_idle_timeout: float = 10.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range")
        if not 0 <= ttl <= 2**31 - 1:
            raise ValueError(f"ttl {ttl} is out of range")
        self._zone_name = _parse_name(zone)
        self.zone = _key(self._zone_name)
        zone_names = {self._zone_name, *(_parse_name(extra) for extra in extra_zones)}
        self._zones = tuple(sorted(zone_names, key=lambda name: (-len(name), _key(name))))
        self._host = host
        self._port = port
        self._ttl = ttl
        self._idle = tcp_idle_timeout
        self._static = self._parse_static(_flatten(records))
        self._static_cnames = {
            _key(owner) for owner, rdata in self._static if rdata.rdtype == dns.rdatatype.CNAME
        }
        self._lock = threading.Lock()  # serialises writers; readers only read self._snapshot
        self._published: dict[str, tuple[str, ...]] = {}
        self._serial = int(time.time()) & 0xFFFFFFFF
        self._snapshot = self._build()
        # Network state, set by start() and cleared by stop().
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._threads: list[threading.Thread] = []
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._bound: tuple[str, int] | None = None

    # -- ValidationZone -------------------------------------------------------------------------------------

    def publish(self, fqdn: str, values: Sequence[str]) -> None:
        """Replace the TXT set at ``fqdn`` (inside ``zone``); an empty ``values`` withdraws it."""
        if isinstance(values, str):
            raise TypeError("values must be a sequence of strings, not one string")
        name = _parse_name(fqdn)
        if not name.is_subdomain(self._zone_name):
            raise ValueError(f"{_key(name)} is outside the validation zone {self.zone}")
        key = _key(name)
        if key in self._static_cnames:
            raise ValueError(f"{key} has a CNAME and cannot hold TXT records")
        for value in values:
            _txt(value)  # validates type and length before anything changes
        unique = tuple(dict.fromkeys(values))
        with self._lock:
            current = self._published.get(key)
            if unique and current == unique:
                return
            if not unique and current is None:
                return
            if unique:
                self._published[key] = unique
            else:
                del self._published[key]
            self._commit()

    def withdraw(self, fqdn: str) -> None:
        """Remove the TXT set at ``fqdn``; idempotent."""
        key = _key(_parse_name(fqdn))
        with self._lock:
            if self._published.pop(key, None) is not None:
                self._commit()

    def published(self) -> Mapping[str, tuple[str, ...]]:
        return dict(self._snapshot.published)

    @property
    def serial(self) -> int:
        """The SOA serial now served (the same for every zone); it increases on every change."""
        return self._snapshot.serial

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) as bound once started (the real port when asked for port 0), else as configured."""
        return self._bound if self._bound is not None else (self._host, self._port)

    def start(self) -> None:
        with self._state_lock:
            if self._threads:
                raise RuntimeError("the DNS server is already running")
            self._stopping = threading.Event()
            tcp, udp = self._bind()
            self._tcp, self._udp = tcp, udp
            self._wake = socket.socketpair()
            self._bound = (self._host, int(tcp.getsockname()[1]))
            self._threads = [
                threading.Thread(target=self._udp_loop, args=(udp,), name="dns-udp", daemon=True),
                threading.Thread(target=self._accept_loop, args=(tcp,), name="dns-tcp", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
        log.info("DNS server for %s listening on %s port %d (UDP and TCP)", self._zone_list(), *self._bound)

    def stop(self) -> None:
        """Close the sockets and join the threads; idempotent."""
        with self._state_lock:
            if not self._threads:
                return
            self._stopping.set()
            if self._wake is not None:
                with contextlib.suppress(OSError):
                    self._wake[1].send(b"x")
            for thread in self._threads:
                thread.join(timeout=5)
            for sock in (self._udp, self._tcp):
                if sock is not None:
                    sock.close()
            with self._lock:
                connections = dict(self._connections)
            for conn in connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            for thread in connections.values():
                thread.join(timeout=5)
            if self._wake is not None:
                for end in self._wake:
                    end.close()
            self._threads, self._udp, self._tcp, self._wake, self._bound = [], None, None, None, None
        log.debug("DNS server for %s stopped", self._zone_list())

    def __enter__(self) -> ZoneServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- answering ------------------------------------------------------------------------------------------

    def answer(self, wire: bytes, *, udp: bool) -> bytes | None:
        """The response to one query in wire format, or None when the packet deserves no answer (too short
        to carry an id, or itself a response). Never raises."""
        if len(wire) < _HEADER_SIZE:
            return None
        flags = int.from_bytes(wire[2:4], "big")
        if flags & _QR:
            return None
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            opcode = dns.opcode.from_flags(flags)
            return _bare_reply(wire, dns.rcode.NOTIMP if opcode != dns.opcode.QUERY else dns.rcode.FORMERR)
        try:
            response = self._respond(query)
            if udp:
                limit = _PLAIN_UDP_LIMIT if query.edns < 0 else min(query.payload, _OUR_PAYLOAD)
            else:
                limit = _TCP_LIMIT
            return _render(response, limit)
        except Exception:
            log.debug("DNS server failed to answer a query", exc_info=True)
            return _bare_reply(wire, dns.rcode.SERVFAIL)

    def _respond(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query, our_payload=_OUR_PAYLOAD)
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)
            return response
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        rdtype = question.rdtype
        if rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR) or question.rdclass != _IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        snapshot = self._snapshot  # one read: the whole answer comes from one version of the data
        if _zone_for(snapshot.zones, question.name) is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        _fill(response, snapshot, question.name, rdtype)
        return response

    # -- data -----------------------------------------------------------------------------------------------

    def _parse_static(
        self, records: list[tuple[str, str, str]]
    ) -> list[tuple[dns.name.Name, dns.rdata.Rdata]]:
        parsed: list[tuple[dns.name.Name, dns.rdata.Rdata]] = []
        types_at: dict[str, set[dns.rdatatype.RdataType]] = {}
        for name_text, type_text, value in records:
            owner = _parse_name(name_text)
            zone = _zone_for(self._zones, owner)
            if zone is None:
                raise ValueError(f"{_key(owner)} is outside the served zones {self._zone_list()}")
            try:
                rdtype = dns.rdatatype.from_text(type_text)
            except dns.exception.DNSException as exc:
                raise ValueError(f"{type_text!r} is not a record type") from exc
            if rdtype in _NOT_TYPES_FOR_STATIC or dns.rdatatype.is_metatype(rdtype):
                raise ValueError(f"{type_text} records cannot be given (SOA is generated)")
            if rdtype == dns.rdatatype.NS and owner != zone:
                raise ValueError(f"NS at {_key(owner)}: delegations are not supported")
            if rdtype == dns.rdatatype.CNAME and owner == zone:
                raise ValueError(f"a CNAME cannot sit at the zone apex {_key(zone)}")
            if rdtype == dns.rdatatype.TXT:
                rdata: dns.rdata.Rdata = _txt(value)
            else:
                try:
                    rdata = dns.rdata.from_text(_IN, rdtype, value, origin=dns.name.root, relativize=False)
                except dns.exception.DNSException as exc:
                    raise ValueError(f"{value!r} is not a valid {type_text} value: {exc}") from exc
            types = types_at.setdefault(_key(owner), set())
            if rdtype == dns.rdatatype.CNAME and dns.rdatatype.CNAME in types:
                raise ValueError(f"{_key(owner)} has more than one CNAME")
            types.add(rdtype)
            if dns.rdatatype.CNAME in types and len(types) > 1:
                raise ValueError(f"{_key(owner)} has a CNAME and other records")
            parsed.append((owner, rdata))
        return parsed

    def _commit(self) -> None:
        """Bump the serial and swap in a new snapshot; called with self._lock held."""
        self._serial = max(self._serial + 1, int(time.time())) & 0xFFFFFFFF
        self._snapshot = self._build()

    def _build(self) -> _Snapshot:
        nodes: dict[str, dict[dns.rdatatype.RdataType, dns.rdataset.Rdataset]] = {}
        owners: dict[str, dns.name.Name] = {}
        cnames: dict[str, dns.name.Name] = {}

        def add(owner: dns.name.Name, rdata: dns.rdata.Rdata, *, replace: bool = False) -> None:
            key = _key(owner)
            owners[key] = owner
            node = nodes.setdefault(key, {})
            if replace or rdata.rdtype not in node:
                node[rdata.rdtype] = dns.rdataset.Rdataset(_IN, rdata.rdtype, ttl=self._ttl)
            node[rdata.rdtype].add(rdata)
            if isinstance(rdata, dns.rdtypes.ANY.CNAME.CNAME):
                cnames[key] = rdata.target.canonicalize()

        for owner, rdata in self._static:
            add(owner, rdata)
        for zone in self._zones:
            ns_name = dns.name.from_text("ns", origin=zone)
            soa = (
                f"{ns_name} {dns.name.from_text('hostmaster', origin=zone)} {self._serial}"
                f" {_SOA_REFRESH} {_SOA_RETRY} {_SOA_EXPIRE} {_NEGATIVE_TTL}"
            )
            add(zone, dns.rdata.from_text(_IN, dns.rdatatype.SOA, soa, relativize=False))
            if dns.rdatatype.NS not in nodes[_key(zone)]:
                add(zone, dns.rdata.from_text(_IN, dns.rdatatype.NS, str(ns_name), relativize=False))
        for key, values in self._published.items():
            owner = _parse_name(key)
            for index, value in enumerate(values):
                add(owner, _txt(value), replace=index == 0)

        existing: set[str] = set()
        for key, owner in owners.items():
            apex = _zone_for(self._zones, owner)
            name = owner
            while apex is not None and name != apex and name.is_subdomain(apex):
                existing.add(_key(name))
                name = name.parent()
            existing.add(key)
        return _Snapshot(
            serial=self._serial,
            zones=self._zones,
            nodes=nodes,
            cnames=cnames,
            existing=frozenset(existing),
            published=dict(self._published),
        )

    def _zone_list(self) -> str:
        return ", ".join(_key(zone) for zone in self._zones)

    # -- network --------------------------------------------------------------------------------------------

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        """TCP and UDP sockets on the same port; with port 0, retries until a port is free for both."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        attempts = 20 if self._port == 0 else 1
        for attempt in range(attempts):
            tcp = socket.socket(family, socket.SOCK_STREAM)
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self._host, self._port))
                tcp.listen(_MAX_TCP_CONNECTIONS)
                udp.bind((self._host, int(tcp.getsockname()[1])))
            except OSError:
                tcp.close()
                udp.close()
                if attempt + 1 == attempts:
                    raise
                continue
            tcp.setblocking(False)
            udp.setblocking(False)
            return tcp, udp
        raise AssertionError("unreachable")

    def _readable(self, sock: socket.socket) -> Iterator[None]:
        """Yields each time ``sock`` is readable, until stop() is asked for."""
        assert self._wake is not None
        wake = self._wake[0]
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = [key.fileobj for key, _ in selector.select()]
                if wake in ready or self._stopping.is_set():
                    return
                yield None

    def _udp_loop(self, udp: socket.socket) -> None:
        for _ in self._readable(udp):
            try:
                wire, peer = udp.recvfrom(_TCP_LIMIT)
            except OSError:  # nothing after all, or an ICMP error reported on the socket
                continue
            reply = self.answer(wire, udp=True)
            if reply is not None:
                with contextlib.suppress(OSError):
                    udp.sendto(reply, peer)

    def _accept_loop(self, tcp: socket.socket) -> None:
        for _ in self._readable(tcp):
            try:
                conn, _peer = tcp.accept()
            except OSError:
                continue
            with self._lock:
                if len(self._connections) >= _MAX_TCP_CONNECTIONS or self._stopping.is_set():
                    conn.close()
                    continue
                thread = threading.Thread(
                    target=self._serve_tcp, args=(conn,), name="dns-tcp-conn", daemon=True
                )
                self._connections[conn] = thread
            thread.start()

    def _serve_tcp(self, conn: socket.socket) -> None:
        """Answer length-framed queries one after another until the client closes, idles or misbehaves."""
        try:
            while not self._stopping.is_set():
                deadline = time.monotonic() + self._idle
                prefix = _recv_exactly(conn, 2, deadline)
                if prefix is None:
                    return
                wire = _recv_exactly(conn, int.from_bytes(prefix, "big"), deadline)
                if not wire:
                    return
                reply = self.answer(wire, udp=False)
                if reply is None:
                    return
                conn.settimeout(self._idle)
                conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            pass
        except Exception:
            log.debug("DNS server dropped a TCP connection", exc_info=True)
        finally:
            with self._lock:
                self._connections.pop(conn, None)
            conn.close()


def _recv_exactly(conn: socket.socket, size: int, deadline: float) -> bytes | None:
    """``size`` bytes, or None if the peer closes or the deadline passes first."""
    buffer = bytearray()
    while len(buffer) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        conn.settimeout(remaining)
        try:
            chunk = conn.recv(size - len(buffer))
        except TimeoutError:
            return None
        if not chunk:
            return None
        buffer += chunk
    return bytes(buffer)


def _bare_reply(wire: bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A header-only response to a packet that could not be parsed (its id, opcode and RD echoed)."""
    query_id, flags = struct.unpack_from("!HH", wire)
    return _HEADER.pack(query_id, _QR | (flags & (_OPCODE_MASK | _RD)) | (int(rcode) & 0xF), 0, 0, 0, 0)


def _render(response: dns.message.Message, limit: int) -> bytes:
    """The response in wire format; if it does not fit, TC set and only the question (and OPT) kept."""
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer = []
        response.authority = []
        response.additional = []
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


def _rrset(owner: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(owner, rdataset.ttl, list(rdataset))


def _fill(
    response: dns.message.Message, snapshot: _Snapshot, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> None:
    """Answer (following CNAMEs inside the served zones), or NXDOMAIN/NODATA with the SOA in authority."""
    name = qname  # the first owner keeps the case the client asked with
    key = _key(qname)
    seen: set[str] = set()
    for _ in range(_MAX_CHAIN + 1):
        seen.add(key)
        node = snapshot.nodes.get(key)
        if node is None or (
            rdtype not in node and dns.rdatatype.CNAME not in node and rdtype != dns.rdatatype.ANY
        ):
            if node is None and key not in snapshot.existing:
                response.set_rcode(dns.rcode.NXDOMAIN)
            zone = _zone_for(snapshot.zones, name)
            if zone is not None:
                soa = snapshot.nodes[_key(zone)][dns.rdatatype.SOA]
                response.authority.append(_rrset(zone, soa))
            return
        if rdtype == dns.rdatatype.ANY:
            response.answer.extend(_rrset(name, rdataset) for rdataset in node.values())
            return
        found = node.get(rdtype)
        if found is not None:
            response.answer.append(_rrset(name, found))
            if rdtype == dns.rdatatype.NS:
                _add_glue(response, snapshot, found)
            return
        response.answer.append(_rrset(name, node[dns.rdatatype.CNAME]))
        target = snapshot.cnames[key]
        key = _key(target)
        if key in seen or _zone_for(snapshot.zones, target) is None:
            return  # a loop, or a target the client must look up elsewhere
        name = target


def _add_glue(response: dns.message.Message, snapshot: _Snapshot, ns_set: dns.rdataset.Rdataset) -> None:
    for rdata in ns_set:
        if not isinstance(rdata, dns.rdtypes.ANY.NS.NS):
            continue
        node = snapshot.nodes.get(_key(rdata.target), {})
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            if rdtype in node:
                response.additional.append(_rrset(rdata.target, node[rdtype]))
