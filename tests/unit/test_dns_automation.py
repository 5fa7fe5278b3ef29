"""DNS links (model/dns_links.py, services/dns_automation.py): what a link may be, who may make one, and
which records the automation writes where, on the fakes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from anchor_deploy.adapters.idna_labels import idna_to_ascii, idna_to_unicode
from anchor_deploy.model.dns_links import DnsLink, parse_server, parse_tsig_key_text
from anchor_deploy.model.domains import DnsRecord, Domain
from anchor_deploy.model.entities import HostKind, HostRoute, Project, Token
from anchor_deploy.model.errors import (
    DnsLinkNotFound,
    DnsUpdateFailed,
    Forbidden,
    InvalidInput,
    InvalidName,
    ZoneLinked,
)
from anchor_deploy.ports.fakes import FakePublicSuffixes, FakeStore
from anchor_deploy.services.dns_automation import DnsLinks, LinkRequest, ZoneAutomation
from tests.support import TickingClock
from tests.unit.domain_fakes import XorBox

SECRET = bytes(range(32))
B64 = base64.b64encode(SECRET).decode()
ADMIN = Token("tok_a", "admin", None, 1.0)


def project_token(project: Project) -> Token:
    return Token("tok_p", "ci", project.id, 1.0)


@dataclass
class RecordingZone:
    zone: str
    calls: list[tuple[str, tuple[DnsRecord, ...]]]
    refuse: set[str]  # record types whose writes the zone refuses

    def upsert(self, records: Sequence[DnsRecord]) -> None:
        self._write("upsert", records)

    def delete(self, records: Sequence[DnsRecord]) -> None:
        self._write("delete", records)

    def _write(self, what: str, records: Sequence[DnsRecord]) -> None:
        if any(r.type in self.refuse for r in records):
            raise DnsUpdateFailed(f"{self.zone} refused it: REFUSED")
        self.calls.append((what, tuple(records)))


@dataclass
class RecordingWriters:
    """Every writer made, with the (opened) secret it was given."""

    calls: dict[str, list[tuple[str, tuple[DnsRecord, ...]]]] = field(default_factory=dict)
    secrets: dict[str, bytes | None] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)

    def writer_for(self, link: DnsLink, secret: bytes | None) -> RecordingZone:
        self.secrets[link.zone] = secret
        return RecordingZone(link.zone, self.calls.setdefault(link.zone, []), self.refuse)


@dataclass
class World:
    store: FakeStore
    links: DnsLinks
    automation: ZoneAutomation
    writers: RecordingWriters
    project: Project
    other: Project


@pytest.fixture
def world() -> World:
    store, box, writers = FakeStore(), XorBox(), RecordingWriters()
    projects = []
    for name in ("blog", "shop"):
        project = Project(f"prj_{name}", name, 1.0)
        store.add_project(project, [HostRoute(f"{name}.test", HostKind.ALIAS, project.id, None)])
        projects.append(project)
    links = DnsLinks(store, box, FakePublicSuffixes(), idna_to_ascii, idna_to_unicode, TickingClock())
    return World(store, links, ZoneAutomation(store, writers, box, store), writers, *projects)


def rfc2136(zone: object, server: object = "192.0.2.53", secret: object = B64) -> LinkRequest:
    return LinkRequest(zone, "rfc2136", server, "anchor-update", "hmac-sha256", secret)


def domain(name: str, project: Project) -> Domain:
    return Domain(name, project.id, "lbl", 1.0)


def records(name: str) -> list[DnsRecord]:
    base = name.removeprefix("*.")
    return [
        DnsRecord("CNAME", f"_acme-challenge.{base}", "lbl.validation.anchor.test", "validation"),
        DnsRecord("CNAME", name, "edge.anchor.test", "routing"),
    ]


# -- links -----------------------------------------------------------------------------------------------
def test_an_rfc2136_link_keeps_its_secret_sealed_and_shows_no_secret(world: World) -> None:
    link = world.links.link(world.project, rfc2136("Example.COM."), project_token(world.project))
    assert link == DnsLink(
        "example.com",
        world.project.id,
        "rfc2136",
        "192.0.2.53:53",
        "anchor-update",
        "hmac-sha256",
        link.created_at,
    )
    sealed = world.store.dns_link_secret("example.com")
    assert sealed is not None and SECRET not in sealed and XorBox().open(sealed) == SECRET
    assert world.links.list_links(world.project) == [link]
    assert world.links.list_links(world.other) == []


def test_an_internationalized_zone_is_stored_in_a_label_form(world: World) -> None:
    link = world.links.link(world.project, rfc2136("bücher.com"), ADMIN)
    assert link.zone == "xn--bcher-kva.com"


@pytest.mark.parametrize(
    ("request_", "error", "words"),
    [
        (rfc2136("co.uk"), InvalidName, "public suffix"),
        (rfc2136("com"), InvalidName, "single label"),
        (rfc2136("*.example.com"), InvalidName, "without '\\*'"),
        (rfc2136("example.com", server="192.0.2.1:99999"), InvalidInput, "port"),
        (rfc2136("example.com", server="[2001:db8::1]x"), InvalidInput, "port"),
        (rfc2136("example.com", server="not a host"), InvalidInput, "HOST\\[:PORT\\]"),
        (rfc2136("example.com", secret="not base64!"), InvalidInput, "base64"),
        (rfc2136("example.com", secret=base64.b64encode(b"short").decode()), InvalidInput, "5 bytes"),
        (
            LinkRequest("example.com", "rfc2136", "192.0.2.1", "k", "hmac-md5", B64),
            InvalidInput,
            "hmac-sha256",
        ),
        (LinkRequest("example.com", "rfc2136", "192.0.2.1", None, "hmac-sha256", B64), InvalidInput, "name"),
        (LinkRequest("example.com", "route53", "not-an-id"), InvalidInput, "hosted zone id"),
        (LinkRequest("example.com", "gandi", "x"), InvalidInput, "route53"),
    ],
)
def test_a_bad_link_is_refused_in_words_and_nothing_is_stored(
    world: World, request_: LinkRequest, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        world.links.link(world.project, request_, ADMIN)
    assert world.links.list_links(world.project) == []


def test_only_an_admin_links_a_route53_zone(world: World) -> None:
    request = LinkRequest("example.com", "route53", "/hostedzone/Z0123456789ABCDEF")
    with pytest.raises(Forbidden, match="admin"):
        world.links.link(world.project, request, project_token(world.project))
    link = world.links.link(world.project, request, ADMIN)
    assert (link.kind, link.target) == ("route53", "Z0123456789ABCDEF")
    assert world.store.dns_link_secret("example.com") is None


def test_a_zone_linked_by_one_project_cannot_be_linked_by_another(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    with pytest.raises(ZoneLinked):
        world.links.link(world.other, rfc2136("example.com"), ADMIN)


def test_unlink_forgets_only_the_projects_own_link(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    with pytest.raises(DnsLinkNotFound):
        world.links.unlink(world.other, "example.com")
    assert world.links.unlink(world.project, "EXAMPLE.com").zone == "example.com"
    assert world.links.list_links(world.project) == []
    with pytest.raises(DnsLinkNotFound):
        world.links.unlink(world.project, "example.com")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("192.0.2.1", "192.0.2.1:53"),
        ("192.0.2.1:5353", "192.0.2.1:5353"),
        ("2001:db8::1", "[2001:db8::1]:53"),
        ("[2001:DB8::1]:54", "[2001:db8::1]:54"),
        ("NS1.Example.com.", "ns1.example.com:53"),
    ],
)
def test_servers_are_normalized(raw: str, normalized: str) -> None:
    assert parse_server(raw) == normalized


@pytest.mark.parametrize(
    "text",
    [
        f"anchor-update:hmac-sha256:{B64}",
        f'key "anchor-update" {{\n\talgorithm hmac-sha256;\n\tsecret "{B64}";\n}};\n',
        f"# hmac-sha256:anchor-update:...\nkey:\n  - id: anchor-update\n    algorithm: hmac-sha256\n"
        f"    secret: {B64}\n",
    ],
)
def test_a_tsig_key_is_read_from_a_line_or_the_files_bind_and_knot_write(text: str) -> None:
    key = parse_tsig_key_text(text)
    assert (key.name, key.algorithm, key.secret) == ("anchor-update", "hmac-sha256", SECRET)


# -- automation ------------------------------------------------------------------------------------------
def test_records_go_to_the_closest_linked_zone_of_the_domains_project(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    world.links.link(world.project, rfc2136("shop.example.com"), ADMIN)
    note = world.automation.publish(domain("www.example.com", world.project), records("www.example.com"))
    assert world.writers.calls == {"example.com": [("upsert", tuple(records("www.example.com")))]}
    assert world.writers.secrets == {"example.com": SECRET}
    assert note == (
        "created in zone example.com on 192.0.2.53:53 (RFC 2136): CNAME _acme-challenge.www.example.com, "
        "CNAME www.example.com"
    )
    world.automation.publish(domain("a.shop.example.com", world.project), records("a.shop.example.com"))
    assert world.writers.calls["shop.example.com"] == [("upsert", tuple(records("a.shop.example.com")))]


def test_nothing_is_written_without_a_link_of_the_project(world: World) -> None:
    world.links.link(world.other, rfc2136("example.com"), ADMIN)
    note = world.automation.publish(domain("www.example.com", world.project), records("www.example.com"))
    assert note == "" and world.writers.calls == {}


def test_a_record_not_at_or_below_the_domains_name_is_never_written(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    foreign = DnsRecord("CNAME", "mail.example.com", "evil.example.net", "routing")
    world.automation.publish(domain("www.example.com", world.project), [foreign, *records("www.example.com")])
    (call,) = world.writers.calls["example.com"]
    assert foreign not in call[1] and len(call[1]) == 2


def test_a_refused_record_set_leaves_the_others_written_and_says_why(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    world.writers.refuse = {"ALIAS"}
    wanted = [records("example.com")[0], DnsRecord("ALIAS", "example.com", "d1.cloudfront.net", "routing")]
    note = world.automation.publish(domain("example.com", world.project), wanted)
    assert world.writers.calls["example.com"] == [("upsert", (wanted[0],))]
    assert note == (
        "created in zone example.com on 192.0.2.53:53 (RFC 2136): CNAME _acme-challenge.example.com; "
        "could not write to example.com: ALIAS example.com: example.com refused it: REFUSED"
    )


def test_withdraw_deletes_and_swallows_a_refusal(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    world.automation.withdraw(domain("www.example.com", world.project), records("www.example.com"))
    assert world.writers.calls["example.com"] == [("delete", tuple(records("www.example.com")))]
    world.writers.refuse = {"CNAME"}
    world.automation.withdraw(domain("www.example.com", world.project), records("www.example.com"))


def test_a_secret_the_box_cannot_open_is_a_note_not_a_crash(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)

    class OtherBox(XorBox):  # the platform's key changed since the link was made
        PREFIX = b"other:"

    automation = ZoneAutomation(world.store, world.writers, OtherBox())
    note = automation.publish(domain("www.example.com", world.project), records("www.example.com"))
    assert note.startswith("could not write to example.com: the TSIG secret of example.com cannot be opened")
    assert world.writers.calls == {}


def test_withdraw_keeps_the_validation_record_a_wildcard_twin_still_needs(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    twin = domain("*.shop.example.com", world.project)
    world.store.add_domain(twin)
    removed = domain("shop.example.com", world.project)
    world.automation.withdraw(removed, records("shop.example.com"))
    assert world.writers.calls["example.com"] == [("delete", (records("shop.example.com")[1],))]
    world.store.mark_domain_deleting(twin.name)  # the twin is going too: nothing needs it any more
    world.automation.withdraw(removed, records("shop.example.com"))
    assert world.writers.calls["example.com"][-1] == ("delete", tuple(records("shop.example.com")))


def test_a_record_whose_target_is_not_known_yet_is_not_written(world: World) -> None:
    world.links.link(world.project, rfc2136("example.com"), ADMIN)
    unknown = DnsRecord("CNAME", "www.example.com", "", "routing", "made with the first production")
    validation = records("www.example.com")[0]
    world.automation.publish(domain("www.example.com", world.project), [validation, unknown])
    assert world.writers.calls == {"example.com": [("upsert", (validation,))]}
