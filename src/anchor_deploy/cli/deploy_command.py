"""`anchor deploy`: plan the upload (what is skipped and why), the project to deploy into, the progress."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import click

from anchor_deploy.cli.client import ApiClient, ClientError
from anchor_deploy.cli.common import client, emit, err, fails_cleanly, has_terminal, json_option, out, plural
from anchor_deploy.cli.deploy import deploy as run_deploy
from anchor_deploy.cli.git_meta import user_meta, with_commit
from anchor_deploy.cli.hash_cache import HashCache
from anchor_deploy.model.logs import BUILD_DONE_LINE
from anchor_deploy.settings import ClientSettings
from anchor_deploy.source.ignore import Skipped, summary_line

_FINAL = ("READY", "ERROR", "CANCELED")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=".")
@click.option("--project", "-p", help="Project name (default: the directory's name).")
@click.option("--prod", is_flag=True, help="Deploy to production.")
@click.option(
    "--create", is_flag=True, help="Create the project if it does not exist (else: asked, or an error)."
)
@click.option("--include-dotenv", is_flag=True, help="Upload .env files too (skipped by default).")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="List every skipped path; say how many files the hash cache saved reading.",
)
@click.option("--meta", "meta_json", help="A JSON object to record with the deployment (its `git` wins).")
@click.option("--no-git-meta", is_flag=True, help="Do not record the git commit DIRECTORY is checked out at.")
@json_option
@fails_cleanly
def deploy(
    directory: Path,
    project: str | None,
    prod: bool,
    create: bool,
    include_dotenv: bool,
    verbose: bool,
    meta_json: str | None,
    no_git_meta: bool,
    as_json: bool,
) -> None:
    """Deploy DIRECTORY: upload only what the platform lacks, build, print the URLs.

    Secrets and local environments (.env*, .npmrc, .pypirc, .netrc, virtualenvs), VCS folders, caches and
    node_modules stay behind; .anchorignore (gitignore syntax, `!` re-includes) adds or removes rules.
    In a git working tree the commit is recorded too (branch, sha, message, author, uncommitted changes)."""
    if not directory.is_dir():
        raise ClientError(f"{directory} is not a directory")
    meta = {"source": "cli", **user_meta(meta_json)}
    if not no_git_meta:
        meta = with_commit(meta, directory)
    name = project or _default_project_name(directory)
    api = client()
    _resolve_project(api, name, create)
    cache_dir = ClientSettings.from_env().cache_dir
    hash_cache = HashCache.for_folder(cache_dir, directory) if cache_dir is not None else None
    result = run_deploy(
        api,
        name,
        directory,
        prod,
        meta,
        show_progress=not as_json,
        on_status=None if as_json else _status_printer(),
        on_log=None if as_json else _print_build_line,
        include_dotenv=include_dotenv,
        ensure_project=False,
        on_plan=None if as_json else lambda plan: _print_skipped(plan.skipped, verbose),
        hash_cache=hash_cache,
    )
    d = result.deployment

    def human() -> None:
        out.print(f"deployment [bold]{d['id']}[/bold]: {d['status']}")
        out.print(
            f"  uploaded {plural(result.uploaded_files, 'file')} ({plural(result.uploaded_bytes, 'byte')})"
        )
        if verbose:
            out.print(
                f"  hash cache: {plural(result.cached_files, 'file')} not read; "
                f"{plural(result.upload_batches, 'upload batch', 'upload batches')}"
            )
        if d["status"] != "READY":
            raise ClientError(f"deployment {d['id']} ended {d['status']}: {d.get('error') or 'no reason'}")
        out.print(f"  url:        {d['url']}")
        if prod:
            out.print(f"  production: {d.get('productionUrl')}")
            if d.get("message"):
                out.print(f"  [yellow]{d['message']}[/yellow]")

    emit(
        {
            **d,
            "uploadedFiles": result.uploaded_files,
            "uploadedBytes": result.uploaded_bytes,
            "cachedFiles": result.cached_files,
            "uploadBatches": result.upload_batches,
            "skipped": [s.to_dict() for s in result.skipped],
        },
        as_json,
        human,
    )
    if d["status"] != "READY":
        sys.exit(1)


def _resolve_project(api: ApiClient, name: str, create: bool) -> None:
    """Deploy into an existing project; a missing one is created with --create or when a person at a
    terminal says yes, and otherwise refused (a typo must not make a new project)."""
    try:
        api.get(f"/v1/projects/{name}")
        return
    except ClientError as exc:
        if exc.code != "project_not_found":
            raise
    if not create:
        if not has_terminal():
            raise ClientError(
                f"project {name} does not exist: pass --create to create it "
                f"(or run `anchor projects add {name}` first)"
            )
        try:
            agreed = click.confirm(f"project {name} does not exist; create it?", default=False, err=True)
        except click.Abort:  # Ctrl-C or end of input at the question
            agreed = False
        if not agreed:
            raise ClientError(f"project {name} does not exist; nothing was deployed")
    try:
        api.post("/v1/projects", {"name": name})
    except ClientError as exc:
        if exc.code != "name_taken":
            raise
        try:  # created meanwhile by another deploy: deploy into it
            api.get(f"/v1/projects/{name}")
        except ClientError:
            raise exc from None


def _status_printer() -> Callable[[str], None]:
    """Print each build status once, only while the build runs: the final one is the result line."""
    shown: set[str] = set()

    def show(status: str) -> None:
        if status in shown or status in _FINAL:
            return
        shown.add(status)
        err.print(f"  {status.lower()}…", style="dim")

    return show


def _print_skipped(skipped: list[Skipped], verbose: bool) -> None:
    line = summary_line(skipped)
    if line:
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if verbose:
        for s in skipped:
            err.print(f"  skipped {s.path} ({s.why.value})", markup=False, highlight=False, soft_wrap=True)


def _print_build_line(line: str) -> None:
    if line == BUILD_DONE_LINE:
        return  # the result line says READY
    err.print(f"  │ {line}", style="dim", markup=False, highlight=False)


def _default_project_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")[:40].strip("-")
    return name or "site"
