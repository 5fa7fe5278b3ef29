"""The validation-zone DNS server over real loopback sockets, with dnspython as the client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from anchor_deploy.adapters.local.dns_server import ZoneServer

ZONE = "acme.test"
TIMEOUT = 2.0
TRANSPORTS = ["udp", "tcp"]
STATIC = [
    ("_acme-challenge.shop.example.test", "CNAME", "tok.acme.test"),
    ("loop-a.example.test", "CNAME", "loop-b.example.test"),
    ("loop-b.example.test", "CNAME", "loop-a.example.test"),
    ("www.example.test", "A", "192.0.2.10"),
]


@pytest.fixture
def server() -> Iterator[ZoneServer]:
    with ZoneServer(ZONE, "127.0.0.1", 0, extra_zones=["example.test"], records=STATIC) as zone_server:
        yield zone_server


def ask(
    server: ZoneServer, name: str, rdtype: str, transport: str = "udp", *, payload: int | None = None
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=payload is not None, payload=payload or 1232)
    host, port = server.address
    if transport == "tcp":
        return dns.query.tcp(query, host, port=port, timeout=TIMEOUT)
    return dns.query.udp(query, host, port=port, timeout=TIMEOUT)


def txt_values(rrset: dns.rrset.RRset) -> set[str]:
    return {b"".join(rdata.strings).decode() for rdata in rrset}


def answer_txt(response: dns.message.Message) -> set[str]:
    return {
        value for rrset in response.answer if rrset.rdtype == dns.rdatatype.TXT for value in txt_values(rrset)
    }


def soa_in_authority(response: dns.message.Message, zone: str) -> bool:
    return any(
        rrset.rdtype == dns.rdatatype.SOA and rrset.name.to_text(omit_final_dot=True) == zone
        for rrset in response.authority
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_published_txt_is_answered_with_authority(server: ZoneServer, transport: str) -> None:
    server.publish("tok.acme.test", ["a" * 43, "b" * 43])
    response = ask(server, "tok.acme.test", "TXT", transport)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert answer_txt(response) == {"a" * 43, "b" * 43}
    assert all(rrset.ttl <= 1 for rrset in response.answer)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_publish_replaces_and_withdraw_removes(server: ZoneServer, transport: str) -> None:
    server.publish("tok.acme.test", ["old"])
    serial = server.serial
    server.publish("tok.acme.test", ["new-1", "new-2"])
    assert server.serial > serial
    assert answer_txt(ask(server, "tok.acme.test", "TXT", transport)) == {"new-1", "new-2"}
    assert server.published() == {"tok.acme.test": ("new-1", "new-2")}

    server.withdraw("tok.acme.test")
    server.withdraw("tok.acme.test")  # idempotent
    response = ask(server, "tok.acme.test", "TXT", transport)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    assert not response.answer
    assert soa_in_authority(response, ZONE)
    assert server.published() == {}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nodata_for_a_type_the_name_lacks(server: ZoneServer, transport: str) -> None:
    server.publish("tok.acme.test", ["value"])
    response = ask(server, "tok.acme.test", "A", transport)
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer
    assert soa_in_authority(response, ZONE)
    # An empty non-terminal exists too: NODATA, not NXDOMAIN.
    server.publish("x.deep.acme.test", ["value"])
    response = ask(server, "deep.acme.test", "TXT", transport)
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_soa_and_ns_at_the_apex(server: ZoneServer, transport: str) -> None:
    response = ask(server, "acme.test", "SOA", transport)
    assert response.flags & dns.flags.AA
    (soa_set,) = response.answer
    soa = soa_set[0]
    assert soa.mname.to_text() == "ns.acme.test."
    assert soa.minimum == 1
    assert soa.serial == server.serial
    ns = ask(server, "acme.test", "NS", transport)
    assert [rdata.target.to_text() for rrset in ns.answer for rdata in rrset] == ["ns.acme.test."]
    before = server.serial
    server.publish("tok.acme.test", ["v"])
    assert ask(server, "acme.test", "SOA", transport).answer[0][0].serial > before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_names_outside_the_zones_are_refused(server: ZoneServer, transport: str) -> None:
    response = ask(server, "example.com", "TXT", transport)
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA
    assert not response.answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_names_are_case_insensitive(server: ZoneServer, transport: str) -> None:
    server.publish("Tok.ACME.test.", ["value"])
    assert server.published() == {"tok.acme.test": ("value",)}
    response = ask(server, "TOK.acme.TEST", "TXT", transport)
    assert answer_txt(response) == {"value"}
    assert response.answer[0].name.to_text() == "TOK.acme.TEST."  # echoes the case asked with
    server.withdraw("TOK.Acme.Test")
    assert server.published() == {}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cname_is_chased_inside_served_zones(server: ZoneServer, transport: str) -> None:
    server.publish("tok.acme.test", ["x" * 43])
    response = ask(server, "_acme-challenge.shop.example.test", "TXT", transport)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    cname, txt = response.answer
    assert cname.rdtype == dns.rdatatype.CNAME
    assert cname[0].target.to_text() == "tok.acme.test."
    assert txt.name.to_text() == "tok.acme.test."
    assert txt_values(txt) == {"x" * 43}
    # Asking for the CNAME itself gives just the CNAME; a withdrawn target gives CNAME + NXDOMAIN.
    only = ask(server, "_acme-challenge.shop.example.test", "CNAME", transport)
    assert [rrset.rdtype for rrset in only.answer] == [dns.rdatatype.CNAME]
    server.withdraw("tok.acme.test")
    dangling = ask(server, "_acme-challenge.shop.example.test", "TXT", transport)
    assert dangling.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in dangling.answer] == [dns.rdatatype.CNAME]
    assert soa_in_authority(dangling, ZONE)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cname_loop_terminates(server: ZoneServer, transport: str) -> None:
    started = time.monotonic()
    response = ask(server, "loop-a.example.test", "TXT", transport)
    assert time.monotonic() - started < 1
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.CNAME]


def test_large_txt_set_is_truncated_over_udp_and_whole_over_tcp(server: ZoneServer) -> None:
    values = [f"{index:02d}" + "v" * 41 for index in range(30)]
    server.publish("big.acme.test", values)
    for payload in (None, 4096):
        truncated = ask(server, "big.acme.test", "TXT", "udp", payload=payload)
        assert truncated.flags & dns.flags.TC
        assert not truncated.answer
        assert (truncated.edns >= 0) is (payload is not None)  # EDNS echoed only when asked with it
    whole = ask(server, "big.acme.test", "TXT", "tcp")
    assert not whole.flags & dns.flags.TC
    assert answer_txt(whole) == set(values)
    # A small answer still fits in UDP.
    server.publish("small.acme.test", ["v"])
    assert not ask(server, "small.acme.test", "TXT", "udp").flags & dns.flags.TC


def test_garbage_udp_does_not_stop_the_server(server: ZoneServer) -> None:
    server.publish("tok.acme.test", ["value"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(b"\x01\x02\x03", server.address)  # too short to answer
        sock.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff" * 20, server.address)
        reply = sock.recv(512)
    assert reply[:2] == b"\x12\x34"
    assert reply[3] & 0x0F == dns.rcode.FORMERR
    assert answer_txt(ask(server, "tok.acme.test", "TXT", "udp")) == {"value"}


def test_garbage_tcp_does_not_stop_the_server(server: ZoneServer) -> None:
    server.publish("tok.acme.test", ["value"])
    with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
        sock.sendall(b"\x00\x05hello")  # too short to be a message: the connection is dropped
        assert sock.recv(64) == b""
    with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
        junk = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xff" * 20
        sock.sendall(len(junk).to_bytes(2, "big") + junk)
        reply = read_frame(sock)
        assert reply[:2] == b"\xab\xcd"
        assert reply[3] & 0x0F == dns.rcode.FORMERR
        # The same connection still answers, several queries in a row.
        for _ in range(2):
            query = dns.message.make_query("tok.acme.test", "TXT")
            sock.sendall(query.to_wire(prepend_length=True))
            assert answer_txt(dns.message.from_wire(read_frame(sock))) == {"value"}
    assert answer_txt(ask(server, "tok.acme.test", "TXT", "tcp")) == {"value"}


def test_pipelined_tcp_queries_are_all_answered(server: ZoneServer) -> None:
    server.publish("one.acme.test", ["1"])
    server.publish("two.acme.test", ["2"])
    queries = [dns.message.make_query(name, "TXT") for name in ("one.acme.test", "two.acme.test")]
    with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
        sock.sendall(b"".join(query.to_wire(prepend_length=True) for query in queries))
        answers = [dns.message.from_wire(read_frame(sock)) for _ in queries]
    assert [answer.id for answer in answers] == [query.id for query in queries]
    assert [answer_txt(answer) for answer in answers] == [{"1"}, {"2"}]


def test_idle_tcp_connections_are_closed() -> None:
    with ZoneServer(ZONE, "127.0.0.1", 0, tcp_idle_timeout=0.2) as server:
        started = time.monotonic()
        sock = socket.create_connection(server.address, timeout=TIMEOUT)
        try:
            assert sock.recv(64) == b""
        finally:
            sock.close()
        assert time.monotonic() - started < 1.5


def test_other_opcodes_are_not_implemented(server: ZoneServer) -> None:
    query = dns.message.make_query("acme.test", "SOA")
    query.set_opcode(dns.opcode.NOTIFY)
    host, port = server.address
    response = dns.query.udp(query, host, port=port, timeout=TIMEOUT)
    assert response.rcode() == dns.rcode.NOTIMP


def test_concurrent_publish_and_query_see_whole_sets(server: ZoneServer) -> None:
    old = ("old-1", "old-2", "old-3")
    new = ("new-1", "new-2", "new-3", "new-4", "new-5")
    server.publish("race.acme.test", old)
    done = threading.Event()
    seen: list[set[str]] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            for index in range(300):
                server.publish("race.acme.test", new if index % 2 == 0 else old)
        finally:
            done.set()

    def reader(transport: str) -> None:
        try:
            while not done.is_set():
                seen.append(answer_txt(ask(server, "race.acme.test", "TXT", transport)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher)] + [
        threading.Thread(target=reader, args=(transport,)) for transport in ("udp", "udp", "tcp")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert seen
    assert all(values in (set(old), set(new)) for values in seen)


def test_publish_validates_names_and_values(server: ZoneServer) -> None:
    with pytest.raises(ValueError, match="outside"):
        server.publish("tok.example.test", ["value"])
    with pytest.raises(ValueError, match="outside"):
        server.publish("notacme.test", ["value"])
    with pytest.raises(ValueError):
        server.publish("tok.acme.test", ["x" * 256])
    with pytest.raises(TypeError):
        server.publish("tok.acme.test", "value")
    assert server.published() == {}
    snapshot = server.published()
    server.publish("tok.acme.test", ["value"])
    assert snapshot == {}  # published() is a copy


def test_static_records_are_checked() -> None:
    with pytest.raises(ValueError, match="outside"):
        ZoneServer(ZONE, "127.0.0.1", 0, records=[("www.example.com", "A", "192.0.2.1")])
    with pytest.raises(ValueError, match="CNAME"):
        ZoneServer(
            ZONE,
            "127.0.0.1",
            0,
            records={("x.acme.test", "CNAME"): "y.acme.test", ("x.acme.test", "TXT"): ["v"]},
        )


def test_stop_releases_the_port() -> None:
    server = ZoneServer(ZONE, "127.0.0.1", 0)
    server.start()
    host, port = server.address
    assert port != 0
    server.stop()
    server.stop()  # idempotent
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("dns-")]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, port))


def read_frame(sock: socket.socket) -> bytes:
    prefix = recv_exactly(sock, 2)
    return recv_exactly(sock, int.from_bytes(prefix, "big"))


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data
