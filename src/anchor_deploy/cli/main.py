"""`anchor`: the command line. Every failure prints one readable line and exits non-zero."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click
from rich.table import Table

from anchor_deploy.cli.backup import backup, restore
from anchor_deploy.cli.client import ApiClient, ClientError, load_config, save_config
from anchor_deploy.cli.common import client, emit, err, fails_cleanly, json_option, out
from anchor_deploy.cli.deploy import deploy as run_deploy
from anchor_deploy.cli.domains import ca, domains
from anchor_deploy.cli.tokens import tokens
from anchor_deploy.settings import ClientSettings, Settings


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
@fails_cleanly
def up(data_dir: Path | None, api_addr: str | None, http_addr: str | None, base_domain: str | None) -> None:
    """Run the platform: API, build queue, reconciler and the Caddy edge."""
    from anchor_deploy.cli.up import run_platform

    settings = Settings.from_env(
        data_dir=data_dir, api_addr=api_addr, http_addr=http_addr, base_domain=base_domain
    )
    run_platform(settings, say=click.echo)


@main.command()
@click.option("--token", prompt=True, hide_input=True, help="An API token.")
@click.option("--api-url", default=None, help="API URL [ANCHOR_API_URL, http://127.0.0.1:8400].")
@fails_cleanly
def login(token: str, api_url: str | None) -> None:
    """Save the API URL and a token to the CLI config file (mode 0600)."""
    settings = ClientSettings.from_env()
    url = api_url or settings.api_url or "http://127.0.0.1:8400"
    ApiClient(url, token).get("/v1/projects")
    config = load_config(settings.config_path)
    config.update({"api_url": url, "token": token})
    save_config(settings.config_path, config)
    click.echo(f"logged in to {url}; config saved to {settings.config_path}")


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--project", "-p", help="Project name (default: the directory's name).")
@click.option("--prod", is_flag=True, help="Deploy to production.")
@json_option
@fails_cleanly
def deploy(directory: Path, project: str | None, prod: bool, as_json: bool) -> None:
    """Deploy DIRECTORY: upload only what the platform lacks, build, print the URLs."""
    if not directory.is_dir():
        raise ClientError(f"{directory} is not a directory")
    name = project or _default_project_name(directory)
    api = client()
    status = None if as_json else lambda s: err.print(f"  {s.lower()}…", style="dim")
    build_log = None if as_json else _print_build_line
    result = run_deploy(
        api,
        name,
        directory,
        prod,
        {"source": "cli"},
        show_progress=not as_json,
        on_status=status,
        on_log=build_log,
    )
    d = result.deployment

    def human() -> None:
        out.print(f"deployment [bold]{d['id']}[/bold]: {d['status']}")
        out.print(f"  uploaded {result.uploaded_files} files ({result.uploaded_bytes} bytes)")
        if d["status"] != "READY":
            raise ClientError(f"deployment {d['id']} ended {d['status']}: {d.get('error') or 'no reason'}")
        out.print(f"  url:        {d['url']}")
        if prod:
            out.print(f"  production: {d.get('productionUrl')}")
            if d.get("message"):
                out.print(f"  [yellow]{d['message']}[/yellow]")

    emit(
        {**d, "uploadedFiles": result.uploaded_files, "uploadedBytes": result.uploaded_bytes}, as_json, human
    )
    if d["status"] != "READY":
        sys.exit(1)


def _print_build_line(line: str) -> None:
    err.print(f"  │ {line}", style="dim", markup=False, highlight=False)


def _default_project_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")[:40].strip("-")
    return name or "site"


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
@click.option("--yes", is_flag=True, help="Do not ask.")
@fails_cleanly
def projects_rm(name: str, yes: bool) -> None:
    """Delete a project, its deployments and its URLs."""
    if not yes:
        click.confirm(f"delete project {name} and all its deployments?", abort=True)
    client().request("DELETE", f"/v1/projects/{name}")
    out.print(f"deleted project {name}")


@main.command("ls")
@click.argument("project")
@json_option
@fails_cleanly
def list_deployments(project: str, as_json: bool) -> None:
    """List a project's deployments, the production one marked."""
    data = client().get(f"/v1/projects/{project}/deployments")

    def human() -> None:
        table = Table("", "id", "status", "target", "created", "url")
        for d in data["deployments"]:
            table.add_row(
                "●" if d["isProduction"] else "", d["id"], d["status"], d["target"], d["createdAt"], d["url"]
            )
        out.print(table)

    emit(data, as_json, human)


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
        table.add_row("files", f"{data['fileCount']} ({data['totalSize']} bytes)")
        if data.get("error"):
            table.add_row("error", data["error"])
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
        table = Table("at", "reason", "from", "to", "by")
        for m in data["history"]:
            table.add_row(
                m["at"], m["reason"], m["fromDeploymentId"] or "-", m["toDeploymentId"], m["tokenName"]
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
@fails_cleanly
def env_rm(project: str, key: str) -> None:
    """Remove a variable (deployments made before keep theirs)."""
    client().request("DELETE", f"/v1/projects/{project}/env/{key}")
    out.print(f"removed {key} from {project}")


main.add_command(domains)
main.add_command(ca)
main.add_command(tokens)
main.add_command(backup)
main.add_command(restore)

if __name__ == "__main__":
    main()
