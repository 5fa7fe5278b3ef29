"""DomainService: claiming a name, polling DNS, issuance, attaching at the edge, renewal, removal and
convergence, on the FakeStore and the fakes of tests/unit/domain_fakes.py with a clock moved by hand."""

from __future__ import annotations

import datetime
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from anchor_deploy.adapters.delegated_issuer import DelegatedIssuer
from anchor_deploy.adapters.local.edge_plane import EdgePlane
from anchor_deploy.model.domains import (
    LABEL_ALPHABET,
    CdnStatus,
    CertificateStatus,
    DnsStatus,
    Domain,
)
from anchor_deploy.model.entities import HostKind, HostRoute, Project
from anchor_deploy.model.errors import (
    DomainNotFound,
    DomainNotRetryable,
    DomainTaken,
    Forbidden,
    InvalidName,
    NotFound,
)
from anchor_deploy.model.names import production_host
from anchor_deploy.ports.domains import Certificate
from anchor_deploy.ports.fakes import FakePublicSuffixes, FakeStore, FakeUnicodeScripts
from anchor_deploy.services.domain_worker import DomainWorker
from anchor_deploy.services.domains import DomainService, DomainSettings, NameRules
from tests.support import to_ascii, to_unicode
from tests.unit.domain_fakes import (
    Clock,
    FakeDnsLookup,
    FakeDomainEdge,
    FakeIssuer,
    FakeProbe,
    FakeServedCertificates,
    FakeZone,
    XorBox,
)

BASE = "anchor.test"
ZONE = "acme-validation.anchor.test"
EDGE = "edge.anchor.test"
ADDRESSES = ("192.0.2.10", "2001:db8::10")
DEADLINE = 72 * 3600.0
LIFETIME = 90 * 86400.0
WWW = "www.example.com"
P, ISSUED = CertificateStatus.PENDING_VALIDATION, CertificateStatus.ISSUED


@dataclass
class Harness:
    clock: Clock
    store: FakeStore
    lookup: FakeDnsLookup
    issuer: FakeIssuer
    certs: FakeServedCertificates
    edge: FakeDomainEdge
    probe: FakeProbe
    zone: FakeZone
    box: XorBox
    service: DomainService
    site: Project
    other: Project
    wakes: list[None] = field(default_factory=list)

    def add(self, raw: object, project: Project | None = None) -> Domain:
        return self.service.add(project or self.site, raw).domain

    def domain(self, name: str) -> Domain:
        found = self.store.domain(name)
        assert found is not None, f"no row for {name}"
        return found

    def target(self, name: str) -> str:
        return self.domain(name).validation_target(ZONE)

    def validate(self, name: str) -> None:
        """The user adds the validation CNAME (and routes the name to the edge)."""
        domain = self.domain(name)
        self.lookup.cname(domain.challenge_name, domain.validation_target(ZONE))
        routed = "anchor-probe." + domain.base_name if name.startswith("*.") else name
        self.lookup.cname(routed, EDGE)

    def run(self, seconds: float = 0.0) -> int:
        self.clock.advance(seconds)
        return self.service.run_due()

    def run_at_next_check(self, name: str) -> Domain:
        when = self.domain(name).next_check_at
        assert when is not None
        self.clock.to(max(when, self.clock.now))
        self.service.run_due()
        return self.domain(name)

    def issued(self, name: str = WWW) -> Domain:
        self.add(name)
        self.validate(name)
        self.run()
        domain = self.domain(name)
        assert (domain.certificate_status, domain.cdn_status) == (ISSUED, CdnStatus.ACTIVE), domain
        return domain


def make_harness(lookup: FakeDnsLookup | None = None, **settings: Any) -> Harness:
    """``lookup``: the resolver every part of the service asks (a fresh FakeDnsLookup by default)."""
    clock = Clock()
    store = FakeStore(clock)
    lookup = lookup or FakeDnsLookup()
    issuer = FakeIssuer(clock, LIFETIME)
    certs = FakeServedCertificates()
    edge = FakeDomainEdge()
    probe = FakeProbe(certs, edge)
    zone = FakeZone(ZONE)
    box = XorBox()
    site = Project("prj_site", "site", 1.0)
    other = Project("prj_other", "other", 1.0)
    for project in (site, other):
        store.add_project(
            project, [HostRoute(production_host(project.name, BASE), HostKind.ALIAS, project.id, None)]
        )
    options: dict[str, Any] = {
        "base_domain": BASE,
        "edge_addresses": ADDRESSES,
        "validation_deadline": DEADLINE,
        "check_min": 5.0,
        "check_max": 300.0,
    } | settings
    caa_identity = options.pop("caa_identity", "")
    service = service_over(store, lookup, issuer, certs, edge, probe, zone, box, clock, caa_identity, options)
    h = Harness(clock, store, lookup, issuer, certs, edge, probe, zone, box, service, site, other)
    service.on_change = lambda: h.wakes.append(None)
    return h


