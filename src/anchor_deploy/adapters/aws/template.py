"""The CloudFormation template of the platform's own AWS infrastructure, generated in Python.

A plain template (a dict dumped to JSON) rather than the AWS CDK: the CDK needs Node.js and its CLI to
synthesize the same JSON, and the issue allows a plain template. `anchor aws bootstrap` deploys it.

Resources: the DynamoDB table (``dynamo_schema.table_spec``), the S3 bucket of blobs (public access
blocked, SSE-KMS with the stack's key, bucket-owner-enforced ownership, incomplete multipart uploads
aborted after a day, TLS-only bucket policy), the KMS key (rotated, with an alias), the two IAM roles
(template_iam.py), and, under the condition ``WithControlPlaneFunction``, the control plane as a Lambda
function with a public function URL (the API authenticates requests with its own tokens), its log group,
and an EventBridge rule invoking it every minute for the background loops (the event is EventBridge's
standard scheduled event, ``source`` ``aws.events``).

``WithControlPlaneFunction`` holds when the parameter ``ControlPlaneCodeKey`` names the control plane's
Lambda package in the stack's bucket. It is empty on a first bootstrap (the bucket the package goes into
does not exist yet) and on emulators that cannot create Lambda function URLs (moto): the template is the
same, only the parameter differs.
"""

from __future__ import annotations

import json
from typing import Any

from anchor_deploy.adapters.aws import dynamo_schema
from anchor_deploy.adapters.aws.names import CONTROL_PLANE_CODE_PREFIX, StackNames
from anchor_deploy.adapters.aws.template_iam import roles

CODE_KEY_PARAMETER = "ControlPlaneCodeKey"
WITH_CONTROL_PLANE = "WithControlPlaneFunction"
CONTROL_PLANE_HANDLER = "anchor_deploy.runtime.lambda_control.handler"
CONTROL_PLANE_RUNTIME = "python3.11"
SCHEDULE = "rate(1 minute)"
LOG_RETENTION_DAYS = 30
CODE_KEY_PATTERN = f"^{CONTROL_PLANE_CODE_PREFIX}[A-Za-z0-9._/-]+[.]zip$"


KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AccountIamPolicies",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ],
}


def stack_template(stack: str) -> dict[str, Any]:
    names = StackNames(stack)
    resources = {
        **_storage(names),
        **roles(names),
        **{key: {**value, "Condition": WITH_CONTROL_PLANE} for key, value in _control_plane(names).items()},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"anchor-deploy: the AWS provider's own resources (stack {stack})",
        "Parameters": {
            CODE_KEY_PARAMETER: {
                "Type": "String",
                "Default": "",
                "AllowedPattern": f"^$|{CODE_KEY_PATTERN}",
                "Description": "The control plane's Lambda package (zip) in the stack's bucket; empty: no "
                "control-plane function, URL or schedule",
            }
        },
        "Conditions": {WITH_CONTROL_PLANE: {"Fn::Not": [{"Fn::Equals": [{"Ref": CODE_KEY_PARAMETER}, ""]}]}},
        "Resources": resources,
        "Outputs": _outputs(names),
    }


def template_body(stack: str) -> str:
    """The template as CloudFormation reads it; the same stack gives the same bytes (a re-run is a no-op)."""
    return json.dumps(stack_template(stack), indent=1, sort_keys=True)


