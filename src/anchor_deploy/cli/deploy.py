"""The client half of the deploy protocol: hash, offer the manifest, upload what is missing, wait."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from anchor_deploy.cli.client import ApiClient, ClientError

DEFAULT_IGNORES = (".git", "node_modules", ".anchor", "anchor.toml", ".DS_Store")
_READ = 1024 * 1024


@dataclass
class DeployPlan:
    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    app: dict[str, Any] | None = None


def load_project_config(directory: Path) -> dict[str, Any]:
    path = directory / "anchor.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClientError(f"{path}: {exc}") from exc


def plan_files(directory: Path) -> DeployPlan:
    config = load_project_config(directory)
    build = config.get("build", {}) if isinstance(config.get("build"), dict) else {}
    app = _app_section(directory, config)
    root = directory
    if build.get("output") and app is None:
        root = (directory / str(build["output"])).resolve()
        if not root.is_relative_to(directory.resolve()):
            raise ClientError(f"anchor.toml: build.output {build['output']!r} is outside {directory}")
        if not root.is_dir():
            raise ClientError(f"output directory {root} does not exist; build the site first")
    ignores = list(DEFAULT_IGNORES) + [str(x) for x in build.get("ignore", config.get("ignore", []))]
    plan = DeployPlan(root=root, app=app)
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        dirs[:] = sorted(d for d in dirs if not _ignored(_join(rel_folder, d), d, ignores))
        for name in sorted(names):
            rel = _join(rel_folder, name)
            path = Path(folder) / name
            if _ignored(rel, name, ignores):
                continue
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):
                plan.skipped.append(rel)  # symlinks, sockets, devices: only regular files deploy
                continue
            plan.files[rel] = path
    return plan


def _app_section(directory: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """[app] from anchor.toml, or an app detected as the server would (app.py + requirements)."""
    section = config.get("app")
    if isinstance(section, dict):
        app: dict[str, Any] = {"entry": section.get("entry", "app:app")}
        for key, api_key in (
            ("python", "python"),
            ("health_path", "healthPath"),
            ("static", "static"),
            ("env", "env"),
        ):
            if key in section:
                app[api_key] = section[key]
        if "static" not in app and (directory / "public").is_dir():
            app["static"] = "public"
        return app
    if (directory / "app.py").is_file() and any(
        (directory / name).is_file() for name in ("requirements.txt", "pyproject.toml")
    ):
        return {"entry": "app:app", **({"static": "public"} if (directory / "public").is_dir() else {})}
    return None


def _join(folder: str, name: str) -> str:
    return name if folder in ("", ".") else f"{folder}/{name}"


def _ignored(rel: str, name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(_READ):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def build_manifest(plan: DeployPlan, progress: Progress | None) -> list[dict[str, Any]]:
    task = progress.add_task("hashing", total=len(plan.files)) if progress else None
    manifest: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashed = pool.map(hash_file, plan.files.values())
        for (rel, path), (digest, size) in zip(plan.files.items(), hashed, strict=True):
            mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
            manifest.append({"path": rel, "sha256": digest, "size": size, "mode": mode})
            if progress and task is not None:
                progress.advance(task)
    return manifest


@dataclass
class DeployResult:
    deployment: dict[str, Any]
    uploaded_files: int
    uploaded_bytes: int


def deploy(
    client: ApiClient,
    project: str,
    directory: Path,
    production: bool,
    meta: dict[str, Any],
    show_progress: bool,
    on_status: Callable[[str], None] | None = None,
    on_log: Callable[[str], None] | None = None,
) -> DeployResult:
    plan = plan_files(directory)
    if not plan.files:
        raise ClientError(f"nothing to deploy: {plan.root} has no files")
    progress = _progress() if show_progress else None
    with progress or _Null():
        manifest = build_manifest(plan, progress)
        body: dict[str, Any] = {
            "files": manifest,
            "target": "production" if production else "preview",
            "meta": meta,
        }
        if plan.app is not None:
            body["app"] = plan.app
        _ensure_project(client, project)
        uploaded_files = uploaded_bytes = 0
        for _round in range(3):
            try:
                created = client.post(f"/v1/projects/{project}/deployments", body)
                break
            except ClientError as exc:
                if exc.code != "missing_files":
                    raise
                by_digest = {m["sha256"]: (plan.files[m["path"]], m["size"]) for m in manifest}
                missing = [d for d in exc.body.get("missing", []) if d in by_digest]
                uploaded_files += len(missing)
                uploaded_bytes += _upload(client, missing, by_digest, progress)
        else:
            raise ClientError("the server kept asking for files; giving up")
    final = wait_ready(client, created["id"], on_status, on_log)
    final.update({k: created[k] for k in ("productionUrl", "productionPinned", "message") if k in created})
    return DeployResult(final, uploaded_files, uploaded_bytes)


def _ensure_project(client: ApiClient, project: str) -> None:
    try:
        client.get(f"/v1/projects/{project}")
    except ClientError as exc:
        if exc.code != "project_not_found":
            raise
        client.post("/v1/projects", {"name": project})


def _upload(
    client: ApiClient, digests: list[str], by_digest: dict[str, tuple[Path, int]], progress: Progress | None
) -> int:
    total = sum(by_digest[d][1] for d in digests)
    label = f"uploading {total / 1e6:.1f} MB"
    task = progress.add_task(label, total=len(digests)) if progress else None

    def send(digest: str) -> int:
        path, size = by_digest[digest]
        client.put_blob(digest, path.read_bytes())
        if progress and task is not None:
            progress.advance(task)
        return size

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(send, digests))


def wait_ready(
    client: ApiClient,
    deployment_id: str,
    on_status: Callable[[str], None] | None,
    on_log: Callable[[str], None] | None = None,
    timeout: float = 900,
) -> dict[str, Any]:
    """Poll until the deployment is final, passing new build log lines to ``on_log`` as they come."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last = ""
    seen = 0

    def drain() -> None:
        nonlocal seen
        if on_log is not None:
            for line in client.get(f"/v1/deployments/{deployment_id}/logs?after={seen}")["lines"]:
                seen = line["seq"]
                on_log(line["text"])

    while True:
        drain()
        deployment = client.get(f"/v1/deployments/{deployment_id}")
        if deployment["status"] != last and on_status:
            on_status(deployment["status"])
        last = deployment["status"]
        if last in ("READY", "ERROR", "CANCELED"):
            drain()
            return deployment
        if time.monotonic() > deadline:
            raise ClientError(f"deployment {deployment_id} is still {last} after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeRemainingColumn(),
        transient=True,
    )


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
