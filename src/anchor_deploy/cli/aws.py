"""`anchor aws bootstrap` and `anchor aws destroy`: the AWS provider's own infrastructure, one
CloudFormation stack, in whatever account and region the standard AWS environment points at.

Unlike the other commands these do not talk to the API: they are how the platform's AWS home is made and
removed, so they reach AWS directly (the AWS adapters are imported when a command runs).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import click
from rich.table import Table

from anchor_deploy.cli.client import ClientError
from anchor_deploy.cli.common import (
    confirm_or_fail,
    emit,
    err,
    fails_cleanly,
    has_terminal,
    json_option,
    out,
)
from anchor_deploy.settings import Settings, parse_stack_name

NO_TERMINAL = "no terminal to confirm on: pass --yes to go ahead without asking; nothing was changed"

stack_option = click.option("--stack", help="The stack's name [ANCHOR_AWS_STACK, anchor-deploy].")
yes_option = click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")


@click.group()
def aws() -> None:
    """The AWS provider's own resources (table, bucket, key, roles, control plane): one stack."""


@aws.command()
@stack_option
@click.option(
    "--control-plane-code-key",
    "code_key",
    help="The control plane's Lambda package (zip) in the stack's bucket, under control-plane/; adds "
    "the control-plane function, its URL and its schedule. Default: the stack's current one (none at first).",
)
@yes_option
@json_option
@fails_cleanly
def bootstrap(stack: str | None, code_key: str | None, yes: bool, as_json: bool) -> None:
    """Create or update the stack: shows every resource it would create or change, then asks."""
    from anchor_deploy.adapters.aws.stack_deploy import StackDeployer, connect

    name = _stack_name(stack)
    if not yes and not has_terminal():
        raise ClientError(NO_TERMINAL)
    deployer = StackDeployer(connect(), name)
    plan = deployer.plan(code_key)
    shown = err if as_json else out  # with --json, stdout is the JSON answer alone
    action = "none" if plan.up_to_date else "update" if plan.exists else "create"
    changes = [_camel(asdict(change)) for change in plan.changes]
    if plan.up_to_date:
        shown.print(f"stack {name} in {plan.region} is up to date; nothing changed", highlight=False)
    else:
        table = Table("action", "resource", "type", "replacement")
        for change in plan.changes:
            table.add_row(
                change.action,
                change.physical_id or change.logical_id,
                change.resource_type,
                change.replacement,
            )
        shown.print(f"{action} stack {name} in {plan.region}:", highlight=False)
        if plan.changes:
            shown.print(table)
        else:
            shown.print("no resource changes (outputs or parameters only)", highlight=False)
        try:
            confirm_or_fail(f"{action} stack {name}?", yes)
        except ClientError:
            deployer.discard(plan)
            raise
    resources = deployer.apply(plan, _say)
    data = {**_camel(asdict(resources)), "action": action, "changes": changes}
    emit(
        data,
        as_json,
        lambda: _print_resources(resources, "" if plan.up_to_date else f"stack {name} {action}d"),
    )


@aws.command()
@stack_option
@yes_option
@json_option
@fails_cleanly
def destroy(stack: str | None, yes: bool, as_json: bool) -> None:
    """Delete the stack and everything the platform made with it: every project's functions,
    distributions, blobs and data."""
    from anchor_deploy.adapters.aws.stack_deploy import connect
    from anchor_deploy.adapters.aws.stack_destroy import StackDestroyer

    name = _stack_name(stack)
    if not yes and not has_terminal():
        raise ClientError(NO_TERMINAL)
    destroyer = StackDestroyer(connect(), name, Settings.from_env().aws_cdn_poll)
    plan = destroyer.plan()
    deleted = [_camel(asdict(resource)) for resource in plan.resources]
    data = {"stack": name, "region": plan.region, "stackStatus": plan.stack_status, "deleted": deleted}
    if plan.empty:
        message = f"no stack {name} in {plan.region} and nothing of it outside; nothing to delete"
        emit(data, as_json, lambda: out.print(message, highlight=False))
        return
    shown = err if as_json else out
    table = Table("resource", "type", "where")
    for resource in plan.resources:
        table.add_row(resource.name, resource.resource_type, resource.where)
    shown.print(
        f"destroy stack {name} in {plan.region} ({plan.stack_status or 'no stack'}):", highlight=False
    )
    shown.print(table)
    err.print(
        "[yellow]warning:[/yellow] every blob in the bucket and every record in the table (projects, "
        "deployments, tokens, domains) is deleted, and every project function; this cannot be undone",
        highlight=False,
    )
    confirm_or_fail(f"destroy stack {name} and all its data?", yes)
    destroyer.destroy(plan, _say)
    message = f"stack {name} destroyed (its KMS key is scheduled for deletion after its 7-day pending window)"
    emit(data, as_json, lambda: out.print(message, highlight=False))


def _stack_name(option: str | None) -> str:
    if option is not None:
        return parse_stack_name(option)
    return Settings.from_env().aws_stack


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON keys as the API writes them (keyArn, not key_arn)."""
    return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key): value for key, value in fields.items()}


def _say(line: str) -> None:
    err.print(line, highlight=False)


def _print_resources(resources: Any, headline: str) -> None:
    if headline:
        out.print(headline, highlight=False)
    table = Table(show_header=False, box=None)
    for label, value in (
        ("table", resources.table),
        ("bucket", resources.bucket),
        ("key", resources.key_arn),
        ("runtime role", resources.runtime_role_arn),
        ("control-plane role", resources.control_plane_role_arn),
        ("function prefix", resources.function_prefix),
        ("control plane", resources.control_plane_url or "- (no --control-plane-code-key yet)"),
    ):
        table.add_row(label, value)
    out.print(table)
