"""`anchor tokens create|ls|revoke`: API tokens on the command line (a secret is shown once, at creation)."""

from __future__ import annotations

from urllib.parse import quote

import click
from rich.table import Table

from anchor_deploy.cli.common import client, emit, fails_cleanly, json_option, out


@click.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.argument("name")
@click.option("--project", help="Limit the token to one project.")
@json_option
@fails_cleanly
def tokens_create(name: str, project: str | None, as_json: bool) -> None:
    """Create a token (shown once)."""
    data = client().post("/v1/tokens", {"name": name, "project": project})
    emit(data, as_json, lambda: out.print(f"token {data['name']} (shown once): {data['token']}"))


@tokens.command("ls")
@json_option
@fails_cleanly
def tokens_ls(as_json: bool) -> None:
    """List tokens (a project token sees its own project's); never their secrets."""
    data = client().get("/v1/tokens")

    def human() -> None:
        table = Table("id", "name", "project", "source", "created", "last used")
        for t in data["tokens"]:
            project = t["project"] or "(admin)"
            table.add_row(t["id"], t["name"], project, t["source"], t["createdAt"], t["lastUsedAt"] or "-")
        out.print(table)

    emit(data, as_json, human)


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
@json_option
@fails_cleanly
def tokens_revoke(token_id: str, as_json: bool) -> None:
    """Revoke a token: it is refused from the next request on."""
    data = client().request("DELETE", f"/v1/tokens/{quote(token_id, safe='')}")
    emit(data, as_json, lambda: out.print(f"revoked token {data['name']} ({data['id']})"))