def service_over(
    store: FakeStore,
    lookup: FakeDnsLookup,
    issuer: FakeIssuer,
    certs: FakeServedCertificates,
    edge: FakeDomainEdge,
    probe: FakeProbe,
    zone: FakeZone,
    box: XorBox,
    clock: Clock,
    caa_identity: str,
    options: dict[str, Any],
) -> DomainService:
    """A DomainService over these fakes, as one control-plane process has it (its own locks)."""
    suffixes = FakePublicSuffixes()
    return DomainService(
        store,
        DelegatedIssuer(issuer, lookup, ZONE, store.domain_certificate, suffixes.public_suffix, caa_identity),
        EdgePlane(store, box, certs, edge, probe, BASE, EDGE, ADDRESSES),
        lookup,
        box,
        DomainSettings(**options),
        clock,
        NameRules(to_ascii, to_unicode, suffixes, FakeUnicodeScripts()),
        zone,
    )


def another_process(h: Harness) -> DomainService:
    """The same database and data planes, seen by a second control-plane process."""
    options = {
        "base_domain": BASE,
        "edge_addresses": ADDRESSES,
    }
    return service_over(
        h.store, h.lookup, h.issuer, h.certs, h.edge, h.probe, h.zone, h.box, h.clock, "", options
    )


@pytest.fixture
def h() -> Harness:
    return make_harness()


def records(view_records: list[Any]) -> list[tuple[str, str, str, str]]:
    return [(r.type, r.name, r.value, r.purpose) for r in view_records]


# -- add -------------------------------------------------------------------------------------------
def test_add_subdomain_is_pending_with_validation_and_routing_cnames(h: Harness) -> None:
    view = h.service.add(h.site, WWW)
    domain = view.domain
    target = f"{domain.validation_label}.{ZONE}"
    assert (domain.name, domain.project_id, domain.certificate_status) == (WWW, h.site.id, P)
    assert (domain.cdn_status, domain.dns_status, domain.certificate) == (
        CdnStatus.PENDING,
        DnsStatus.UNKNOWN,
        None,
    )
    assert len(domain.validation_label) == 20 and set(domain.validation_label) <= set(LABEL_ALPHABET)
    assert f"_acme-challenge.{WWW}" in domain.status_reason and target in domain.status_reason
    assert records(view.records) == [
        ("CNAME", f"_acme-challenge.{WWW}", target, "validation"),
        ("CNAME", WWW, EDGE, "routing"),
    ]
    assert "renewal" in view.records[0].note
    assert view.unicode_name == WWW
    assert domain.next_check_at == h.clock.now and domain.validation_deadline == h.clock.now + DEADLINE
    assert h.store.domain(WWW) == domain and len(h.wakes) == 1


def test_add_apex_asks_for_address_records_with_an_alias_note(h: Harness) -> None:
    view = h.service.add(h.site, "example.com")
    target = view.domain.validation_target(ZONE)
    assert records(view.records) == [
        ("CNAME", "_acme-challenge.example.com", target, "validation"),
        ("A", "example.com", "192.0.2.10", "routing"),
        ("AAAA", "example.com", "2001:db8::10", "routing"),
    ]
    assert all("ALIAS" in r.note for r in view.records[1:])


def test_apex_is_the_registrable_domain_by_the_public_suffix_list(h: Harness) -> None:
    """example.co.uk is an apex (co.uk is a public suffix), so it gets address records; a name below it a
    CNAME; the dnsStatus check asks for what those records say."""
    apex = h.service.add(h.site, "example.co.uk")
    assert [r[:3] for r in records(apex.records)[1:]] == [
        ("A", "example.co.uk", "192.0.2.10"),
        ("AAAA", "example.co.uk", "2001:db8::10"),
    ]
    sub = h.service.add(h.site, "www.example.co.uk")
    assert [r[:3] for r in records(sub.records)[1:]] == [("CNAME", "www.example.co.uk", EDGE)]
    wildcard = h.service.add(h.site, "*.example.co.uk")
    assert [r[:3] for r in records(wildcard.records)[1:]] == [("CNAME", "*.example.co.uk", EDGE)]
    h.lookup.set("example.co.uk", "A", "198.51.100.7")
    h.run()
    assert h.domain("example.co.uk").dns_status == DnsStatus.MISCONFIGURED
    routing_queries = {q[:2] for q in h.lookup.queries if not q[0].startswith("_acme-challenge.")}
    assert ("example.co.uk", "A") in routing_queries and ("example.co.uk", "CNAME") not in routing_queries
    assert ("www.example.co.uk", "CNAME") in routing_queries


def test_a_stored_name_the_rules_now_refuse_can_still_be_seen_and_removed(h: Harness) -> None:
    """A domain added before the public-suffix and mixed-script rules is looked up by its name as ever."""
    for name in ("*.co.uk", "xn--pypal-4ve.com"):
        h.store.add_domain_within(Domain(name, h.site.id, name[-6:].ljust(20, "v"), h.clock.now), 100)
        assert h.service.get(h.site, name, check=False).domain.name == name
        h.service.remove(h.site, name)
        assert h.store.domain(name) is None


def test_each_domain_gets_its_own_validation_label(h: Harness) -> None:
    labels = {h.add(f"n{i}.example.com").validation_label for i in range(5)}
    assert len(labels) == 5


