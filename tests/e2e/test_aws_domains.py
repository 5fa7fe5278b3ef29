"""Custom domains on the AWS provider end to end: `anchor up --provider aws` on the moto server with
CloudFront's and ACM's rules (tests/moto_rules), a Route 53 hosted zone linked with `anchor dns link`, so
the platform writes every record itself: ACM validates through them, the names go active on CloudFront
with no user step, and a removal deletes them.

The platform's own DNS lookups go to a BIND on loopback that knows none of moto's Route 53 records (moto
serves no DNS): the platform sees no validation record there, and says so, which is the warning it gives
when a record that renewals need has been removed from DNS."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws_support import MotoServer
from tests.e2e.aws_platform import AwsPlatform, aws_platform, covers, distribution_with
from tests.e2e.dns_support import Resolver
from tests.e2e.platforms import json_of

pytestmark = pytest.mark.e2e

CLOUDFRONT_ZONE = "Z2FDTNDATAQYW2"


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resolver]:
    """Every lookup of the platform stays on loopback: a resolver that knows no zone."""
    with Resolver({}, workdir=tmp_path_factory.mktemp("named")) as server:
        yield server


def _env(resolver: Resolver, **extra: str) -> dict[str, str]:
    return {
        "ANCHOR_DNS_RESOLVERS": resolver.address,
        "ANCHOR_DOMAIN_CHECK_MIN": "0.2",
        "ANCHOR_DOMAIN_CHECK_MAX": "1",
        **extra,
    }


def _site(root: Path, body: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(body)
    return root


def _hosted_zone(name: str) -> str:
    made = boto3.client("route53").create_hosted_zone(Name=name + ".", CallerReference=secrets.token_hex(8))
    return str(made["HostedZone"]["Id"]).rsplit("/", 1)[-1]


def _record_sets(zone_id: str) -> dict[tuple[str, str], Any]:
    pages = boto3.client("route53").get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
    sets = [s for page in pages for s in page["ResourceRecordSets"] if s["Type"] not in ("SOA", "NS")]
    return {
        (s["Name"].rstrip("."), s["Type"]): s.get("AliasTarget")
        or sorted(r["Value"] for r in s["ResourceRecords"])
        for s in sets
    }


def _wait_active(
    platform: AwsPlatform, project: str, names: list[str], timeout: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    with platform.api() as api:
        while True:
            listed = {d["name"]: d for d in api.get(f"/v1/projects/{project}/domains").json()["domains"]}
            if all(listed.get(n, {}).get("cdnStatus") == "active" for n in names):
                return [listed[n] for n in names]
            if time.monotonic() > deadline:
                waiting = {n: listed.get(n, {}).get("statusReason") for n in names if n in listed}
                raise AssertionError(f"not all active after {timeout} s: {waiting}")
            time.sleep(0.5)


def _start(tmp_path: Path, moto: MotoServer, resolver: Resolver, **extra: str) -> Any:
    return aws_platform(tmp_path, moto, _env(resolver, **extra))


def test_a_linked_route53_zone_takes_a_domain_and_its_apex_to_active_and_back(
    tmp_path: Path, moto: MotoServer, resolver: Resolver
) -> None:
    with _start(tmp_path, moto, resolver) as platform:
        project = "r53"
        deployed = platform.cli("deploy", str(_site(tmp_path / "v1", "route 53")), "--project", project,
                                "--prod", "--create", "--json")  # fmt: skip
        assert json_of(deployed)["status"] == "READY"
        zone_id = _hosted_zone("r53.test")
        linked = platform.cli("dns", "link", "r53.test", "--project", project, "--route53", zone_id)
        assert "r53.test" in linked.stdout
        names = ["r53.test", "www.r53.test"]
        with platform.api() as api:
            for name in names:
                assert api.post(f"/v1/projects/{project}/domains", json={"name": name}).status_code == 201
        apex, www = _wait_active(platform, project, names, timeout=90)

        sets = _record_sets(zone_id)
        distribution = distribution_with("www.r53.test")
        assert distribution is not None and covers(set(distribution["Aliases"]["Items"]), "r53.test")
        target = boto3.client("cloudfront").get_distribution(Id=distribution["Id"])["Distribution"][
            "DomainName"
        ]
        assert sets[("www.r53.test", "CNAME")] == [target + "."]
        for kind in ("A", "AAAA"):  # an apex cannot hold a CNAME: an alias to the distribution instead
            alias = sets[("r53.test", kind)]
            assert alias["HostedZoneId"] == CLOUDFRONT_ZONE and alias["DNSName"].rstrip(".") == target
        for domain in (apex, www):
            for record in domain["dnsRecords"]:
                if record["purpose"] == "validation":  # ACM's CNAME, written by the platform
                    assert sets[(record["name"], "CNAME")] == [record["value"] + "."]
            assert domain["certificate"]["reference"].startswith("arn:aws:acm:us-east-1:")
            # The platform's resolver cannot see Route 53's records: it warns that renewals need them.
            assert "no longer in DNS" in domain["statusReason"], domain["statusReason"]
        assert platform.custom_domain("www.r53.test").text == "route 53"

        with platform.api() as api:
            for name in names:
                assert api.delete(f"/v1/projects/{project}/domains/{name}").status_code == 200
        deadline = time.monotonic() + 60
        while _record_sets(zone_id) or distribution_with("www.r53.test") or distribution_with("r53.test"):
            assert time.monotonic() < deadline, f"left after the removal: {_record_sets(zone_id)}"
            time.sleep(0.5)
        for name in names:
            platform.check_domain_gone(name)


def test_sixty_domains_go_active_with_every_certificate_and_distribution_in_quota(
    tmp_path: Path, moto: MotoServer, resolver: Resolver
) -> None:
    with _start(tmp_path, moto, resolver) as platform:
        project = "many"
        platform.cli(
            "deploy", str(_site(tmp_path / "v1", "many")), "--project", project, "--prod", "--create"
        )
        zone_id = _hosted_zone("many.test")
        platform.cli("dns", "link", "many.test", "--project", project, "--route53", zone_id)
        names = [f"d{i:02d}.many.test" for i in range(60)]
        with platform.api() as api:
            for name in names:
                assert api.post(f"/v1/projects/{project}/domains", json={"name": name}).status_code == 201
        _wait_active(platform, project, names, timeout=400)

        cloudfront = boto3.client("cloudfront")
        acm = boto3.client("acm", region_name="us-east-1")
        served: set[str] = set()
        items = cloudfront.list_distributions()["DistributionList"]["Items"]
        ours = [d for d in items if str(d["Comment"]).split()[1:2] and d["Aliases"]["Quantity"]]
        for summary in ours:
            aliases = summary["Aliases"].get("Items", [])
            assert len(aliases) <= 100  # CloudFront's alternate names per distribution
            config = cloudfront.get_distribution_config(Id=summary["Id"])["DistributionConfig"]
            arn = config["ViewerCertificate"]["ACMCertificateArn"]
            certificate = acm.describe_certificate(CertificateArn=arn)["Certificate"]
            assert len(certificate["SubjectAlternativeNames"]) <= 10  # ACM's names per certificate
            assert all(covers(set(certificate["SubjectAlternativeNames"]), a) for a in aliases)
            served.update(aliases)
        assert served == set(names) and len(ours) == 6
        with platform.api() as api:
            quotas = {
                q["code"]: q for q in api.get("/v1/quotas", params={"project": project}).json()["quotas"]
            }
        assert quotas["domains_per_project"]["used"] == 60
        assert all(q["used"] <= q["limit"] for q in quotas.values()), quotas


def test_no_placement_is_refused_naming_the_quota_and_nothing_is_stored(
    tmp_path: Path, moto: MotoServer, resolver: Resolver
) -> None:
    limits = {"ANCHOR_AWS_QUOTA_NAMES_PER_CERTIFICATE": "2", "ANCHOR_AWS_QUOTA_DISTRIBUTIONS": "1"}
    with _start(tmp_path, moto, resolver, **limits) as platform:
        project = "tight"
        platform.cli(
            "deploy", str(_site(tmp_path / "v1", "tight")), "--project", project, "--prod", "--create"
        )
        with platform.api() as api:
            for name in ("a.tight.test", "b.tight.test"):
                assert api.post(f"/v1/projects/{project}/domains", json={"name": name}).status_code == 201
            refused = api.post(f"/v1/projects/{project}/domains", json={"name": "c.tight.test"})
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["code"] == "quota_exceeded"
            assert "Distributions per AWS account" in error["message"], error["message"]
            assert "ANCHOR_AWS_QUOTA_DISTRIBUTIONS" in error["message"], error["message"]
            listed = [d["name"] for d in api.get(f"/v1/projects/{project}/domains").json()["domains"]]
            assert listed == ["a.tight.test", "b.tight.test"]
            quotas = {q["code"]: q for q in api.get("/v1/quotas").json()["quotas"]}
        assert quotas["cloudfront_distributions"]["limit"] == 1
        assert quotas["acm_names_per_certificate"]["limit"] == 2


def test_deleting_a_project_takes_its_domains_distributions_certificates_and_records_away(
    tmp_path: Path, moto: MotoServer, resolver: Resolver
) -> None:
    with _start(tmp_path, moto, resolver) as platform:
        project = "brief"
        done = platform.cli("deploy", str(_site(tmp_path / "v1", "brief")), "--project", project, "--prod",
                            "--create", "--json")  # fmt: skip
        deployment = json_of(done)
        zone_id = _hosted_zone("brief.test")
        platform.cli("dns", "link", "brief.test", "--project", project, "--route53", zone_id)
        names = [f"n{i}.brief.test" for i in range(12)]  # two distributions: the production one and #1
        with platform.api() as api:
            for name in names:
                assert api.post(f"/v1/projects/{project}/domains", json={"name": name}).status_code == 201
        _wait_active(platform, project, names, timeout=120)
        with platform.api() as api:
            project_id = api.get(f"/v1/projects/{project}").json()["id"]
            assert api.delete(f"/v1/projects/{project}").status_code == 200
        deadline = time.monotonic() + 90
        while True:
            items = boto3.client("cloudfront").list_distributions()["DistributionList"].get("Items", [])
            left = [d["Id"] for d in items if str(d.get("Comment", "")).startswith(f"anchor {project_id}")]
            if not left:
                break
            assert time.monotonic() < deadline, f"distributions left: {left}"
            time.sleep(0.5)
        platform.check_project_gone(project_id, [deployment["id"]])
        for name in names:
            platform.check_domain_gone(name)
        assert _record_sets(zone_id) == {}
