"""`anchor aws bootstrap`: the platform's stack created, or updated through a CloudFormation change set.

``plan`` says what would change and changes nothing: for a new stack, every resource of the template;
for an existing one, a change set (CloudFormation's own diff, which ``apply`` then executes as shown;
``discard`` deletes it). A stack already like the template gives a plan that is up to date.

A new stack is made with ``create_stack`` rather than a CREATE change set: the resources to add are the
template's anyway, a failed creation is deleted (``OnFailure``), and moto's change sets neither evaluate
conditions nor give a created stack its outputs.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from botocore.parsers import ResponseParserError

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.names import (
    CONTROL_PLANE_CODE_PREFIX,
    USABLE_STATUSES,
    AwsResources,
    StackNames,
    describe_stack,
    discover,
)
from anchor_deploy.adapters.aws.template import (
    CODE_KEY_PARAMETER,
    CODE_KEY_PATTERN,
    WITH_CONTROL_PLANE,
    stack_template,
    template_body,
)
from anchor_deploy.model.errors import InvalidInput, StackFailed

CHANGE_SET_TIMEOUT = 300.0  # seconds CloudFormation may take to compute a change set
STACK_WAIT = {"Delay": 5, "MaxAttempts": 360}  # 30 minutes: a CloudFront-free stack takes a few
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]  # the roles have names (StackNames)
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
# A stack in one of these states can be changed by a new change set.
SETTLED = USABLE_STATUSES | {"UPDATE_ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"}


@dataclass(frozen=True)
class Change:
    action: str  # Add, Modify, Remove (CloudFormation's words)
    logical_id: str
    resource_type: str
    physical_id: str = ""
    replacement: str = ""  # True, False, Conditional (for Modify)


@dataclass
class Plan:
    stack: str
    region: str
    exists: bool
    code_key: str | None = None
    change_set: str | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """Nothing to run: CloudFormation found no difference at all. (A change set with no resource
        changes still runs: it may change outputs or parameters.)"""
        return self.exists and self.change_set is None


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Any AWS or SDK failure as one readable StackFailed line."""
    try:
        yield
    except WaiterError as exc:
        raise StackFailed(f"{doing}: {exc.last_response.get('Error', {}).get('Message') or exc}") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StackFailed(f"{doing}: {error.get('Message') or error.get('Code') or exc}") from exc
    except (
        BotoCoreError,
        ResponseParserError,
    ) as exc:  # an answer that is no AWS answer is no traceback either
        raise StackFailed(f"{doing}: {str(exc).splitlines()[0]}") from exc


def connect() -> AwsClients:
    """Clients from the standard AWS environment (a missing profile is one readable line)."""
    with aws_errors("cannot use the AWS configuration"):
        return AwsClients()


def region_of(clients: Any) -> str:
    try:
        return str(clients.region)
    except RuntimeError as exc:
        raise StackFailed(str(exc)) from exc


