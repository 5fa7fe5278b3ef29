"""ACM certificates in the tests' moto server (tests/moto_rules), requested and issued as on AWS.

The rules server issues a certificate only once every name's validation CNAME (the one DescribeCertificate
shows) is in the moto Route 53 zone that covers the name (or, for a name no moto zone covers, after
MOTO_ACM_VALIDATION_WAIT). ``issue_certificate(names)`` does what a user (or the platform's DNS automation)
does: request, publish each name's record in its zone (made if missing), wait for ISSUED. Clients come from
the standard AWS environment the ``aws`` fixture sets; ACM is always us-east-1 (CloudFront's region).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config

CERTIFICATE_REGION = "us-east-1"
# botocore retries LimitExceededException as throttling (with backoff): a refused request would take seconds
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})


def acm() -> Any:
    return boto3.client("acm", region_name=CERTIFICATE_REGION, config=NO_RETRIES)


def route53() -> Any:
    return boto3.client("route53")


def viewer_certificate(arn: str) -> dict[str, Any]:
    """A distribution's ViewerCertificate serving this ACM certificate, as CloudFront wants it."""
    return {
        "ACMCertificateArn": arn,
        "SSLSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
    }


def zone_name_of(name: str) -> str:
    """The zone a test name lives in: its last two labels (``*.a.example.com`` -> ``example.com``)."""
    labels = name.lower().rstrip(".").removeprefix("*.").split(".")
    return ".".join(labels[-2:])


def hosted_zone(zone_name: str) -> str:
    """The id of the public moto hosted zone named ``zone_name``, made if missing."""
    wanted = zone_name.rstrip(".") + "."
    listed = route53().list_hosted_zones_by_name(DNSName=wanted, MaxItems="1")["HostedZones"]
    if listed and listed[0]["Name"] == wanted:
        return str(listed[0]["Id"])
    made = route53().create_hosted_zone(Name=wanted, CallerReference=str(uuid.uuid4()))
    return str(made["HostedZone"]["Id"])


def request_certificate(names: Iterable[str], token: str | None = None) -> str:
    """Request a DNS-validated certificate for these names (the first is the DomainName): its ARN."""
    first, *rest = list(names)
    extra: dict[str, Any] = {"SubjectAlternativeNames": rest} if rest else {}
    if token:
        extra["IdempotencyToken"] = token
    answer = acm().request_certificate(DomainName=first, ValidationMethod="DNS", **extra)
    return str(answer["CertificateArn"])


def describe(arn: str) -> dict[str, Any]:
    described: dict[str, Any] = acm().describe_certificate(CertificateArn=arn)["Certificate"]
    return described


def validation_records(arn: str, timeout: float = 10.0) -> dict[str, tuple[str, str]]:
    """Each name's validation record: name -> (record name, CNAME value), once ACM shows them all (AWS fills
    them in a few seconds after the request; the rules server after MOTO_RULES_RECORD_SECONDS)."""
    deadline = time.monotonic() + timeout
    while True:
        options = describe(arn).get("DomainValidationOptions", [])
        if options and all("ResourceRecord" in option for option in options):
            return {
                str(o["DomainName"]): (str(o["ResourceRecord"]["Name"]), str(o["ResourceRecord"]["Value"]))
                for o in options
            }
        if time.monotonic() > deadline:
            raise AssertionError(f"{arn} shows no validation record after {timeout} s: {options}")
        time.sleep(0.05)


def publish_validation_records(arn: str, names: Iterable[str] | None = None) -> None:
    """UPSERT the validation CNAMEs of ``names`` (default: every name) in their zones, made if missing."""
    records = validation_records(arn)
    chosen = set(records) if names is None else set(names)
    by_zone: dict[str, dict[str, str]] = {}
    for name, (record_name, value) in records.items():
        if name in chosen:
            by_zone.setdefault(hosted_zone(zone_name_of(name)), {})[record_name] = value
    for zone_id, zone_records in by_zone.items():
        changes = [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": record_name,
                    "Type": "CNAME",
                    "TTL": 300,
                    "ResourceRecords": [{"Value": value}],
                },
            }
            for record_name, value in sorted(zone_records.items())
        ]
        route53().change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def wait_until_issued(arn: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = describe(arn)
        if described["Status"] == "ISSUED":
            return described
        if time.monotonic() > deadline:
            raise AssertionError(f"{arn} is still {described['Status']} after {timeout} s")
        time.sleep(0.05)


def issue_certificate(names: Iterable[str]) -> str:
    """An ISSUED certificate for these names, validated through their moto Route 53 zones: its ARN."""
    wanted = list(names)
    arn = request_certificate(wanted)
    publish_validation_records(arn)
    wait_until_issued(arn)
    return arn