def test_a_name_held_by_another_project_is_domain_taken_and_stores_nothing(h: Harness) -> None:
    h.add(WWW)
    with pytest.raises(DomainTaken) as caught:
        h.service.add(h.other, "WWW.Example.com.")
    assert (caught.value.code, caught.value.status) == ("domain_taken", 409)
    assert h.store.project_domains(h.other.id) == [] and h.service.list_domains(h.other) == []
    assert h.domain(WWW).project_id == h.site.id
    with pytest.raises(DomainTaken):
        h.service.add(h.site, WWW)  # twice in the same project too
    assert [v.domain.name for v in h.service.list_domains(h.site)] == [WWW]


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        42,
        None,
        "localhost",
        "192.0.2.1",
        "a..example.com",
        "under_score.example.com",
        "*.*.example.com",
        "www.*.example.com",
        "www.example.com/x",
        "site.anchor.test",  # under the platform's own base domain
        "anchor.test",
        "co.uk",  # a public suffix
        "*.co.uk",  # a wildcard directly under one
        "github.io",  # ... of the list's private section too
        "p\u0430ypal.com",  # Latin and Cyrillic in one label
        "x" * 64 + ".com",
    ],
)
def test_bad_names_are_invalid_name_and_store_nothing(h: Harness, raw: object) -> None:
    with pytest.raises(InvalidName) as caught:
        h.service.add(h.site, raw)
    assert caught.value.code == "invalid_name" and caught.value.message
    assert h.store.all_domains() == [] and h.wakes == []


def test_case_and_trailing_dot_are_normalized(h: Harness) -> None:
    assert h.add("  WWW.Example.COM.  ").name == WWW
    assert h.service.get(h.site, "Www.EXAMPLE.com.", check=False).domain.name == WWW
    with pytest.raises(DomainTaken):
        h.add("www.example.com")


def test_idna_name_is_stored_as_a_label_and_shown_in_unicode(h: Harness) -> None:
    view = h.service.add(h.site, "Shop.Bücher.Example")
    assert view.domain.name == "shop.xn--bcher-kva.example"
    assert view.unicode_name == "shop.bücher.example"
    assert view.records[0].name == "_acme-challenge.shop.xn--bcher-kva.example"
    assert (
        h.service.get(h.site, "shop.xn--bcher-kva.example", check=False).unicode_name == "shop.bücher.example"
    )
    with pytest.raises(DomainTaken):
        h.add("shop.xn--bcher-kva.example", h.other)  # both spellings are one name


# -- polling ---------------------------------------------------------------------------------------
def test_missing_validation_cname_stays_pending_and_says_found_nothing(h: Harness) -> None:
    h.add(WWW)
    assert h.run() == 1
    domain = h.domain(WWW)
    assert domain.certificate_status == P
    assert f"CNAME _acme-challenge.{WWW} not found" in domain.status_reason
    assert "found nothing" in domain.status_reason
    assert domain.last_checked_at == h.clock.now
    assert domain.dns_status == DnsStatus.MISCONFIGURED  # no routing record either
    assert h.issuer.calls == []


def test_wrong_validation_target_names_both_targets(h: Harness) -> None:
    h.add(WWW)
    h.lookup.cname(f"_acme-challenge.{WWW}", "stale.acme-validation.anchor.test")
    h.run()
    reason = h.domain(WWW).status_reason
    assert "points to stale.acme-validation.anchor.test" in reason
    assert f"must point to {h.target(WWW)}" in reason
    assert h.domain(WWW).certificate_status == P and h.issuer.calls == []


def test_dns_error_is_quoted_in_the_reason(h: Harness) -> None:
    h.add(WWW)
    h.lookup.fail(f"_acme-challenge.{WWW}", "CNAME", "no answer from 127.0.0.1:53 in time")
    h.run()
    domain = h.domain(WWW)
    assert "no answer from 127.0.0.1:53 in time" in domain.status_reason
    assert domain.certificate_status == P


def test_polling_backs_off_doubling_up_to_check_max(h: Harness) -> None:
    h.add(WWW)
    deltas = []
    for _ in range(9):
        domain = h.run_at_next_check(WWW)
        assert domain.next_check_at is not None
        deltas.append(domain.next_check_at - h.clock.now)
    assert deltas == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]
    assert h.domain(WWW).failures == 9


def test_not_due_domains_are_not_checked(h: Harness) -> None:
    h.add(WWW)
    h.run()
    queries = len(h.lookup.queries)
    assert h.run(4.0) == 0 and len(h.lookup.queries) == queries
    assert h.run(1.0) == 1 and len(h.lookup.queries) > queries


def test_get_checks_a_pending_domain_at_once(h: Harness) -> None:
    added = h.add(WWW)
    assert h.service.get(h.site, WWW, check=False).domain == added
    seen = h.service.get(h.site, WWW).domain
    assert "found nothing" in seen.status_reason and seen.last_checked_at == h.clock.now
    h.validate(WWW)
    view = h.service.get(h.site, WWW)
    assert (view.domain.certificate_status, view.domain.cdn_status) == (ISSUED, CdnStatus.ACTIVE)
    calls = len(h.issuer.calls)
    h.service.get(h.site, WWW)  # an issued domain is not checked on GET
    assert len(h.issuer.calls) == calls


def test_get_of_another_projects_domain_is_not_found(h: Harness) -> None:
    h.add(WWW)
    with pytest.raises(DomainNotFound):
        h.service.get(h.other, WWW)
    with pytest.raises(DomainNotFound):
        h.service.get(h.site, "nope.example.com")


