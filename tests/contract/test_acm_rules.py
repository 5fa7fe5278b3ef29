"""ACM's rules as the tests' moto server enforces them (tests/moto_rules), one test per rule.

moto 5.2 alone deletes a certificate a distribution uses, shows one validation record for every name of every
certificate, and issues every certificate after a fixed wait whatever DNS holds.
"""

from __future__ import annotations

import time

import boto3
import pytest

from tests.aws_certificates import (
    describe,
    hosted_zone,
    issue_certificate,
    publish_validation_records,
    request_certificate,
    validation_records,
    wait_until_issued,
)
from tests.aws_support import MotoServer
from tests.cloudfront_support import DEFAULT_CERTIFICATE, cloudfront, create, refused, set_names

pytestmark = pytest.mark.aws

VALIDATION_WAIT = 1.0  # the rules server's default MOTO_ACM_VALIDATION_WAIT


def test_a_certificate_a_distribution_uses_cannot_be_deleted(aws: MotoServer) -> None:
    certificate = issue_certificate(["www.example.com"])
    distribution_id = create(["www.example.com"], certificate)
    refused("ResourceInUseException", 400, boto3.client("acm").delete_certificate, CertificateArn=certificate)
    arn = cloudfront().get_distribution(Id=distribution_id)["Distribution"]["ARN"]
    assert describe(certificate)["InUseBy"] == [arn]
    answer = cloudfront().get_distribution_config(
        Id=distribution_id
    )  # a config read back is sent again as is
    assert answer["DistributionConfig"]["ViewerCertificate"]["CloudFrontDefaultCertificate"] is False
    disabled = dict(answer["DistributionConfig"], Enabled=False)
    cloudfront().update_distribution(Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=disabled)
    refused("ResourceInUseException", 400, boto3.client("acm").delete_certificate, CertificateArn=certificate)
    set_names(distribution_id, [], DEFAULT_CERTIFICATE)
    assert describe(certificate)["InUseBy"] == []
    boto3.client("acm").delete_certificate(CertificateArn=certificate)
    refused("ResourceNotFoundException", 400, describe, certificate)


def test_at_most_ten_names_per_certificate(aws: MotoServer) -> None:
    names = [f"n{index}.example.com" for index in range(11)]
    refused("LimitExceededException", 400, request_certificate, names)
    refused("LimitExceededException", 400, request_certificate, [*names[1:], "*.n1.example.com"])
    arn = request_certificate([*names[:10], "n0.example.com"])  # the same name twice counts once
    assert len(validation_records(arn)) == 10


def test_validation_needs_each_record_in_the_zone_that_covers_its_name(aws: MotoServer) -> None:
    hosted_zone("example.com")
    arn = request_certificate(["example.com", "*.example.com", "www.example.com", "app.example.org"])
    records = validation_records(arn)
    assert records["example.com"] == records["*.example.com"], "a wildcard shares its apex's record"
    assert len({records[name] for name in ["example.com", "www.example.com", "app.example.org"]}) == 3
    assert all(
        record_name.endswith(f".{name.removeprefix('*.')}.") for name, (record_name, _) in records.items()
    )
    assert (
        validation_records(request_certificate(["www.example.com"]))["www.example.com"]
        == records["www.example.com"]
    )

    time.sleep(VALIDATION_WAIT + 0.2)  # app.example.org: no moto zone covers it, so the wait validates it
    status = {
        option["DomainName"]: option["ValidationStatus"]
        for option in describe(arn)["DomainValidationOptions"]
    }
    assert status == {
        "example.com": "PENDING_VALIDATION",
        "*.example.com": "PENDING_VALIDATION",
        "www.example.com": "PENDING_VALIDATION",
        "app.example.org": "SUCCESS",
    }
    publish_validation_records(arn, ["example.com"])
    assert describe(arn)["Status"] == "PENDING_VALIDATION", "www.example.com's record is still missing"
    zone_id = hosted_zone("example.com")
    record_name, _ = records["www.example.com"]
    wrong = {
        "Name": record_name,
        "Type": "CNAME",
        "TTL": 300,
        "ResourceRecords": [{"Value": "_x.acm-validations.aws."}],
    }
    boto3.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": wrong}]}
    )
    assert describe(arn)["Status"] == "PENDING_VALIDATION", "a record with another value validates nothing"
    publish_validation_records(arn, ["www.example.com"])
    described = wait_until_issued(arn, timeout=2)
    assert {option["ValidationStatus"] for option in described["DomainValidationOptions"]} == {"SUCCESS"}
