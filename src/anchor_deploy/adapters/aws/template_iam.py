"""The IAM roles of the platform's stack, least privilege, as CloudFormation resources.

* The control-plane role (the API and its background loops, as a Lambda function or anywhere else that
  assumes it): the table and its indexes, the bucket and its objects, the key, the project functions
  (``function:<prefix>*`` and their versions and aliases), passing the runtime role to Lambda only, the
  logs of its own function and of project functions, its own stack's outputs, and CloudFront and ACM;
  and the record sets of Route 53 hosted zones an admin linked (``anchor dns link --route53``): the zones
  are the account's own and unknown ahead, so any hosted zone of the account, held by condition keys to the
  record types and actions the platform writes.
* The runtime role of project functions: their own logs, ``s3:GetObject`` on ``blobs/*`` only (static
  deployments read their bytes), ``kms:Decrypt`` on the key (sealed secrets).

Every action names its resources, except those in ``WILDCARDS``: actions whose service authorization
reference lists no resource type, so IAM only accepts ``"*"`` for them (each with the reason it is needed).
Resources whose names AWS assigns (CloudFront distribution ids, ACM certificate ids) cannot be named ahead:
their statements name the resource type in this account and are limited by the stack's tag (``STACK_TAG``)
with a condition. A caveat IAM cannot express better: tagging a distribution needs ``cloudfront:TagResource``
on ``distribution/*`` (CreateDistributionWithTags needs it for the new one), limited to requests that set the
stack's tag, which would also let the role tag an untagged distribution of the account as its own.
"""

from __future__ import annotations

from typing import Any

from anchor_deploy.adapters.aws.names import BLOBS_PREFIX, STACK_TAG, StackNames

# action -> why it is granted on Resource "*" (its service lets no resource be named for it).
WILDCARDS: dict[str, str] = {
    "cloudfront:CreateDistribution": "a project's CDN is made with it; the new distribution's id is not "
    "known before, and the action takes no resource type",
    "cloudfront:ListDistributions": "finding a project's distribution again after a crash; a list action "
    "with no resource type",
    "cloudfront:CreateCachePolicy": "the one cache policy every project's distribution shares (made on "
    "first use); its id is not known before, and the action takes no resource type",
    "cloudfront:ListCachePolicies": "finding that shared cache policy again; a list action with no resource "
    "type",
    "lambda:ListFunctions": "the reconciler finds project functions that the database no longer knows; a "
    "list action with no resource type",
    "acm:RequestCertificate": "a custom domain's certificate for CloudFront; the certificate's id is not "
    "known before, and the action takes no resource type",
    "acm:ListCertificates": "finding a domain's certificate again after a crash; a list action with no "
    "resource type",
}

_DYNAMODB = [
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
]
_S3_OBJECTS = [
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:PutObject",
]
_S3_BUCKET = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
_KMS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
_LAMBDA = [
    "lambda:AddPermission",
    "lambda:CreateAlias",
    "lambda:CreateFunction",
    "lambda:CreateFunctionUrlConfig",
    "lambda:DeleteAlias",
    "lambda:DeleteFunction",
    "lambda:DeleteFunctionUrlConfig",
    "lambda:GetAlias",
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:GetFunctionUrlConfig",
    "lambda:GetPolicy",
    "lambda:InvokeFunction",
    "lambda:ListAliases",
    "lambda:ListTags",
    "lambda:ListVersionsByFunction",
    "lambda:PublishVersion",
    "lambda:RemovePermission",
    "lambda:TagResource",
    "lambda:UpdateAlias",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:UpdateFunctionUrlConfig",
]
_PROJECT_LOGS = [
    "logs:DeleteLogGroup",
    "logs:DescribeLogStreams",
    "logs:FilterLogEvents",
    "logs:PutRetentionPolicy",
]
_OWN_LOGS = ["logs:CreateLogStream", "logs:PutLogEvents"]
_DISTRIBUTIONS = [
    "cloudfront:CreateInvalidation",
    "cloudfront:DeleteDistribution",
    "cloudfront:GetDistribution",
    "cloudfront:GetDistributionConfig",
    "cloudfront:GetInvalidation",
    "cloudfront:ListTagsForResource",
    "cloudfront:UpdateDistribution",
]
_CERTIFICATES = ["acm:DeleteCertificate", "acm:DescribeCertificate", "acm:ListTagsForCertificate"]
_TAG_AT_CREATION = ["acm:AddTagsToCertificate", "cloudfront:TagResource"]
# RequestCertificate takes no resource; ACM's own condition keys hold it to what the platform asks for (a
# request carrying the stack's tag is also authorized as AddTagsToCertificate, limited by that tag).
_CERTIFICATE_REQUESTS = {"acm:ValidationMethod": "DNS", "acm:CertificateTransparencyLogging": "ENABLED"}
_CONDITIONED_WILDCARDS = {"acm:RequestCertificate"}  # granted on "*" in a statement of their own
_HOSTED_ZONES = {"Fn::Sub": "arn:${AWS::Partition}:route53:::hostedzone/*"}
_LINKED_ZONE_WRITES = {
    "ForAllValues:StringEquals": {
        "route53:ChangeResourceRecordSetsRecordTypes": ["A", "AAAA", "CNAME", "TXT"],
        "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
    }
}


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _arn(service: str, resource: str, region: str = "${AWS::Region}") -> dict[str, str]:
    return _sub(f"arn:${{AWS::Partition}}:{service}:{region}:${{AWS::AccountId}}:{resource}")


