"""`anchor backup FILE` (from the running platform, over the API) and `anchor restore FILE --data-dir DIR`
(local: into an empty data dir that no platform runs on yet)."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from anchor_deploy.cli.client import ClientError
from anchor_deploy.cli.common import client, emit, err, fails_cleanly, json_option, out
from anchor_deploy.settings import Settings


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@json_option
@fails_cleanly
def backup(file: Path, as_json: bool) -> None:
    """Save a backup of the running platform to FILE ('-': stdout): the database, the blobs it uses, the
    keys and the certificates. Needs an unrestricted token; the platform keeps serving meanwhile."""
    from anchor_deploy.providers.local import verify_backup

    api = client()
    if str(file) == "-":
        api.download("/v1/admin/backup", sys.stdout.buffer)
        return
    tmp = file.with_name(f".{file.name}.{secrets.token_hex(4)}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the keys
        with os.fdopen(fd, "wb") as sink:
            size = api.download("/v1/admin/backup", sink)
            sink.flush()
            os.fsync(sink.fileno())
        with open(tmp, "rb") as archive:
            manifest = verify_backup(archive)
        os.replace(tmp, file)
    except OSError as exc:
        raise ClientError(f"cannot write {file}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    summary = _summary(manifest, size, file)
    emit(summary, as_json, lambda: out.print(_describe("backup written to", summary)))


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="An empty (or new) data directory to restore into [ANCHOR_DATA_DIR, ./.anchor].",
)
@json_option
@fails_cleanly
def restore(file: Path, data_dir: Path | None, as_json: bool) -> None:
    """Restore a backup FILE ('-': stdin) into an empty data directory; then `anchor up` on it rebuilds the
    deployments, the edge and the apps' environments. A directory with anything in it is refused."""
    from anchor_deploy.providers.local import restore_backup

    target = Settings.from_env(data_dir=data_dir).data_dir.resolve()
    with contextlib.ExitStack() as stack:
        try:
            archive = sys.stdin.buffer if str(file) == "-" else stack.enter_context(open(file, "rb"))
        except OSError as exc:
            raise ClientError(f"cannot read {file}: {exc.strerror or exc}") from exc
        try:
            manifest = restore_backup(archive, target)
        except OSError as exc:
            raise ClientError(f"the restore failed and was undone: {exc.strerror or exc}") from exc
    summary = _summary(manifest, None, target)
    emit(summary, as_json, lambda: out.print(_describe(f"restored {file} into", summary)))
    if not as_json:
        err.print(f"start it with: anchor up --data-dir {target}", highlight=False)


def _summary(manifest: dict[str, Any], size: int | None, where: Path) -> dict[str, Any]:
    summary = {
        "path": str(where),
        "createdAt": manifest.get("createdAt"),
        "anchorVersion": manifest.get("anchorVersion"),
        "schemaVersion": manifest.get("schemaVersion"),
        "counts": manifest.get("counts", {}),
    }
    return summary if size is None else {**summary, "bytes": size}


def _describe(what: str, summary: dict[str, Any]) -> str:
    counts = summary["counts"]
    parts = [f"{counts.get(k, 0)} {k}" for k in ("projects", "deployments", "blobs", "domains")]
    size = f", {summary['bytes'] / 2**20:.1f} MiB" if "bytes" in summary else ""
    return f"{what} {summary['path']}: {', '.join(parts)}{size} (taken {summary['createdAt']})"
