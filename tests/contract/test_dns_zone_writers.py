"""The DnsZoneWriter port's contract: Route 53 on the moto server, and RFC 2136 against a real Knot DNS
server on 127.0.0.1 that takes only updates signed with its TSIG key. Each test reads the zone back from
the provider itself: ListResourceRecordSets, or a query to knot."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.dns_zone_writers import ZoneWriters
from anchor_deploy.adapters.route53_zone import CLOUDFRONT_HOSTED_ZONE
from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.domains import DnsRecord
from anchor_deploy.model.errors import DnsUpdateFailed
from anchor_deploy.ports.dns_zones import DnsZoneWriter
from tests.e2e.dns_support import UserDns, query
from tests.ports import free_port

pytestmark = pytest.mark.timeout(60)

ZONE = "example.test"
SECRET = bytes(range(32))
KEY = ("anchor-update", "hmac-sha256", base64.b64encode(SECRET).decode())


@dataclass
class Zone:
    writer: DnsZoneWriter
    read: Callable[[str, str], set[str]]  # (name, type) -> values as written, names without the final dot
    kind: str


def record(kind: str, name: str, value: str) -> DnsRecord:
    return DnsRecord(kind, name, value, "routing")


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserDns]:
    with UserDns([ZONE], workdir=tmp_path_factory.mktemp("knot"), tsig=KEY) as server:
        yield server


def rfc2136_link(server: str, key_name: str = KEY[0]) -> DnsLink:
    return DnsLink(ZONE, "prj_1", "rfc2136", server, key_name, KEY[1], 1.0)


def knot_values(knot: UserDns, name: str, kind: str) -> set[str]:
    answer = query(knot.address, name, kind, tcp=True)
    return {v.rstrip(".").strip('"') for v in answer.values(kind)}


def route53_values(clients: AwsClients, zone_id: str, name: str, kind: str) -> set[str]:
    sets = clients.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    for found in sets:
        if found["Name"].replace("\\052", "*").rstrip(".") == name and found["Type"] == kind:
            if "AliasTarget" in found:
                return {"alias:" + found["AliasTarget"]["DNSName"].rstrip(".")}
            return {r["Value"].rstrip(".").strip('"') for r in found["ResourceRecords"]}
    return set()


def route53_zone(aws: Any) -> tuple[AwsClients, str]:
    clients = AwsClients()
    made = clients.client("route53").create_hosted_zone(Name=ZONE + ".", CallerReference="anchor-test")
    return clients, made["HostedZone"]["Id"].removeprefix("/hostedzone/")


@pytest.fixture(params=["route53", "rfc2136"])
def zone(request: pytest.FixtureRequest) -> Iterator[Zone]:
    if request.param == "route53":
        clients, zone_id = route53_zone(request.getfixturevalue("aws"))
        link = DnsLink(ZONE, "prj_1", "route53", zone_id, created_at=1.0)
        writer = ZoneWriters(lambda: clients).writer_for(link, None)
        yield Zone(writer, lambda name, kind: route53_values(clients, zone_id, name, kind), "route53")
        return
    knot: UserDns = request.getfixturevalue("knot")
    writer = ZoneWriters().writer_for(rfc2136_link(knot.address), SECRET)
    yield Zone(writer, lambda name, kind: knot_values(knot, name, kind), "rfc2136")
    for name in ("www", "shop", "*", "_acme-challenge.www", "api"):  # the module's knot is shared
        for kind in ("CNAME", "A", "TXT"):
            knot.delete(f"{name}.{ZONE}", kind)


def test_upsert_writes_each_record_set_and_replaces_what_was_there(zone: Zone) -> None:
    zone.writer.upsert(
        [
            DnsRecord("CNAME", f"_acme-challenge.www.{ZONE}", "abc.validation.anchor.test", "validation"),
            record("CNAME", f"www.{ZONE}", "edge.anchor.test"),
            record("A", f"shop.{ZONE}", "192.0.2.1"),
            record("A", f"shop.{ZONE}", "192.0.2.2"),
            record("TXT", f"api.{ZONE}", "token value"),
        ]
    )
    assert zone.read(f"_acme-challenge.www.{ZONE}", "CNAME") == {"abc.validation.anchor.test"}
    assert zone.read(f"www.{ZONE}", "CNAME") == {"edge.anchor.test"}
    assert zone.read(f"shop.{ZONE}", "A") == {"192.0.2.1", "192.0.2.2"}
    assert zone.read(f"api.{ZONE}", "TXT") == {"token value"}
    zone.writer.upsert(
        [record("CNAME", f"www.{ZONE}", "edge2.anchor.test"), record("A", f"shop.{ZONE}", "192.0.2.9")]
    )
    assert zone.read(f"www.{ZONE}", "CNAME") == {"edge2.anchor.test"}
    assert zone.read(f"shop.{ZONE}", "A") == {"192.0.2.9"}
    assert zone.read(f"_acme-challenge.www.{ZONE}", "CNAME") == {"abc.validation.anchor.test"}


def test_delete_removes_what_was_written_and_nothing_else(zone: Zone) -> None:
    written = [record("CNAME", f"www.{ZONE}", "edge.anchor.test"), record("A", f"shop.{ZONE}", "192.0.2.1")]
    zone.writer.upsert([*written, record("CNAME", f"api.{ZONE}", "edge.anchor.test")])
    zone.writer.delete(written)
    assert zone.read(f"www.{ZONE}", "CNAME") == set() and zone.read(f"shop.{ZONE}", "A") == set()
    assert zone.read(f"api.{ZONE}", "CNAME") == {"edge.anchor.test"}
    zone.writer.delete(written)  # not there any more: no error


def test_a_record_the_user_changed_since_is_not_deleted(zone: Zone) -> None:
    zone.writer.upsert([record("CNAME", f"www.{ZONE}", "mine.example.net")])  # the user's own value
    zone.writer.delete([record("CNAME", f"www.{ZONE}", "edge.anchor.test")])
    assert zone.read(f"www.{ZONE}", "CNAME") == {"mine.example.net"}


def test_a_wildcard_is_written_and_deleted(zone: Zone) -> None:
    wildcard = record("CNAME", f"*.{ZONE}", "edge.anchor.test")
    zone.writer.upsert([wildcard])
    assert zone.read(f"*.{ZONE}", "CNAME") == {"edge.anchor.test"}
    zone.writer.delete([wildcard])
    assert zone.read(f"*.{ZONE}", "CNAME") == set()


def test_an_alias_is_an_alias_a_and_aaaa_on_route53_and_refused_by_rfc2136(zone: Zone) -> None:
    alias = record("ALIAS", ZONE, "d111111abcdef8.cloudfront.net")
    validation = DnsRecord("CNAME", f"_acme-challenge.{ZONE}", "x.validation.anchor.test", "validation")
    if zone.kind == "rfc2136":
        with pytest.raises(DnsUpdateFailed, match="by hand"):
            zone.writer.upsert([validation, alias])
        assert zone.read(f"_acme-challenge.{ZONE}", "CNAME") == set()  # nothing of the refused batch
        return
    zone.writer.upsert([validation, alias])
    assert zone.read(ZONE, "A") == zone.read(ZONE, "AAAA") == {"alias:d111111abcdef8.cloudfront.net"}
    zone.writer.delete([alias])
    assert zone.read(ZONE, "A") == zone.read(ZONE, "AAAA") == set()
    assert zone.read(f"_acme-challenge.{ZONE}", "CNAME") == {"x.validation.anchor.test"}


@pytest.mark.aws
def test_route53_alias_targets_cloudfronts_hosted_zone(aws: Any) -> None:
    clients, zone_id = route53_zone(aws)
    writer = ZoneWriters(lambda: clients).writer_for(DnsLink(ZONE, "p", "route53", zone_id), None)
    writer.upsert([record("ALIAS", ZONE, "d111111abcdef8.cloudfront.net")])
    sets = clients.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    aliases = {s["Type"]: s["AliasTarget"] for s in sets if "AliasTarget" in s}
    expected = {
        "HostedZoneId": CLOUDFRONT_HOSTED_ZONE,
        "DNSName": "d111111abcdef8.cloudfront.net.",
        "EvaluateTargetHealth": False,
    }
    assert aliases == {"A": expected, "AAAA": expected}


@pytest.mark.aws
def test_route53_refusal_is_dns_update_failed_in_aws_words(aws: Any) -> None:
    clients = AwsClients()
    writer = ZoneWriters(lambda: clients).writer_for(DnsLink(ZONE, "p", "route53", "ZNOSUCHZONE1"), None)
    with pytest.raises(DnsUpdateFailed, match="NoSuchHostedZone"):
        writer.upsert([record("CNAME", f"www.{ZONE}", "edge.anchor.test")])


def test_rfc2136_with_a_wrong_secret_or_key_is_refused_and_writes_nothing(knot: UserDns) -> None:
    wrong_secret = ZoneWriters().writer_for(rfc2136_link(knot.address), bytes(32))
    with pytest.raises(DnsUpdateFailed, match="BADSIG"):
        wrong_secret.upsert([record("CNAME", f"www.{ZONE}", "edge.anchor.test")])
    unknown_key = ZoneWriters().writer_for(rfc2136_link(knot.address, "someone-else"), SECRET)
    with pytest.raises(DnsUpdateFailed, match="BADKEY"):
        unknown_key.upsert([record("CNAME", f"www.{ZONE}", "edge.anchor.test")])
    assert knot_values(knot, f"www.{ZONE}", "CNAME") == set()


def test_rfc2136_to_a_zone_the_server_does_not_serve_names_the_rcode(knot: UserDns) -> None:
    link = DnsLink("other.test", "prj_1", "rfc2136", knot.address, KEY[0], KEY[1])
    with pytest.raises(DnsUpdateFailed, match=r"NOTAUTH|REFUSED"):
        ZoneWriters().writer_for(link, SECRET).upsert([record("CNAME", "www.other.test", "edge.anchor.test")])


def test_rfc2136_server_not_listening_is_dns_update_failed(tmp_path: Path) -> None:
    writer = ZoneWriters().writer_for(rfc2136_link(f"127.0.0.1:{free_port()}"), SECRET)
    with pytest.raises(DnsUpdateFailed, match="could not be reached"):
        writer.upsert([record("CNAME", f"www.{ZONE}", "edge.anchor.test")])
