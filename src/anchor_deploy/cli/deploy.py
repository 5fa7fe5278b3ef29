"""The client half of the deploy protocol: hash, offer the manifest, upload what is missing, wait."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from anchor_deploy.cli.blob_batches import BatchSender, batches, read_blob
from anchor_deploy.cli.client import ApiClient, ClientError
from anchor_deploy.cli.direct_upload import DirectUploader, read_targets
from anchor_deploy.cli.hash_cache import HashCache
from anchor_deploy.source.ignore import Skipped
from anchor_deploy.source.plan import DeployPlan, PlanError, hash_file
from anchor_deploy.source.plan import plan_files as plan_folder

__all__ = ["DeployPlan", "DeployResult", "build_manifest", "deploy", "hash_file", "plan_files", "wait_ready"]

_TARGETS_PER_ROUND = 500  # the fewest direct upload targets a server offers per answer, for the round limit


def plan_files(directory: Path, include_dotenv: bool = False) -> DeployPlan:
    """The files to upload, and what was skipped and why (source/plan.py; its errors as the CLI's)."""
    try:
        return plan_folder(directory, include_dotenv)
    except PlanError as exc:
        raise ClientError(str(exc)) from exc


def build_manifest(
    plan: DeployPlan, progress: Progress | None, cache: HashCache | None = None
) -> list[dict[str, Any]]:
    """The manifest of ``plan``'s files: each file is stat'ed once, and read only when ``cache`` does not
    hold a trusted digest for its state (then the cache learns it)."""
    task = progress.add_task("hashing", total=len(plan.files)) if progress else None
    stats = {rel: plan.stats.get(rel) or os.stat(path) for rel, path in plan.files.items()}
    known = {rel: cache.lookup(rel, info) for rel, info in stats.items()} if cache else {}
    to_read = [rel for rel in plan.files if known.get(rel) is None]
    manifest: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashed = dict(zip(to_read, pool.map(hash_file, (plan.files[r] for r in to_read)), strict=True))
    for rel, info in stats.items():
        digest = known.get(rel)
        if digest is None:
            digest, size = hashed[rel]
            if cache is not None and size == info.st_size:
                cache.remember(rel, info, digest)
        else:
            size = info.st_size
        mode = 0o755 if info.st_mode & 0o111 else 0o644
        manifest.append({"path": rel, "sha256": digest, "size": size, "mode": mode})
        if progress and task is not None:
            progress.advance(task)
    return manifest


@dataclass
class DeployResult:
    deployment: dict[str, Any]
    uploaded_files: int
    uploaded_bytes: int
    skipped: list[Skipped] = field(default_factory=list)
    cached_files: int = 0  # files whose digest came from the hash cache (not read)
    upload_batches: int = 0  # batch requests (POST /v1/blob-batches) that carried blobs


def deploy(
    client: ApiClient,
    project: str,
    directory: Path,
    production: bool,
    meta: dict[str, Any],
    show_progress: bool,
    on_status: Callable[[str], None] | None = None,
    on_log: Callable[[str], None] | None = None,
    *,
    include_dotenv: bool = False,
    ensure_project: bool = True,
    on_plan: Callable[[DeployPlan], None] | None = None,
    hash_cache: HashCache | None = None,
) -> DeployResult:
    """Deploy ``directory`` to ``project``. With ``ensure_project`` (for scripts and benchmarks) a missing
    project is created; the CLI decides that itself first (see cli/main.py) and passes False. With
    ``hash_cache``, files whose state it knows are not read (see cli/hash_cache.py)."""
    plan = plan_files(directory, include_dotenv)
    if on_plan is not None:
        on_plan(plan)
    if not plan.files:
        raise ClientError(f"nothing to deploy: {plan.root} has no files")
    progress = _progress() if show_progress else None
    with progress or _Null():
        manifest = build_manifest(plan, progress, hash_cache)
        if hash_cache is not None:
            hash_cache.save()
        body: dict[str, Any] = {
            "files": manifest,
            "target": "production" if production else "preview",
            "meta": meta,
        }
        if plan.app is not None:
            body["app"] = plan.app
        if ensure_project:
            _ensure_project(client, project)
        uploaded_files = uploaded_bytes = 0
        sender = BatchSender(client)
        by_digest = {m["sha256"]: (plan.files[m["path"]], m["size"]) for m in manifest}
        # A store that takes direct uploads may offer targets for only part of the blobs per answer.
        for _round in range(3 + len(manifest) // _TARGETS_PER_ROUND):
            try:
                created = client.post(f"/v1/projects/{project}/deployments", body)
                break
            except ClientError as exc:
                if exc.code != "missing_files":
                    raise
                files, sent = _upload_asked(client, exc.body, by_digest, progress, sender)
                uploaded_files += files
                uploaded_bytes += sent
        else:
            raise ClientError("the server kept asking for files; giving up")
    final = wait_ready(client, created["id"], on_status, on_log)
    final.update({k: created[k] for k in ("productionUrl", "productionPinned", "message") if k in created})
    if "productionUrl" in created and final.get("status") == "READY":
        # Read again once built: a provider may serve production somewhere made by this very deploy (on
        # AWS the first production deployment makes the project's CloudFront distribution).
        final["productionUrl"] = client.get(f"/v1/projects/{project}")["productionUrl"]
    cached = hash_cache.hits if hash_cache is not None else 0
    return DeployResult(final, uploaded_files, uploaded_bytes, plan.skipped, cached, sender.requests)


def _ensure_project(client: ApiClient, project: str) -> None:
    try:
        client.get(f"/v1/projects/{project}")
    except ClientError as exc:
        if exc.code != "project_not_found":
            raise
        client.post("/v1/projects", {"name": project})


def _upload_asked(
    client: ApiClient,
    answer: dict[str, Any],
    by_digest: dict[str, tuple[Path, int]],
    progress: Progress | None,
    sender: BatchSender | None = None,
) -> tuple[int, int]:
    """Upload what a missing_files answer asks for: the blobs it offers direct targets for if any (the
    rest are asked again on the next round), else all of them through the API (small ones in batches
    through ``sender`` if given). (files, bytes) sent."""
    missing = [d for d in answer.get("missing", []) if d in by_digest]
    targets = read_targets(answer)
    batch = [d for d in missing if d in targets] or missing
    with DirectUploader(targets) as direct:
        return len(batch), upload(client, batch, by_digest, progress, direct, sender)


def upload(
    client: ApiClient,
    digests: list[str],
    by_digest: dict[str, tuple[Path, int]],
    progress: Progress | None,
    direct: DirectUploader | None = None,
    sender: BatchSender | None = None,
) -> int:
    """Upload each blob: straight to the blob store where ``direct`` has a target that takes it; else,
    with ``sender``, small ones in batches (two at a time) and large ones one by one through the API's blob
    route (eight at a time). The bytes sent."""
    total = sum(by_digest[d][1] for d in digests)
    label = f"uploading {total / 1e6:.1f} MB"
    task = progress.add_task(label, total=len(digests)) if progress else None

    def send(digest: str) -> int:
        path, size = by_digest[digest]
        data = path.read_bytes()
        if direct is None or not direct.put(digest, data):
            client.put_blob(digest, data)
        if progress and task is not None:
            progress.advance(task)
        return size

    direct_ones = [d for d in digests if direct is not None and d in direct.targets]
    through_api = [d for d in digests if direct is None or d not in direct.targets]
    grouped, singles = batches(through_api, {d: by_digest[d][1] for d in through_api}) if sender else ([], [])
    one_by_one = direct_ones + (singles if sender else through_api)
    with ThreadPoolExecutor(max_workers=8) as pool, ThreadPoolExecutor(max_workers=2) as batch_pool:

        def send_batch(group: list[str]) -> int:
            assert sender is not None
            if not sender.send(group, read_blob(by_digest)):
                return sum(pool.map(send, group))  # the server has no batch route
            if progress and task is not None:
                progress.advance(task, len(group))
            return sum(by_digest[d][1] for d in group)

        in_batches = batch_pool.map(send_batch, grouped)
        return sum(pool.map(send, one_by_one)) + sum(in_batches)


def wait_ready(
    client: ApiClient,
    deployment_id: str,
    on_status: Callable[[str], None] | None,
    on_log: Callable[[str], None] | None = None,
    timeout: float = 900,
    longest_wait: float = 0.5,
) -> dict[str, Any]:
    """Poll until the deployment is final, passing new build log lines to ``on_log`` as they come. A READY
    production build is final once its go-live is decided (production moved to it, or left pinned), so
    that production serves it when this returns. Polls are 20 ms apart for the first second (most builds
    of static files end within it: each poll late is time the user waits), then grow to ``longest_wait``."""
    started = time.monotonic()
    deadline = started + timeout
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
        # The status first, then the lines: every line of a build is written before its final status,
        # so once a final status is seen, this drain reads the rest of the log.
        deployment = client.get(f"/v1/deployments/{deployment_id}")
        if deployment["status"] != last and on_status:
            on_status(deployment["status"])
        last = deployment["status"]
        drain()
        if last in ("ERROR", "CANCELED") or (last == "READY" and not deployment.get("goLivePending")):
            return deployment
        if time.monotonic() > deadline:
            raise ClientError(f"deployment {deployment_id} is still {last} after {timeout:.0f}s")
        time.sleep(delay)
        if time.monotonic() > started + 1:
            delay = min(delay * 1.5, longest_wait)


def _progress() -> Progress:
    console = Console(stderr=True)  # stdout is for the result; bars only on a terminal
    return Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
