"""`anchor dns link|links|unlink`: DNS zones the platform writes a project's domain records into."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import click
from rich.table import Table

from anchor_deploy.cli.common import client, emit, err, fails_cleanly, json_option, out
from anchor_deploy.model.dns_links import parse_tsig_key_text
from anchor_deploy.model.errors import InvalidInput

MAX_KEY_FILE = 64 * 1024


def bad_argument(message: str) -> NoReturn:
    """A command line that cannot work: one line on stderr, exit 2, nothing sent."""
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(2)


def read_small_file(path: str, limit: int, what: str) -> bytes:
    """A file that holds a secret (a key, a token): its bytes, or one line and exit 2 when it cannot be
    read or is larger than ``limit``, which no such file is."""
    try:
        with open(Path(path), "rb") as stream:
            raw = stream.read(limit + 1)
    except OSError as exc:
        bad_argument(f"cannot read the {what} file {path}: {exc.strerror or exc}")
    if len(raw) > limit:
        bad_argument(f"{path} holds no {what}: it is larger than {limit // 1024} KiB")
    return raw


def _key_text(tsig_key: str | None, key_file: str | None) -> str:
    if tsig_key and key_file:
        bad_argument("give the TSIG key once: --tsig-key NAME:ALGORITHM:SECRET or --tsig-key-file FILE")
    if key_file:
        return read_small_file(key_file, MAX_KEY_FILE, "TSIG key").decode("utf-8", errors="replace")
    if not tsig_key:
        bad_argument(
            "an RFC 2136 link needs its TSIG key: --tsig-key NAME:ALGORITHM:SECRET or --tsig-key-file FILE"
        )
    return tsig_key


def link_body(
    zone: str, zone_id: str | None, server: str | None, tsig_key: str | None, key_file: str | None
) -> dict[str, Any]:
    """The API body of `anchor dns link`, or one line and exit 2 for arguments that cannot make one."""
    if bool(zone_id) == bool(server):
        bad_argument(
            "give one of --route53 ZONE_ID or --rfc2136 SERVER[:PORT] (with --tsig-key or --tsig-key-file)"
        )
    if zone_id:
        if tsig_key or key_file:
            bad_argument("a Route 53 link takes no TSIG key: the platform writes with its AWS credentials")
        return {"zone": zone, "route53": {"zoneId": zone_id}}
    try:
        key = parse_tsig_key_text(_key_text(tsig_key, key_file))
    except InvalidInput as exc:
        bad_argument(exc.message)
    secret = base64.b64encode(key.secret).decode()
    rfc2136 = {"server": server, "keyName": key.name, "keyAlgorithm": key.algorithm, "keySecret": secret}
    return {"zone": zone, "rfc2136": rfc2136}


def _project(project: str | None) -> str:
    if not project:
        bad_argument("say which project: --project NAME")
    return project


def describe(link: dict[str, Any]) -> str:
    if link["kind"] == "route53":
        return f"Route 53 hosted zone {link['target']}"
    return f"RFC 2136 updates to {link['target']} signed with {link['keyName']} ({link['keyAlgorithm']})"


@click.group()
def dns() -> None:
    """DNS zones the platform writes your domains' records into (Route 53, or any RFC 2136 server)."""


@dns.command("link")
@click.argument("zone")
@click.option("--project", help="the project whose domains' records go there")
@click.option("--route53", "zone_id", metavar="ZONE_ID", help="a Route 53 hosted zone (needs an admin token)")
@click.option("--rfc2136", "server", metavar="SERVER[:PORT]", help="a server taking RFC 2136 dynamic updates")
@click.option("--tsig-key", metavar="NAME:ALGORITHM:SECRET", help="the TSIG key (the secret in base64)")
@click.option(
    "--tsig-key-file", metavar="FILE", help="the TSIG key as tsig-keygen or keymgr writes it (safer)"
)
@json_option
@fails_cleanly
def dns_link(
    zone: str,
    project: str | None,
    zone_id: str | None,
    server: str | None,
    tsig_key: str | None,
    tsig_key_file: str | None,
    as_json: bool,
) -> None:
    """Link ZONE to a project: the DNS records of its custom domains under ZONE are created (and deleted
    on removal) there, with no step of yours."""
    name = _project(project)
    body = link_body(zone, zone_id, server, tsig_key, tsig_key_file)
    data = client().post(f"/v1/projects/{quote(name, safe='')}/dns-links", body)

    def human() -> None:
        out.print(f"linked {data['zone']} to {name}: {describe(data)}")
        out.print(f"the records of {name}'s domains under {data['zone']} are written there from now on")

    emit(data, as_json, human)


@dns.command("links")
@click.option("--project", help="the project whose links to list")
@json_option
@fails_cleanly
def dns_links(project: str | None, as_json: bool) -> None:
    """List a project's linked zones (never their secrets)."""
    name = _project(project)
    data = client().get(f"/v1/projects/{quote(name, safe='')}/dns-links")

    def human() -> None:
        if not data["links"]:
            out.print(f"{name} has no linked zone; link one with: anchor dns link ZONE --project {name} …")
            return
        table = Table("zone", "written through", "linked at")
        for link in data["links"]:
            table.add_row(link["zone"], describe(link), link["createdAt"])
        out.print(table)

    emit(data, as_json, human)


@dns.command("unlink")
@click.argument("zone")
@click.option("--project", help="the project that linked ZONE")
@json_option
@fails_cleanly
def dns_unlink(zone: str, project: str | None, as_json: bool) -> None:
    """Stop writing records into ZONE (the records written so far stay)."""
    name = _project(project)
    data = client().request("DELETE", f"/v1/projects/{quote(name, safe='')}/dns-links/{quote(zone, safe='')}")
    emit(
        data, as_json, lambda: out.print(f"unlinked {data['unlinked']} from {name}; the records written stay")
    )
