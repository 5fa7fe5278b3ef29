#!/usr/bin/env python3
"""What checking blobs costs: materializing a 10,000-file deployment on the real adapters (FsBlobStore,
FsDeploymentFiles) with and without the check, and the speed of an fsck-style pass.

    python bench/bench_integrity.py [--files 10000] [--rounds 5] [--quick]

Measured in one process, on a temporary directory of the real disk:
  1. materialize without any check (links only: what the platform did before);
  2. materialize with the check, every blob written by this process (the usual deploy: uploaded, then
     built; each inode is known good, so a stat per file);
  3. materialize with the check in a fresh store object (a restarted platform rebuilding a deployment:
     every blob hashed once);
  4. a check of every stored copy, as `anchor fsck` does (MiB/s).
Files are 100-500 random bytes, as in bench_core.py's deploy phase; then one 64 MiB blob alone, for the
hashing speed on large blobs (from the page cache: a cold disk is slower).
Writes bench/results/integrity.json (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from anchor_deploy.adapters.local.fs_blobs import FsBlobStore  # noqa: E402
from anchor_deploy.adapters.local.fs_deployments import FsDeploymentFiles  # noqa: E402
from anchor_deploy.model.manifest import ManifestFile  # noqa: E402

RESULTS = REPO / "bench" / "results" / "integrity.json"


class UncheckedBlobStore(FsBlobStore):
    """The store as it was before the check: ``link`` makes the link and nothing more."""

    def link(self, digest: str, target: Path) -> None:
        self._link_shared(self.path(digest), target, lambda spare: self._copy_blob(digest, spare))


def make_blobs(store: FsBlobStore, count: int) -> list[ManifestFile]:
    rng = random.Random(20261130)
    manifest = []
    for i in range(count):
        head = f"file {i:06d}\n".encode()
        data = head + rng.randbytes(rng.randint(100, 500) - len(head))
        digest = _sha(data)
        store.put(digest, iter([data]), 1 << 20)
        manifest.append(ManifestFile(f"d{i // 100:03d}/f{i:06d}.bin", digest, len(data), 0o644))
    return manifest


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def timed_build(files: FsDeploymentFiles, manifest: list[ManifestFile]) -> float:
    deployment_id = f"dpl_{random.randbytes(6).hex()}"
    started = time.perf_counter()
    files.materialize(deployment_id, manifest)
    elapsed = time.perf_counter() - started
    files.remove(deployment_id)
    return elapsed


def summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(seconds), 4),
        "min_s": round(min(seconds), 4),
        "runs": seconds,
    }


def check_all(store: FsBlobStore, only: str | None = None) -> dict[str, Any]:
    """Check every copy (or only those of the blob ``only``) as fsck does; the page cache is warm."""
    started = time.perf_counter()
    copies = size = 0
    for copy in store.copies():
        if only is not None and copy.digest != only:
            continue
        assert store.check(copy) is None, copy.name
        copies += 1
        size += copy.size
    elapsed = time.perf_counter() - started
    return {
        "copies": copies,
        "bytes": size,
        "seconds": round(elapsed, 3),
        "mib_per_s": round(size / 2**20 / elapsed, 1),
    }


def run(files: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-integrity-") as work:
        root = Path(work)
        store = FsBlobStore(root / "blobs")
        manifest = make_blobs(store, files)
        deployments = root / "deployments"
        variants: dict[str, Callable[[], FsDeploymentFiles]] = {
            "unchecked": lambda: FsDeploymentFiles(deployments, UncheckedBlobStore(root / "blobs")),
            "known": lambda: FsDeploymentFiles(deployments, store),
            "fresh": lambda: FsDeploymentFiles(deployments, FsBlobStore(root / "blobs")),
        }
        timed_build(variants["unchecked"](), manifest)  # warm-up: the page cache, the directories
        runs: dict[str, list[float]] = {name: [] for name in variants}
        for n in range(rounds):  # interleaved, the order rotated: no variant always goes first
            names = list(variants)
            for name in names[n % 3 :] + names[: n % 3]:
                runs[name].append(timed_build(variants[name](), manifest))
        unchecked, warm, cold = runs["unchecked"], runs["known"], runs["fresh"]
        small_check = check_all(FsBlobStore(root / "blobs"))
        big = random.Random(1).randbytes(64 << 20)
        store.put(_sha(big), iter([big]), 1 << 30)
        big_check = check_all(FsBlobStore(root / "blobs"), only=_sha(big))
    base = statistics.median(unchecked)
    return {
        "files": files,
        "rounds": rounds,
        "materialize_unchecked": summary(unchecked),
        "materialize_checked_known_blobs": summary(warm),
        "materialize_checked_fresh_process": summary(cold),
        "ratio_known_blobs": round(statistics.median(warm) / base, 2),
        "ratio_fresh_process": round(statistics.median(cold) / base, 2),
        # The fastest runs: least disturbed by other work on a shared machine.
        "ratio_known_blobs_min": round(min(warm) / min(unchecked), 2),
        "ratio_fresh_process_min": round(min(cold) / min(unchecked), 2),
        "fsck_small_files": small_check,
        "fsck_one_64_mib_blob": big_check,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 files, 2 rounds; results not written")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    files, rounds = (1_000, 2) if args.quick else (args.files, args.rounds)
    results = run(files, rounds)
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=2))
    if not args.quick:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
