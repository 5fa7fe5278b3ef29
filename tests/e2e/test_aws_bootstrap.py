"""`anchor aws bootstrap` and `anchor aws destroy` against the moto server, the CLI run as a subprocess with
only the standard AWS variables pointing it there.

moto's CloudFormation cannot create Lambda function URLs (AWS::Lambda::Url is not in its resource map), so
these runs leave ``ControlPlaneCodeKey`` empty: the control-plane function, URL and schedule are left out by
the template's own condition. moto also ignores a bucket's public access block, ownership controls and
lifecycle rules and does not create bucket policies; tests/unit/test_aws_template.py checks those in the
template itself.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from anchor_deploy.adapters.aws import dynamo_schema
from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.names import STACK_TAG, StackNames, discover
from anchor_deploy.cli.main import main
from anchor_deploy.model.errors import StackMissing
from tests.aws_support import MotoServer

STACK = "anchor-e2e"
NAMES = StackNames(STACK)


def anchor_aws(aws: MotoServer, *args: str, stack: str = STACK) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANCHOR_"))}
    return subprocess.run(
        [sys.executable, "-m", "anchor_deploy.cli.main", "aws", *args, "--stack", stack],
        env={**environ, **aws.environ(), "ANCHOR_AWS_CDN_POLL": "0.5"},  # the emulator deploys in 0.5 s
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stacks() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = boto3.client("cloudformation").describe_stacks()["Stacks"]
    return [s for s in found if s["StackStatus"] != "DELETE_COMPLETE"]


def zipped() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def make_function(name: str, role: str) -> None:
    boto3.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": zipped()},
    )


def make_distribution(reference: str, stack_tag: str) -> str:
    config = {
        "CallerReference": reference,
        "Comment": reference,
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "function",
                    "DomainName": "example.lambda-url.us-east-1.on.aws",
                    "CustomOriginConfig": {
                        "HTTPPort": 80,
                        "HTTPSPort": 443,
                        "OriginProtocolPolicy": "https-only",
                    },
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "function",
            "ViewerProtocolPolicy": "redirect-to-https",
            "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
        },
    }
    tags = {"Items": [{"Key": STACK_TAG, "Value": stack_tag}]}
    answer = boto3.client("cloudfront").create_distribution_with_tags(
        DistributionConfigWithTags={"DistributionConfig": config, "Tags": tags}
    )
    return str(answer["Distribution"]["Id"])


def distribution_ids() -> set[str]:
    listed = boto3.client("cloudfront").list_distributions()["DistributionList"]
    return {d["Id"] for d in listed.get("Items") or []}


def function_names() -> set[str]:
    return {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}


def test_without_yes_and_without_a_terminal_nothing_is_created(aws: MotoServer) -> None:
    result = anchor_aws(aws, "bootstrap")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "--yes" in result.stderr and "Traceback" not in result.stderr
    assert stacks() == []
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_bootstrap_creates_the_stack_once_and_destroy_removes_everything(aws: MotoServer) -> None:
    created = anchor_aws(aws, "bootstrap", "--yes")
    assert created.returncode == 0, created.stderr
    assert "AWS::DynamoDB::Table" in created.stdout and "AWS::IAM::Role" in created.stdout
    assert "AWS::Lambda::Function" not in created.stdout  # no control-plane package given
    resources = discover(AwsClients(), STACK)
    assert resources.table == NAMES.table and resources.bucket == NAMES.bucket(resources.account, "us-east-1")
    assert resources.function_prefix == NAMES.function_prefix and resources.control_plane_url is None

    table = boto3.client("dynamodb").describe_table(TableName=resources.table)["Table"]
    indexes = {i["IndexName"]: i["KeySchema"] for i in table["GlobalSecondaryIndexes"]}
    expected = {
        i["IndexName"]: i["KeySchema"] for i in dynamo_schema.table_spec("x")["GlobalSecondaryIndexes"]
    }
    assert indexes == expected and len(indexes) == 4
    s3 = boto3.client("s3")
    (rule,) = s3.get_bucket_encryption(Bucket=resources.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == resources.key_arn
    kms = boto3.client("kms")
    assert kms.describe_key(KeyId=resources.key_id)["KeyMetadata"]["Arn"] == resources.key_arn
    policy = json.loads(kms.get_key_policy(KeyId=resources.key_id, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{resources.account}:root"}
    assert kms.get_key_rotation_status(KeyId=resources.key_id)["KeyRotationEnabled"] is True
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases[NAMES.key_alias] == resources.key_id
    iam = boto3.client("iam")
    for role, arn in (
        (NAMES.runtime_role, resources.runtime_role_arn),
        (NAMES.control_plane_role, resources.control_plane_role_arn),
    ):
        assert iam.get_role(RoleName=role)["Role"]["Arn"] == arn
        assert iam.list_role_policies(RoleName=role)["PolicyNames"]

    before = boto3.client("cloudformation").describe_stack_events(StackName=STACK)["StackEvents"]
    again = anchor_aws(aws, "bootstrap", "--yes", "--json")
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["action"] == "none" and answer["changes"] == [] and "up to date" in again.stderr
    assert (answer["bucket"], answer["keyArn"], answer["table"]) == (
        resources.bucket,
        resources.key_arn,
        NAMES.table,
    )
    after = boto3.client("cloudformation").describe_stack_events(StackName=STACK)["StackEvents"]
    assert len(after) == len(before) and discover(AwsClients(), STACK) == resources

    # What the control plane made outside the stack: a project function and its log group; blobs.
    make_function(NAMES.project_function("web"), resources.runtime_role_arn)
    make_function("someone-elses-function", resources.runtime_role_arn)
    boto3.client("logs").create_log_group(logGroupName=f"/aws/lambda/{NAMES.project_function('web')}")
    s3.put_object(Bucket=resources.bucket, Key="blobs/" + "ab" * 32, Body=b"bytes")
    ours = make_distribution("project-web", STACK)
    theirs = make_distribution("another-stack", "another")
    acm = boto3.client("acm", region_name="us-east-1")
    certificates = {
        tag: acm.request_certificate(
            DomainName=f"{tag}.example.com", Tags=[{"Key": STACK_TAG, "Value": tag}]
        )["CertificateArn"]
        for tag in (STACK, "another")
    }

    refused = anchor_aws(aws, "destroy")
    assert refused.returncode == 1 and "--yes" in refused.stderr and stacks()
    destroyed = anchor_aws(aws, "destroy", "--yes", "--json")
    assert destroyed.returncode == 0, destroyed.stderr
    gone = {(r["resourceType"], r["name"], r["where"]) for r in json.loads(destroyed.stdout)["deleted"]}
    assert ("AWS::Lambda::Function", NAMES.project_function("web"), "outside the stack") in gone
    assert ("AWS::DynamoDB::Table", NAMES.table, "stack") in gone and "warning" in destroyed.stderr
    assert stacks() == []
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    assert resources.bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert function_names() == {"someone-elses-function"}
    assert distribution_ids() == {theirs} and ours in destroyed.stdout
    left = {c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]}
    assert left == {certificates["another"]} and certificates[STACK] in destroyed.stdout
    assert boto3.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(STACK)] == []
    with pytest.raises(StackMissing, match="anchor aws bootstrap"):
        discover(AwsClients(), STACK)

    nothing = anchor_aws(aws, "destroy", "--yes")
    assert nothing.returncode == 0 and "nothing to delete" in nothing.stdout


def test_discover_without_a_stack_says_to_bootstrap(aws: MotoServer) -> None:
    with pytest.raises(StackMissing) as raised:
        discover(AwsClients(), STACK)
    assert str(raised.value) == f"no AWS stack {STACK!r} in us-east-1: run `anchor aws bootstrap`"


@pytest.mark.parametrize(
    ("args", "stack", "words"),
    [
        (("bootstrap", "--yes"), "Bad_Name", "--stack must be"),
        (("destroy", "--yes"), "x" * 30, "--stack must be"),
        (("bootstrap", "--yes", "--control-plane-code-key", "elsewhere/cp.zip"), STACK, "control-plane/"),
        (
            ("bootstrap", "--yes", "--control-plane-code-key", "control-plane/cp.zip"),
            STACK,
            "does not exist yet",
        ),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    aws: MotoServer, args: tuple[str, ...], stack: str, words: str
) -> None:
    result = anchor_aws(aws, *args, stack=stack)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and words in result.stderr and "Traceback" not in result.stderr
    assert stacks() == []


def test_on_a_terminal_it_asks_and_no_changes_nothing(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anchor_deploy.cli.aws as cli_aws
    import anchor_deploy.cli.common as cli_common

    monkeypatch.setattr(cli_aws, "has_terminal", lambda: True)
    monkeypatch.setattr(cli_common, "has_terminal", lambda: True)
    runner = CliRunner()
    declined = runner.invoke(main, ["aws", "bootstrap", "--stack", STACK], input="n\n")
    assert declined.exit_code == 1 and "canceled" in declined.output and "AWS::S3::Bucket" in declined.output
    assert stacks() == []
    accepted = runner.invoke(main, ["aws", "bootstrap", "--stack", STACK], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert [s["StackName"] for s in stacks()] == [STACK]
    kept = runner.invoke(main, ["aws", "destroy", "--stack", STACK], input="n\n")
    assert kept.exit_code == 1 and "canceled" in kept.output
    assert [s["StackName"] for s in stacks()] == [STACK] and boto3.client("dynamodb").list_tables()[
        "TableNames"
    ]
