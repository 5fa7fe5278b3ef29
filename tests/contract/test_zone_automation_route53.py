"""DNS automation on Route 53 (the moto server): a zone linked by an admin, a domain's records published into
its hosted zone (an apex as an alias A and AAAA to CloudFront), read back with ListResourceRecordSets, and
withdrawn on removal; a record outside the domain's name is never written."""

from __future__ import annotations

from typing import Any

import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.dns_zone_writers import ZoneWriters
from anchor_deploy.adapters.idna_labels import idna_to_ascii, idna_to_unicode
from anchor_deploy.model.domains import DnsRecord, Domain
from anchor_deploy.model.entities import HostKind, HostRoute, Project, Token
from anchor_deploy.ports.fakes import FakePublicSuffixes, FakeStore
from anchor_deploy.services.dns_automation import DnsLinks, LinkRequest, ZoneAutomation
from tests.support import TickingClock
from tests.unit.domain_fakes import XorBox

pytestmark = pytest.mark.timeout(60)

ZONE = "example.com"
ADMIN = Token("tok_admin", "admin", None, 1.0)


def record_sets(clients: AwsClients, zone_id: str) -> dict[tuple[str, str], Any]:
    sets = clients.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {(s["Name"], s["Type"]): s.get("AliasTarget") or sorted(r["Value"] for r in s["ResourceRecords"])
            for s in sets if s["Type"] not in ("SOA", "NS")}  # fmt: skip


def test_a_linked_route53_zone_gets_the_domains_records_and_loses_them_on_removal(aws: Any) -> None:
    clients = AwsClients()
    zone_id = clients.client("route53").create_hosted_zone(Name=ZONE + ".", CallerReference="a")[
        "HostedZone"
    ]["Id"]
    store, box = FakeStore(), XorBox()
    project = Project("prj_shop", "shop", 1.0)
    store.add_project(project, [HostRoute("shop.test", HostKind.ALIAS, project.id, None)])
    links = DnsLinks(store, box, FakePublicSuffixes(), idna_to_ascii, idna_to_unicode, TickingClock())
    links.link(project, LinkRequest(ZONE, "route53", zone_id), ADMIN)
    automation = ZoneAutomation(store, ZoneWriters(lambda: clients), box, store)

    apex = Domain(ZONE, project.id, "lbl", 1.0)
    records = [
        DnsRecord("CNAME", f"_x1.{ZONE}", "_y1.acm-validations.aws", "validation"),
        DnsRecord("ALIAS", ZONE, "d111111abcdef8.cloudfront.net", "routing"),
        DnsRecord("CNAME", "mail.example.org", "evil.example.net", "routing"),  # not the domain's
    ]
    note = automation.publish(apex, records)
    shown_id = zone_id.removeprefix("/hostedzone/")
    assert note == f"created in Route 53 zone {ZONE} ({shown_id}): CNAME _x1.{ZONE}, ALIAS {ZONE}"
    alias = {
        "HostedZoneId": "Z2FDTNDATAQYW2",
        "DNSName": "d111111abcdef8.cloudfront.net.",
        "EvaluateTargetHealth": False,
    }
    assert record_sets(clients, zone_id) == {
        (f"_x1.{ZONE}.", "CNAME"): ["_y1.acm-validations.aws."],
        (f"{ZONE}.", "A"): alias,
        (f"{ZONE}.", "AAAA"): alias,
    }
    automation.withdraw(apex, records)
    assert record_sets(clients, zone_id) == {}
