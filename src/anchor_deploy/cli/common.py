"""What every command shares: the consoles, the client, JSON output and one-line failures."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from anchor_deploy.cli.client import ApiClient, ClientError
from anchor_deploy.model.errors import AnchorError
from anchor_deploy.model.text import plural

__all__ = ["plural"]  # re-exported: every command pluralizes the same way
from anchor_deploy.settings import ClientSettings

F = TypeVar("F", bound=Callable[..., Any])
# Pipes get wide lines, so ids and URLs are never cut short in logs and scripts.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def fails_cleanly(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ClientError, AnchorError) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def client() -> ApiClient:
    return ApiClient.from_settings(ClientSettings.from_env())


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        human()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def has_terminal() -> bool:
    """A person can answer a question: stdin is a terminal."""
    return sys.stdin.isatty()


def confirm_or_fail(question: str, yes: bool) -> None:
    """Go on with ``--yes``; else ask on a terminal, and without one fail at once, saying to pass --yes."""
    if yes:
        return
    if not has_terminal():
        raise ClientError("no terminal to confirm on: pass --yes to go ahead without asking")
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.Abort:
        agreed = False
    if not agreed:
        raise ClientError("canceled; nothing was changed")