def _storage(names: StackNames) -> dict[str, Any]:
    key_arn = {"Fn::GetAtt": ["Key", "Arn"]}
    bucket_arn = {"Fn::GetAtt": ["Bucket", "Arn"]}
    return {
        "Key": {
            "Type": "AWS::KMS::Key",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "Description": f"anchor-deploy stack {names.stack}: blobs and sealed secrets",
                "EnableKeyRotation": True,
                "PendingWindowInDays": 7,
                # The account's IAM policies decide who uses the key (the roles below), as with AWS's
                # default key policy; in a key policy, Resource "*" is this key. As JSON text (CloudFormation
                # takes an object or text): moto's DescribeKey reads a key's policy as text.
                "KeyPolicy": {"Fn::Sub": json.dumps(KEY_POLICY, sort_keys=True)},
            },
        },
        "KeyAlias": {
            "Type": "AWS::KMS::Alias",
            "Properties": {"AliasName": names.key_alias, "TargetKeyId": {"Ref": "Key"}},
        },
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                **dynamo_schema.table_spec(names.table),
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
        },
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "BucketName": {"Fn::Sub": names.bucket_template},
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": key_arn,
                            },
                            "BucketKeyEnabled": True,
                        }
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "abort-incomplete-uploads",
                            "Status": "Enabled",
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                        }
                    ]
                },
            },
        },
        "BucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "TlsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket_arn, {"Fn::Sub": "${Bucket.Arn}/*"}],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                },
            },
        },
    }


def _control_plane(names: StackNames) -> dict[str, Any]:
    function_arn = {"Fn::GetAtt": ["ControlPlaneFunction", "Arn"]}
    return {
        "ControlPlaneLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "LogGroupName": f"/aws/lambda/{names.control_plane_function}",
                "RetentionInDays": LOG_RETENTION_DAYS,
            },
        },
        "ControlPlaneFunction": {
            "Type": "AWS::Lambda::Function",
            "DependsOn": ["ControlPlaneLogGroup"],
            "Properties": {
                "FunctionName": names.control_plane_function,
                "Description": f"anchor-deploy API and background loops (stack {names.stack})",
                "Runtime": CONTROL_PLANE_RUNTIME,
                "Handler": CONTROL_PLANE_HANDLER,
                "Code": {"S3Bucket": {"Ref": "Bucket"}, "S3Key": {"Ref": CODE_KEY_PARAMETER}},
                "Role": {"Fn::GetAtt": ["ControlPlaneRole", "Arn"]},
                "MemorySize": 1024,
                "Timeout": 300,
                "Environment": {"Variables": {"ANCHOR_PROVIDER": "aws", "ANCHOR_AWS_STACK": names.stack}},
            },
        },
        "ControlPlaneUrl": {
            "Type": "AWS::Lambda::Url",
            "Properties": {"AuthType": "NONE", "TargetFunctionArn": function_arn},
        },
        # A public function URL needs both: invoking through the URL, and the function through the URL.
        "ControlPlaneUrlPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunctionUrl",
                "FunctionName": {"Ref": "ControlPlaneFunction"},
                "FunctionUrlAuthType": "NONE",
                "Principal": "*",
            },
        },
        "ControlPlaneInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "ControlPlaneFunction"},
                "InvokedViaFunctionUrl": True,
                "Principal": "*",
            },
        },
        "Schedule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": names.schedule_rule,
                "Description": "anchor-deploy background loops (build queue, reconciler, domain checks)",
                "ScheduleExpression": SCHEDULE,
                "State": "ENABLED",
                "Targets": [{"Arn": function_arn, "Id": "control-plane"}],
            },
        },
        "SchedulePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Ref": "ControlPlaneFunction"},
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": ["Schedule", "Arn"]},
            },
        },
    }


def _outputs(names: StackNames) -> dict[str, Any]:
    values: dict[str, Any] = {
        "TableName": {"Ref": "Table"},
        "BucketName": {"Ref": "Bucket"},
        "KeyId": {"Ref": "Key"},
        "KeyArn": {"Fn::GetAtt": ["Key", "Arn"]},
        "RuntimeRoleArn": {"Fn::GetAtt": ["RuntimeRole", "Arn"]},
        "ControlPlaneRoleArn": {"Fn::GetAtt": ["ControlPlaneRole", "Arn"]},
        "FunctionPrefix": names.function_prefix,
        "Region": {"Ref": "AWS::Region"},
        "Account": {"Ref": "AWS::AccountId"},
    }
    outputs: dict[str, Any] = {key: {"Value": value} for key, value in values.items()}
    outputs["ControlPlaneUrl"] = {
        "Condition": WITH_CONTROL_PLANE,
        "Value": {"Fn::GetAtt": ["ControlPlaneUrl", "FunctionUrl"]},
    }
    return outputs
