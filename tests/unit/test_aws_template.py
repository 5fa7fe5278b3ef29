"""The platform's CloudFormation template: cfn-lint clean, least-privilege IAM (every action that its service
lets us scope names its resources), iam:PassRole on the runtime role only, and the names it derives."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cfnlint.data.AdditionalSpecs  # type: ignore[import-untyped]
import pytest
from cfnlint.api import ManualArgs, lint  # type: ignore[import-untyped]

from anchor_deploy.adapters.aws import dynamo_schema
from anchor_deploy.adapters.aws.names import OUTPUTS, STACK_TAG, StackNames
from anchor_deploy.adapters.aws.template import WITH_CONTROL_PLANE, stack_template, template_body
from anchor_deploy.adapters.aws.template_iam import WILDCARDS
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.settings import Settings, parse_stack_name

STACK = "anchor-deploy"
LINT_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]

# Every action the template grants, with the resource types the service authorization reference lets a
# policy name for it ("Actions, resources, and condition keys for <service>"); () means none: IAM only
# takes Resource "*" for it. An action missing here fails the test: look it up and add it.
SCOPABLE: dict[str, tuple[str, ...]] = {
    "dynamodb:BatchGetItem": ("table",),
    "dynamodb:BatchWriteItem": ("table",),
    "dynamodb:ConditionCheckItem": ("table",),
    "dynamodb:DeleteItem": ("table",),
    "dynamodb:DescribeTable": ("table",),
    "dynamodb:GetItem": ("table",),
    "dynamodb:PutItem": ("table",),
    "dynamodb:Query": ("table", "index"),
    "dynamodb:Scan": ("table", "index"),
    "dynamodb:UpdateItem": ("table",),
    "s3:AbortMultipartUpload": ("object",),
    "s3:DeleteObject": ("object",),
    "s3:GetObject": ("object",),
    "s3:ListMultipartUploadParts": ("object",),
    "s3:PutObject": ("object",),
    "s3:ListBucket": ("bucket",),
    "s3:ListBucketMultipartUploads": ("bucket",),
    "kms:Decrypt": ("key",),
    "kms:Encrypt": ("key",),
    "kms:GenerateDataKey": ("key",),
    "kms:DescribeKey": ("key",),
    "lambda:AddPermission": ("function",),
    "lambda:CreateAlias": ("function",),
    "lambda:CreateFunction": ("function",),
    "lambda:CreateFunctionUrlConfig": ("function",),
    "lambda:DeleteAlias": ("function",),
    "lambda:DeleteFunction": ("function",),
    "lambda:DeleteFunctionUrlConfig": ("function",),
    "lambda:GetAlias": ("function",),
    "lambda:GetFunction": ("function",),
    "lambda:GetFunctionConfiguration": ("function",),
    "lambda:GetFunctionUrlConfig": ("function",),
    "lambda:GetPolicy": ("function",),
    "lambda:InvokeFunction": ("function",),
    "lambda:ListAliases": ("function",),
    "lambda:ListTags": ("function",),
    "lambda:ListVersionsByFunction": ("function",),
    "lambda:PublishVersion": ("function",),
    "lambda:RemovePermission": ("function",),
    "lambda:TagResource": ("function",),
    "lambda:UpdateAlias": ("function",),
    "lambda:UpdateFunctionCode": ("function",),
    "lambda:UpdateFunctionConfiguration": ("function",),
    "lambda:UpdateFunctionUrlConfig": ("function",),
    "lambda:ListFunctions": (),
    "iam:PassRole": ("role",),
    "logs:CreateLogGroup": ("log-group",),
    "logs:CreateLogStream": ("log-stream",),
    "logs:PutLogEvents": ("log-stream",),
    "logs:DeleteLogGroup": ("log-group",),
    "logs:DescribeLogStreams": ("log-group",),
    "logs:FilterLogEvents": ("log-group",),
    "logs:PutRetentionPolicy": ("log-group",),
    "cloudformation:DescribeStacks": ("stack",),
    "cloudfront:CreateDistribution": (),
    "cloudfront:ListDistributions": (),
    "cloudfront:CreateCachePolicy": (),
    "cloudfront:ListCachePolicies": (),
    "cloudfront:CreateInvalidation": ("distribution",),
    "cloudfront:DeleteDistribution": ("distribution",),
    "cloudfront:GetDistribution": ("distribution",),
    "cloudfront:GetDistributionConfig": ("distribution",),
    "cloudfront:GetInvalidation": ("distribution",),
    "cloudfront:ListTagsForResource": ("distribution",),
    "cloudfront:UpdateDistribution": ("distribution",),
    "cloudfront:TagResource": ("distribution",),
    "acm:RequestCertificate": (),
    "acm:ListCertificates": (),
    "acm:DeleteCertificate": ("certificate",),
    "acm:DescribeCertificate": ("certificate",),
    "acm:ListTagsForCertificate": ("certificate",),
    "acm:AddTagsToCertificate": ("certificate",),
    "route53:ListResourceRecordSets": ("hostedzone",),
    "route53:ChangeResourceRecordSets": ("hostedzone",),
}
# Resources whose ids AWS assigns: named by type in the account, and scoped by the stack's tag instead.
TAG_SCOPED_TYPES = ("distribution/*", "certificate/*")
PLACEHOLDERS = {
    "${AWS::Partition}": "aws",
    "${AWS::Region}": "us-east-1",
    "${AWS::AccountId}": "123456789012",
}


def lint_problems(template: dict[str, Any]) -> list[str]:
    matches = lint(json.dumps(template), config=ManualArgs(regions=LINT_REGIONS, include_checks=["I"]))
    return [str(match) for match in matches]


def policies(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(resource, kind, policy document) for every policy anywhere in the template."""
    found = []
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        for policy in properties.get("Policies", []):
            found.append((logical_id, "identity", policy["PolicyDocument"]))
        if "AssumeRolePolicyDocument" in properties:
            found.append((logical_id, "trust", properties["AssumeRolePolicyDocument"]))
        if "KeyPolicy" in properties:  # JSON text under Fn::Sub
            found.append((logical_id, "key", json.loads(properties["KeyPolicy"]["Fn::Sub"])))
        if resource["Type"].endswith("Policy") and "PolicyDocument" in properties:
            found.append((logical_id, "resource", properties["PolicyDocument"]))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def render(resource: Any) -> str:
    """A policy resource as text: "<Name>" for an ARN of one of the stack's own resources."""
    if isinstance(resource, str):
        return resource
    (function, argument), *_ = resource.items()
    if function == "Fn::GetAtt":
        return f"<{argument[0]}>"
    if function == "Ref":
        return f"<{argument}>"
    assert function == "Fn::Sub", resource
    text = re.sub(r"\$\{(\w+)\.Arn\}", r"<\1>", argument)
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


