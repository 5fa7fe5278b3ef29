"""`anchor fsck [--repair]`: the platform checks every stored blob (over the API; the CLI never reads the
data dir). Exit 0: clean; 1: problems found (with --repair too: what was done is printed, and a run
after it says whether anything is left)."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from anchor_deploy.cli.common import client, emit, fails_cleanly, json_option, out

# An fsck reads every stored byte at the disk's speed: give a big store time (the default is 60 s).
FSCK_TIMEOUT = 6 * 3600.0


@click.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Quarantine damaged copies; rebuild the deployments that used them from good copies, or take "
    "them down until the blob is uploaded again.",
)
@json_option
@fails_cleanly
def fsck(repair: bool, as_json: bool) -> None:
    """Check every stored blob, spare and ETag sidecar; name the deployments a bad one affects. Needs an
    unrestricted token; every other deployment keeps serving meanwhile. Exit 1 if a problem was found."""
    data = client().request("POST", "/v1/admin/fsck", json_body={"repair": repair}, timeout=FSCK_TIMEOUT)
    emit(data, as_json, lambda: _print_report(data))
    if not data["clean"]:
        sys.exit(1)


def _print_report(data: dict[str, Any]) -> None:
    checked = data["checked"]
    problems = data["problems"]
    out.print(
        f"checked {checked['copies']} stored copies ({checked['bytes']:,} bytes) in {data['seconds']:.1f} s: "
        + ("clean" if not problems else f"{len(problems)} problem(s)"),
        highlight=False,
    )
    if problems:
        table = Table("problem", "blob", "copy", "used by")
        for problem in problems:
            table.add_row(
                f"{problem['problem']} {problem['kind']}",
                problem["digest"][:12] + "…",
                _short_copy(problem["copy"]),
                ", ".join(problem["deployments"]) or "-",
            )
        out.print(table)
        for problem in problems:  # in full: digests and paths are too long for a column
            action = f"; {problem['action']}" if problem["action"] else ""
            where = problem["copy"] or f"blob {problem['digest']}"
            out.print(f"{where}: {problem['detail']}{action}", highlight=False, soft_wrap=True)
    if data["relinked"]:
        out.print(f"rebuilt from good copies: {', '.join(data['relinked'])}", highlight=False)
    if data["takenDown"]:
        out.print(
            f"not served until the blob is uploaded again: {', '.join(data['takenDown'])}", highlight=False
        )
    for damaged in data["damagedDeployments"]:
        out.print(f"damaged: {damaged['id']}: {damaged['reason']}", highlight=False, soft_wrap=True)
    if problems and not data["repair"]:
        out.print("`anchor fsck --repair` quarantines the damaged copies", highlight=False)


def _short_copy(name: str | None) -> str:
    """ "ab/<digest>.2" as "ab/….2": which copy, the digest being in its own column."""
    if not name:
        return "-"
    folder, _, file = name.rpartition("/")
    _, dot, number = file.partition(".")
    return f"{folder}/…{dot}{number}"