# -- validation deadline and retry -----------------------------------------------------------------
def test_deadline_passed_times_out_and_stops_polling(h: Harness) -> None:
    added = h.add(WWW)
    h.run()
    h.clock.to(added.validation_deadline)
    h.service.run_due()
    domain = h.domain(WWW)
    assert domain.certificate_status == CertificateStatus.VALIDATION_TIMED_OUT
    assert domain.next_check_at is None
    assert "72 h" in domain.status_reason and "found nothing" in domain.status_reason
    assert "retry" in domain.status_reason
    assert h.store.domains_due(h.clock.now + 10 * DEADLINE) == []
    h.validate(WWW)  # fixing the record alone does nothing: a retry is needed
    h.run(3600.0)
    assert h.domain(WWW).certificate_status == CertificateStatus.VALIDATION_TIMED_OUT
    assert h.issuer.calls == []


def test_retry_restarts_validation_then_issues(h: Harness) -> None:
    added = h.add(WWW)
    h.clock.to(added.validation_deadline + 1)
    h.run()
    assert h.domain(WWW).certificate_status == CertificateStatus.VALIDATION_TIMED_OUT
    view = h.service.retry(h.site, WWW)
    assert view.domain.certificate_status == P
    assert view.domain.validation_deadline == h.clock.now + DEADLINE
    assert view.domain.next_check_at is not None and "found nothing" in view.domain.status_reason
    h.validate(WWW)
    domain = h.run_at_next_check(WWW)
    assert (domain.certificate_status, domain.cdn_status) == (ISSUED, CdnStatus.ACTIVE)


def test_retry_with_the_record_fixed_issues_at_once(h: Harness) -> None:
    added = h.add(WWW)
    h.clock.to(added.validation_deadline)
    h.run()
    h.validate(WWW)
    view = h.service.retry(h.site, WWW)
    assert (view.domain.certificate_status, view.domain.cdn_status) == (ISSUED, CdnStatus.ACTIVE)
    assert len(h.wakes) == 2  # add and retry


def test_retry_of_a_pending_or_active_domain_is_refused(h: Harness) -> None:
    h.add("pending.example.com")
    with pytest.raises(DomainNotRetryable) as caught:
        h.service.retry(h.site, "pending.example.com")
    assert (caught.value.code, caught.value.status) == ("domain_not_retryable", 409)
    active = h.issued()
    with pytest.raises(DomainNotRetryable):
        h.service.retry(h.site, WWW)
    assert h.domain(WWW) == active


# -- issuance and the edge -------------------------------------------------------------------------
def test_validation_cname_appearing_issues_installs_attaches_and_probes(h: Harness) -> None:
    h.add(WWW)
    h.run()
    h.validate(WWW)
    domain = h.run_at_next_check(WWW)
    certificate = h.issuer.issued[0]
    assert h.issuer.calls == [((WWW,), domain.validation_target(ZONE))]
    assert (domain.certificate_status, domain.cdn_status, domain.dns_status) == (
        ISSUED,
        CdnStatus.ACTIVE,
        DnsStatus.OK,
    )
    assert domain.certificate is not None and domain.certificate.serial == certificate.serial
    assert domain.certificate.not_after == certificate.not_after.timestamp()
    assert domain.certificate.issuer == "CN=Fake CA" and domain.failures == 0
    installed = h.certs.installed[WWW]
    assert (installed.chain_pem, installed.key_pem, installed.serial) == (
        certificate.chain_pem,
        certificate.key_pem,
        certificate.serial,
    )
    chain, sealed = h.store.domain_certificate(WWW) or (b"", b"")
    assert chain == certificate.chain_pem
    assert sealed != certificate.key_pem and h.box.open(sealed) == certificate.key_pem
    assert h.edge.links == {WWW: production_host("site", BASE)} == {WWW: "site.anchor.test"}
    assert h.probe.probed == [WWW]
    assert domain.next_check_at == h.clock.now + 3600.0  # the routine hourly look


def test_a_misrouted_name_is_issued_but_flagged(h: Harness) -> None:
    h.add(WWW)
    h.validate(WWW)
    h.lookup.cname(WWW, "elsewhere.example.net")
    h.run()
    domain = h.domain(WWW)
    assert domain.certificate_status == ISSUED and domain.dns_status == DnsStatus.MISCONFIGURED
    assert "elsewhere.example.net" in domain.status_reason and EDGE in domain.status_reason


def test_probe_serving_another_serial_fails_cdn_then_recovers(h: Harness) -> None:
    h.probe.served = "deadbeef"
    h.add(WWW)
    h.validate(WWW)
    h.run()
    domain = h.domain(WWW)
    serial = h.issuer.issued[0].serial
    assert (domain.certificate_status, domain.cdn_status) == (ISSUED, CdnStatus.FAILED)
    assert "deadbeef" in domain.status_reason and serial in domain.status_reason
    assert domain.next_check_at == h.clock.now + 10.0
    h.probe.served = None
    domain = h.run_at_next_check(WWW)
    assert (domain.cdn_status, domain.failures) == (CdnStatus.ACTIVE, 0)
    assert len(h.issuer.issued) == 1  # no new certificate for an edge problem


