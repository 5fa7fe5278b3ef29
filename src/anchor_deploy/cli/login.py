"""`anchor login`: save the API URL and a token, from a terminal, a pipe, --token-stdin or ANCHOR_TOKEN."""

from __future__ import annotations

import sys

import click

from anchor_deploy.cli.client import DEFAULT_API_URL, ApiClient, ClientError, load_config, save_config
from anchor_deploy.cli.common import emit, fails_cleanly, has_terminal, json_option, out
from anchor_deploy.settings import ClientSettings

NOTHING_TO_READ = (
    "no token given: pipe one in (echo TOKEN | anchor login), pass --token-stdin, or set ANCHOR_TOKEN"
)


def token_from(given: str | None, from_stdin: bool, env_token: str | None) -> str:
    """The token to save: --token, else stdin with --token-stdin, else ANCHOR_TOKEN, else asked on a
    terminal, else read from stdin (a pipe). One readable ClientError when there is none."""
    if given:
        return given.strip()
    if from_stdin:
        return _read_stdin()
    if env_token:
        return env_token
    if has_terminal():
        return str(click.prompt("API token", hide_input=True, err=True)).strip()
    return _read_stdin()


def _read_stdin() -> str:
    token = sys.stdin.readline().strip()
    if not token:
        raise ClientError(NOTHING_TO_READ)
    return token


@click.command()
@click.option("--token", help="An API token (seen by other users in the process list: prefer stdin).")
@click.option("--token-stdin", is_flag=True, help="Read the token from stdin.")
@click.option("--api-url", default=None, help=f"API URL [ANCHOR_API_URL, {DEFAULT_API_URL}].")
@json_option
@fails_cleanly
def login(token: str | None, token_stdin: bool, api_url: str | None, as_json: bool) -> None:
    """Check a token against the API and save it with the URL to the CLI config file (mode 0600).

    The token comes from --token, --token-stdin, ANCHOR_TOKEN, a prompt on a terminal, or a pipe:
    `echo TOKEN | anchor login --api-url URL`."""
    settings = ClientSettings.from_env()
    secret = token_from(token, token_stdin, settings.token)
    url = api_url or settings.api_url or DEFAULT_API_URL
    try:
        ApiClient(url, secret).get("/v1/projects")
    except ClientError as exc:
        if exc.status == 401:
            raise ClientError(f"the API at {url} refused this token (revoked or wrong)") from None
        raise
    config = load_config(settings.config_path)
    config.update({"api_url": url, "token": secret})
    save_config(settings.config_path, config)
    data = {"apiUrl": url, "configPath": str(settings.config_path)}
    emit(data, as_json, lambda: out.print(f"logged in to {url}; config saved to {settings.config_path}"))
