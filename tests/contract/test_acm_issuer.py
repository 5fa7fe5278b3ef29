"""AcmIssuer (the issuer port on ACM) on the moto server, and through botocore's Stubber for the statuses,
failure reasons and renewal summaries moto never reports (see test_acm_certificates.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from anchor_deploy.adapters.aws.acm_certificates import CERTIFICATE_REGION, AcmCertificates
from anchor_deploy.adapters.aws.acm_issuer import (
    NOT_PUBLISHED,
    NOT_READABLE,
    VANISHED,
    AcmIssuer,
    failure_words,
)
from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.model.domains import CertificateStatus, DnsRecord, Domain, IssuedInfo
from anchor_deploy.model.errors import IssuanceFailed
from anchor_deploy.ports.issuance import IssuanceState, IssuedCertificate
from tests.aws_support import MotoServer
from tests.contract.test_acm_certificates import ARN, TAGS, detail, option

NAME = "shop.example.com"
PLAIN_MOTO_LABEL = "_d930b28be6c5927595552b219965053e."  # moto's one validation record name for every name
DEADLINE = 1_800_000_000.0
EXPECTED_STATES = {
    "PENDING_VALIDATION": IssuanceState.PENDING,
    "ISSUED": IssuanceState.ISSUED,
    "FAILED": IssuanceState.FAILED,
    "VALIDATION_TIMED_OUT": IssuanceState.FAILED,
    "EXPIRED": IssuanceState.FAILED,
    "REVOKED": IssuanceState.FAILED,
    "INACTIVE": IssuanceState.FAILED,
}


def acm_enum(shape: str) -> list[str]:
    model = botocore.session.get_session().get_service_model("acm")
    return list(model.shape_for(shape).enum)


def domain(name: str = NAME, deadline: float = DEADLINE, ref: str = "") -> Domain:
    return Domain(name, "prj_1", "label", 1_700_000_000.0, validation_deadline=deadline, certificate_ref=ref)


@pytest.fixture
def issuer(aws: MotoServer) -> AcmIssuer:
    return AcmIssuer(AcmCertificates(AwsClients(), TAGS))


def stubbed() -> tuple[AcmIssuer, Any]:
    clients = AwsClients()
    return AcmIssuer(AcmCertificates(clients)), clients.regional("acm", CERTIFICATE_REGION)


def poll_answer(answer: dict[str, Any], row: Domain | None = None) -> Any:
    issuer, acm = stubbed()
    with Stubber(acm) as stub:
        stub.add_response("describe_certificate", answer, {"CertificateArn": ARN})
        return issuer.poll(row or domain(ref=ARN))


def test_the_issuer_says_what_it_is(issuer: AcmIssuer) -> None:
    assert (issuer.kind, issuer.renews_itself, issuer.outdated("Amazon RSA 2048 M01")) == ("acm", True, False)
    stored = (DnsRecord("CNAME", "_a.shop.example.com", "_b.acm-validations.aws", "validation"),)
    assert issuer.records(replace(domain(), validation_records=stored)) == stored


def test_a_repeated_request_gets_the_same_certificate_and_a_retry_a_fresh_one(issuer: AcmIssuer) -> None:
    first = issuer.request(domain())
    assert first.reference.startswith("arn:aws:acm:us-east-1:")
    assert issuer.request(domain()).reference == first.reference, "after a crash: the same certificate"
    retried = issuer.request(domain(deadline=DEADLINE + 72 * 3600))
    assert retried.reference != first.reference, "a retry sets a new deadline: a fresh certificate"
    described = issuer.certificates.describe(first.reference)
    assert described is not None and described.names == (NAME,)
    assert first.records == described.records
    assert all(r.purpose == "validation" and r.name.endswith(NAME) for r in first.records)


def test_a_poll_reports_what_acm_holds(issuer: AcmIssuer) -> None:
    row = domain(ref=issuer.request(domain()).reference)
    progress = issuer.poll(row)
    if progress.state is IssuanceState.PENDING:  # plain moto issues after a minute
        assert progress.status is CertificateStatus.PENDING_VALIDATION
        assert progress.records and progress.records[0].name in progress.reason
    else:  # a moto that issues once the record is seen (or after a short wait)
        assert progress.status is CertificateStatus.ISSUED
        assert progress.certificate is not None and progress.certificate.reference == row.certificate_ref
        assert progress.certificate.material is None, "ACM keeps the key"


def test_a_certificate_is_issued_once_its_record_is_in_the_zone_that_holds_the_name(
    issuer: AcmIssuer,
) -> None:
    route53 = AwsClients().client("route53")
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="acm-issuer")["HostedZone"]["Id"]
    order = issuer.request(domain())
    row = domain(ref=order.reference)
    before = issuer.poll(row)
    assert before.state is IssuanceState.PENDING, "the zone holds the name and not the record yet"
    (record,) = before.records
    assert record.name in before.reason and record.value in before.reason
    change = {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": record.name,
            "Type": "CNAME",
            "TTL": 300,
            "ResourceRecords": [{"Value": record.value}],
        },
    }
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [change]})
    after = issuer.poll(row)
    if record.name.startswith(PLAIN_MOTO_LABEL):  # plain moto issues after a minute whatever DNS holds
        assert after.state is IssuanceState.PENDING
    else:  # tests.moto_rules: ACM sees the record in the zone
        assert (after.state, after.status) == (IssuanceState.ISSUED, CertificateStatus.ISSUED)
        assert after.certificate is not None and after.certificate.info.not_after > time.time()
        assert after.certificate.renewal == "" and after.reason == ""


def test_a_certificate_deleted_by_hand_fails_the_domain_until_a_retry(issuer: AcmIssuer) -> None:
    long_ago = time.time()  # requested a validation window ago
    row = domain(ref=issuer.request(domain(deadline=long_ago)).reference, deadline=long_ago)
    assert issuer.certificates.delete(row.certificate_ref)
    progress = issuer.poll(row)
    assert (progress.state, progress.status, progress.reason) == (
        IssuanceState.FAILED,
        CertificateStatus.FAILED,
        VANISHED,
    )


def test_release_deletes_the_domains_certificate_or_only_an_orphan(issuer: AcmIssuer) -> None:
    row = domain(ref=issuer.request(domain()).reference)
    orphan_arn = issuer.request(domain("orphan.example.com")).reference
    info = IssuedInfo("01", "Amazon", 0.0, 1.0)
    assert issuer.release(row, IssuedCertificate(orphan_arn, info)) is True
    assert issuer.certificates.describe(orphan_arn) is None
    assert issuer.certificates.describe(row.certificate_ref) is not None, "only the orphan went"
    assert issuer.release(row) is True
    assert issuer.certificates.describe(row.certificate_ref) is None
    assert issuer.release(row) is True, "already gone"
    assert issuer.release(domain()) is True, "nothing requested: nothing to release"


def test_every_acm_status_is_a_certificate_status_of_its_own() -> None:
    assert set(acm_enum("CertificateStatus")) == {s.value for s in CertificateStatus} == set(EXPECTED_STATES)


@pytest.mark.parametrize("status", sorted(EXPECTED_STATES))
def test_acm_statuses_map_one_to_one(status: str) -> None:
    validation = "SUCCESS" if status == "ISSUED" else "PENDING_VALIDATION"
    answer = detail(
        status,
        [NAME],
        [option(NAME, validation, f"_abc.{NAME}.")],
        Serial="0a",
        Issuer="Amazon",
        NotBefore=datetime(2026, 1, 1, tzinfo=UTC),
        NotAfter=datetime(2027, 1, 1, tzinfo=UTC),
    )
    progress = poll_answer(answer)
    assert progress.status is CertificateStatus(status)
    assert progress.state is EXPECTED_STATES[status]
    assert [r.name for r in progress.records] == [f"_abc.{NAME}"]
    assert (progress.certificate is not None) == (status == "ISSUED")
    if progress.state is IssuanceState.FAILED:
        assert "retry" in progress.reason


def test_a_record_acm_has_not_filled_in_yet_keeps_the_domain_pending() -> None:
    progress = poll_answer(detail("PENDING_VALIDATION", [NAME], [option(NAME, "PENDING_VALIDATION")]))
    assert (progress.state, progress.records, progress.reason) == (IssuanceState.PENDING, (), NOT_PUBLISHED)


@pytest.mark.parametrize("code", acm_enum("FailureReason"))
def test_every_failure_reason_is_said_in_words(code: str) -> None:
    answer = detail("FAILED", [NAME], [option(NAME, "FAILED", f"_abc.{NAME}.")], FailureReason=code)
    progress = poll_answer(answer)
    assert (progress.state, progress.status) == (IssuanceState.FAILED, CertificateStatus.FAILED)
    words = failure_words(code)
    assert words in progress.reason
    assert words != failure_words("")
    if code.startswith("PCA_"):
        assert code in words
    if code == "CAA_ERROR":
        assert "CAA record" in words and "amazon.com" in words


def test_a_validation_timeout_says_so_and_that_a_retry_starts_again() -> None:
    answer = detail("VALIDATION_TIMED_OUT", [NAME], [option(NAME, "FAILED", f"_abc.{NAME}.")])
    progress = poll_answer(answer)
    assert progress.status is CertificateStatus.VALIDATION_TIMED_OUT
    assert "72 hours" in progress.reason and "retry requests a new certificate" in progress.reason


def test_an_issued_certificate_with_a_stalled_renewal_warns() -> None:
    renewal = {
        "RenewalStatus": "PENDING_VALIDATION",
        "DomainValidationOptions": [option(NAME, "PENDING_VALIDATION")],
        "UpdatedAt": datetime(2026, 11, 1, tzinfo=UTC),
    }
    answer = detail(
        "ISSUED",
        [NAME],
        [option(NAME, "SUCCESS", f"_abc.{NAME}.")],
        Serial="0a:0b",
        Issuer="Amazon",
        NotBefore=datetime(2026, 1, 1, tzinfo=UTC),
        NotAfter=datetime(2027, 1, 1, tzinfo=UTC),
        RenewalSummary=renewal,
    )
    progress = poll_answer(answer)
    assert progress.state is IssuanceState.ISSUED and progress.certificate is not None
    assert progress.certificate.reference == ARN and progress.certificate.renewal == "PENDING_VALIDATION"
    info = progress.certificate.info
    assert (info.serial, info.issuer) == ("0a:0b", "Amazon")
    assert info.not_after == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert NAME in progress.reason and "must stay in DNS" in progress.reason
    issuer, acm = stubbed()
    with Stubber(acm) as stub:
        stub.add_response("describe_certificate", answer)
        assert issuer.renew(domain(ref=ARN)) == progress, "ACM renews by itself: renew only reports"


def test_a_refused_request_fails_with_acms_words() -> None:
    issuer, acm = stubbed()
    with Stubber(acm) as stub:
        stub.add_client_error("request_certificate", "LimitExceededException", "too many certificates")
        with pytest.raises(IssuanceFailed, match=r"quota.*too many certificates"):
            issuer.request(domain())


def test_a_name_too_long_for_acms_subject_fails_in_words(issuer: AcmIssuer) -> None:
    name = "a" * 60 + ".example.com"
    with pytest.raises(IssuanceFailed, match=r"at most 64 characters.*72 characters long"):
        issuer.request(domain(name))
    assert issuer.certificates.listed() == [], "nothing requested"


def test_acm_out_of_reach_keeps_the_domain_as_it_was() -> None:
    issuer, acm = stubbed()
    row = replace(domain(ref=ARN), certificate_status=CertificateStatus.ISSUED)
    with Stubber(acm) as stub:
        stub.add_client_error("describe_certificate", "AccessDeniedException", "not allowed")
        progress = issuer.poll(row)
    assert (progress.state, progress.status) == (IssuanceState.PENDING, CertificateStatus.ISSUED)
    assert "AccessDeniedException" in progress.reason
    pending = issuer.poll(domain())
    assert (pending.state, pending.status) == (IssuanceState.PENDING, CertificateStatus.PENDING_VALIDATION)


def test_a_certificate_still_in_use_is_released_later() -> None:
    issuer, acm = stubbed()
    with Stubber(acm) as stub:
        stub.add_client_error("delete_certificate", "ResourceInUseException", "in use")
        stub.add_response("delete_certificate", {})
        assert issuer.release(domain(ref=ARN)) is False
        assert issuer.release(domain(ref=ARN)) is True


def test_a_certificate_acm_cannot_read_yet_right_after_the_request_is_not_taken_as_deleted() -> None:
    clients = AwsClients()
    now = 1_800_000_000.0
    issuer = AcmIssuer(
        AcmCertificates(clients), validation_window=3600.0, settle_seconds=300.0, clock=lambda: now
    )
    just_requested = domain(ref=ARN, deadline=now + 3600.0 - 10)
    long_requested = domain(ref=ARN, deadline=now + 3600.0 - 301)
    with Stubber(clients.regional("acm", CERTIFICATE_REGION)) as stub:
        for _ in range(2):
            stub.add_client_error("describe_certificate", "ResourceNotFoundException", "no such certificate")
        fresh, gone = issuer.poll(just_requested), issuer.poll(long_requested)
    assert (fresh.state, fresh.status, fresh.reason) == (
        IssuanceState.PENDING,
        CertificateStatus.PENDING_VALIDATION,
        NOT_READABLE,
    )
    assert (gone.state, gone.reason) == (IssuanceState.FAILED, VANISHED)
