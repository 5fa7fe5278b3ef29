"""`anchor`: the command line. Every failure prints one readable line and exits non-zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from anchor_deploy.cli.aws import aws
from anchor_deploy.cli.backup import backup, restore
from anchor_deploy.cli.commit_view import DIRTY_MARK, commit_cell, commit_rows, short_sha
from anchor_deploy.cli.common import (
    client,
    confirm_or_fail,
    emit,
    err,
    fails_cleanly,
    json_option,
    out,
    plural,
)
from anchor_deploy.cli.deploy_command import deploy
from anchor_deploy.cli.dns import dns
from anchor_deploy.cli.domains import ca, domains, quotas
from anchor_deploy.cli.fsck import fsck
from anchor_deploy.cli.git import git
from anchor_deploy.cli.login import login
from anchor_deploy.cli.tokens import tokens
from anchor_deploy.settings import PROVIDERS, Settings


@click.group()
@click.version_option(package_name="anchor-deploy")
def main() -> None:
    """anchor-deploy: immutable deployments, instant rollback, on your own box."""


@main.command()
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Data directory [ANCHOR_DATA_DIR, ./.anchor]."
)
@click.option("--api-addr", help="API listen address [ANCHOR_API_ADDR, 127.0.0.1:8400].")
@click.option("--http-addr", help="Edge HTTP listen address [ANCHOR_HTTP_ADDR, 127.0.0.1:8000].")
@click.option("--base-domain", help="Base domain of deployment URLs [ANCHOR_BASE_DOMAIN, localhost].")
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    help="Where deployments run: this machine or AWS [ANCHOR_PROVIDER, local].",
)
@fails_cleanly
def up(
    data_dir: Path | None,
    api_addr: str | None,
    http_addr: str | None,
    base_domain: str | None,
    provider: str | None,
) -> None:
    """Run the platform: API, build queue, reconciler and the Caddy edge."""
    from anchor_deploy.cli.up import run_platform

    settings = Settings.from_env(
        data_dir=data_dir, api_addr=api_addr, http_addr=http_addr, base_domain=base_domain, provider=provider
    )
    run_platform(settings, say=click.echo)


@main.group(invoke_without_command=True)
@json_option
@click.pass_context
@fails_cleanly
def projects(ctx: click.Context, as_json: bool) -> None:
    """List projects (or `projects add NAME`, `projects rm NAME`)."""
    if ctx.invoked_subcommand:
        return
    data = client().get("/v1/projects")

    def human() -> None:
        table = Table("name", "production", "pinned", "url")
        for p in data["projects"]:
            table.add_row(
                p["name"],
                p["productionDeploymentId"] or "-",
                "yes" if p["pinned"] else "",
                p["productionUrl"],
            )
        out.print(table)

    emit(data, as_json, human)


@projects.command("add")
@click.argument("name")
@json_option
@fails_cleanly
def projects_add(name: str, as_json: bool) -> None:
    """Create a project."""
    data = client().post("/v1/projects", {"name": name})
    emit(data, as_json, lambda: out.print(f"created project {data['name']}: {data['productionUrl']}"))


@projects.command("rm")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask (needed without a terminal).")
@json_option
@fails_cleanly
def projects_rm(name: str, yes: bool, as_json: bool) -> None:
    """Delete a project, its deployments and its URLs."""
    api = client()
    confirm_or_fail(f"delete project {name} and all its deployments?", yes)
    data = api.request("DELETE", f"/v1/projects/{name}")
    emit(data, as_json, lambda: out.print(f"deleted project {name}"))


@main.command("ls")
@click.argument("project")
@json_option
@fails_cleanly
def list_deployments(project: str, as_json: bool) -> None:
    """List a project's deployments, the production one marked (and whether it is pinned)."""
    api = client()
    about = api.get(f"/v1/projects/{project}")
    data = {**api.get(f"/v1/projects/{project}/deployments"), "project": about}

    def human() -> None:
        out.print(production_line(about), highlight=False, soft_wrap=True)
        table = Table("", "id", "status", "target", "created", "commit", "url", "")
        for d in data["deployments"]:
            table.add_row(
                _production_mark(d, about),
                d["id"],
                d["status"],
                d["target"],
                d["createdAt"],
                commit_cell(d.get("git")),
                d["url"],
                "[red]✗ damaged[/red]" if d.get("damaged") else "",
            )
        out.print(table)
        if any(short_sha(d.get("git")).endswith(DIRTY_MARK) for d in data["deployments"]):
            out.print(f"{DIRTY_MARK} deployed with uncommitted changes", highlight=False)
        for d in data["deployments"]:  # why, below the table: a reason is too long for a column
            if d.get("damaged"):
                reason = d["damaged"]["reason"]
                out.print(f"✗ {d['id']} is not served: {reason}", highlight=False, soft_wrap=True)

    emit(data, as_json, human)


