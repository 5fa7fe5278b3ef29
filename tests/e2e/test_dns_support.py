"""Self-tests of the real-DNS harness: knot as the user's provider, bind9 as the resolver, both on loopback.

The platform's validation server is played here by :class:`ValidationDns`, a small authoritative responder.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.e2e.dns_support import LOOPBACK, Answer, Resolver, UserDns, free_port, query, wait_for

pytestmark = pytest.mark.e2e

USER_ZONE = "example.test"
VALIDATION_ZONE = "acme.anchor.test"
TOKEN_NAME = f"tok123.{VALIDATION_ZONE}"
TOKEN = "validation-token-123"


class ValidationDns:
    """An authoritative server for one zone over UDP and TCP: SOA at the apex and TXT records."""

    def __init__(self, zone: str, txt: dict[str, str]) -> None:
        self.zone = dns.name.from_text(zone)
        self.txt = {dns.name.from_text(name): value for name, value in txt.items()}
        self.port = free_port()
        owner = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(owner.respond(data), self.client_address)

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while (head := self.rfile.read(2)) and len(head) == 2:
                    reply = owner.respond(self.rfile.read(int.from_bytes(head, "big")))
                    self.wfile.write(len(reply).to_bytes(2, "big") + reply)

        self.servers: list[socketserver.BaseServer] = [
            socketserver.ThreadingUDPServer((LOOPBACK, self.port), Udp),
            socketserver.ThreadingTCPServer((LOOPBACK, self.port), Tcp),
        ]
        self.threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def respond(self, wire: bytes) -> bytes:
        request = dns.message.from_wire(wire)
        response = dns.message.make_response(request)
        question = request.question[0]
        if not question.name.is_subdomain(self.zone):
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        response.flags |= dns.flags.AA
        soa = dns.rrset.from_text(
            self.zone, 1, "IN", "SOA", f"ns1.{self.zone} hostmaster.{self.zone} 1 1 1 1 1"
        )
        if question.name == self.zone and question.rdtype == dns.rdatatype.SOA:
            response.answer.append(soa)
        elif question.name in self.txt and question.rdtype == dns.rdatatype.TXT:
            value = self.txt[question.name]
            response.answer.append(dns.rrset.from_text(question.name, 1, "IN", "TXT", f'"{value}"'))
        elif question.name in self.txt or question.name == self.zone:
            response.authority.append(soa)  # no data of that type
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(soa)
        return response.to_wire()

    def __enter__(self) -> ValidationDns:
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=2)


@dataclass
class Stack:
    user: UserDns
    validation: ValidationDns
    resolver: Resolver


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("dns")
    with (
        UserDns([USER_ZONE], workdir=base / "knot") as user,
        ValidationDns(VALIDATION_ZONE, {TOKEN_NAME: TOKEN}) as validation,
        Resolver(
            {USER_ZONE: user.address, VALIDATION_ZONE: validation.address}, workdir=base / "named"
        ) as resolver,
    ):
        yield Stack(user, validation, resolver)


def has_rcode(rcode: str) -> Callable[[Answer], bool]:
    return lambda answer: answer.rcode == rcode


def test_cname_and_its_txt_come_back_together_over_udp(stack: Stack) -> None:
    name = f"_acme-challenge.shop.{USER_ZONE}"
    assert query(stack.resolver.address, name, "TXT").rcode == "NXDOMAIN"  # and not cached as such

    stack.user.add(name, "CNAME", f"{TOKEN_NAME}.")

    answer = wait_for(stack.resolver.address, name, "TXT", lambda a: bool(a.values("TXT")), timeout=2)
    assert answer.rcode == "NOERROR"
    assert answer.records() == [
        (name, "CNAME", f"{TOKEN_NAME}."),
        (TOKEN_NAME, "TXT", f'"{TOKEN}"'),
    ]
    assert answer.values("TXT") == [TOKEN]
    assert query(stack.resolver.address, name, "TXT", tcp=True).records() == answer.records()


def test_a_deleted_record_disappears_from_the_resolver(stack: Stack) -> None:
    name = f"_acme-challenge.gone.{USER_ZONE}"
    stack.user.add(name, "CNAME", TOKEN_NAME)
    wait_for(stack.resolver.address, name, "TXT", lambda a: a.values("CNAME") == [f"{TOKEN_NAME}."], 2)
    stack.user.add(f"www.{USER_ZONE}", "A", "127.0.0.7")
    wait_for(stack.resolver.address, f"www.{USER_ZONE}", "A", lambda a: a.values("A") == ["127.0.0.7"], 2)

    stack.user.delete(name)
    stack.user.delete(f"www.{USER_ZONE}", "A")

    wait_for(stack.resolver.address, name, "TXT", has_rcode("NXDOMAIN"), timeout=3)
    wait_for(stack.resolver.address, f"www.{USER_ZONE}", "A", has_rcode("NXDOMAIN"), timeout=3)


def test_names_never_added_are_nxdomain(stack: Stack) -> None:
    for name in (f"never-added.{USER_ZONE}", f"nope.{VALIDATION_ZONE}", "elsewhere.invalid", "example.com"):
        answer: Answer = query(stack.resolver.address, name, "TXT")
        assert (answer.rcode, answer.rrsets) == ("NXDOMAIN", ()), name


def test_the_user_zone_itself_answers_through_the_resolver(stack: Stack) -> None:
    soa = query(stack.resolver.address, USER_ZONE, "SOA")
    assert soa.rcode == "NOERROR"
    assert soa.values("SOA")[0].startswith(f"ns1.{USER_ZONE}. hostmaster.{USER_ZONE}.")
    assert query(stack.user.address, f"ns1.{USER_ZONE}", "A").values("A") == ["127.0.0.1"]


def test_initial_records_and_a_start_failure_with_the_log(tmp_path: Path) -> None:
    with UserDns({"shop.test": [("shop.test", "TXT", "hello world")]}, workdir=tmp_path / "knot") as user:
        assert query(user.address, "shop.test", "TXT").values("TXT") == ["hello world"]

    # A forwarder that is no address: named rejects its configuration and exits.
    resolver = Resolver({"x.test": "not-an-address:53"}, workdir=tmp_path / "named")
    with pytest.raises(RuntimeError, match=r"named exited with 1 [\s\S]*not-an-address"):
        resolver.start()
    assert resolver.proc is None
