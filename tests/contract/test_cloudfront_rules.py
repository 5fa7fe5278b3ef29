"""CloudFront's rules as the tests' moto server enforces them (tests/moto_rules), one test per rule.

moto 5.2 alone would accept every call below: it ignores IfMatch's value, keeps one ETag forever, lets any
alias sit on several distributions with any certificate (or none), reports Deployed at once and deletes an
enabled distribution. Each test asserts the rule's AWS error (code and HTTP status) and that the correct call
passes; the last shows why one distribution needs one certificate covering all its names.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.aws_certificates import hosted_zone, issue_certificate, request_certificate, viewer_certificate
from tests.aws_support import MotoServer
from tests.cloudfront_support import (
    DEFAULT_CERTIFICATE,
    DEPLOY_SECONDS,
    aliases_of,
    cloudfront,
    config,
    create,
    refused,
    set_names,
    wait_deployed,
)

pytestmark = pytest.mark.aws


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
