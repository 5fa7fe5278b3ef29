#!/usr/bin/env python3
"""Backup benchmark: how fast a backup streams and restores, and what it costs the writers meanwhile.

    python bench/bench_backup.py [--quick]

In one process, on the real adapters (SqliteStore in WAL mode, FsBlobStore, BackupExporter, restore_archive)
in a temporary data dir: a database made large with build logs, and blobs used by deployments. A writer
thread sets env vars (one transaction each) as fast as it can, first alone, then while backups are taken and
written to a file (on the same disk), which is then restored. Reports backup and restore throughput and the
writers' latency (p50, p99, max) alone and during the backups, into bench/results/backup.json (see
docs/benchmarks.md, "Backup benchmark").
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from anchor_deploy.adapters.fernet_box import FernetBox  # noqa: E402
from anchor_deploy.adapters.local.backup_export import BackupExporter  # noqa: E402
from anchor_deploy.adapters.local.backup_restore import restore_archive  # noqa: E402
from anchor_deploy.adapters.local.fs_blobs import FsBlobStore  # noqa: E402
from anchor_deploy.adapters.local.sqlite_store import SqliteStore  # noqa: E402
from anchor_deploy.model.entities import (  # noqa: E402
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    Project,
    Target,
)
from anchor_deploy.model.manifest import ManifestFile  # noqa: E402


@contextlib.contextmanager
def no_pause() -> Iterator[None]:
    yield


def fill(root: Path, deployments: int, log_lines: int, blob_kib: int) -> tuple[SqliteStore, FsBlobStore]:
    store = SqliteStore(root / "anchor.db")
    blobs = FsBlobStore(root / "blobs")
    project = Project("prj_bench", "bench", 1.0)
    store.add_project(project, [HostRoute("bench.test", HostKind.ALIAS, project.id, None)])
    line = "x" * 200
    for n in range(deployments):
        content = os.urandom(blob_kib * 1024)
        digest = hashlib.sha256(content).hexdigest()
        blobs.put(digest, iter([content]), len(content))
        deployment = Deployment(f"dpl_b{n}", project.id, DeploymentStatus.QUEUED, Target.PREVIEW, 1.0, 1, 1)
        host = HostRoute(f"bench-{n}.test", HostKind.DEPLOYMENT, project.id, deployment.id)
        store.add_deployment(deployment, [ManifestFile("f.bin", digest, len(content), 0o644)], host)
        for start in range(0, log_lines, 500):
            count = min(500, log_lines - start)
            store.append_log(deployment.id, [f"{start + i} {line}" for i in range(count)])
    return store, blobs


def writer(store: SqliteStore, sealed: bytes, stop: threading.Event, latencies: list[float]) -> None:
    n = 0
    while not stop.is_set():
        started = time.perf_counter()
        store.set_env("prj_bench", f"K{n % 20}", sealed, False)
        latencies.append(time.perf_counter() - started)
        n += 1


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "writes": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def run(quick: bool) -> dict[str, Any]:
    deployments, log_lines, blob_kib, rounds = (40, 1000, 256, 2) if quick else (200, 2000, 512, 3)
    with tempfile.TemporaryDirectory(prefix="anchor-bench-backup-") as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        store, blobs = fill(root, deployments, log_lines, blob_kib)
        sealed = FernetBox.from_key_file(root / "secrets.key").seal(b"value")
        exporter = BackupExporter(root, blobs, no_pause, "bench", time.time)
        alone: list[float] = []
        stop = threading.Event()
        thread = threading.Thread(target=writer, args=(store, sealed, stop, alone))
        thread.start()
        time.sleep(3)
        stop.set()
        thread.join()

        during: list[float] = []
        stop = threading.Event()
        thread = threading.Thread(target=writer, args=(store, sealed, stop, during))
        thread.start()
        took, size, archive = [], 0, Path(tmp) / "backup.tar"
        for _ in range(rounds):
            started = time.perf_counter()
            stream = exporter.open()
            with open(archive, "wb") as out:
                for chunk in stream:
                    out.write(chunk)
            took.append(time.perf_counter() - started)
            size = stream.size
        stop.set()
        thread.join()

        started = time.perf_counter()
        with open(archive, "rb") as source:
            restore_archive(source, Path(tmp) / "restored")
        restored = time.perf_counter() - started
        db_bytes = (root / "anchor.db").stat().st_size
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "database_mib": round(db_bytes / 2**20, 1),
        "blobs": deployments,
        "archive_mib": round(size / 2**20, 1),
        "backup_seconds": [round(t, 3) for t in took],
        "backup_mib_per_s": round(size / 2**20 / statistics.median(took), 1),
        "restore_seconds": round(restored, 3),
        "restore_mib_per_s": round(size / 2**20 / restored, 1),
        "writes_alone": summary(alone),
        "writes_during_backups": summary(during),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small data dir, two backups")
    quick = parser.parse_args().quick
    result = run(quick)
    print(json.dumps(result, indent=2))
    # A smoke run never replaces the recorded full run.
    out = Path(__file__).resolve().parent / "results" / ("backup-quick.json" if quick else "backup.json")
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
