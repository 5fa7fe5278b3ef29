"""StackDeployer on CloudFormation answers moto does not give: an update through a change set CloudFormation
computes (moto's diff ignores conditions and an executed change set leaves its outputs unchanged), a failed
creation with its reason, a change set refused, a stack busy elsewhere. botocore's Stubber stands in for
CloudFormation; no request leaves the process."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.parsers import ResponseParserError
from botocore.stub import ANY, Stubber

from anchor_deploy.adapters.aws.names import OUTPUTS, AwsResources
from anchor_deploy.adapters.aws.stack_deploy import StackDeployer
from anchor_deploy.adapters.aws.template import CODE_KEY_PARAMETER, template_body
from anchor_deploy.model.errors import InvalidInput, StackFailed

STACK = "anchor-deploy"
STACK_ID = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{STACK}/1"
CHANGE_SET = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/anchor-1/1"
QUICK = {"Delay": 0, "MaxAttempts": 5}  # the stub answers at once; CloudFormation is paced at 5 s
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class StubbedClients:
    region = "us-east-1"

    def __init__(self) -> None:
        self.cloudformation = botocore.session.get_session().create_client(
            "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.stubber = Stubber(self.cloudformation)

    def client(self, service: str) -> Any:
        assert service == "cloudformation"
        return self.cloudformation


@pytest.fixture
def clients() -> Iterator[StubbedClients]:
    stubbed = StubbedClients()
    with stubbed.stubber:
        yield stubbed
        stubbed.stubber.assert_no_pending_responses()


def stack(status: str, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "StackName": STACK,
        "StackId": STACK_ID,
        "CreationTime": NOW,
        "StackStatus": status,
    }
    if outputs is not None:
        described["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
    return {"Stacks": [described]}


def outputs() -> dict[str, str]:
    return {key: f"value-of-{key}" for key in OUTPUTS}


def change_set(status: str, changes: list[dict[str, Any]] | None = None, reason: str = "") -> dict[str, Any]:
    answer: dict[str, Any] = {"ChangeSetId": CHANGE_SET, "StackName": STACK, "Status": status}
    if changes is not None:
        answer["Changes"] = [{"Type": "Resource", "ResourceChange": change} for change in changes]
    if reason:
        answer["StatusReason"] = reason
    return answer


def event(logical_id: str, kind: str, status: str, reason: str) -> dict[str, Any]:
    return {
        "StackId": STACK_ID,
        "EventId": logical_id,
        "StackName": STACK,
        "Timestamp": NOW,
        "LogicalResourceId": logical_id,
        "ResourceType": kind,
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
    }


def expect_change_set(clients: StubbedClients, code: dict[str, Any]) -> None:
    clients.stubber.add_response(
        "create_change_set",
        {"Id": CHANGE_SET, "StackId": STACK_ID},
        {
            "StackName": STACK,
            "ChangeSetName": ANY,
            "ChangeSetType": "UPDATE",
            "TemplateBody": template_body(STACK),
            "Parameters": [{"ParameterKey": CODE_KEY_PARAMETER, **code}],
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Description": ANY,
        },
    )


def test_an_update_shows_cloudformations_changes_then_executes_that_change_set(
    clients: StubbedClients,
) -> None:
    role = {
        "Action": "Modify",
        "LogicalResourceId": "ControlPlaneRole",
        "PhysicalResourceId": "anchor-deploy-control-plane",
        "ResourceType": "AWS::IAM::Role",
        "Replacement": "False",
    }
    stubber = clients.stubber
    stubber.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": STACK})
    expect_change_set(clients, {"UsePreviousValue": True})  # no key given: the stack keeps its package
    where = {"ChangeSetName": CHANGE_SET, "StackName": STACK}
    stubber.add_response("describe_change_set", change_set("CREATE_IN_PROGRESS"), where)
    stubber.add_response("describe_change_set", change_set("CREATE_COMPLETE", [role]), where)
    naps: list[float] = []
    deployer = StackDeployer(clients, STACK, sleep=naps.append, stack_wait=QUICK)
    plan = deployer.plan()
    assert plan.exists and not plan.up_to_date and len(naps) == 1
    ((action, name, kind, replacement),) = [
        (c.action, c.physical_id, c.resource_type, c.replacement) for c in plan.changes
    ]
    assert (action, name, kind, replacement) == (
        "Modify",
        "anchor-deploy-control-plane",
        "AWS::IAM::Role",
        "False",
    )

    stubber.add_response("execute_change_set", {}, where)
    stubber.add_response("describe_stacks", stack("UPDATE_IN_PROGRESS"), {"StackName": STACK})
    stubber.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": STACK})
    stubber.add_response("describe_stacks", stack("UPDATE_COMPLETE", outputs()), {"StackName": STACK})
    said: list[str] = []
    resources = deployer.apply(plan, said.append)
    assert isinstance(resources, AwsResources) and resources.table == "value-of-TableName"
    assert said == [f"updating stack {STACK} in us-east-1…"]


def test_a_new_key_is_passed_and_no_changes_is_up_to_date(clients: StubbedClients) -> None:
    stubber = clients.stubber
    stubber.add_response("describe_stacks", stack("CREATE_COMPLETE"), {"StackName": STACK})
    expect_change_set(clients, {"ParameterValue": "control-plane/v2.zip"})
    where = {"ChangeSetName": CHANGE_SET, "StackName": STACK}
    reason = "The submitted information didn't contain changes. Submit different information to create one."
    stubber.add_response("describe_change_set", change_set("FAILED", reason=reason), where)
    stubber.add_response("delete_change_set", {}, where)
    plan = StackDeployer(clients, STACK, sleep=lambda _: None).plan("control-plane/v2.zip")
    assert plan.up_to_date and plan.change_set is None


def test_a_refused_change_set_is_one_line_with_cloudformations_reason(clients: StubbedClients) -> None:
    stubber = clients.stubber
    stubber.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": STACK})
    expect_change_set(clients, {"UsePreviousValue": True})
    where = {"ChangeSetName": CHANGE_SET, "StackName": STACK}
    stubber.add_response(
        "describe_change_set", change_set("FAILED", reason="Template format error: x"), where
    )
    with pytest.raises(StackFailed, match="cannot plan stack 'anchor-deploy': Template format error: x"):
        StackDeployer(clients, STACK, sleep=lambda _: None).plan()


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "ROLLBACK_COMPLETE"])
def test_a_stack_that_is_busy_or_broken_is_refused_before_any_change(
    clients: StubbedClients, status: str
) -> None:
    clients.stubber.add_response("describe_stacks", stack(status), {"StackName": STACK})
    with pytest.raises(StackFailed, match=status):
        StackDeployer(clients, STACK).plan()


def test_a_failed_creation_names_the_resource_and_why(clients: StubbedClients) -> None:
    stubber = clients.stubber
    missing = "Stack with id anchor-deploy does not exist"
    stubber.add_client_error(
        "describe_stacks", "ValidationError", missing, expected_params={"StackName": STACK}
    )
    deployer = StackDeployer(clients, STACK)
    plan = deployer.plan()
    assert not plan.exists and {c.logical_id for c in plan.changes} >= {
        "Table",
        "Bucket",
        "Key",
        "RuntimeRole",
    }
    assert not any(c.logical_id.startswith("ControlPlaneF") for c in plan.changes)

    stubber.add_client_error(
        "describe_stacks", "ValidationError", missing, expected_params={"StackName": STACK}
    )
    stubber.add_response(
        "create_stack",
        {"StackId": STACK_ID},
        {
            "StackName": STACK,
            "TemplateBody": template_body(STACK),
            "Parameters": [{"ParameterKey": CODE_KEY_PARAMETER, "ParameterValue": ""}],
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "OnFailure": "DELETE",
        },
    )
    stubber.add_response("describe_stacks", stack("DELETE_COMPLETE"), {"StackName": STACK_ID})
    why = "anchor-deploy-blobs-123456789012-us-east-1 already exists"
    events = [  # newest first, as CloudFormation answers
        event(
            STACK, "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed"
        ),
        event("Table", "AWS::DynamoDB::Table", "CREATE_FAILED", "Resource creation cancelled"),
        event("Bucket", "AWS::S3::Bucket", "CREATE_FAILED", why),
    ]
    stubber.add_response("describe_stack_events", {"StackEvents": events}, {"StackName": STACK_ID})
    with pytest.raises(StackFailed) as raised:
        deployer.apply(plan, lambda _: None)
    assert str(raised.value) == f"stack 'anchor-deploy' failed: Bucket (AWS::S3::Bucket): {why}"


@pytest.mark.parametrize(
    "key", ["cp.zip", "control-plane/", "control-plane/x.tar", "control-plane/../x.zip "]
)
def test_a_bad_package_key_is_refused_before_any_call(clients: StubbedClients, key: str) -> None:
    with pytest.raises(InvalidInput, match="--control-plane-code-key"):
        StackDeployer(clients, STACK).plan(key)


class BrokenCloudFormation:
    def describe_stacks(self, **_: Any) -> Any:
        raise ResponseParserError("Unable to parse response (syntax error), invalid XML received.\nb'<html>'")


class BrokenClients:
    region = "us-east-1"

    def client(self, service: str) -> Any:
        return BrokenCloudFormation()


def test_an_answer_that_is_not_aws_is_one_line() -> None:
    with pytest.raises(StackFailed) as raised:
        StackDeployer(BrokenClients(), STACK).plan()
    assert str(raised.value) == (
        "cannot plan stack 'anchor-deploy': Unable to parse response (syntax error), invalid XML received."
    )


def test_a_change_set_without_resource_changes_still_runs(clients: StubbedClients) -> None:
    """Only outputs or parameters differ: CloudFormation lists no resource, but the change set must run."""
    stubber = clients.stubber
    stubber.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": STACK})
    expect_change_set(clients, {"UsePreviousValue": True})
    where = {"ChangeSetName": CHANGE_SET, "StackName": STACK}
    stubber.add_response("describe_change_set", change_set("CREATE_COMPLETE", []), where)
    deployer = StackDeployer(clients, STACK, sleep=lambda _: None, stack_wait=QUICK)
    plan = deployer.plan()
    assert plan.changes == [] and not plan.up_to_date and plan.change_set == CHANGE_SET
    stubber.add_response("execute_change_set", {}, where)
    stubber.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": STACK})
    stubber.add_response("describe_stacks", stack("UPDATE_COMPLETE", outputs()), {"StackName": STACK})
    assert deployer.apply(plan, lambda _: None).bucket == "value-of-BucketName"


def test_discover_without_credentials_is_one_line() -> None:
    from botocore.exceptions import NoCredentialsError

    from anchor_deploy.adapters.aws.names import discover

    class NoCredentials:
        region = "us-east-1"

        def client(self, service: str) -> Any:
            class Calls:
                def describe_stacks(self, **_: Any) -> Any:
                    raise NoCredentialsError()

            return Calls()

    with pytest.raises(
        StackFailed, match="cannot read AWS stack 'anchor-deploy': Unable to locate credentials"
    ):
        discover(NoCredentials(), STACK)
