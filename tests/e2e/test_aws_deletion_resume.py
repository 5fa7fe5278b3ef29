"""A project deletion on DynamoDB cut short by a crash (between two of its bounded batches) is finished by
the next control plane to start, with the project's Lambda function: the name is free again, nothing of the
project is left in the table, and its function is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.dynamo_store import DynamoStore
from anchor_deploy.providers import build_platform
from anchor_deploy.runtime import lambda_control
from anchor_deploy.settings import Settings
from tests.aws_support import MotoServer
from tests.contract.test_dynamo_store import Interrupted, interrupt_batch
from tests.e2e.lambda_control_support import (
    Context,
    call,
    control_plane_env,
    deployment,
    function_of,
    make_project,
    queue_deployment,
    scheduled_event,
)


@pytest.fixture
def stack(aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with control_plane_env(aws, tmp_path / "lambda-tmp", monkeypatch) as name:
        yield name


def test_a_deletion_cut_short_is_finished_with_its_function_at_the_next_start(stack: str) -> None:
    project = make_project("doomed")
    queued = queue_deployment("doomed", {"index.html": b"bye", "a.txt": b"a", "b.txt": b"b"})
    lambda_control.handler(scheduled_event(), Context())
    assert deployment(queued["id"])["status"] == "READY"
    function = function_of(project["id"])

    # Another process starts the deletion and dies after its first batch.
    crashed = DynamoStore(AwsClients(), f"{stack}-store")
    interrupt_batch(crashed, after=1)
    with pytest.raises(Interrupted):
        crashed.delete_project(project["id"])
    assert call("GET", "/v1/projects/doomed")[0] == 404  # already hidden from every reader
    status, taken = call("POST", "/v1/projects", {"name": "doomed"})
    assert status == 409, taken  # but its name is held until the deletion is finished
    assert boto3.client("lambda").get_function(FunctionName=function)

    restarted = build_platform(Settings.from_env())
    restarted.lifecycle.prepare()

    table = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=f"{stack}-store")
    assert not [item for page in table for item in page["Items"] if project["id"] in str(item)]
    with pytest.raises(boto3.client("lambda").exceptions.ResourceNotFoundException):
        boto3.client("lambda").get_function(FunctionName=function)
    assert call("POST", "/v1/projects", {"name": "doomed"})[0] == 201
    restarted.lifecycle.stop()
