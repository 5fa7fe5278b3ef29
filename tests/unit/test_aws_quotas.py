"""AwsQuotas: where each limit comes from (the operator's setting, Service Quotas, AWS's default), through
botocore's Stubber (moto's Service Quotas knows only VPC quotas), and the ANCHOR_AWS_QUOTA_* settings."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from anchor_deploy.adapters.aws.aws_quotas import (
    ALIASES_PER_DISTRIBUTION,
    CERTIFICATES,
    DISTRIBUTIONS,
    NAMES_PER_CERTIFICATE,
    AwsQuotas,
    how_to_raise,
)
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.settings import Settings


class OneClient:
    """A ClientSource whose Service Quotas client is a stubbed one."""

    def __init__(self) -> None:
        self.quotas = boto3.client(
            "service-quotas", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.asked: list[str] = []

    def client(self, service: str) -> Any:
        raise AssertionError(f"no {service} client expected")

    def regional(self, service: str, region: str) -> Any:
        assert (service, region) == ("service-quotas", "us-east-1")
        self.asked.append(service)
        return self.quotas


def test_a_setting_wins_then_service_quotas_then_the_default() -> None:
    source = OneClient()
    quotas = AwsQuotas(source, {"cloudfront_distributions": 6, "acm_certificates": 0})
    with Stubber(source.quotas) as stub:
        stub.add_response(
            "get_service_quota",
            {"Quota": {"QuotaCode": "L-F141DD1D", "Value": 3000.0}},
            {"ServiceCode": "acm", "QuotaCode": "L-F141DD1D"},
        )
        stub.add_client_error("get_service_quota", "AccessDeniedException", http_status_code=403)
        assert quotas.limit(DISTRIBUTIONS).value == 6
        assert quotas.limit(DISTRIBUTIONS).source == "ANCHOR_AWS_QUOTA_DISTRIBUTIONS"
        certificates = quotas.limit(CERTIFICATES)
        assert (certificates.value, certificates.source) == (3000, "Service Quotas")  # 0: not set
        names = quotas.limit(NAMES_PER_CERTIFICATE)
        assert (names.value, names.source) == (10, "AWS default")  # no right to ask: the default
        aliases = quotas.limit(ALIASES_PER_DISTRIBUTION)
        assert (aliases.value, aliases.source) == (100, "AWS default")  # no quota code to ask for
        stub.assert_no_pending_responses()
    assert quotas.limit(CERTIFICATES).value == 3000 and len(source.asked) == 2, "asked once per process"
    assert quotas.slot_size() == 10


def test_how_to_raise_names_the_quota_code_and_the_setting() -> None:
    words = how_to_raise(DISTRIBUTIONS)
    assert "Distributions per AWS account" in words and "L-24B04930" in words
    assert "ANCHOR_AWS_QUOTA_DISTRIBUTIONS" in words


def test_quota_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"ANCHOR_AWS_QUOTA_NAMES_PER_CERTIFICATE": "25"})
    assert settings.aws_quotas["acm_names_per_certificate"] == 25
    assert settings.aws_quotas["cloudfront_distributions"] == 0
    with pytest.raises(InvalidInput):
        Settings.from_env({"ANCHOR_AWS_QUOTA_DISTRIBUTIONS": "-1"})
