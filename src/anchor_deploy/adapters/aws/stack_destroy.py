"""`anchor aws destroy`: everything of one stack deleted, inside the stack and out.

Outside the stack the control plane made project functions (named with the stack's function prefix),
their log groups, CloudFront distributions and ACM certificates (tagged with ``STACK_TAG``): distributions
and functions go first. The bucket is emptied next (CloudFormation cannot delete a bucket that holds
objects), then the stack is deleted, which deletes the table, the bucket, the roles, and schedules the key's
deletion (its pending window); the certificates go last, when no distribution uses them any more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from anchor_deploy.adapters.aws.client_errors import is_error
from anchor_deploy.adapters.aws.names import STACK_TAG, StackNames, describe_stack
from anchor_deploy.adapters.aws.stack_deploy import STACK_WAIT, aws_errors, first_failure, region_of
from anchor_deploy.model.errors import StackFailed

DISTRIBUTION_WAIT_SECONDS = 3600  # a disabled distribution deploys in minutes
DELETE_BATCH = 1000  # keys per DeleteObjects call
CERTIFICATE_REGION = "us-east-1"  # CloudFront's certificates live in ACM there, whatever the stack's region


@dataclass(frozen=True)
class Resource:
    resource_type: str
    name: str
    where: str  # "stack" or "outside the stack"


@dataclass
class DestroyPlan:
    stack: str
    region: str
    stack_status: str | None  # None: no stack
    bucket: str | None
    resources: list[Resource] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    log_groups: list[str] = field(default_factory=list)
    distributions: list[str] = field(default_factory=list)  # ids
    certificates: list[str] = field(default_factory=list)  # ARNs (ACM in us-east-1, for CloudFront)

    @property
    def empty(self) -> bool:
        outside = self.functions or self.log_groups or self.distributions or self.certificates
        return self.stack_status is None and not outside


class StackDestroyer:
    def __init__(self, clients: Any, stack: str, poll: float = 30.0) -> None:
        """``poll``: seconds between looks at a disabled distribution (ANCHOR_AWS_CDN_POLL)."""
        self.poll = poll
        self.names = StackNames(stack)
        self.stack = stack
        self.clients = clients
        self.region = region_of(clients)

    def plan(self) -> DestroyPlan:
        """What would be deleted; nothing changes."""
        with aws_errors(f"cannot read stack {self.stack!r}"):
            found = describe_stack(self.clients.client("cloudformation"), self.stack)
            plan = DestroyPlan(self.stack, self.region, found["StackStatus"] if found else None, None)
            if found is not None:
                for resource in self._stack_resources():
                    if not resource.get("ResourceType"):
                        continue  # moto lists the resources it does not model as empty rows
                    plan.resources.append(
                        Resource(resource["ResourceType"], resource.get("PhysicalResourceId") or "", "stack")
                    )
                    if resource["ResourceType"] == "AWS::S3::Bucket" and resource.get("PhysicalResourceId"):
                        plan.bucket = resource["PhysicalResourceId"]
            plan.functions = sorted(self._project_functions())
            plan.log_groups = sorted(self._project_log_groups())
            plan.distributions = sorted(self._tagged_distributions())
            plan.certificates = sorted(self._tagged_certificates())
        for name in plan.functions:
            plan.resources.append(Resource("AWS::Lambda::Function", name, "outside the stack"))
        for name in plan.log_groups:
            plan.resources.append(Resource("AWS::Logs::LogGroup", name, "outside the stack"))
        for ident in plan.distributions:
            plan.resources.append(Resource("AWS::CloudFront::Distribution", ident, "outside the stack"))
        for arn in plan.certificates:
            plan.resources.append(Resource("AWS::CertificateManager::Certificate", arn, "outside the stack"))
        return plan

    def destroy(self, plan: DestroyPlan, say: Callable[[str], None]) -> None:
        with aws_errors(f"cannot destroy stack {self.stack!r}"):
            for ident in plan.distributions:
                say(f"deleting CloudFront distribution {ident} (disabled first; this takes minutes)…")
                self._delete_distribution(ident)
            lam = self.clients.client("lambda")
            for name in plan.functions:
                say(f"deleting function {name}…")
                _ignore_missing(lam.delete_function, FunctionName=name)
            logs = self.clients.client("logs")
            for group in plan.log_groups:
                _ignore_missing(logs.delete_log_group, logGroupName=group)
            if plan.bucket:
                say(f"emptying bucket {plan.bucket}…")
                self._empty_bucket(plan.bucket)
            if plan.stack_status is not None:
                say(f"deleting stack {self.stack} in {self.region}…")
                cfn = self.clients.client("cloudformation")
                stack_id = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]["StackId"]
                cfn.delete_stack(StackName=self.stack)
                try:
                    cfn.get_waiter("stack_delete_complete").wait(StackName=stack_id, WaiterConfig=STACK_WAIT)
                except WaiterError as exc:
                    why = first_failure(cfn, stack_id, self.stack) or exc
                    raise StackFailed(f"cannot delete stack {self.stack!r}: {why}") from exc
            for arn in plan.certificates:
                say(f"deleting certificate {arn}…")
                _ignore_missing(self._acm.delete_certificate, CertificateArn=arn)

    def _stack_resources(self) -> Iterator[dict[str, Any]]:
        paginator = self.clients.client("cloudformation").get_paginator("list_stack_resources")
        for page in paginator.paginate(StackName=self.stack):
            yield from page["StackResourceSummaries"]

    def _project_functions(self) -> Iterator[str]:
        prefix = self.names.function_prefix
        for page in self.clients.client("lambda").get_paginator("list_functions").paginate():
            for function in page["Functions"]:
                if function["FunctionName"].startswith(prefix):
                    yield function["FunctionName"]

    def _project_log_groups(self) -> Iterator[str]:
        prefix = f"/aws/lambda/{self.names.function_prefix}"
        for page in (
            self.clients.client("logs")
            .get_paginator("describe_log_groups")
            .paginate(logGroupNamePrefix=prefix)
        ):
            for group in page["logGroups"]:
                yield group["logGroupName"]

    def _tagged_distributions(self) -> Iterator[str]:
        cloudfront = self.clients.client("cloudfront")
        for page in cloudfront.get_paginator("list_distributions").paginate():
            for summary in (page.get("DistributionList") or {}).get("Items") or []:
                tags = cloudfront.list_tags_for_resource(Resource=summary["ARN"])["Tags"].get("Items") or []
                if any(t["Key"] == STACK_TAG and t.get("Value") == self.stack for t in tags):
                    yield summary["Id"]

    @property
    def _acm(self) -> Any:
        return self.clients.regional("acm", CERTIFICATE_REGION)

    def _tagged_certificates(self) -> Iterator[str]:
        for page in self._acm.get_paginator("list_certificates").paginate():
            for summary in page["CertificateSummaryList"]:
                arn = summary["CertificateArn"]
                tags = self._acm.list_tags_for_certificate(CertificateArn=arn).get("Tags") or []
                if any(t["Key"] == STACK_TAG and t.get("Value") == self.stack for t in tags):
                    yield arn

    def _delete_distribution(self, ident: str) -> None:
        cloudfront = self.clients.client("cloudfront")
        answer = cloudfront.get_distribution_config(Id=ident)
        config, etag = answer["DistributionConfig"], answer["ETag"]
        if config.get("Enabled"):
            config["Enabled"] = False
            etag = cloudfront.update_distribution(Id=ident, IfMatch=etag, DistributionConfig=config)["ETag"]
        waited = {"Delay": self.poll, "MaxAttempts": max(1, int(DISTRIBUTION_WAIT_SECONDS / self.poll))}
        cloudfront.get_waiter("distribution_deployed").wait(Id=ident, WaiterConfig=waited)
        cloudfront.delete_distribution(Id=ident, IfMatch=etag)

    def _empty_bucket(self, bucket: str) -> None:
        s3 = self.clients.client("s3")
        try:
            for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
                for upload in page.get("Uploads") or []:
                    s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            batch: list[dict[str, str]] = []
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for entry in [*(page.get("Versions") or []), *(page.get("DeleteMarkers") or [])]:
                    batch.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
                    if len(batch) == DELETE_BATCH:
                        _delete_objects(s3, bucket, batch)
                        batch = []
            if batch:
                _delete_objects(s3, bucket, batch)
        except ClientError as exc:
            if not is_error(exc, "NoSuchBucket"):
                raise


def _delete_objects(s3: Any, bucket: str, batch: list[dict[str, str]]) -> None:
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    errors = answer.get("Errors") or []
    if errors:
        first = errors[0]
        raise StackFailed(
            f"cannot empty bucket {bucket}: {len(errors)} objects not deleted, e.g. {first.get('Key')}: "
            f"{first.get('Message') or first.get('Code')}"
        )


def _ignore_missing(call: Callable[..., Any], **arguments: Any) -> None:
    try:
        call(**arguments)
    except ClientError as exc:
        if not is_error(exc, "ResourceNotFoundException"):
            raise