def test_probe_failure_fails_cdn_with_the_error_and_backs_off(h: Harness) -> None:
    h.probe.error = "could not reach the edge at 127.0.0.1:443: Connection refused"
    h.add(WWW)
    h.validate(WWW)
    h.run()
    first, first_at = h.domain(WWW), h.clock.now
    assert first.cdn_status == CdnStatus.FAILED
    assert "Connection refused" in first.status_reason and WWW in first.status_reason
    second = h.run_at_next_check(WWW)
    assert second.cdn_status == CdnStatus.FAILED and second.failures == first.failures + 1
    assert first.next_check_at is not None and second.next_check_at is not None
    assert second.next_check_at - h.clock.now > first.next_check_at - first_at
    h.probe.error = None
    assert h.run_at_next_check(WWW).cdn_status == CdnStatus.ACTIVE


def test_edge_attach_failure_fails_cdn_and_retry_fixes_it_at_once(h: Harness) -> None:
    h.edge.fail = "could not attach www.example.com: No space left on device"
    h.add(WWW)
    h.validate(WWW)
    h.run()
    domain = h.domain(WWW)
    assert (domain.certificate_status, domain.cdn_status) == (ISSUED, CdnStatus.FAILED)
    assert "No space left on device" in domain.status_reason
    h.edge.fail = None
    view = h.service.retry(h.site, WWW)
    assert view.domain.cdn_status == CdnStatus.ACTIVE and h.edge.links == {WWW: "site.anchor.test"}


def test_three_refusals_in_a_row_fail_with_the_cas_message(h: Harness) -> None:
    h.issuer.refuse = "too many certificates already issued for example.com"
    h.add(WWW)
    h.validate(WWW)
    h.run()
    first = h.domain(WWW)
    assert first.certificate_status == P and first.failures == 1
    assert first.status_reason.startswith("the certificate authority refused:")
    assert "too many certificates" in first.status_reason
    assert h.run_at_next_check(WWW).certificate_status == P
    failed = h.run_at_next_check(WWW)
    assert failed.certificate_status == CertificateStatus.FAILED
    assert "too many certificates already issued for example.com" in failed.status_reason
    assert failed.next_check_at is None and len(h.issuer.calls) == 3
    assert h.certs.installed == {} and h.edge.links == {}
    h.issuer.refuse = None
    assert h.service.retry(h.site, WWW).domain.certificate_status == ISSUED


def test_a_refusal_then_success_issues(h: Harness) -> None:
    h.issuer.refusals = ["the CA is busy"]
    h.add(WWW)
    h.validate(WWW)
    h.run()
    assert "the CA is busy" in h.domain(WWW).status_reason
    domain = h.run_at_next_check(WWW)
    assert (domain.certificate_status, domain.cdn_status, domain.failures) == (ISSUED, CdnStatus.ACTIVE, 0)


def test_dns_misses_between_refusals_restart_the_refusal_count(h: Harness) -> None:
    h.issuer.refuse = "refused"
    h.add(WWW)
    h.validate(WWW)
    h.run()
    h.run_at_next_check(WWW)  # two refusals
    h.lookup.clear(f"_acme-challenge.{WWW}", "CNAME")
    h.run_at_next_check(WWW)  # a DNS miss
    h.validate(WWW)
    assert h.run_at_next_check(WWW).certificate_status == P  # refusal 1 again, not 3


def test_an_unexpected_error_is_contained_and_postponed(h: Harness) -> None:
    def explode_once() -> None:
        if len(h.issuer.calls) == 1:
            raise RuntimeError("bug in the issuer")

    for name in (WWW, "ok.example.com"):
        h.add(name)
        h.validate(name)
    h.issuer.during_issue = explode_once
    assert h.run() == 2
    broken = [d for d in h.store.all_domains() if d.certificate_status == P]
    assert len(broken) == 1 and broken[0].next_check_at == h.clock.now + 300.0
    assert len([d for d in h.store.all_domains() if d.certificate_status == ISSUED]) == 1


# -- renewal ---------------------------------------------------------------------------------------
def renew_time(domain: Domain) -> float:
    assert domain.certificate is not None
    return domain.certificate.renew_after()


def test_renewal_at_two_thirds_installs_the_new_certificate_without_a_gap(h: Harness) -> None:
    first = h.issued()
    assert first.certificate is not None
    assert renew_time(first) == pytest.approx(first.certificate.not_before + LIFETIME * 2 / 3)
    h.clock.to(renew_time(first) - 1)
    h.service.run_due()
    assert len(h.issuer.issued) == 1  # not yet
    h.clock.to(renew_time(first) + 1)
    h.service.run_due()
    renewed = h.domain(WWW)
    old, new = h.issuer.issued
    assert renewed.certificate is not None and renewed.certificate.serial == new.serial != old.serial
    assert (renewed.certificate_status, renewed.cdn_status) == (ISSUED, CdnStatus.ACTIVE)
    assert h.certs.serial(WWW) == new.serial
    assert [e for e in h.certs.events if e[1] == WWW] == [("put", WWW, old.serial), ("put", WWW, new.serial)]
    assert (h.store.domain_certificate(WWW) or (b"",))[0] == new.chain_pem
    assert h.probe.probed[-1] == WWW
    assert h.issuer.calls[-1] == ((WWW,), first.validation_target(ZONE))


