"""CloudFrontDomains (the AWS DomainPlane) on the moto server with CloudFront's and ACM's rules
(tests/moto_rules): a distribution's certificate must cover every alias, an alias is on one distribution,
IfMatch must name the current ETag, a certificate in use cannot be deleted, Deployed comes after a change.

Every step of every test checks that each distribution's certificate covers all its aliases (the rules
server refuses an update that would break that; the check here also covers the state between updates).
Names are under example.com, which no moto Route 53 zone covers: ACM issues them after 1 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from anchor_deploy.adapters.aws.acm_certificates import AcmCertificates
from anchor_deploy.adapters.aws.cdn_domains import CloudFrontDomains, cloudfront_domains
from anchor_deploy.adapters.aws.cdn_placements import PlacementBook
from anchor_deploy.adapters.aws.cdn_slots import NO_PRODUCTION
from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.cloudfront import CloudFrontDistributions, DistributionSettings
from anchor_deploy.adapters.aws.dynamo_store import DynamoStore
from anchor_deploy.model.domains import Domain
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import QuotaExceeded
from anchor_deploy.ports.issuance import Attachment, AttachState
from tests.contract.dynamo_support import dynamo_store, store_on_table

PROJECT = Project("prj_00000000000000aa", "shop", 1_700_000_000.0)
ORIGIN = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
CACHE_POLICY = "anchor-test-cache-policy"  # moto has no cache policy API (as tests/e2e/aws_platform.py)
SETTLE_SECONDS = 90.0

pytestmark = pytest.mark.aws


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def distributions(clients: AwsClients) -> CloudFrontDistributions:
    settings = DistributionSettings(cache_policy_id=CACHE_POLICY, poll_seconds=0.1, max_polls=50)
    return CloudFrontDistributions(clients, settings)


def plane(
    store: DynamoStore,
    clients: AwsClients,
    holder: str,
    clock: Callable[[], float],
    quotas: dict[str, int] | None = None,
    lease_ttl: float = 120.0,
) -> CloudFrontDomains:
    cdn, certificates = distributions(clients), AcmCertificates(clients)
    return cloudfront_domains(
        clients, store.table, store, cdn, certificates, holder, quotas, clock=clock, lease_ttl=lease_ttl
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(request: pytest.FixtureRequest, clock: Clock) -> DynamoStore:
    made = dynamo_store(request, clock)
    made.add_project(PROJECT, [])
    return made


@pytest.fixture
def clients(store: DynamoStore) -> AwsClients:
    return AwsClients()


def production(clients: AwsClients) -> str:
    """Slot 0: the project's production distribution, as part 1 makes it."""
    distribution_id, _domain = distributions(clients).ensure(PROJECT.id, ORIGIN)
    return distribution_id


def domain_row(store: DynamoStore, name: str, number: int) -> Domain:
    row = Domain(name, PROJECT.id, f"label{number:04d}", 1_700_000_000.0)
    store.add_domain(row)
    return row


# -- what AWS holds --------------------------------------------------------------------------------
def cloudfront() -> Any:
    return AwsClients().client("cloudfront")


def acm() -> Any:
    return AwsClients().regional("acm", "us-east-1")


def listed_distributions() -> list[dict[str, Any]]:
    return list(cloudfront().list_distributions()["DistributionList"].get("Items", []))


def configs() -> dict[str, dict[str, Any]]:
    return {
        d["Id"]: cloudfront().get_distribution_config(Id=d["Id"])["DistributionConfig"]
        for d in listed_distributions()
    }


def aliases_of(config: dict[str, Any]) -> set[str]:
    return set(config.get("Aliases", {}).get("Items") or [])


def certificate_names(arn: str) -> set[str]:
    found = AcmCertificates(AwsClients()).describe(arn)
    assert found is not None, f"{arn} is gone while a distribution serves it"
    return set(found.names)


def certificates() -> dict[str, set[str]]:
    listing = acm().list_certificates()["CertificateSummaryList"]
    return {c["CertificateArn"]: certificate_names(c["CertificateArn"]) for c in listing}


def assert_covered() -> None:
    """Every distribution's certificate is ISSUED and covers each of its aliases."""
    for distribution_id, config in configs().items():
        aliases = aliases_of(config)
        arn = config.get("ViewerCertificate", {}).get("ACMCertificateArn") or ""
        if not aliases:
            continue
        assert arn, f"{distribution_id} has aliases {aliases} and CloudFront's default certificate"
        described = AcmCertificates(AwsClients()).describe(arn)
        assert described is not None and described.status == "ISSUED"
        assert aliases <= set(described.names), f"{distribution_id}: {aliases} not under {described.names}"


