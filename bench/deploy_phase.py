"""Issue 14's deploy benchmark, used by bench_core.py: deploys that cost what changed.

On one site of N small files (default 10,000, some 3 MB): the first deploy (every blob missing: batches of
small blobs, cli/blob_batches.py), an unchanged redeploy run as a user runs it (the `anchor deploy` command in
its own process, hash cache warm: cli/hash_cache.py; the server reuses the first deployment's file tree:
adapters/local/fs_trees.py), the same redeploy in this process (no interpreter start), and a redeploy with
one file changed. Where the time goes: the client's walk and hashing with the cache warm and cold, the
interpreter's start, and the server's created -> ready.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from anchor_deploy.cli.client import ApiClient
from anchor_deploy.cli.deploy import build_manifest, deploy, plan_files
from anchor_deploy.cli.hash_cache import RACY_MARGIN_NS, HashCache
from bench_core import BASE_DOMAIN, Anchor, _iso_seconds, page, say

PROJECT = "files"
FIRST_TARGET_S = 5.0
REDEPLOY_TARGET_S = 1.0


def make_site(root: Path, count: int) -> int:
    rng = random.Random(20240601)
    total = 0
    root.mkdir(parents=True)
    (root / "index.html").write_bytes(page("F"))
    total += len(page("F"))
    for i in range(count - 1):
        folder = root / f"d{i // 100:03d}"
        if i % 100 == 0:
            folder.mkdir()
        head = f"file {i:06d}\n".encode()
        data = head + rng.randbytes(rng.randint(100, 500) - len(head))
        (folder / f"f{i:06d}.bin").write_bytes(data)
        total += len(data)
    return total


def _facts(
    seconds: float, deployment: dict[str, Any], files: int, sent: int, cached: int, batches: int
) -> dict:
    if deployment.get("status") != "READY":
        raise RuntimeError(f"deploy ended {deployment.get('status')}: {deployment.get('error')}")
    created, ready_at = _iso_seconds(deployment.get("createdAt")), _iso_seconds(deployment.get("readyAt"))
    return {
        "seconds": round(seconds, 3),
        "uploaded_files": files,
        "uploaded_bytes": sent,
        "cached_files": cached,
        "upload_batches": batches,
        "deployment": deployment["id"],
        "server_build_s": round(ready_at - created, 3) if created and ready_at else None,
    }


def _in_process(client: ApiClient, site: Path, cache_dir: Path, label: str) -> dict[str, Any]:
    started = time.perf_counter()
    cache = HashCache.for_folder(cache_dir, site)
    result = deploy(client, PROJECT, site, True, {"bench": label}, False, hash_cache=cache)
    elapsed = time.perf_counter() - started
    return _facts(
        elapsed,
        result.deployment,
        result.uploaded_files,
        result.uploaded_bytes,
        result.cached_files,
        result.upload_batches,
    )


def _cli_env(anchor: Anchor, work: Path, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
    env.update(
        {
            "ANCHOR_API_URL": anchor.api_url,
            "ANCHOR_TOKEN": anchor.token,
            "ANCHOR_CONFIG": str(work / "cli-config.json"),
            "XDG_CACHE_HOME": str(cache_dir),
        }
    )
    return env


def _cli(anchor: Anchor, site: Path, work: Path, cache_dir: Path) -> dict[str, Any]:
    """`anchor deploy` as a user runs it: its own process, the whole command timed."""
    command = [sys.executable, "-m", "anchor_deploy.cli.main", "deploy", str(site)]
    command += ["--project", PROJECT, "--prod", "--json", "--no-git-meta"]
    started = time.perf_counter()
    done = subprocess.run(
        command, env=_cli_env(anchor, work, cache_dir), capture_output=True, text=True, timeout=600
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"anchor deploy failed: {done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    d = json.loads(done.stdout)
    return _facts(elapsed, d, d["uploadedFiles"], d["uploadedBytes"], d["cachedFiles"], d["uploadBatches"])


def _cli_start_s(anchor: Anchor, work: Path, cache_dir: Path) -> float:
    """The interpreter's start and the CLI's imports: `anchor --version`, best of three."""
    env = _cli_env(anchor, work, cache_dir)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "anchor_deploy.cli.main", "--version"], env=env, check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def _hashing_s(site: Path, cache_dir: Path | None) -> float:
    started = time.perf_counter()
    plan = plan_files(site)
    build_manifest(plan, None, HashCache.for_folder(cache_dir, site) if cache_dir else None)
    return round(time.perf_counter() - started, 3)


def files_phase(anchor: Anchor, work: Path, count: int) -> dict[str, Any]:
    site, cache_dir = work / "site", work / "client-cache"
    total_bytes = make_site(site, count)
    # Files written less than the hash cache's racy margin before they are hashed are read again next time
    # (cli/hash_cache.py): a user's files are older than that; so are these, after this pause.
    time.sleep(RACY_MARGIN_NS / 1e9 + 0.1)
    say(f"deploy: {count} files, {total_bytes} bytes")
    client = ApiClient(anchor.api_url, anchor.token)
    runs: dict[str, Any] = {}
    try:
        runs["first"] = _in_process(client, site, cache_dir, "first")
        runs["unchanged_redeploy"] = _cli(anchor, site, work, cache_dir)
        runs["unchanged_redeploy_in_process"] = _in_process(client, site, cache_dir, "again")
        changed = site / "d000" / "f000000.bin"
        changed.write_bytes(b"file 000000, changed\n")
        runs["one_file_changed"] = _cli(anchor, site, work, cache_dir)
        for label, run in runs.items():
            say(
                f"  {label}: {run['seconds']:.2f}s, uploaded {run['uploaded_files']} files / "
                f"{run['uploaded_bytes']} bytes in {run['upload_batches']} batches, {run['cached_files']} "
                f"from the hash cache, server build {run['server_build_s']}s"
            )
        redeploy = runs["unchanged_redeploy"]
        warm, cold = _hashing_s(site, cache_dir), _hashing_s(site, None)
        start = _cli_start_s(anchor, work, cache_dir)
        build_s = redeploy["server_build_s"] or 0.0
        redeploy["breakdown_s"] = {
            "cli_start": start,
            "client_walk_and_hash_warm_cache": warm,
            "client_walk_and_hash_no_cache": cold,
            "server_created_to_ready": round(build_s, 3),
            "rest_requests_and_ready_polling": round(
                max(0.0, redeploy["seconds"] - start - warm - build_s), 3
            ),
        }
        say(f"  unchanged redeploy breakdown (s): {redeploy['breakdown_s']}")
        with httpx.Client(
            base_url=anchor.edge_url, headers={"Host": f"{PROJECT}.{BASE_DOMAIN}"}, timeout=5
        ) as edge:
            if (
                edge.get("/").content != page("F")
                or edge.get("/d000/f000000.bin").content != changed.read_bytes()
            ):
                raise RuntimeError(f"{PROJECT}.{BASE_DOMAIN} does not serve the deployed site")
    finally:
        client.close()
    return {"files": count, "bytes": total_bytes, **runs}


def deploy_targets(deploy_: dict[str, Any], add: Any) -> None:
    first, again = deploy_.get("first"), deploy_.get("unchanged_redeploy")
    if first:
        add(
            "first deploy of the small files (s)",
            first["seconds"],
            f"< {FIRST_TARGET_S:g} s",
            first["seconds"] < FIRST_TARGET_S,
        )
    if again:
        add(
            "unchanged redeploy, `anchor deploy` end to end (s)",
            again["seconds"],
            f"< {REDEPLOY_TARGET_S:g} s",
            again["seconds"] < REDEPLOY_TARGET_S,
        )
        add("unchanged redeploy bytes uploaded", again["uploaded_bytes"], "0", again["uploaded_bytes"] == 0)
        add("unchanged redeploy files read", deploy_["files"] - again["cached_files"], "0",
            again["cached_files"] == deploy_["files"])  # fmt: skip


RUNS = ("first", "unchanged_redeploy", "unchanged_redeploy_in_process", "one_file_changed")