def tag_limited(statement: dict[str, Any], stack: str) -> bool:
    equals = statement.get("Condition", {}).get("StringEquals", {})
    return stack in (equals.get(f"aws:ResourceTag/{STACK_TAG}"), equals.get(f"aws:RequestTag/{STACK_TAG}"))


LINKED_ZONES = "hostedzone/*"  # the users' Route 53 zones an admin links: unknown ahead, not the stack's


def linked_zone_limited(statement: dict[str, Any]) -> bool:
    """Reading record sets of any zone is allowed; changing them only held to what the platform writes."""
    if as_list(statement["Action"]) == ["route53:ListResourceRecordSets"]:
        return True
    held = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
    types = set(held.get("route53:ChangeResourceRecordSetsRecordTypes", ["*"]))
    actions = set(held.get("route53:ChangeResourceRecordSetsActions", ["CREATE"]))
    return types <= {"A", "AAAA", "CNAME", "TXT"} and actions <= {"UPSERT", "DELETE"}


def resource_problem(resource: str, statement: dict[str, Any], stack: str) -> str | None:
    """Why ``resource`` is broader than the stack's own, or None."""
    if resource.startswith("<"):
        return None  # one of the stack's resources (a GetAtt, a Ref, or under one: "<Bucket>/blobs/*")
    if resource == "*":
        return "Resource '*'"
    parts = resource.split(":", 5)
    if len(parts) < 6 or "*" in parts[3] or "*" in parts[4]:
        return f"{resource}: any region or account"
    name = parts[5]
    if name == LINKED_ZONES:
        return None if linked_zone_limited(statement) else f"{resource}: record changes not held by condition"
    if name in TAG_SCOPED_TYPES:
        return None if tag_limited(statement, stack) else f"{resource} without the stack's tag condition"
    before_wildcard = name.split("*", 1)[0]
    if stack not in before_wildcard:
        return f"{resource}: names no resource of stack {stack}"
    return None