def settle(
    cdn: CloudFrontDomains,
    rows: Sequence[Domain],
    until: Callable[[dict[str, Attachment]], bool],
    each_call: bool = True,
) -> dict[str, Attachment]:
    """Call attach for every row, round after round, checking coverage after each call (or each round),
    until ``until``."""
    deadline = time.monotonic() + SETTLE_SECONDS
    answers: dict[str, Attachment] = {}
    while True:
        for row in rows:
            if row.name in answers and answers[row.name].state != AttachState.PENDING:
                continue
            answers[row.name] = cdn.attach(row, PROJECT)
            if each_call:
                assert_covered()
        assert_covered()
        if until(answers):
            return answers
        assert time.monotonic() < deadline, f"not settled: {answers}"
        time.sleep(0.25)


def all_active(answers: dict[str, Attachment]) -> bool:
    return all(a.state == AttachState.ACTIVE for a in answers.values())


def detach_until_done(cdn: CloudFrontDomains, row: Domain) -> int:
    deadline = time.monotonic() + SETTLE_SECONDS
    calls = 0
    while not cdn.detach(row):
        calls += 1
        assert_covered()
        assert time.monotonic() < deadline, "detach did not finish"
        time.sleep(0.25)
    return calls + 1


# -- tests ----------------------------------------------------------------------------------------
def test_three_domains_on_one_project_are_covered_at_every_step(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    distribution_id = production(clients)
    cdn = plane(store, clients, "one", clock)
    domain_name = cloudfront().get_distribution(Id=distribution_id)["Distribution"]["DomainName"]
    rows = [domain_row(store, f"{n}.example.com", i) for i, n in enumerate(("www", "shop", "api"))]
    for count, row in enumerate(rows, start=1):
        cdn.admit(row, PROJECT, rows[: count - 1])
        (record,) = cdn.routing_records(row, PROJECT, apex=False)
        assert (record.type, record.name, record.value) == ("CNAME", row.name, domain_name)
        settle(cdn, rows[:count], all_active)
        config = configs()[distribution_id]
        assert aliases_of(config) == {r.name for r in rows[:count]}
        serving = config["ViewerCertificate"]["ACMCertificateArn"]
        assert certificate_names(serving) == {r.name for r in rows[:count]}, "exactly the slot's names"
        again = [cdn.attach(r, PROJECT) for r in rows[:count]]  # an active name tells its certificate anew
        assert {a.state for a in again} == {AttachState.ACTIVE}
        assert {a.served.reference for a in again if a.served} == {serving}
        assert all(a.served and a.served.info.not_after > time.time() for a in again)
    settle(cdn, rows, all_active)
    calls = clients.count_calls()
    assert cdn.attach(rows[0], PROJECT).state == AttachState.ACTIVE
    assert calls == {"cloudfront:GetDistribution": 1, "acm:DescribeCertificate": 1}, "an active name's check"
    deadline = time.monotonic() + 10
    while len(certificates()) > 1 and time.monotonic() < deadline:  # replaced ones go once CloudFront lets go
        cdn.converge(rows)
        time.sleep(0.2)
    assert list(certificates().values()) == [{r.name for r in rows}]


def test_an_apex_gets_an_alias_record_and_no_production_waits(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    cdn = plane(store, clients, "one", clock)
    row = domain_row(store, "example.com", 1)
    (record,) = cdn.routing_records(row, PROJECT, apex=True)
    assert record.type == "ALIAS" and record.value == "" and "production deployment" in record.note
    answer = cdn.attach(row, PROJECT)
    assert (answer.state, answer.reason) == (AttachState.PENDING, NO_PRODUCTION)
    production(clients)
    (record,) = cdn.routing_records(row, PROJECT, apex=True)
    assert record.value.endswith(".cloudfront.net") and "ALIAS/ANAME" in record.note
    settle(cdn, [row], all_active)


def test_sixty_domains_end_active_in_six_slots_within_every_quota(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    production(clients)
    cdn = plane(store, clients, "one", clock)
    rows = [domain_row(store, f"site{i:02d}.example.com", i) for i in range(60)]
    for i, row in enumerate(rows):
        cdn.admit(row, PROJECT, rows[:i])
        cdn.routing_records(row, PROJECT, apex=False)
    answers = settle(cdn, rows, all_active, each_call=False)  # a check takes 0.7 s with 6 distributions
    assert len(answers) == 60
    found = configs()
    assert len(found) == 6
    assert all(len(aliases_of(c)) <= 10 for c in found.values())
    assert set().union(*(aliases_of(c) for c in found.values())) == {r.name for r in rows}
    assert all(len(names) <= 10 for names in certificates().values())
    cdn_listing = distributions(clients)
    assert list(cdn_listing.by_project()) == [PROJECT.id], "extra slots are not projects"
    assert sorted(cdn_listing.slots(PROJECT.id)) == [0, 1, 2, 3, 4, 5]
    assert cdn_listing.find(PROJECT.id)["Comment"] == f"anchor {PROJECT.id}"  # type: ignore[index]

    extra = domain_row(store, "site60.example.com", 60)
    cdn.admit(extra, PROJECT, rows)  # the account has room for a 7th distribution
    limited = plane(store, clients, "one", clock, quotas={"cloudfront_distributions": 6})
    with pytest.raises(QuotaExceeded) as refused:
        limited.admit(extra, PROJECT, rows)
    assert "Distributions per AWS account" in str(refused.value)
    assert "ANCHOR_AWS_QUOTA_DISTRIBUTIONS" in str(refused.value) and "L-24B04930" in str(refused.value)
    with pytest.raises(QuotaExceeded):
        limited.routing_records(extra, PROJECT, apex=False)
    assert len(listed_distributions()) == 6, "nothing made for the refused name"

    uses = {u.code: u for u in limited.quotas(PROJECT)}
    assert (uses["acm_names_per_certificate"].used, uses["acm_names_per_certificate"].limit) == (10, 10)
    assert (uses["cloudfront_aliases"].used, uses["cloudfront_aliases"].limit) == (10, 100)
    assert uses["cloudfront_distributions"].used == 6
    assert uses["cloudfront_distributions"].source == "ANCHOR_AWS_QUOTA_DISTRIBUTIONS"
    assert uses["acm_names_per_certificate"].source == "AWS default"  # moto's Service Quotas knows no ACM
    assert "domains_per_project" not in uses  # the project's own quota is the domain service's
    assert uses["acm_certificates"].used == len(certificates())


def test_a_stale_if_match_between_two_processes_ends_with_both_attached(
    request: pytest.FixtureRequest, store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    production(clients)
    first = plane(store, clients, "process-a", clock, lease_ttl=30.0)
    other_clients = AwsClients()
    second = plane(store_on_table(clock), other_clients, "process-b", clock, lease_ttl=30.0)
    one, two = domain_row(store, "one.example.com", 1), domain_row(store, "two.example.com", 2)
    first.routing_records(one, PROJECT, apex=False)
    second.routing_records(two, PROJECT, apex=False)
    assert first.attach(one, PROJECT).state == AttachState.PENDING  # its certificate is requested
    time.sleep(1.2)  # ACM issues it

    seen: list[str] = []

    def meanwhile(**_: Any) -> None:
        if seen:
            return
        seen.append("raced")
        clock.offset += 60  # the first process's lease has expired: the second takes it and updates first
        second.attach(two, PROJECT)

    def answered(parsed: dict[str, Any], **_: Any) -> None:
        seen.append(str(parsed.get("Error", {}).get("Code", "ok")))

    events = clients.client("cloudfront").meta.events
    events.register("before-call.cloudfront.UpdateDistribution", meanwhile)
    events.register("after-call.cloudfront.UpdateDistribution", answered)
    first.attach(one, PROJECT)
    assert seen[:2] == ["raced", "PreconditionFailed"], seen

    deadline = time.monotonic() + SETTLE_SECONDS
    states: dict[str, AttachState] = {}
    while set(states.values()) != {AttachState.ACTIVE}:
        states = {"one": first.attach(one, PROJECT).state, "two": second.attach(two, PROJECT).state}
        assert_covered()
        assert time.monotonic() < deadline, states
        time.sleep(0.25)
    (config,) = configs().values()
    assert aliases_of(config) == {"one.example.com", "two.example.com"}


def test_detach_leaves_no_alias_and_no_certificate_listing_the_name(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    production(clients)
    cdn = plane(store, clients, "one", clock)
    rows = [domain_row(store, f"{n}.example.com", i) for i, n in enumerate(("a", "b", "c"))]
    for row in rows:
        cdn.routing_records(row, PROJECT, apex=False)
    settle(cdn, rows, all_active)
    calls = detach_until_done(cdn, rows[1])
    assert calls > 1, "the alias goes first, the certificate after"
    assert all("b.example.com" not in aliases_of(c) for c in configs().values())
    assert all("b.example.com" not in names for names in certificates().values())
    assert list(certificates().values()) == [{"a.example.com", "c.example.com"}]
    rest = [rows[0], rows[2]]
    assert all_active({r.name: cdn.attach(r, PROJECT) for r in rest})
    for row in rest:
        detach_until_done(cdn, row)
    (config,) = configs().values()
    assert not aliases_of(config) and config["ViewerCertificate"].get("ACMCertificateArn", "") == ""
    assert certificates() == {}


def test_a_name_on_another_distribution_fails_alone(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    production(clients)
    taken = "taken.example.com"
    foreign_id, _ = distributions(clients).ensure("prj_someone_else0", ORIGIN)
    foreign_arn = AcmCertificates(clients).request([taken], "foreign")
    time.sleep(1.2)
    cloudfront_update(foreign_id, [taken], foreign_arn)

    cdn = plane(store, clients, "one", clock)
    rows = [domain_row(store, name, i) for i, name in enumerate(("a.example.com", taken, "c.example.com"))]
    for row in rows:
        cdn.routing_records(row, PROJECT, apex=False)
    answers = settle(cdn, rows, lambda found: all(a.state != AttachState.PENDING for a in found.values()))
    assert answers["a.example.com"].state == AttachState.ACTIVE
    assert answers["c.example.com"].state == AttachState.ACTIVE
    failed = answers[taken]
    assert failed.state == AttachState.FAILED
    assert "already an alternate name of another CloudFront distribution" in failed.reason
    assert "CNAMEAlreadyExists" in failed.reason
    assert aliases_of(configs()[foreign_id]) == {taken}, "the other distribution keeps its name"


def test_forget_project_leaves_no_distribution_and_no_certificate(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    production(clients)
    cdn = plane(store, clients, "one", clock, quotas={"acm_names_per_certificate": 2})
    rows = [domain_row(store, f"n{i}.example.com", i) for i in range(3)]
    for row in rows:
        cdn.routing_records(row, PROJECT, apex=False)
    settle(cdn, rows, all_active)
    assert len(listed_distributions()) == 2, "two slots of two names"
    deadline = time.monotonic() + SETTLE_SECONDS
    while listed_distributions() or certificates():
        cdn.forget_project(PROJECT.id)
        assert time.monotonic() < deadline, "forget_project did not finish"
        time.sleep(0.25)
    cdn.forget_project(PROJECT.id)  # again: nothing left to do
    distributions(clients).delete(PROJECT.id)  # the runtime's stop_project finds nothing either
    assert cdn.quotas(PROJECT)[0].used == 0


def test_converge_finishes_a_swap_nobody_polls_and_a_crash_after_an_update(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    distribution_id = production(clients)
    cdn = plane(store, clients, "one", clock)
    rows = [domain_row(store, f"{n}.example.com", i) for i, n in enumerate(("a", "b"))]
    for row in rows:
        cdn.routing_records(row, PROJECT, apex=False)
        assert cdn.attach(row, PROJECT).state == AttachState.PENDING  # then the process goes away
    book = PlacementBook(store.table, clock)
    (slot,) = book.slots(PROJECT.id)
    time.sleep(1.2)  # the certificate for a is issued; b asked for nothing yet (a's was pending)
    # a crash right after an update: CloudFront serves the pending certificate, the item does not know
    cloudfront_update(distribution_id, slot.pending_names, slot.pending_arn)
    assert book.slots(PROJECT.id)[0].aliases == ()
    deadline = time.monotonic() + SETTLE_SECONDS
    while (
        aliases_of(configs()[distribution_id]) != {"a.example.com", "b.example.com"}
        or len(certificates()) > 1
    ):
        cdn.converge(rows)
        assert_covered()
        assert time.monotonic() < deadline, book.slots(PROJECT.id)
        time.sleep(0.25)
    (slot,) = book.slots(PROJECT.id)
    assert set(slot.serving_names) == {"a.example.com", "b.example.com"} and not slot.retired
    assert all_active({r.name: cdn.attach(r, PROJECT) for r in rows})


def test_converge_drops_a_placement_no_domain_owns_and_its_empty_distribution(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    production(clients)
    cdn = plane(store, clients, "one", clock, quotas={"acm_names_per_certificate": 1})
    kept = domain_row(store, "kept.example.com", 1)
    cdn.routing_records(kept, PROJECT, apex=False)
    lost = Domain("lost.example.com", PROJECT.id, "label9999", 1_700_000_000.0)  # its add failed after
    (record,) = cdn.routing_records(lost, PROJECT, apex=False)
    assert len(listed_distributions()) == 2 and record.value.endswith(".cloudfront.net")
    assert cdn.converge([kept])["released"] == [], "a fresh placement may belong to an add in progress"
    clock.offset += 3600
    deadline = time.monotonic() + SETTLE_SECONDS
    released: list[str] = []
    while len(listed_distributions()) > 1:
        released += cdn.converge([kept])["released"]
        assert time.monotonic() < deadline
        time.sleep(0.25)
    assert released == ["lost.example.com"]
    assert [n for slot in PlacementBook(store.table, clock).slots(PROJECT.id) for n in slot.names] == [
        kept.name
    ]
    settle(cdn, [kept], all_active)


def cloudfront_update(distribution_id: str, aliases: Sequence[str], arn: str) -> None:
    answer = cloudfront().get_distribution_config(Id=distribution_id)
    config = answer["DistributionConfig"]
    config["Aliases"] = {"Quantity": len(aliases), "Items": list(aliases)}
    config["ViewerCertificate"] = {
        "ACMCertificateArn": arn,
        "SSLSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
    }
    cloudfront().update_distribution(Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=config)


def test_detach_waits_while_the_replaced_certificate_is_still_in_use(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    distribution_id = production(clients)
    cdn = plane(store, clients, "one", clock)
    rows = [domain_row(store, f"{n}.example.com", i) for i, n in enumerate(("a", "b"))]
    for row in rows:
        cdn.routing_records(row, PROJECT, apex=False)
    settle(cdn, rows, all_active)
    serving = configs()[distribution_id]["ViewerCertificate"]["ACMCertificateArn"]
    holder_id, _ = distributions(clients).ensure("prj_holds_the_cert", ORIGIN)
    cloudfront_update(holder_id, [], serving)  # something else still serves the old certificate
    deadline = time.monotonic() + 20
    while serving == configs()[distribution_id]["ViewerCertificate"]["ACMCertificateArn"]:
        assert not cdn.detach(rows[1])
        assert time.monotonic() < deadline
        time.sleep(0.25)
    for _ in range(8):  # swapped: the old certificate is kept while ACM answers ResourceInUseException
        assert not cdn.detach(rows[1])
        time.sleep(0.25)
    assert serving in certificates()
    answer = cloudfront().get_distribution_config(Id=holder_id)
    answer["DistributionConfig"]["ViewerCertificate"] = {"CloudFrontDefaultCertificate": True}
    cloudfront().update_distribution(
        Id=holder_id, IfMatch=answer["ETag"], DistributionConfig=answer["DistributionConfig"]
    )
    detach_until_done(cdn, rows[1])
    assert serving not in certificates()
    assert list(certificates().values()) == [{"a.example.com"}]


def test_names_move_to_a_production_distribution_made_again(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    first = production(clients)
    cdn = plane(store, clients, "one", clock)
    row = domain_row(store, "www.example.com", 1)
    cdn.routing_records(row, PROJECT, apex=False)
    settle(cdn, [row], all_active)
    answer = cloudfront().get_distribution_config(Id=first)  # deleted behind the platform's back
    answer["DistributionConfig"]["Aliases"] = {"Quantity": 0}
    answer["DistributionConfig"]["ViewerCertificate"] = {"CloudFrontDefaultCertificate": True}
    cloudfront().update_distribution(
        Id=first, IfMatch=answer["ETag"], DistributionConfig=answer["DistributionConfig"]
    )
    distributions(clients).delete(PROJECT.id)
    assert cdn.attach(row, PROJECT).state == AttachState.PENDING
    second = production(clients)  # the production deployment's repair makes it again
    assert second != first
    settle(cdn, [row], all_active)
    assert aliases_of(configs()[second]) == {"www.example.com"}
    (record,) = cdn.routing_records(row, PROJECT, apex=False)
    assert record.value == cloudfront().get_distribution(Id=second)["Distribution"]["DomainName"]


def test_extra_slots_follow_production_to_a_new_origin(
    store: DynamoStore, clients: AwsClients, clock: Clock
) -> None:
    production(clients)
    cdn = plane(store, clients, "one", clock, quotas={"acm_names_per_certificate": 1})
    rows = [domain_row(store, f"{n}.example.com", i) for i, n in enumerate(("a", "b"))]
    for row in rows:
        cdn.routing_records(row, PROJECT, apex=False)
    moved = "zyxwvutsrqponmlkjihgfedcba543210.lambda-url.us-east-1.on.aws"
    distributions(clients).ensure(PROJECT.id, moved)  # part 1 points production at a new function URL
    assert cdn.converge(rows)["origins"] == [f"{PROJECT.id} #1"]
    origins = {c["Origins"]["Items"][0]["DomainName"] for c in configs().values()}
    assert origins == {moved}
    assert cdn.converge(rows)["origins"] == [], "nothing left to follow"