class StackDeployer:
    """Creates or updates the stack ``stack`` wherever the standard AWS environment points."""

    def __init__(
        self,
        clients: Any,
        stack: str,
        sleep: Callable[[float], None] = time.sleep,
        stack_wait: dict[str, int] | None = None,
    ) -> None:
        self.names = StackNames(stack)
        self.stack = stack
        self.clients = clients
        self.region = region_of(clients)
        self._sleep = sleep
        self._stack_wait = stack_wait or STACK_WAIT

    @property
    def _cfn(self) -> Any:
        return self.clients.client("cloudformation")

    def plan(self, code_key: str | None = None) -> Plan:
        """What deploying the template would do (``code_key``: the control plane's package; None keeps
        the stack's current one). A new stack: every resource of the template (all to add); an existing
        one: a change set, which ``apply`` executes as it was shown."""
        if code_key is not None and not re.fullmatch(CODE_KEY_PATTERN, code_key):
            raise InvalidInput(
                f"--control-plane-code-key must be a .zip key under {CONTROL_PLANE_CODE_PREFIX} in the "
                f"stack's bucket, got {code_key!r}"
            )
        with aws_errors(f"cannot plan stack {self.stack!r}"):
            found = describe_stack(self._cfn, self.stack)
            if found is not None and found["StackStatus"] not in SETTLED:
                raise StackFailed(
                    f"stack {self.stack!r} is {found['StackStatus']}: wait for it to settle, or run "
                    "`anchor aws destroy`, and run again"
                )
            exists = found is not None and found["StackStatus"] != "REVIEW_IN_PROGRESS"
            plan = Plan(self.stack, self.region, exists, code_key=code_key)
            if not exists and code_key:
                raise InvalidInput(
                    f"stack {self.stack!r} does not exist yet, nor its bucket for the control plane's "
                    "package: run `anchor aws bootstrap` without --control-plane-code-key first, upload the "
                    "package, then run it with the key"
                )
            if not exists:
                plan.changes = list(_template_resources(self.stack, with_control_plane=bool(code_key)))
                return plan
            try:
                answer = self._cfn.create_change_set(
                    StackName=self.stack,
                    ChangeSetName=f"anchor-{int(time.time())}-{secrets.token_hex(3)}",
                    ChangeSetType="UPDATE",
                    TemplateBody=template_body(self.stack),
                    Parameters=[self._code_parameter(code_key, exists)],
                    Capabilities=CAPABILITIES,
                    Description="anchor aws bootstrap",
                )
            except ClientError as exc:
                if any(text in str(exc) for text in NO_CHANGES):
                    return plan
                raise
            plan.change_set = answer["Id"]
            described = self._wait_change_set(answer["Id"])
            if described is None:  # no changes: nothing to run
                self.discard(plan)
            else:
                plan.changes = list(_changes(described))
            return plan

    def apply(self, plan: Plan, say: Callable[[str], None]) -> AwsResources:
        """Carry the plan out and wait for the stack; the stack's resources."""
        with aws_errors(f"stack {self.stack!r} failed"):
            if not plan.exists:
                self._create(plan, say)
            elif plan.change_set is not None:
                self._cfn.execute_change_set(ChangeSetName=plan.change_set, StackName=self.stack)
                say(f"updating stack {self.stack} in {self.region}…")
                self._wait("stack_update_complete", self.stack)
            return discover(self.clients, self.stack)

    def discard(self, plan: Plan) -> None:
        """Delete the plan's change set, if it made one."""
        if plan.change_set is None:
            return
        with aws_errors(f"cannot delete the change set of {self.stack!r}"):
            self._cfn.delete_change_set(ChangeSetName=plan.change_set, StackName=self.stack)
        plan.change_set = None

    def _create(self, plan: Plan, say: Callable[[str], None]) -> None:
        leftover = describe_stack(self._cfn, self.stack)
        if leftover is not None and leftover["StackStatus"] == "REVIEW_IN_PROGRESS":
            # An empty stack an interrupted change set left: it holds no resources.
            self._cfn.delete_stack(StackName=self.stack)
            self._wait("stack_delete_complete", leftover["StackId"])
        answer = self._cfn.create_stack(
            StackName=self.stack,
            TemplateBody=template_body(self.stack),
            Parameters=[self._code_parameter(plan.code_key, exists=False)],
            Capabilities=CAPABILITIES,
            OnFailure="DELETE",  # a failed first bootstrap leaves nothing behind; the reason is reported
        )
        say(f"creating stack {self.stack} in {self.region}…")
        self._wait("stack_create_complete", answer["StackId"])

    def _wait(self, waiter: str, stack: str) -> None:
        try:
            self._cfn.get_waiter(waiter).wait(StackName=stack, WaiterConfig=self._stack_wait)
        except WaiterError as exc:
            raise StackFailed(
                f"stack {self.stack!r} failed: {first_failure(self._cfn, stack, self.stack) or exc}"
            ) from exc

    def _code_parameter(self, code_key: str | None, exists: bool) -> dict[str, Any]:
        if code_key is None and exists:
            return {"ParameterKey": CODE_KEY_PARAMETER, "UsePreviousValue": True}
        return {"ParameterKey": CODE_KEY_PARAMETER, "ParameterValue": code_key or ""}

    def _wait_change_set(self, change_set: str) -> dict[str, Any] | None:
        """The change set once computed; None when CloudFormation found nothing to change."""
        deadline = time.monotonic() + CHANGE_SET_TIMEOUT
        delay = 0.2
        while True:
            described: dict[str, Any] = self._cfn.describe_change_set(
                ChangeSetName=change_set, StackName=self.stack
            )
            status = described["Status"]
            if status == "CREATE_COMPLETE":
                return described
            if status == "FAILED":
                reason = described.get("StatusReason") or ""
                if any(text in reason for text in NO_CHANGES):
                    return None
                raise StackFailed(f"cannot plan stack {self.stack!r}: {reason or 'the change set failed'}")
            if time.monotonic() > deadline:
                raise StackFailed(
                    f"cannot plan stack {self.stack!r}: no change set after {CHANGE_SET_TIMEOUT:g} s"
                )
            self._sleep(delay)
            delay = min(delay * 2, 5.0)


def first_failure(cloudformation: Any, stack: str, name: str) -> str:
    """The first resource that failed in the stack's latest operation, in CloudFormation's words
    (``stack``: its name or id; ``name``: its name, whose own events only repeat the cause)."""
    try:
        events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
    except (ClientError, BotoCoreError, ResponseParserError):
        return ""
    failed = [
        e
        for e in events
        if e.get("ResourceStatus", "").endswith("_FAILED")
        and e.get("ResourceStatusReason")
        and e.get("LogicalResourceId") != name
    ]
    if not failed:
        return ""
    first = failed[-1]  # events come newest first
    return f"{first['LogicalResourceId']} ({first.get('ResourceType', '')}): {first['ResourceStatusReason']}"


def _template_resources(stack: str, with_control_plane: bool) -> Iterator[Change]:
    for logical_id, resource in sorted(stack_template(stack)["Resources"].items()):
        if resource.get("Condition") == WITH_CONTROL_PLANE and not with_control_plane:
            continue
        yield Change("Add", logical_id, resource["Type"])


def _changes(described: dict[str, Any]) -> Iterator[Change]:
    for change in described.get("Changes") or []:
        resource = change.get("ResourceChange") or {}
        yield Change(
            action=str(resource.get("Action", "")),
            logical_id=str(resource.get("LogicalResourceId", "")),
            resource_type=str(resource.get("ResourceType", "")),
            physical_id=str(resource.get("PhysicalResourceId") or ""),
            replacement=str(resource.get("Replacement") or ""),
        )
