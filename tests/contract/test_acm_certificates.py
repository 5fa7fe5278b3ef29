"""AcmCertificates on the moto server, and through botocore's Stubber for what moto does not do.

moto (5.x) issues every DNS-validated certificate after a fixed wait whatever DNS holds, fills in every
validation record at once, never reports FAILED, a FailureReason, VALIDATION_TIMED_OUT or a RenewalSummary,
and deletes a certificate even while it is in use: those answers are stubbed with ACM's own shapes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from anchor_deploy.adapters.aws.acm_certificates import (
    ALL_STATUSES,
    CERTIFICATE_REGION,
    AcmCertificates,
    idempotency_token,
)
from anchor_deploy.adapters.aws.clients import AwsClients
from tests.aws_support import MotoServer

TAGS = {"anchor:stack": "anchor-test"}
ARN = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


@pytest.fixture
def clients(aws: MotoServer) -> AwsClients:
    return AwsClients()


def acm_of(clients: AwsClients) -> Any:
    return clients.regional("acm", CERTIFICATE_REGION)


def option(name: str, status: str, record: str | None = None) -> dict[str, Any]:
    """One DomainValidationOptions entry as ACM answers it (``record``: the CNAME's name; None: not yet)."""
    entry: dict[str, Any] = {"DomainName": name, "ValidationDomain": name, "ValidationStatus": status}
    entry["ValidationMethod"] = "DNS"
    if record is not None:
        value = "_2b7c.zfyfvmchrl.acm-validations.aws."
        entry["ResourceRecord"] = {"Name": record, "Type": "CNAME", "Value": value}
    return entry


def detail(status: str, names: list[str], options: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A DescribeCertificate answer."""
    certificate = {
        "CertificateArn": ARN,
        "DomainName": names[0],
        "SubjectAlternativeNames": names,
        "Status": status,
        "Type": "AMAZON_ISSUED",
        "InUseBy": [],
        **extra,
    }
    if options:  # ACM leaves the list out rather than send it empty
        certificate["DomainValidationOptions"] = options
    return {"Certificate": certificate}


def test_tokens_are_what_acm_takes_and_the_same_for_the_same_parts() -> None:
    token = idempotency_token("www.example.com", "1767225600.0")
    assert re.fullmatch(r"\w{1,32}", token)
    assert token == idempotency_token("www.example.com", "1767225600.0")
    assert token != idempotency_token("www.example.com", "1767225601.0")
    assert idempotency_token("a", "bc") != idempotency_token("ab", "c"), "parts are kept apart"


def test_a_request_is_one_dns_validated_certificate_with_tags(clients: AwsClients) -> None:
    certificates = AcmCertificates(clients, TAGS)
    arn = certificates.request(["*.Example.com", "example.com", "*.Example.com"], idempotency_token("t1"))
    described = certificates.describe(arn)
    assert described is not None and described.arn == arn
    assert described.names == ("*.Example.com", "example.com") or described.names == (
        "*.example.com",
        "example.com",
    )
    assert described.status in ("PENDING_VALIDATION", "ISSUED")
    assert len(described.records) == 1, "a wildcard and its apex share one validation record"
    record = described.records[0]
    assert (record.type, record.purpose) == ("CNAME", "validation")
    assert record.name.endswith(".example.com") and record.name == record.name.lower()
    assert not record.value.endswith(".") and not record.name.endswith(".")
    raw = acm_of(clients).describe_certificate(CertificateArn=arn)["Certificate"]
    assert raw["Options"]["CertificateTransparencyLoggingPreference"] == "ENABLED"
    tags = acm_of(clients).list_tags_for_certificate(CertificateArn=arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS


def test_the_same_token_answers_the_same_certificate_and_a_new_one_a_new(clients: AwsClients) -> None:
    certificates = AcmCertificates(clients, TAGS)
    first = certificates.request(["a.example.com"], idempotency_token("a", "1"))
    assert certificates.request(["a.example.com"], idempotency_token("a", "1")) == first
    second = certificates.request(["a.example.com"], idempotency_token("a", "2"))
    assert second != first
    assert {arn for arn, _ in certificates.listed()} == {first, second}


def test_every_request_is_told_for_the_yearly_request_quota(clients: AwsClients) -> None:
    told: list[None] = []
    certificates = AcmCertificates(clients, TAGS, on_request=lambda: told.append(None))
    certificates.request(["a.example.com"], idempotency_token("a", "1"))
    certificates.request(["b.example.com", "c.example.com"], idempotency_token("b", "1"))
    assert len(told) == 2
    with pytest.raises(ValueError):  # nothing requested, nothing told
        certificates.request(["x" * 70 + ".example.com"], idempotency_token("x", "1"))
    assert len(told) == 2


def test_acm_is_asked_in_us_east_1_whatever_the_platform_region(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    clients = AwsClients()
    assert clients.region == "eu-west-1"
    certificates = AcmCertificates(clients)
    arn = certificates.request(["eu.example.com"], idempotency_token("eu"))
    assert arn.startswith("arn:aws:acm:us-east-1:")
    assert acm_of(clients).meta.region_name == "us-east-1"
    assert clients.client("acm").list_certificates()["CertificateSummaryList"] == [], "none in eu-west-1"


def test_delete_is_done_when_the_certificate_is_gone(clients: AwsClients) -> None:
    certificates = AcmCertificates(clients, TAGS)
    arn = certificates.request(["gone.example.com"], idempotency_token("gone"))
    assert certificates.delete(arn) is True
    assert certificates.describe(arn) is None
    assert certificates.delete(arn) is True, "already gone is done"
    assert certificates.listed() == []


def test_listed_holds_only_certificates_with_all_our_tags(clients: AwsClients) -> None:
    ours = AcmCertificates(clients, TAGS)
    theirs = AcmCertificates(clients, {"anchor:stack": "another"})
    untagged = AcmCertificates(clients)
    mine = ours.request(["x.example.com", "y.example.com"], idempotency_token("x"))
    other = theirs.request(["z.example.com"], idempotency_token("z"))
    bare = untagged.request(["w.example.com"], idempotency_token("w"))
    assert ours.listed() == [(mine, ("x.example.com", "y.example.com"))]
    assert theirs.listed() == [(other, ("z.example.com",))]
    assert {arn for arn, _ in untagged.listed()} == {mine, other, bare}, "no tags: every certificate"


def test_request_sends_what_acm_needs() -> None:
    clients = AwsClients()
    certificates = AcmCertificates(clients, TAGS)
    with Stubber(acm_of(clients)) as stub:
        expected = {
            "DomainName": "b.example.com",
            "SubjectAlternativeNames": ["b.example.com", "a.example.com"],
            "ValidationMethod": "DNS",
            "IdempotencyToken": "tok",
            "Options": {"CertificateTransparencyLoggingPreference": "ENABLED"},
            "Tags": [{"Key": "anchor:stack", "Value": "anchor-test"}],
        }
        stub.add_response("request_certificate", {"CertificateArn": ARN}, expected)
        assert certificates.request(["b.example.com", "a.example.com", "b.example.com"], "tok") == ARN
        stub.assert_no_pending_responses()
    with pytest.raises(ValueError):
        certificates.request([], "tok")
    long_name = "a" * 60 + ".example.com"
    with Stubber(acm_of(clients)) as stub:
        subject = {
            **expected,
            "DomainName": "b.example.com",
            "SubjectAlternativeNames": [long_name, "b.example.com"],
        }
        stub.add_response("request_certificate", {"CertificateArn": ARN}, subject)
        assert certificates.request([long_name, "b.example.com"], "tok") == ARN, "the subject is <= 64 long"
        with pytest.raises(ValueError, match="64 characters"):
            certificates.request([long_name], "tok")
        stub.assert_no_pending_responses()


def test_records_wait_until_acm_has_filled_in_every_one() -> None:
    clients = AwsClients()
    certificates = AcmCertificates(clients)
    names = ["a.example.com", "b.example.com"]
    partly = [
        option(names[0], "PENDING_VALIDATION", "_x.a.example.com."),
        option(names[1], "PENDING_VALIDATION"),
    ]
    filled = [option(n, "PENDING_VALIDATION", f"_X.{n.upper()}.") for n in names]
    with Stubber(acm_of(clients)) as stub:
        stub.add_response(
            "describe_certificate", detail("PENDING_VALIDATION", names, []), {"CertificateArn": ARN}
        )
        stub.add_response("describe_certificate", detail("PENDING_VALIDATION", names, partly))
        stub.add_response("describe_certificate", detail("PENDING_VALIDATION", names, filled))
        empty, partial, full = (certificates.describe(ARN) for _ in range(3))
    assert empty is not None and empty.records == () and empty.validation == {}
    assert partial is not None and partial.records == ()
    assert full is not None and [r.name for r in full.records] == ["_x.a.example.com", "_x.b.example.com"]
    assert full.awaiting == tuple(names)


def test_an_issued_certificate_reports_its_dates_issuer_and_renewal() -> None:
    clients = AwsClients()
    certificates = AcmCertificates(clients)
    names = ["*.example.com", "example.com"]
    options = [option(n, "SUCCESS", "_v.example.com.") for n in names]
    renewal = {
        "RenewalStatus": "PENDING_VALIDATION",
        "DomainValidationOptions": [option(names[0], "SUCCESS"), option(names[1], "PENDING_VALIDATION")],
        "UpdatedAt": datetime(2026, 10, 1, tzinfo=UTC),
    }
    answer = detail(
        "ISSUED",
        names,
        options,
        Serial="0a:0b",
        Issuer="Amazon",
        NotBefore=datetime(2026, 1, 1, tzinfo=UTC),
        NotAfter=datetime(2027, 1, 30, tzinfo=UTC),
        RenewalSummary=renewal,
        InUseBy=["arn:aws:cloudfront::123456789012:distribution/E1"],
    )
    with Stubber(acm_of(clients)) as stub:
        stub.add_response("describe_certificate", answer)
        described = certificates.describe(ARN)
    assert described is not None
    assert described.not_before == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert described.not_after == datetime(2027, 1, 30, tzinfo=UTC).timestamp()
    assert (described.serial, described.issuer) == ("0a:0b", "Amazon")
    assert described.renewal_status == "PENDING_VALIDATION"
    assert described.renewal_pending == ("example.com",)
    assert described.in_use_by == ("arn:aws:cloudfront::123456789012:distribution/E1",)
    assert described.awaiting == ()
    assert len(described.records) == 1


def test_a_failed_certificate_carries_acms_reason() -> None:
    clients = AwsClients()
    certificates = AcmCertificates(clients)
    answer = detail(
        "FAILED", ["c.example.com"], [option("c.example.com", "FAILED")], FailureReason="CAA_ERROR"
    )
    with Stubber(acm_of(clients)) as stub:
        stub.add_response("describe_certificate", answer)
        described = certificates.describe(ARN)
    assert described is not None
    assert (described.status, described.failure_reason) == ("FAILED", "CAA_ERROR")


def test_a_certificate_in_use_is_not_deleted_yet() -> None:
    clients = AwsClients()
    certificates = AcmCertificates(clients)
    with Stubber(acm_of(clients)) as stub:
        stub.add_client_error("delete_certificate", "ResourceInUseException", "in use by CloudFront")
        stub.add_response("delete_certificate", {}, {"CertificateArn": ARN})
        stub.add_client_error("delete_certificate", "AccessDeniedException", "no")
        assert certificates.delete(ARN) is False
        assert certificates.delete(ARN) is True
        with pytest.raises(ClientError):
            certificates.delete(ARN)
        stub.add_client_error("describe_certificate", "AccessDeniedException", "no")
        with pytest.raises(ClientError):
            certificates.describe(ARN)
        stub.assert_no_pending_responses()


def test_listed_passes_over_certificates_whose_tags_the_role_may_not_read() -> None:
    clients = AwsClients()
    certificates = AcmCertificates(clients, TAGS)
    other = ARN.replace("5555", "6666")
    summaries = [
        {
            "CertificateArn": arn,
            "DomainName": name,
            "SubjectAlternativeNameSummaries": [name],
            "HasAdditionalSubjectAlternativeNames": False,
        }
        for arn, name in ((other, "foreign.example.com"), (ARN, "ours.example.com"))
    ]
    with Stubber(acm_of(clients)) as stub:
        every_status = {"CertificateStatuses": list(ALL_STATUSES)}
        stub.add_response("list_certificates", {"CertificateSummaryList": summaries}, every_status)
        stub.add_client_error("list_tags_for_certificate", "AccessDeniedException", "not yours", 400, None)
        stub.add_response(
            "list_tags_for_certificate", {"Tags": [{"Key": "anchor:stack", "Value": "anchor-test"}]}
        )
        assert certificates.listed() == [(ARN, ("ours.example.com",))]
        stub.assert_no_pending_responses()
