"""AwsClients: configured only by the standard AWS environment, with every call countable."""

from __future__ import annotations

import os

import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from anchor_deploy.adapters.aws.clients import AwsClients
from tests.aws_support import MotoServer
from tests.ports import free_port


def test_calls_are_counted_per_service_and_operation(aws: MotoServer) -> None:
    clients = AwsClients()
    counts = clients.count_calls()
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="bucket-one")
    s3.list_buckets()
    s3.list_buckets()
    clients.client("dynamodb").list_tables()
    assert counts == {"s3:CreateBucket": 1, "s3:ListBuckets": 2, "dynamodb:ListTables": 1}


def test_a_per_service_endpoint_variable_wins_over_the_global_one(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on the global endpoint: only S3 is sent, by its own variable, to the moto server.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws.url)
    clients = AwsClients()
    clients.client("s3").create_bucket(Bucket="bucket-two")
    assert [b["Name"] for b in clients.client("s3").list_buckets()["Buckets"]] == ["bucket-two"]
    with pytest.raises(EndpointConnectionError):
        AwsClients(config=_no_retries()).client("dynamodb").list_tables()
    assert os.environ["AWS_REGION"] == AwsClients().region


def _no_retries() -> Config:
    return Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1)