def statement_problems(statement: dict[str, Any], stack: str) -> list[str]:
    if statement["Effect"] != "Allow":
        return []
    actions = as_list(statement["Action"])
    resources = [render(r) for r in as_list(statement["Resource"])]
    problems = []
    for action in actions:
        if "*" in action:
            problems.append(f"{action}: a wildcard action")
        elif action not in SCOPABLE:
            problems.append(f"{action}: unknown to SCOPABLE; look up its resource types")
        elif not SCOPABLE[action]:
            if action not in WILDCARDS or not WILDCARDS[action].strip():
                problems.append(f"{action} takes only '*': it must be in WILDCARDS with a reason")
            elif resources != ["*"]:
                problems.append(f"{action}: its service takes only '*', got {resources}")
        elif action in WILDCARDS:
            problems.append(f"{action} is scopable but listed in WILDCARDS")
        else:
            for resource in resources:
                problem = resource_problem(resource, statement, stack)
                if problem:
                    problems.append(f"{action} on {problem}")
    return problems


def identity_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for _, kind, doc in policies(template) if kind == "identity" for s in doc["Statement"]]


@pytest.mark.parametrize("stack", [STACK, "a", "x" * 21])
def test_the_template_is_cfn_lint_clean_warnings_and_information_included(stack: str) -> None:
    assert lint_problems(stack_template(stack)) == []


def test_the_lint_sees_a_broken_template() -> None:
    template = stack_template(STACK)
    template["Resources"]["Bucket"]["Properties"]["PublicAccess"] = True
    template["Outputs"]["KeyArn"]["Value"] = {"Fn::GetAtt": ["NoSuchResource", "Arn"]}
    problems = lint_problems(template)
    assert any("PublicAccess" in p for p in problems) and any("NoSuchResource" in p for p in problems)


@pytest.mark.parametrize("stack", [STACK, "a"])
def test_no_allow_statement_grants_more_than_the_stack_where_its_service_can_scope(stack: str) -> None:
    template = stack_template(stack)
    statements = identity_statements(template)
    assert len(statements) >= 10
    problems = [p for s in statements for p in statement_problems(s, stack)]
    assert problems == []


def test_every_wildcard_is_used_and_has_a_reason() -> None:
    granted_star = {
        action
        for s in identity_statements(stack_template(STACK))
        if as_list(s["Resource"]) == ["*"]
        for action in as_list(s["Action"])
    }
    assert granted_star == set(WILDCARDS)
    assert all(len(reason) > 20 for reason in WILDCARDS.values())