def test_a_certificate_of_a_replaced_root_is_reissued_at_once_not_at_its_renewal_time(h: Harness) -> None:
    first = h.issued()
    assert first.certificate is not None and first.next_check_at is not None
    h.clock.to(first.certificate.not_before + 60)  # far from its renewal time
    h.service.run_due()
    assert len(h.issuer.issued) == 1
    h.issuer.outdated_issuers.add(first.certificate.issuer)  # the local CA got a new root
    h.issuer.issuer_name = "CN=Fake CA 2"
    h.service.converge()  # at start-up: due now
    due = h.domain(WWW).next_check_at
    assert due is not None and due <= h.clock.now
    h.service.run_due()
    renewed = h.domain(WWW)
    assert len(h.issuer.issued) == 2
    assert renewed.certificate is not None and renewed.certificate.serial == h.issuer.issued[1].serial
    assert h.certs.serial(WWW) == renewed.certificate.serial
    assert (renewed.certificate_status, renewed.cdn_status) == (ISSUED, CdnStatus.ACTIVE)
    assert renewed.certificate.issuer == "CN=Fake CA 2"
    h.run_at_next_check(WWW)
    assert len(h.issuer.issued) == 2  # the new certificate is current: no more re-issues


def test_refused_renewal_keeps_the_old_certificate_then_expires_then_recovers(h: Harness) -> None:
    first = h.issued()
    assert first.certificate is not None
    old = h.issuer.issued[0]
    h.issuer.refuse = "the CA is down for maintenance"
    h.clock.to(renew_time(first) + 1)
    h.service.run_due()
    kept = h.domain(WWW)
    expires = old.not_after.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (kept.certificate_status, kept.cdn_status) == (ISSUED, CdnStatus.ACTIVE)
    assert kept.certificate == first.certificate and h.certs.serial(WWW) == old.serial
    assert kept.status_reason.startswith("renewal failed:")
    assert "the CA is down for maintenance" in kept.status_reason and expires in kept.status_reason
    assert kept.next_check_at is not None and h.clock.now < kept.next_check_at <= first.certificate.not_after

    h.clock.to(first.certificate.not_after + 1)
    h.service.run_due()
    expired = h.domain(WWW)
    assert expired.certificate_status == CertificateStatus.EXPIRED
    assert "EXPIRED" in expired.status_reason and expires in expired.status_reason
    assert "the CA is down for maintenance" in expired.status_reason
    assert h.certs.serial(WWW) == old.serial  # still served: better an expired certificate than none
    assert [e[0] for e in h.certs.events] == ["put"]

    h.issuer.refuse = None
    recovered = h.run_at_next_check(WWW)
    assert (recovered.certificate_status, recovered.cdn_status) == (ISSUED, CdnStatus.ACTIVE)
    assert recovered.certificate is not None and recovered.certificate.serial == h.issuer.issued[-1].serial
    assert h.certs.serial(WWW) == recovered.certificate.serial != old.serial


def test_renewal_without_the_validation_cname_says_so(h: Harness) -> None:
    first = h.issued()
    h.lookup.clear(f"_acme-challenge.{WWW}", "CNAME")
    h.clock.to(renew_time(first) + 1)
    h.service.run_due()
    domain = h.domain(WWW)
    assert domain.status_reason.startswith("renewal failed:")
    assert f"_acme-challenge.{WWW} not found" in domain.status_reason
    assert len(h.issuer.calls) == 1  # the CA is not asked without the record


def test_an_expired_domain_backs_off_between_renewal_attempts(h: Harness) -> None:
    first = h.issued()
    assert first.certificate is not None
    h.issuer.refuse = "refused"
    h.clock.to(first.certificate.not_after + 1)
    h.service.run_due()
    for _ in range(3):
        domain = h.run_at_next_check(WWW)
        assert domain.certificate_status == CertificateStatus.EXPIRED
        assert domain.next_check_at is not None
        assert domain.next_check_at - h.clock.now >= 5.0  # at least check_min, as every other failure


# -- removal ---------------------------------------------------------------------------------------
def test_remove_detaches_deletes_revokes_withdraws_and_frees_the_name(h: Harness) -> None:
    issued = h.issued()
    chain = h.issuer.issued[0].chain_pem
    view = h.service.remove(h.site, WWW)
    assert view.domain.name == WWW and view.records[0].name == f"_acme-challenge.{WWW}"
    assert h.edge.links == {} and ("detach", WWW) in h.edge.events
    assert h.certs.installed == {} and h.certs.events[-1] == ("remove", WWW, issued.certificate.serial)  # type: ignore[union-attr]
    assert h.issuer.revoked == [chain]
    assert h.zone.withdrawn == [issued.validation_target(ZONE)]
    assert h.store.domain(WWW) is None and h.service.list_domains(h.site) == []
    with pytest.raises(DomainNotFound):
        h.service.remove(h.site, WWW)
    again = h.add(WWW, h.other)
    assert again.project_id == h.other.id and again.validation_label != issued.validation_label


def test_remove_of_a_pending_domain_revokes_nothing(h: Harness) -> None:
    added = h.add(WWW)
    h.run()
    h.service.remove(h.site, WWW)
    assert h.issuer.revoked == [] and h.store.domain(WWW) is None
    assert h.zone.withdrawn == [added.validation_target(ZONE)]


def test_remove_needs_the_owning_project(h: Harness) -> None:
    h.issued()
    with pytest.raises(DomainNotFound):
        h.service.remove(h.other, WWW)
    assert h.domain(WWW).project_id == h.site.id and h.issuer.revoked == []