def production_line(project: dict[str, Any]) -> str:
    """The header of `anchor ls`: what serves production, and whether a rollback pinned it there."""
    current = project.get("productionDeploymentId")
    if not current:
        return "production: none yet (deploy with --prod)"
    if project.get("pinned"):
        return f"production: {current} (pinned after a rollback; `anchor unpin {project['name']}` to release)"
    return f"production: {current}"


def _production_mark(deployment: dict[str, Any], project: dict[str, Any]) -> str:
    if not deployment["isProduction"]:
        return ""
    return "● (pinned)" if project.get("pinned") else "●"


@main.command()
@click.argument("deployment_id")
@json_option
@fails_cleanly
def inspect(deployment_id: str, as_json: bool) -> None:
    """Show one deployment: status, URL, files, and for an app how it runs and with which limits."""
    data = client().get(f"/v1/deployments/{deployment_id}")

    def human() -> None:
        table = Table(show_header=False, box=None)
        for label, key in (("id", "id"), ("project", "project"), ("status", "status"), ("target", "target")):
            table.add_row(label, str(data[key]))
        table.add_row("production", "yes" if data["isProduction"] else "no")
        table.add_row("url", data["url"])
        table.add_row("created", f"{data['createdAt']} by {data['createdBy']}")
        table.add_row("files", f"{data['fileCount']} ({plural(data['totalSize'], 'byte')})")
        for label, value in commit_rows(data.get("git")):
            table.add_row(label, value)
        if data.get("error"):
            table.add_row("error", data["error"])
        if data.get("damaged"):
            table.add_row("damaged", f"not served: {data['damaged']['reason']}")
        app = data.get("app")
        if app:
            table.add_row("app", f"{app['entry']} (health {app['healthPath']})")
            limits = app["limits"]
            table.add_row(
                "limits",
                f"sandbox {limits['sandbox']}, memory {limits['memoryBytes'] // 2**20} MiB, "
                f"{limits['maxProcesses']} processes, {limits['openFiles']} open files, "
                f"/tmp {limits['tmpBytes'] // 2**20} MiB, network {limits['network']}, "
                f"{limits['startupCpuSeconds']:g} CPU s to start",
            )
        out.print(table)

    emit(data, as_json, human)


@main.command()
@click.argument("project")
@click.option("--to", "to", help="Deployment id to roll back to (default: the previous production one).")
@json_option
@fails_cleanly
def rollback(project: str, to: str | None, as_json: bool) -> None:
    """Put production back on an earlier deployment, instantly. Production stays pinned there."""
    data = client().post(f"/v1/projects/{project}/rollback", {"deploymentId": to} if to else {})
    emit(
        data,
        as_json,
        lambda: out.print(
            f"rolled back {project}: {data['fromDeploymentId']} -> {data['toDeploymentId']} "
            f"(pinned; `anchor promote` or `anchor unpin {project}` to release)"
        ),
    )


@main.command()
@click.argument("deployment_id")
@json_option
@fails_cleanly
def promote(deployment_id: str, as_json: bool) -> None:
    """Make a READY deployment the production one (and unpin)."""
    api = client()
    deployment = api.get(f"/v1/deployments/{deployment_id}")
    data = api.post(f"/v1/projects/{deployment['project']}/promote", {"deploymentId": deployment_id})
    emit(
        data,
        as_json,
        lambda: out.print(
            f"promoted {deployment_id} to production of {deployment['project']} "
            f"(was {data['fromDeploymentId']})"
        ),
    )