def test_resource_policies_allow_no_one_and_deny_plain_http() -> None:
    template = stack_template(STACK)
    for logical_id, kind, document in policies(template):
        for statement in document["Statement"]:
            if kind == "resource":
                assert statement["Effect"] == "Deny", logical_id
            if kind == "key":  # in a key policy Resource "*" is the key itself; only the account's IAM
                assert statement["Principal"] == {"AWS": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
            if kind == "trust":
                assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    (tls,) = template["Resources"]["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and tls["Action"] == "s3:*"
    assert [render(r) for r in tls["Resource"]] == ["<Bucket>", "<Bucket>/*"]


@pytest.mark.parametrize(
    ("statement", "complaint"),
    [
        ({"Action": ["lambda:GetFunction"], "Resource": "*"}, "Resource '*'"),
        (
            {"Action": ["lambda:GetFunction"], "Resource": {"Fn::Sub": "arn:aws:lambda:*:*:function:x"}},
            "any region",
        ),
        (
            {"Action": ["lambda:GetFunction"], "Resource": {"Fn::Sub": "arn:aws:lambda:r:1:function:*"}},
            "names no resource",
        ),
        (
            {
                "Action": ["logs:FilterLogEvents"],
                "Resource": {"Fn::Sub": "arn:aws:logs:r:1:log-group:/aws/*"},
            },
            "names no resource",
        ),
        (
            {"Action": ["cloudfront:GetDistribution"], "Resource": "arn:aws:cloudfront::1:distribution/*"},
            "tag",
        ),
        ({"Action": ["s3:*"], "Resource": {"Fn::GetAtt": ["Bucket", "Arn"]}}, "wildcard action"),
        ({"Action": ["ec2:RunInstances"], "Resource": "*"}, "unknown to SCOPABLE"),
        ({"Action": ["lambda:ListFunctions"], "Resource": {"Fn::GetAtt": ["Bucket", "Arn"]}}, "only '*'"),
        (
            {"Action": ["route53:ChangeResourceRecordSets"], "Resource": "arn:aws:route53:::hostedzone/*"},
            "not held by condition",
        ),
    ],
)
def test_the_scope_check_catches_broad_statements(statement: dict[str, Any], complaint: str) -> None:
    problems = statement_problems({"Effect": "Allow", **statement}, STACK)
    assert problems and complaint in problems[0]


def test_the_scoping_table_agrees_with_the_service_reference_cfn_lint_ships() -> None:
    """SCOPABLE is written out by hand; cfn-lint carries the service authorization reference as data."""
    reference = json.loads(
        (Path(cfnlint.data.AdditionalSpecs.__file__).parent / "Policies.json").read_text(encoding="utf-8")
    )
    for action, types in SCOPABLE.items():
        service, name = action.lower().split(":")
        known = reference[service]["Actions"][name].get("Resources", [])
        assert bool(types) == bool(known), action
        assert {t.lower() for t in types} <= {k.lower() for k in known}, action


def test_pass_role_is_the_runtime_role_to_lambda_only() -> None:
    statements = [
        s for s in identity_statements(stack_template(STACK)) if "iam:PassRole" in as_list(s["Action"])
    ]
    assert len(statements) == 1
    (passing,) = statements
    assert as_list(passing["Action"]) == ["iam:PassRole"]
    assert as_list(passing["Resource"]) == [{"Fn::GetAtt": ["RuntimeRole", "Arn"]}]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    others = [a for s in identity_statements(stack_template(STACK)) for a in as_list(s["Action"])]
    assert not [a for a in others if a.startswith("iam:") and a != "iam:PassRole"]


def test_the_runtime_role_reads_blobs_only_and_decrypts_with_the_key() -> None:
    role = stack_template(STACK)["Resources"]["RuntimeRole"]["Properties"]
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    assert statements["Blobs"]["Action"] == ["s3:GetObject"]
    assert [render(r) for r in statements["Blobs"]["Resource"]] == ["<Bucket>/blobs/*"]
    assert statements["SealedSecrets"]["Action"] == ["kms:Decrypt"]
    actions = {a for s in statements.values() for a in s["Action"]}
    assert actions == {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "s3:GetObject",
        "kms:Decrypt",
    }


def test_storage_resources_are_locked_down() -> None:
    resources = stack_template(STACK)["Resources"]
    bucket = resources["Bucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
    }
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    assert resources["Key"]["Properties"]["EnableKeyRotation"] is True
    assert resources["KeyAlias"]["Properties"]["AliasName"] == f"alias/{STACK}"
    table = resources["Table"]["Properties"]
    assert {k: table[k] for k in dynamo_schema.table_spec("x")} == dynamo_schema.table_spec(f"{STACK}-store")


def test_the_control_plane_is_exactly_the_conditional_part() -> None:
    template = stack_template(STACK)
    conditional = {k for k, r in template["Resources"].items() if r.get("Condition") == WITH_CONTROL_PLANE}
    assert conditional == {
        "ControlPlaneLogGroup",
        "ControlPlaneFunction",
        "ControlPlaneUrl",
        "ControlPlaneUrlPermission",
        "ControlPlaneInvokePermission",
        "Schedule",
        "SchedulePermission",
    }
    function = template["Resources"]["ControlPlaneFunction"]["Properties"]
    assert function["Handler"] == "anchor_deploy.runtime.lambda_control.handler"
    assert function["Code"] == {"S3Bucket": {"Ref": "Bucket"}, "S3Key": {"Ref": "ControlPlaneCodeKey"}}
    schedule = template["Resources"]["Schedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    events = template["Resources"]["SchedulePermission"]["Properties"]
    assert events["Principal"] == "events.amazonaws.com"
    assert events["SourceArn"] == {"Fn::GetAtt": ["Schedule", "Arn"]}


def test_the_outputs_are_what_discover_reads() -> None:
    outputs = stack_template(STACK)["Outputs"]
    unconditional = {k for k, v in outputs.items() if "Condition" not in v}
    assert unconditional == set(OUTPUTS)
    assert outputs["ControlPlaneUrl"]["Condition"] == WITH_CONTROL_PLANE


def test_the_body_is_the_same_bytes_every_time() -> None:
    assert template_body(STACK) == template_body(STACK)
    assert template_body(STACK) != template_body("other")


@pytest.mark.parametrize("region", ["us-east-1", "ap-southeast-5", "us-gov-west-1", "eusc-de-east-1"])
def test_bucket_names_fit_for_the_longest_stack_name(region: str) -> None:
    name = StackNames("x" * 21).bucket("123456789012", region)
    assert len(name) <= 63 and name == name.lower() and "123456789012" in name and region in name


def test_one_stacks_function_prefix_never_covers_another_stacks_names() -> None:
    stacks = ["a", "a-p", "a-p-b", "a-pb", "ab", "a-p-p", "a-control", "anchor-deploy", "anchor-deploy-p"]
    for one in stacks:
        prefix = StackNames(one).function_prefix
        for other in stacks:
            if other == one:
                continue
            names = StackNames(other)
            for name in (names.project_function("web"), names.control_plane_function, names.runtime_role):
                assert not name.startswith(prefix), (one, other, name)
    assert not StackNames("a").control_plane_function.startswith(StackNames("a").function_prefix)


@pytest.mark.parametrize("bad", ["", "A", "1abc", "a_b", "abc-", "x" * 22, "a.b"])
def test_bad_stack_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_stack_name(bad)
    with pytest.raises(InvalidInput, match="ANCHOR_AWS_STACK"):
        Settings.from_env({"ANCHOR_AWS_STACK": bad} if bad else {"ANCHOR_AWS_STACK": "_"})


def test_the_stack_setting() -> None:
    assert Settings.from_env({}).aws_stack == "anchor-deploy"
    assert Settings.from_env({"ANCHOR_AWS_STACK": "staging-1"}).aws_stack == "staging-1"


def test_certificate_requests_are_held_to_dns_validation_and_transparency_logging() -> None:
    statements = identity_statements(stack_template(STACK))
    requesting = [s for s in statements if "acm:RequestCertificate" in as_list(s["Action"])]
    assert len(requesting) == 1, "granted once, never also unconditioned"
    (request,) = requesting
    assert as_list(request["Action"]) == ["acm:RequestCertificate"]
    assert request["Condition"] == {
        "StringEquals": {"acm:ValidationMethod": "DNS", "acm:CertificateTransparencyLogging": "ENABLED"}
    }
    (tagging,) = [s for s in statements if "acm:AddTagsToCertificate" in as_list(s["Action"])]
    assert tagging["Condition"] == {"StringEquals": {f"aws:RequestTag/{STACK_TAG}": STACK}}
    acm = {a for s in statements for a in as_list(s["Action"]) if a.startswith("acm:")}
    assert acm == {
        "acm:AddTagsToCertificate",
        "acm:DeleteCertificate",
        "acm:DescribeCertificate",
        "acm:ListCertificates",
        "acm:ListTagsForCertificate",
        "acm:RequestCertificate",
    }