def test_a_failed_revocation_does_not_block_removal(h: Harness) -> None:
    h.issued()
    h.issuer.refuse_revoke = "the CA is unreachable"
    h.service.remove(h.site, WWW)
    assert h.store.domain(WWW) is None and h.certs.installed == {} and h.edge.links == {}


def mark_deleting(h: Harness, name: str) -> None:
    assert h.store.mark_domain_deleting(name) is not None


def test_marked_for_removal_during_issuance_keeps_no_certificate(h: Harness) -> None:
    h.add(WWW)
    h.validate(WWW)
    h.issuer.during_issue = lambda: mark_deleting(h, WWW)
    h.run()
    assert h.issuer.revoked == [h.issuer.issued[0].chain_pem]  # the fresh one, at once
    assert h.certs.installed == {} and h.edge.links == {}
    assert h.domain(WWW).deleting and h.domain(WWW).certificate is None
    h.run()  # the worker finishes the removal
    assert h.store.domain(WWW) is None and h.certs.installed == {}
    assert h.issuer.revoked == [h.issuer.issued[0].chain_pem]
    assert [e[0] for e in h.certs.events] == ["remove"]


def test_remove_racing_a_running_issuance_waits_and_revokes(h: Harness) -> None:
    h.add(WWW)
    h.validate(WWW)
    errors: list[BaseException] = []

    def remove() -> None:
        try:
            h.service.remove(h.site, WWW)
        except BaseException as exc:
            errors.append(exc)

    remover = threading.Thread(target=remove)

    def while_the_ca_works() -> None:
        remover.start()
        deadline = time.monotonic() + 5
        while not h.domain(WWW).deleting:
            assert time.monotonic() < deadline, "remove never marked the domain"
            time.sleep(0.001)

    h.issuer.during_issue = while_the_ca_works
    h.run()
    remover.join(timeout=5)
    assert not remover.is_alive() and errors == []
    assert h.store.domain(WWW) is None
    assert h.certs.installed == {} and h.edge.links == {}
    assert h.issuer.revoked == [h.issuer.issued[0].chain_pem]


def test_remove_racing_a_renewal_revokes_both_certificates(h: Harness) -> None:
    first = h.issued()
    h.issuer.during_issue = lambda: mark_deleting(h, WWW)
    h.clock.to(renew_time(first) + 1)
    h.service.run_due()
    h.issuer.during_issue = None
    h.run()
    old, new = h.issuer.issued
    assert sorted(h.issuer.revoked) == sorted([old.chain_pem, new.chain_pem])
    assert h.store.domain(WWW) is None and h.certs.installed == {} and h.edge.links == {}


# -- convergence -----------------------------------------------------------------------------------
def stub_certificate(serial: str) -> Certificate:
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    return Certificate(b"chain-" + serial.encode(), b"key", serial, now, now, "CN=Stray")


def test_converge_drops_certificates_and_links_no_row_owns(h: Harness) -> None:
    h.issued()
    h.add("pending.example.com")
    h.certs.put("orphan.example.com", stub_certificate("1"))
    h.certs.put("pending.example.com", stub_certificate("2"))
    h.edge.attach("orphan.example.com", "gone.anchor.test")
    h.edge.attach("*.stray.example", "gone.anchor.test")
    report = h.service.converge()
    assert sorted(report["dropped"]) == [
        "*.stray.example",
        "orphan.example.com",
        "orphan.example.com",
        "pending.example.com",
    ]
    assert report["removed"] == [] and report["installed"] == []
    assert h.certs.names() == [WWW] and h.edge.links == {WWW: "site.anchor.test"}
    assert h.service.converge() == {"removed": [], "installed": [], "dropped": []}


def test_converge_reinstalls_a_missing_certificate_and_link_from_the_database(h: Harness) -> None:
    h.issued()
    certificate = h.issuer.issued[0]
    h.certs.installed.clear()  # the files and links were lost (a restored backup, a wiped disk)
    h.edge.links.clear()
    report = h.service.converge()
    assert report["installed"] == [WWW]
    installed = h.certs.installed[WWW]
    assert (installed.serial, installed.chain_pem, installed.key_pem) == (
        certificate.serial,
        certificate.chain_pem,
        certificate.key_pem,  # opened from the sealed copy
    )
    assert installed.not_after == certificate.not_after
    assert h.edge.links == {WWW: "site.anchor.test"}
    assert h.service.converge()["installed"] == []


def test_converge_replaces_a_stale_certificate(h: Harness) -> None:
    h.issued()
    h.certs.put(WWW, stub_certificate("abc"))
    assert h.service.converge()["installed"] == [WWW]
    assert h.certs.serial(WWW) == h.issuer.issued[0].serial


def test_converge_reattaches_a_link_pointing_elsewhere(h: Harness) -> None:
    h.issued()
    h.edge.links[WWW] = "other.anchor.test"
    assert h.service.converge()["installed"] == [WWW]
    assert h.edge.links == {WWW: "site.anchor.test"}


def test_converge_finishes_a_removal(h: Harness) -> None:
    issued = h.issued()
    h.store.mark_domain_deleting(WWW)
    report = h.service.converge()
    assert report["removed"] == [WWW]
    assert h.store.domain(WWW) is None and h.certs.installed == {} and h.edge.links == {}
    assert h.issuer.revoked == [h.issuer.issued[0].chain_pem]
    assert h.zone.withdrawn == [issued.validation_target(ZONE)]