@main.command()
@click.argument("project")
@json_option
@fails_cleanly
def unpin(project: str, as_json: bool) -> None:
    """Let production deploys move production again after a rollback."""
    data = client().post(f"/v1/projects/{project}/unpin")
    emit(data, as_json, lambda: out.print(f"{project} unpinned; the next production deploy goes live"))


@main.command()
@click.argument("project")
@json_option
@fails_cleanly
def history(project: str, as_json: bool) -> None:
    """Every move of the production alias."""
    data = client().get(f"/v1/projects/{project}/alias-history")

    def human() -> None:
        table = Table("at", "reason", "from", "to", "commit", "by")
        for m in data["history"]:
            table.add_row(
                m["at"],
                m["reason"],
                m["fromDeploymentId"] or "-",
                m["toDeploymentId"],
                commit_cell(m.get("toGit"), with_branch=False),
                m["tokenName"],
            )
        out.print(table)

    emit(data, as_json, human)


@main.command()
@click.argument("deployment_id")
@click.option("--follow", "-f", is_flag=True, help="Stream the build log until the build ends.")
@click.option("--runtime", is_flag=True, help="The app's runtime output instead of the build log.")
@click.option("--lines", "-n", default=200, show_default=True, help="With --runtime: how many lines.")
@json_option
@fails_cleanly
def logs(deployment_id: str, follow: bool, runtime: bool, lines: int, as_json: bool) -> None:
    """A deployment's build log (or its app's runtime log)."""
    api = client()
    if runtime:
        data = api.get(f"/v1/deployments/{deployment_id}/logs?source=runtime&limit={lines}")
        emit(data, as_json, lambda: _echo_lines(data["lines"]))
        return
    if follow:
        from anchor_deploy.cli.deploy import wait_ready

        as_line = (lambda text: click.echo(json.dumps({"text": text}))) if as_json else click.echo
        final = wait_ready(api, deployment_id, None, on_log=as_line)
        emit({"status": final["status"]}, as_json, lambda: err.print(f"deployment {final['status']}"))
        return
    data = api.get(f"/v1/deployments/{deployment_id}/logs")
    emit(data, as_json, lambda: _echo_lines([line["text"] for line in data["lines"]]))


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@main.group()
def env() -> None:
    """A project's environment variables (frozen into each deployment when it is created)."""


@env.command("set")
@click.argument("project")
@click.argument("key")
@click.argument("value")
@click.option("--secret", is_flag=True, help="Encrypted at rest, never shown again, redacted from logs.")
@json_option
@fails_cleanly
def env_set(project: str, key: str, value: str, secret: bool, as_json: bool) -> None:
    """Set KEY=VALUE for the project's next deployments."""
    data = client().post(f"/v1/projects/{project}/env", {"key": key, "value": value, "secret": secret})
    label = " (secret)" if secret else ""
    emit(data, as_json, lambda: out.print(f"set {key}{label} on {project}; it applies to new deployments"))


@env.command("ls")
@click.argument("project")
@json_option
@fails_cleanly
def env_ls(project: str, as_json: bool) -> None:
    """List the project's variables (secret values are never shown)."""
    data = client().get(f"/v1/projects/{project}/env")

    def human() -> None:
        table = Table("key", "value", "updated")
        for var in data["env"]:
            table.add_row(var["key"], "(secret)" if var["secret"] else var["value"], var["updatedAt"])
        out.print(table)

    emit(data, as_json, human)


@env.command("rm")
@click.argument("project")
@click.argument("key")
@json_option
@fails_cleanly
def env_rm(project: str, key: str, as_json: bool) -> None:
    """Remove a variable (deployments made before keep theirs)."""
    data = client().request("DELETE", f"/v1/projects/{project}/env/{key}")
    emit(data, as_json, lambda: out.print(f"removed {key} from {project}"))


main.add_command(deploy)
main.add_command(login)
main.add_command(domains)
main.add_command(quotas)
main.add_command(dns)
main.add_command(git)
main.add_command(fsck)
main.add_command(ca)
main.add_command(tokens)
main.add_command(backup)
main.add_command(restore)
main.add_command(aws)

if __name__ == "__main__":
    main()