def _allow(sid: str, actions: list[str], resources: list[Any], **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _lambda_trust() -> dict[str, Any]:
    return _document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
    )


def _role(name: str, description: str, policy_name: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": name,
            "Description": description,
            "AssumeRolePolicyDocument": _lambda_trust(),
            "Policies": [{"PolicyName": policy_name, "PolicyDocument": _document(statements)}],
        },
    }


def _log_group(name: str) -> str:
    return f"log-group:/aws/lambda/{name}"


def control_plane_statements(names: StackNames) -> list[dict[str, Any]]:
    prefix = names.function_prefix
    tagged = {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": names.stack}}
    tagging = {"StringEquals": {f"aws:RequestTag/{STACK_TAG}": names.stack}}
    return [
        _allow("Table", _DYNAMODB, [{"Fn::GetAtt": ["Table", "Arn"]}, _sub("${Table.Arn}/index/*")]),
        _allow("BucketObjects", _S3_OBJECTS, [_sub("${Bucket.Arn}/*")]),
        _allow("Bucket", _S3_BUCKET, [{"Fn::GetAtt": ["Bucket", "Arn"]}]),
        _allow("Key", _KMS, [{"Fn::GetAtt": ["Key", "Arn"]}]),
        _allow(
            "ProjectFunctions",
            _LAMBDA,
            [_arn("lambda", f"function:{prefix}*"), _arn("lambda", f"function:{prefix}*:*")],
        ),
        _allow(
            "PassRuntimeRole",
            ["iam:PassRole"],
            [{"Fn::GetAtt": ["RuntimeRole", "Arn"]}],
            StringEquals={"iam:PassedToService": "lambda.amazonaws.com"},
        ),
        _allow(
            "ProjectLogs",
            _PROJECT_LOGS,
            [_arn("logs", _log_group(f"{prefix}*")), _arn("logs", _log_group(f"{prefix}*") + ":*")],
        ),
        _allow("OwnLogs", _OWN_LOGS, [_arn("logs", _log_group(names.control_plane_function) + ":*")]),
        _allow("OwnStack", ["cloudformation:DescribeStacks"], [{"Ref": "AWS::StackId"}]),
        _allow("Unscopable", sorted(set(WILDCARDS) - _CONDITIONED_WILDCARDS), ["*"]),
        _allow("RequestCertificates", ["acm:RequestCertificate"], ["*"], StringEquals=_CERTIFICATE_REQUESTS),
        _allow("Distributions", _DISTRIBUTIONS, [_arn("cloudfront", "distribution/*", region="")], **tagged),
        # ACM certificates for CloudFront live in us-east-1 whatever the stack's region.
        _allow("Certificates", _CERTIFICATES, [_arn("acm", "certificate/*", region="us-east-1")], **tagged),
        _allow(
            "TagAtCreation",
            _TAG_AT_CREATION,
            [
                _arn("cloudfront", "distribution/*", region=""),
                _arn("acm", "certificate/*", region="us-east-1"),
            ],
            **tagging,
        ),
        _allow("LinkedZoneReads", ["route53:ListResourceRecordSets"], [_HOSTED_ZONES]),
        _allow(
            "LinkedZoneWrites", ["route53:ChangeResourceRecordSets"], [_HOSTED_ZONES], **_LINKED_ZONE_WRITES
        ),
    ]


def runtime_statements(names: StackNames) -> list[dict[str, Any]]:
    groups = _log_group(f"{names.function_prefix}*")
    return [
        _allow("Logs", ["logs:CreateLogGroup"], [_arn("logs", groups)]),
        _allow("LogStreams", ["logs:CreateLogStream", "logs:PutLogEvents"], [_arn("logs", groups + ":*")]),
        _allow("Blobs", ["s3:GetObject"], [_sub(f"${{Bucket.Arn}}/{BLOBS_PREFIX}*")]),
        _allow("SealedSecrets", ["kms:Decrypt"], [{"Fn::GetAtt": ["Key", "Arn"]}]),
    ]


def roles(names: StackNames) -> dict[str, Any]:
    return {
        "ControlPlaneRole": _role(
            names.control_plane_role,
            f"anchor-deploy control plane of stack {names.stack}",
            "control-plane",
            control_plane_statements(names),
        ),
        "RuntimeRole": _role(
            names.runtime_role,
            f"anchor-deploy project functions of stack {names.stack}",
            "runtime",
            runtime_statements(names),
        ),
    }