def test_converge_goes_on_past_a_certificate_it_cannot_open(h: Harness) -> None:
    h.issued("shop.example.com")
    h.issued(WWW)
    chain, _sealed = h.store.domain_certificate("shop.example.com") or (b"", b"")
    h.store.save_domain(h.domain("shop.example.com"), (chain, b"sealed with a lost key"))
    h.certs.installed.clear()
    report = h.service.converge()
    assert report["installed"] == [WWW] and h.certs.names() == [WWW]


# -- project_of ------------------------------------------------------------------------------------
def test_project_of_hides_domains_the_caller_cannot_see(h: Harness) -> None:
    h.add(WWW)

    def sees_all(name: str) -> Project:
        project = h.store.project_by_name(name)
        assert project is not None
        return project

    def forbidden(name: str) -> Project:
        raise Forbidden(f"this token is limited to another project than {name}")

    def not_found(name: str) -> Project:
        raise NotFound("no")

    assert h.service.project_of("WWW.example.com.", sees_all) == h.site
    for visible in (forbidden, not_found):
        with pytest.raises(DomainNotFound) as caught:
            h.service.project_of(WWW, visible)
        assert "site" not in caught.value.message
    with pytest.raises(DomainNotFound):
        h.service.project_of("unknown.example.com", sees_all)
    h.store.mark_domain_deleting(WWW)
    with pytest.raises(DomainNotFound):
        h.service.project_of(WWW, sees_all)


# -- wildcards and CAA -----------------------------------------------------------------------------
def test_wildcard_validates_at_the_parent_and_is_probed_by_a_name_under_it(h: Harness) -> None:
    view = h.service.add(h.site, "*.Example.com")
    target = view.domain.validation_target(ZONE)
    assert view.domain.name == "*.example.com"
    assert records(view.records) == [
        ("CNAME", "_acme-challenge.example.com", target, "validation"),
        ("CNAME", "*.example.com", EDGE, "routing"),
    ]
    h.lookup.cname("_acme-challenge.example.com", target)
    h.lookup.cname("anchor-probe.example.com", EDGE)  # what a wildcard CNAME answers for any name
    h.run()
    domain = h.domain("*.example.com")
    assert (domain.certificate_status, domain.cdn_status, domain.dns_status) == (
        ISSUED,
        CdnStatus.ACTIVE,
        DnsStatus.OK,
    )
    assert h.issuer.calls == [(("*.example.com",), target)]
    assert h.certs.names() == ["*.example.com"] and h.edge.links == {"*.example.com": "site.anchor.test"}
    assert h.probe.probed == ["anchor-probe.example.com"]
    assert ("anchor-probe.example.com", "CNAME") in h.lookup.queries


def caa_harness() -> Harness:
    return make_harness(caa_identity="letsencrypt.org")


@pytest.mark.parametrize(
    ("caa", "warned"),
    [
        ({"example.com": ("issue pki.goog",)}, True),
        ({"example.com": ("issue letsencrypt.org",)}, False),
        ({"example.com": ("issue letsencrypt.org; validationmethods=dns-01",)}, False),
        ({"example.com": ("issue pki.goog", "issue letsencrypt.org")}, False),
        ({"example.com": ("iodef mailto:ops@example.com",)}, False),  # no issue tag: anyone may issue
        ({"www.example.com": ("issue letsencrypt.org",), "example.com": ("issue pki.goog",)}, False),
        ({"www.example.com": ("issue pki.goog",), "example.com": ("issue letsencrypt.org",)}, True),
        ({}, False),
    ],
)
def test_caa_forbidding_the_ca_adds_a_warning(caa: dict[str, tuple[str, ...]], warned: bool) -> None:
    h = caa_harness()
    for name, values in caa.items():
        h.lookup.set(name, "CAA", *values)
    h.add(WWW)
    h.run()
    reason = h.domain(WWW).status_reason
    assert "found nothing" in reason
    assert ("Warning" in reason) is warned
    if warned:
        assert "pki.goog" in reason and 'CAA 0 issue "letsencrypt.org"' in reason


def test_caa_for_a_wildcard_reads_issuewild_first() -> None:
    h = caa_harness()
    h.lookup.set("example.com", "CAA", "issue letsencrypt.org", "issuewild pki.goog")
    h.add("*.example.com")
    h.run()
    reason = h.domain("*.example.com").status_reason
    assert "Warning" in reason and 'CAA 0 issuewild "letsencrypt.org"' in reason


def test_no_caa_lookups_without_a_caa_identity(h: Harness) -> None:
    h.lookup.set("example.com", "CAA", "issue pki.goog")
    h.add(WWW)
    h.run()
    assert "Warning" not in h.domain(WWW).status_reason
    assert not [q for q in h.lookup.queries if q[1] == "CAA"]


# -- the worker ------------------------------------------------------------------------------------
def test_worker_issues_a_due_domain_and_stops(h: Harness) -> None:
    h.add(WWW)
    h.validate(WWW)
    worker = DomainWorker(h.service, threads=2, converge_every=600.0)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while h.domain(WWW).cdn_status != CdnStatus.ACTIVE:
            assert time.monotonic() < deadline, h.domain(WWW)
            time.sleep(0.005)
    finally:
        worker.stop()
    assert h.certs.names() == [WWW]
