"""`anchor domains ...` and `anchor ca path`: custom domains from the command line."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import click
from rich.table import Table

from anchor_deploy.cli.client import ApiClient, ClientError
from anchor_deploy.cli.common import client, confirm_or_fail, emit, fails_cleanly, json_option, out

_FINAL_BAD = ("FAILED", "VALIDATION_TIMED_OUT", "EXPIRED", "REVOKED")


def _path(name: str) -> str:
    return quote(name, safe="")


def records_table(records: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table("type", "name", "value", "purpose", title=title, title_justify="left")
    for record in records:
        purpose = record["purpose"] + (f" ({record['note']})" if record.get("note") else "")
        table.add_row(record["type"], record["name"], record["value"], purpose)
    return table


def status_line(domain: dict[str, Any]) -> str:
    return f"certificate {domain['certificateStatus']}, edge {domain['cdnStatus']}, dns {domain['dnsStatus']}"


def inspect_lines(domain: dict[str, Any]) -> list[str]:
    shown = domain["name"]
    if domain["unicodeName"] != domain["name"]:
        shown = f"{domain['unicodeName']} ({domain['name']})"
    lines = [f"{shown}  [{domain['project']}]", status_line(domain)]
    if domain["statusReason"]:
        lines.append(f"reason: {domain['statusReason']}")
    if domain.get("checking"):
        lines.append("a check is running: this is the state before it; inspect again for its result")
    cert = domain.get("certificate")
    if cert:
        renews = f"renewal {cert['renewal']}" if cert.get("renewal") else f"renews at {cert['renewsAt']}"
        lines.append(
            f"certificate: serial {cert['serial']}, valid {cert['notBefore']} to {cert['notAfter']}, "
            f"{renews}, issuer {cert['issuer']}"
        )
        if cert.get("reference"):
            lines.append(f"certificate reference: {cert['reference']}")
    if domain["cdnStatus"] == "active":
        lines.append(f"url: {domain['url']}")
    lines.append(
        f"last checked {domain['lastCheckedAt'] or 'never'}, next check {domain['nextCheckAt'] or '-'}"
    )
    return lines


def find(api: ApiClient, name: str, project: str | None, check: bool = True) -> dict[str, Any]:
    query = "" if check else "?check=false"
    if project:
        return api.get(f"/v1/projects/{project}/domains/{_path(name)}{query}")
    return api.get(f"/v1/domains/{_path(name)}{query}")


def wait(api: ApiClient, name: str, project: str | None, timeout: float, status: Any) -> dict[str, Any]:
    """Poll (each GET runs a check) until the domain serves over HTTPS or something failed."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        domain = find(api, name, project)
        status.update(f"{name}: {status_line(domain)}; {domain['statusReason'] or 'working'}")
        if domain["cdnStatus"] == "active" and domain["certificateStatus"] == "ISSUED":
            return domain
        if domain["certificateStatus"] in _FINAL_BAD:
            raise ClientError(f"{name} is {domain['certificateStatus']}: {domain['statusReason']}")
        if time.monotonic() >= deadline:
            raise ClientError(
                f"{name} is still {domain['certificateStatus']} after {timeout:g}s: {domain['statusReason']}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


@click.group()
def domains() -> None:
    """Custom domains: DNS records to add, certificate and edge status."""


@domains.command("add")
@click.argument("project")
@click.argument("name")
@json_option
@fails_cleanly
def domains_add(project: str, name: str, as_json: bool) -> None:
    """Add NAME to PROJECT and print the DNS records to create."""
    data = client().post(f"/v1/projects/{project}/domains", {"name": name})

    def human() -> None:
        out.print(f"added {data['unicodeName']} to {project}; add these records at your DNS provider:")
        out.print(records_table(data["dnsRecords"]))
        out.print(f"then: anchor domains wait {data['name']}")

    emit(data, as_json, human)


@domains.command("ls")
@click.argument("project")
@json_option
@fails_cleanly
def domains_ls(project: str, as_json: bool) -> None:
    """List PROJECT's domains with their statuses."""
    data = client().get(f"/v1/projects/{project}/domains")

    def human() -> None:
        table = Table("name", "certificate", "edge", "dns", "reason")
        for d in data["domains"]:
            table.add_row(
                d["unicodeName"],
                d["certificateStatus"],
                d["cdnStatus"],
                d["dnsStatus"],
                d["statusReason"],
            )
        out.print(table)
        quota = data.get("quota")  # an older server has none
        if quota:
            out.print(f"{quota['used']} of {quota['limit']} domains (the per-project quota)", highlight=False)

    emit(data, as_json, human)


@domains.command("inspect")
@click.argument("name")
@click.option("--project", "-p", help="The project (default: found by name).")
@json_option
@fails_cleanly
def domains_inspect(name: str, project: str | None, as_json: bool) -> None:
    """Statuses, the reason, the DNS records and the certificate of NAME (checks DNS at once, waiting a
    second at most for the answer)."""
    data = find(client(), name, project)

    def human() -> None:
        for line in inspect_lines(data):
            out.print(line, highlight=False, soft_wrap=True)
        out.print(records_table(data["dnsRecords"], "DNS records"))

    emit(data, as_json, human)


@domains.command("rm")
@click.argument("name")
@click.option("--project", "-p", help="The project (default: found by name).")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@json_option
@fails_cleanly
def domains_rm(name: str, project: str | None, yes: bool, as_json: bool) -> None:
    """Stop serving NAME, delete its certificate and release the name."""
    api = client()
    found = find(api, name, project, check=False)
    confirm_or_fail(f"Remove {found['name']} from {found['project']}?", yes)
    data = api.request("DELETE", f"/v1/projects/{found['project']}/domains/{_path(found['name'])}")

    def human() -> None:
        records = data["dnsRecords"]
        deletable = [r for r in records if r.get("deletable", True)]
        kept = [r for r in records if not r.get("deletable", True)]
        if deletable:
            out.print(f"removed {data['removed']}; you may now delete these DNS records:", highlight=False)
            out.print(records_table(deletable))
        else:
            out.print(f"removed {data['removed']}", highlight=False)
        if kept:
            out.print(records_table(kept, "keep these DNS records"))

    emit(data, as_json, human)


@domains.command("wait")
@click.argument("name")
@click.option("--project", "-p", help="The project (default: found by name).")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait.")
@json_option
@fails_cleanly
def domains_wait(name: str, project: str | None, timeout: float, as_json: bool) -> None:
    """Wait until NAME serves over HTTPS (exit 1 if it failed or the time ran out)."""
    with out.status(f"waiting for {name}") as status:
        data = wait(client(), name, project, timeout, status)
    emit(data, as_json, lambda: out.print(f"{data['name']} is live: {data['url']}", highlight=False))


@click.group()
def ca() -> None:
    """The local certificate authority (the `internal` issuer)."""


@ca.command("path")
@json_option
@fails_cleanly
def ca_path(as_json: bool) -> None:
    """Print the path of the root certificate to trust (e.g. curl --cacert "$(anchor ca path)")."""
    data = client().get("/v1/ca")
    emit(data, as_json, lambda: click.echo(data["path"]))


@click.command("quotas")
@click.option("--project", "-p", help="Also the project's own quotas (a project token: its project).")
@json_option
@fails_cleanly
def quotas(project: str | None, as_json: bool) -> None:
    """The quotas that place custom domains, and how much of each is used."""
    query = f"?project={quote(project, safe='')}" if project else ""
    data = client().get(f"/v1/quotas{query}")

    def human() -> None:
        table = Table("quota", "used", "limit", "scope", "limit from")
        for q in data["quotas"]:
            used = f"{q['used']:,}"
            if q["limit"] and q["used"] >= q["limit"]:
                used += " (full)"
            table.add_row(q["name"], used, f"{q['limit']:,}", q["scope"], q["source"])
        out.print(table)
        if not data["quotas"]:
            out.print(
                f"the {data['provider']} provider has no quota for custom domains here", highlight=False
            )

    emit(data, as_json, human)
