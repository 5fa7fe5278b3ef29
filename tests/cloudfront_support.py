"""CloudFront distributions in the tests' moto rules server (tests/moto_rules), made and changed as on AWS.

``create`` makes a small distribution (a function URL origin), ``set_names`` swaps aliases and viewer
certificate in one UpdateDistribution with IfMatch read just before, ``refused`` asserts an AWS error's code
and HTTP status. Clients come from the standard AWS environment the ``aws`` fixture sets.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.aws_certificates import viewer_certificate

DEPLOY_SECONDS = 0.5  # the rules server's default MOTO_RULES_DEPLOY_SECONDS
DEFAULT_CERTIFICATE = {"CloudFrontDefaultCertificate": True}


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
