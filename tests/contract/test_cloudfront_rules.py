"""The CloudFront and ACM rules the tests' moto server enforces (tests/moto_rules), one test per rule.

moto 5.2 alone would accept every call below: it ignores IfMatch's value, keeps one ETag forever, lets any
alias sit on several distributions with any certificate (or none), reports Deployed at once, deletes an
enabled distribution or a certificate in use, and issues every certificate after a fixed wait whatever DNS
holds. Each test asserts the rule's AWS error (code and HTTP status) and that the correct call passes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.aws_certificates import (
    describe,
    hosted_zone,
    issue_certificate,
    publish_validation_records,
    request_certificate,
    validation_records,
    viewer_certificate,
    wait_until_issued,
)
from tests.aws_support import MotoServer, aws_environ, moto_server

pytestmark = pytest.mark.aws

DEPLOY_SECONDS = 0.5  # the rules server's default MOTO_RULES_DEPLOY_SECONDS
VALIDATION_WAIT = 1.0  # its default MOTO_ACM_VALIDATION_WAIT
RECORD_SECONDS = 0.5  # on the small_quotas server: the validation records appear this long after a request
VALIDATION_TIMEOUT = (
    2.0  # and a certificate still pending this long after its request is VALIDATION_TIMED_OUT
)


def cloudfront() -> Any:
    return boto3.client("cloudfront")


def config(aliases: list[str] | None = None, certificate: str | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {
        "CallerReference": str(uuid.uuid4()),
        "Comment": "rules",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "origin",
                    "DomainName": "fn.lambda-url.us-east-1.on.aws",
                    "CustomOriginConfig": {
                        "HTTPPort": 80,
                        "HTTPSPort": 443,
                        "OriginProtocolPolicy": "https-only",
                    },
                }
            ],
        },
        "DefaultCacheBehavior": {"TargetOriginId": "origin", "ViewerProtocolPolicy": "redirect-to-https"},
    }
    if aliases is not None:
        made["Aliases"] = {"Quantity": len(aliases), "Items": aliases}
    if certificate is not None:
        made["ViewerCertificate"] = viewer_certificate(certificate)
    return made


def create(aliases: list[str] | None = None, certificate: str | None = None) -> str:
    return str(
        cloudfront().create_distribution(DistributionConfig=config(aliases, certificate))["Distribution"][
            "Id"
        ]
    )


def set_names(distribution_id: str, aliases: list[str], viewer: dict[str, Any]) -> str:
    """One UpdateDistribution of aliases and viewer certificate, IfMatch read just before: the new ETag."""
    answer = cloudfront().get_distribution_config(Id=distribution_id)
    changed = answer["DistributionConfig"]
    changed["Aliases"] = {"Quantity": len(aliases), "Items": aliases}
    changed["ViewerCertificate"] = viewer
    updated = cloudfront().update_distribution(
        Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=changed
    )
    return str(updated["ETag"])


def refused(code: str, status: int, call: Any, *args: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    error = raised.value
    assert error.response["Error"]["Code"] == code, error.response["Error"]
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    return error


def aliases_of(distribution_id: str) -> list[str]:
    found = cloudfront().get_distribution(Id=distribution_id)["Distribution"]["DistributionConfig"]
    return list(found.get("Aliases", {}).get("Items", []))


def wait_deployed(distribution_id: str) -> None:
    cloudfront().get_waiter("distribution_deployed").wait(
        Id=distribution_id, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
    )


DEFAULT_CERTIFICATE = {"CloudFrontDefaultCertificate": True}


def test_if_match_must_be_the_current_etag_which_every_update_changes(aws: MotoServer) -> None:
    distribution_id = create()
    first = cloudfront().get_distribution_config(Id=distribution_id)
    second = cloudfront().update_distribution(
        Id=distribution_id, IfMatch=first["ETag"], DistributionConfig=first["DistributionConfig"]
    )["ETag"]
    assert second != first["ETag"]
    assert cloudfront().get_distribution(Id=distribution_id)["ETag"] == second
    assert cloudfront().get_distribution_config(Id=distribution_id)["ETag"] == second
    refused(
        "PreconditionFailed",
        412,
        cloudfront().update_distribution,
        Id=distribution_id,
        IfMatch=first["ETag"],
        DistributionConfig=first["DistributionConfig"],
    )
    refused(
        "PreconditionFailed", 412, cloudfront().delete_distribution, Id=distribution_id, IfMatch=first["ETag"]
    )
    assert cloudfront().get_distribution_config(Id=distribution_id)["ETag"] == second, (
        "a refused call changes nothing"
    )


def test_two_updates_from_one_etag_one_wins_the_other_is_refused(aws: MotoServer) -> None:
    distribution_id = create()
    answer = cloudfront().get_distribution_config(Id=distribution_id)
    clients = [cloudfront() for _ in range(6)]
    outcomes: list[str] = []
    start = threading.Barrier(len(clients))

    def update(client: Any, index: int) -> None:
        changed = dict(answer["DistributionConfig"], Comment=f"writer {index}")
        start.wait()
        try:
            client.update_distribution(Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=changed)
            outcomes.append("updated")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])

    threads = [threading.Thread(target=update, args=(client, index)) for index, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["PreconditionFailed"] * 5 + ["updated"]


def test_an_alias_is_on_one_distribution_only(aws: MotoServer) -> None:
    certificate = issue_certificate(["www.example.com"])
    first, second = create(), create()
    set_names(first, ["www.example.com"], viewer_certificate(certificate))
    refused(
        "CNAMEAlreadyExists", 409, set_names, second, ["WWW.Example.COM"], viewer_certificate(certificate)
    )  # case-insensitive
    refused(
        "CNAMEAlreadyExists",
        409,
        cloudfront().create_distribution,
        DistributionConfig=config(["www.example.com"], certificate),
    )
    assert aliases_of(second) == []
    set_names(first, [], DEFAULT_CERTIFICATE)
    set_names(second, ["WWW.Example.COM"], viewer_certificate(certificate))
    assert aliases_of(second) == ["WWW.Example.COM"]


def test_aliases_need_an_issued_certificate_covering_every_one_served_sni_only(aws: MotoServer) -> None:
    both = issue_certificate(["example.com", "*.example.com"])
    wildcard = issue_certificate(["*.example.com"])
    hosted_zone("example.com")
    pending = request_certificate(
        ["shop.example.com"]
    )  # its zone is in moto, its record is not: never issued
    elsewhere = boto3.client("acm", region_name="us-west-2").request_certificate(
        DomainName="example.com", ValidationMethod="DNS"
    )["CertificateArn"]
    distribution_id = create()

    def bad(aliases: list[str], viewer: dict[str, Any]) -> None:
        refused("InvalidViewerCertificate", 400, set_names, distribution_id, aliases, viewer)

    bad(["www.example.com"], DEFAULT_CERTIFICATE)
    bad(["example.com"], viewer_certificate(wildcard))  # *.x does not cover x
    bad(["a.b.example.com"], viewer_certificate(wildcard))  # nor a.b.x
    bad(["www.example.com", "www.example.org"], viewer_certificate(both))  # every alias, not some
    bad(["shop.example.com"], viewer_certificate(pending))
    bad(["example.com"], viewer_certificate(elsewhere))
    bad(["example.com"], dict(viewer_certificate(both), SSLSupportMethod="vip"))
    bad(["example.com"], {"ACMCertificateArn": both, "SSLSupportMethod": "sni-only"})
    assert aliases_of(distribution_id) == []
    refused(
        "InvalidViewerCertificate",
        400,
        cloudfront().create_distribution,
        DistributionConfig=config(["x.example.com"]),
    )
    set_names(
        distribution_id, ["example.com", "WWW.example.com", "shop.example.com"], viewer_certificate(both)
    )
    assert aliases_of(distribution_id) == ["example.com", "WWW.example.com", "shop.example.com"]


def test_at_most_a_hundred_aliases_per_distribution(aws: MotoServer) -> None:
    certificate = issue_certificate(["*.example.com"])
    distribution_id = create()
    names = [f"n{index}.example.com" for index in range(101)]
    refused(
        "TooManyDistributionCNAMEs", 400, set_names, distribution_id, names, viewer_certificate(certificate)
    )
    set_names(distribution_id, names[:100], viewer_certificate(certificate))
    assert len(aliases_of(distribution_id)) == 100


def test_deployed_comes_some_time_after_each_change_and_only_a_disabled_deployed_one_is_deleted(
    aws: MotoServer,
) -> None:
    made = time.monotonic()
    distribution_id = create()
    assert cloudfront().get_distribution(Id=distribution_id)["Distribution"]["Status"] == "InProgress"
    wait_deployed(distribution_id)
    assert time.monotonic() - made >= DEPLOY_SECONDS
    listed = cloudfront().list_distributions()["DistributionList"]["Items"]
    assert [item["Status"] for item in listed] == ["Deployed"]
    answer = cloudfront().get_distribution_config(Id=distribution_id)
    refused(
        "DistributionNotDisabled",
        409,
        cloudfront().delete_distribution,
        Id=distribution_id,
        IfMatch=answer["ETag"],
    )
    disabled = dict(answer["DistributionConfig"], Enabled=False)
    etag = cloudfront().update_distribution(
        Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=disabled
    )["ETag"]
    assert cloudfront().list_distributions()["DistributionList"]["Items"][0]["Status"] == "InProgress"
    refused(
        "DistributionNotDisabled", 409, cloudfront().delete_distribution, Id=distribution_id, IfMatch=etag
    )
    wait_deployed(distribution_id)
    cloudfront().delete_distribution(Id=distribution_id, IfMatch=etag)
    assert cloudfront().list_distributions()["DistributionList"].get("Items", []) == []


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


def test_the_naive_design_breaks_tls_for_the_first_domain(aws: MotoServer) -> None:
    """The seed attached each new domain's own certificate to the project's distribution: the second domain's
    certificate would replace the first's, and CloudFront (here, the fake) refuses a certificate that does
    not cover every alias; one certificate covering both names is accepted."""
    first = issue_certificate(["shop.example.com"])
    second = issue_certificate(["blog.example.org"])
    distribution_id = create()
    set_names(distribution_id, ["shop.example.com"], viewer_certificate(first))

    refused(
        "InvalidViewerCertificate",
        400,
        set_names,
        distribution_id,
        ["shop.example.com", "blog.example.org"],
        viewer_certificate(second),
    )
    served = cloudfront().get_distribution_config(Id=distribution_id)["DistributionConfig"]
    assert served["ViewerCertificate"]["ACMCertificateArn"] == first, "the first domain keeps its certificate"

    both = issue_certificate(["shop.example.com", "blog.example.org"])
    set_names(distribution_id, ["shop.example.com", "blog.example.org"], viewer_certificate(both))
    assert aliases_of(distribution_id) == ["shop.example.com", "blog.example.org"]
    boto3.client("acm").delete_certificate(CertificateArn=first)  # no longer in use


@pytest.fixture(scope="module")
def small_quotas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
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
    with moto_server(tmp_path_factory.mktemp("moto-small"), rules) as server:
        yield server


@pytest.fixture
def small_aws(small_quotas: MotoServer) -> Iterator[MotoServer]:
    small_quotas.reset()
    with aws_environ(small_quotas):
        yield small_quotas


def test_at_most_the_account_quota_of_distributions(small_aws: MotoServer) -> None:
    kept, gone = create(), create()
    refused("TooManyDistributions", 400, create)
    answer = cloudfront().get_distribution_config(Id=gone)
    etag = cloudfront().update_distribution(
        Id=gone, IfMatch=answer["ETag"], DistributionConfig=dict(answer["DistributionConfig"], Enabled=False)
    )["ETag"]
    wait_deployed(gone)
    cloudfront().delete_distribution(Id=gone, IfMatch=etag)
    assert create() not in {kept, gone}


def test_at_most_the_account_quota_of_certificates(small_aws: MotoServer) -> None:
    arns = [request_certificate([f"n{index}.example.com"], token=f"t{index}") for index in range(3)]
    refused("LimitExceededException", 400, request_certificate, ["n3.example.com"])
    assert request_certificate(["n0.example.com"], token="t0") == arns[0], "a retried request is no new one"
    boto3.client("acm").delete_certificate(CertificateArn=arns[0])
    assert request_certificate(["n3.example.com"]) not in arns


def test_a_raised_names_quota_is_the_one_enforced(small_aws: MotoServer) -> None:
    names = [f"n{index}.example.com" for index in range(13)]
    refused("LimitExceededException", 400, request_certificate, names)
    assert len(validation_records(request_certificate(names[:12]))) == 12


def test_records_appear_a_moment_after_the_request_and_a_pending_certificate_times_out(
    small_aws: MotoServer,
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
    fresh = request_certificate(
        ["www.example.com"]
    )  # a retry: a new request, the same record, issued at once
    assert validation_records(fresh) == validation_records(arn)
    assert wait_until_issued(fresh, timeout=2)["Status"] == "ISSUED"
