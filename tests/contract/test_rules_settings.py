"""The rules server's settings (tests/moto_rules): account quotas, a raised names quota, validation records
that appear a moment after the request, a validation timeout; on a rules server of its own with small values
(the defaults, 500 distributions and 2,500 certificates, are too many to reach in a test, 72 h too long).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest

from tests.aws_certificates import (
    describe,
    hosted_zone,
    publish_validation_records,
    request_certificate,
    validation_records,
    wait_until_issued,
)
from tests.aws_support import MotoServer, aws_environ, moto_server
from tests.cloudfront_support import cloudfront, create, refused, wait_deployed

pytestmark = pytest.mark.aws

RECORD_SECONDS = 0.5  # the validation records appear this long after a request
VALIDATION_TIMEOUT = 2.0  # a certificate still pending this long after its request is VALIDATION_TIMED_OUT


@pytest.fixture(scope="module")
def tuned_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A rules server of its own with other settings: small account quotas (the defaults, 500 distributions
    and 2,500 certificates, are too many to reach in a test), a names quota raised as AWS allows, validation
    records shown a moment after the request and a validation timeout of seconds (72 h on AWS)."""
    rules = {
        "MOTO_RULES_MAX_DISTRIBUTIONS": "2",
        "MOTO_RULES_MAX_CERTIFICATES": "3",
        "MOTO_RULES_NAMES_PER_CERTIFICATE": "12",
        "MOTO_RULES_RECORD_SECONDS": str(RECORD_SECONDS),
        "MOTO_RULES_VALIDATION_TIMEOUT_SECONDS": str(VALIDATION_TIMEOUT),
    }
    with moto_server(tmp_path_factory.mktemp("moto-tuned"), rules) as server:
        yield server


@pytest.fixture
def tuned_aws(tuned_moto: MotoServer) -> Iterator[MotoServer]:
    tuned_moto.reset()
    with aws_environ(tuned_moto):
        yield tuned_moto


def test_at_most_the_account_quota_of_distributions(tuned_aws: MotoServer) -> None:
    kept, gone = create(), create()
    refused("TooManyDistributions", 400, create)
    answer = cloudfront().get_distribution_config(Id=gone)
    etag = cloudfront().update_distribution(
        Id=gone, IfMatch=answer["ETag"], DistributionConfig=dict(answer["DistributionConfig"], Enabled=False)
    )["ETag"]
    wait_deployed(gone)
    cloudfront().delete_distribution(Id=gone, IfMatch=etag)
    assert create() not in {kept, gone}


def test_at_most_the_account_quota_of_certificates(tuned_aws: MotoServer) -> None:
    arns = [request_certificate([f"n{index}.example.com"], token=f"t{index}") for index in range(3)]
    refused("LimitExceededException", 400, request_certificate, ["n3.example.com"])
    assert request_certificate(["n0.example.com"], token="t0") == arns[0], "a retried request is no new one"
    boto3.client("acm").delete_certificate(CertificateArn=arns[0])
    assert request_certificate(["n3.example.com"]) not in arns


def test_a_raised_names_quota_is_the_one_enforced(tuned_aws: MotoServer) -> None:
    names = [f"n{index}.example.com" for index in range(13)]
    refused("LimitExceededException", 400, request_certificate, names)
    assert len(validation_records(request_certificate(names[:12]))) == 12


def test_records_appear_a_moment_after_the_request_and_a_pending_certificate_times_out(
    tuned_aws: MotoServer,
) -> None:
    hosted_zone("example.com")
    requested = time.monotonic()
    arn = request_certificate(["www.example.com"])
    assert [option.get("ResourceRecord") for option in describe(arn)["DomainValidationOptions"]] == [None]
    assert set(validation_records(arn)) == {"www.example.com"}
    assert time.monotonic() - requested >= RECORD_SECONDS

    deadline = time.monotonic() + 10
    while describe(arn)["Status"] == "PENDING_VALIDATION" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert describe(arn)["Status"] == "VALIDATION_TIMED_OUT"
    assert time.monotonic() - requested >= VALIDATION_TIMEOUT
    publish_validation_records(arn)
    assert describe(arn)["Status"] == "VALIDATION_TIMED_OUT", "a record published too late issues nothing"
    # A retry is a new request: the same record, already in the zone, issues it at once.
    fresh = request_certificate(["www.example.com"])
    assert validation_records(fresh) == validation_records(arn)
    assert wait_until_issued(fresh, timeout=2)["Status"] == "ISSUED"
