"""The names of the platform's own AWS resources, every one derived from one stack name (ANCHOR_AWS_STACK),
and ``discover``: what a bootstrapped stack holds, read from its CloudFormation outputs.

Project functions are named ``<stack>-p_<project>``. Stack names never contain ``_``, so one stack's
function prefix is never a prefix of another stack's names: the control plane's Lambda permissions
(``function:<prefix>*``) and ``anchor aws destroy`` (every function with the prefix) stay within one stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.model.errors import StackFailed, StackMissing
from anchor_deploy.settings import parse_stack_name

# The tag every resource made outside the stack carries (CloudFront distributions, ACM certificates):
# its value is the stack name. The control plane's rights on those resources are scoped by it, and
# `anchor aws destroy` finds them by it.
STACK_TAG = "anchor-deploy:stack"
BLOBS_PREFIX = "blobs/"  # the bucket's blob keys; the only keys project functions may read
CONTROL_PLANE_CODE_PREFIX = "control-plane/"  # where the control plane's Lambda package is uploaded
BUCKET_NAME_MAX = 63
# Stacks whose status means the resources exist and the outputs are final.
USABLE_STATUSES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"})


@dataclass(frozen=True)
class StackNames:
    stack: str

    def __post_init__(self) -> None:
        parse_stack_name(self.stack)

    @property
    def table(self) -> str:
        return f"{self.stack}-store"

    def bucket(self, account: str, region: str) -> str:
        """Bucket names are global: the account and region make this one unique."""
        name = self.bucket_template.replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)
        name = name.lower()
        if len(name) > BUCKET_NAME_MAX:
            raise StackFailed(f"bucket name {name!r} is longer than {BUCKET_NAME_MAX} characters")
        return name

    @property
    def bucket_template(self) -> str:
        """The bucket name as a CloudFormation ``Fn::Sub`` string (account and region filled in at deploy)."""
        return f"{self.stack}-blobs-${{AWS::AccountId}}-${{AWS::Region}}"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.stack}"

    @property
    def function_prefix(self) -> str:
        return f"{self.stack}-p_"

    def project_function(self, project: str) -> str:
        return self.function_prefix + project

    @property
    def control_plane_function(self) -> str:
        return f"{self.stack}-control"

    @property
    def control_plane_role(self) -> str:
        return f"{self.stack}-control-plane"

    @property
    def runtime_role(self) -> str:
        return f"{self.stack}-runtime"

    @property
    def schedule_rule(self) -> str:
        return f"{self.stack}-tick"


# Output key -> AwsResources field. Every key is an output of the template (template.py).
OUTPUTS = {
    "TableName": "table",
    "BucketName": "bucket",
    "KeyId": "key_id",
    "KeyArn": "key_arn",
    "RuntimeRoleArn": "runtime_role_arn",
    "ControlPlaneRoleArn": "control_plane_role_arn",
    "FunctionPrefix": "function_prefix",
    "Region": "region",
    "Account": "account",
}
CONTROL_PLANE_URL_OUTPUT = "ControlPlaneUrl"  # only when the stack has the control-plane function


@dataclass(frozen=True)
class AwsResources:
    """What the AWS provider works with, as the stack made it."""

    stack: str
    table: str
    bucket: str
    key_id: str
    key_arn: str
    runtime_role_arn: str
    control_plane_role_arn: str
    function_prefix: str
    region: str
    account: str
    control_plane_url: str | None = None


def describe_stack(cloudformation: Any, stack: str) -> dict[str, Any] | None:
    """The stack's description, or None when there is no such stack (a deleted one is none either)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    live = [s for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]
    return live[0] if live else None


def discover(clients: Any, stack: str) -> AwsResources:
    """The resources of ``stack`` from its outputs. ``clients`` is an ``AwsClients``."""
    try:
        found = describe_stack(clients.client("cloudformation"), stack)
    except ClientError as exc:
        raise StackFailed(f"cannot read AWS stack {stack!r}: {_aws_message(exc)}") from exc
    except BotoCoreError as exc:  # no credentials, no endpoint
        raise StackFailed(f"cannot read AWS stack {stack!r}: {exc}") from exc
    region = clients.region
    if found is None:
        raise StackMissing(f"no AWS stack {stack!r} in {region}: run `anchor aws bootstrap`")
    status = found["StackStatus"]
    if status not in USABLE_STATUSES:
        raise StackMissing(
            f"AWS stack {stack!r} in {region} is {status}: run `anchor aws bootstrap` when it has settled"
        )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs") or []}
    missing = sorted(key for key in OUTPUTS if key not in outputs)
    if missing:
        raise StackMissing(
            f"AWS stack {stack!r} lacks the outputs {', '.join(missing)}: run `anchor aws bootstrap`"
        )
    fields = {attr: outputs[key] for key, attr in OUTPUTS.items()}
    return AwsResources(stack=stack, control_plane_url=outputs.get(CONTROL_PLANE_URL_OUTPUT), **fields)


def _aws_message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Message") or error.get("Code") or exc)
