#!/usr/bin/env python3
"""What the sandbox costs: the same app on two platforms, one with the sandbox and one without, in one run.

    python bench/bench_sandbox.py [--quick] [--wheelhouse .cache/wheelhouse]

Measures, interleaving the two platforms so that machine noise falls on both alike, and writes
bench/results/sandbox.json (see docs/benchmarks.md, "Sandbox"):
  1. build: the first build of a Flask app (a new environment from the wheelhouse: venv + pip);
  2. cold start: the first request to a stopped preview worker (bwrap, namespaces, cgroup, then the app);
  3. requests/s and latency of a trivial ASGI app through the edge, closed loop (bench/loadgen.py).
All traffic goes to 127.0.0.1; every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchor_deploy.cli.client import ApiClient
from anchor_deploy.model.names import deployment_host, production_host
from bench_apps import (
    ASGI_REQUIREMENTS,
    FLASK_REQUIREMENTS,
    WHEELHOUSE,
    asgi_app,
    deploy_app,
    flask_app,
    median,
    worker_socket,
    write_app,
)
from bench_core import (
    BASE_DOMAIN,
    LOOPBACK,
    REPO,
    Anchor,
    console,
    machine_facts,
    run_and_report,
    say,
)
from loadgen import LoadConfig, LoadProcess

RESULTS = REPO / "bench" / "results" / "sandbox.json"
MODES = ("bwrap", "off")


def start(work: Path, mode: str, args: argparse.Namespace) -> tuple[Anchor, ApiClient]:
    anchor = Anchor(work / f"data-{mode}")
    anchor.extra_env.update(
        {
            "ANCHOR_APP_SANDBOX": mode,
            "ANCHOR_IDLE_TIMEOUT": str(args.idle_timeout),
            "ANCHOR_PIP_ARGS": f"--no-index --find-links {args.wheelhouse}",
        }
    )
    anchor.start()
    return anchor, ApiClient(anchor.api_url, anchor.token)


def cold_start(anchor: Anchor, deployment_id: str, limit: float) -> float:
    sock = worker_socket(anchor, deployment_id)
    deadline = time.monotonic() + limit
    while sock.exists() or sock.is_symlink():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the idle worker of {deployment_id} did not stop")
        time.sleep(0.05)
    time.sleep(0.2)
    host = deployment_host("cold", deployment_id, BASE_DOMAIN)
    with httpx.Client(base_url=anchor.edge_url, headers={"Host": host}, timeout=60) as edge:
        started = time.perf_counter()
        response = edge.get("/")
        took = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"cold request: {response.status_code} {response.text[:200]!r}")
    return took


def throughput(anchor: Anchor, seconds: float, connections: int) -> dict[str, Any]:
    config = LoadConfig(
        tcp=f"{LOOPBACK}:{anchor.http_port}",
        host=production_host("fast", BASE_DOMAIN),
        connections=connections,
        duration=seconds,
        warmup=1.0,
    )
    load = LoadProcess(config).start()
    try:
        load.wait_measuring(timeout=seconds + 60)
        return dict(load.result())
    finally:
        load.kill()


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="anchor-bench-sandbox-"))
    platforms: dict[str, tuple[Anchor, ApiClient]] = {}
    results: dict[str, Any] = {"machine": machine_facts(shutil.which("caddy") or ""), "modes": {}}
    try:
        for mode in MODES:
            platforms[mode] = start(work, mode, args)
            say(f"{mode}: anchor up at {platforms[mode][0].api_url}")
        cold_ids: dict[str, str] = {}
        for mode, (_anchor, client) in platforms.items():
            folder = write_app(work / f"cold-{mode}", flask_app("cold"), FLASK_REQUIREMENTS)
            deployment, took = deploy_app(client, "cold", folder, False, "cold")
            cold_ids[mode] = deployment["id"]
            results["modes"][mode] = {"first_build_s": round(took, 2), "cold_s": []}
            fast = write_app(work / f"fast-{mode}", asgi_app("fast"), ASGI_REQUIREMENTS)
            deploy_app(client, "fast", fast, True, "fast")
            say(f"{mode}: first build with a new environment {took:.2f}s")
        for i in range(args.cold_runs):
            for mode, (anchor, _client) in platforms.items():
                took = cold_start(anchor, cold_ids[mode], args.idle_timeout + 20)
                results["modes"][mode]["cold_s"].append(round(took, 4))
                say(f"cold start {i + 1} ({mode}): {took * 1000:.0f} ms")
        for mode in MODES:
            results["modes"][mode]["cold_median_s"] = median(results["modes"][mode]["cold_s"])
        for round_number in range(args.load_rounds):
            for mode, (anchor, _client) in platforms.items():
                load = throughput(anchor, args.load_seconds, args.connections)
                results["modes"][mode].setdefault("load", []).append(load)
                say(f"load round {round_number + 1} ({mode}): {load.get('requests_per_s')} req/s")
        for mode in MODES:
            loads = results["modes"][mode]["load"]
            results["modes"][mode]["rps_median"] = median(
                [float(x.get("requests_per_s") or 0) for x in loads]
            )
            results["modes"][mode]["p99_ms_median"] = median(
                [float((x.get("latency_ms") or {}).get("p99") or 0) for x in loads]
            )
        on, off = results["modes"]["bwrap"], results["modes"]["off"]
        results["ratios"] = {
            "cold_start_sandboxed_over_off": _ratio(on["cold_median_s"], off["cold_median_s"]),
            "rps_sandboxed_over_off": _ratio(on["rps_median"], off["rps_median"]),
            "first_build_sandboxed_over_off": _ratio(on["first_build_s"], off["first_build_s"]),
        }
        return results
    finally:
        for anchor, _client in platforms.values():
            anchor.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def render(results: dict[str, Any]) -> None:
    table = Table("", "sandbox (bwrap)", "no sandbox (off)", "ratio")
    on, off, ratios = results["modes"]["bwrap"], results["modes"]["off"], results["ratios"]
    table.add_row(
        "first build, new environment (s)",
        str(on["first_build_s"]),
        str(off["first_build_s"]),
        str(ratios["first_build_sandboxed_over_off"]),
    )
    table.add_row(
        "cold start, median (ms)",
        f"{on['cold_median_s'] * 1000:.0f}",
        f"{off['cold_median_s'] * 1000:.0f}",
        str(ratios["cold_start_sandboxed_over_off"]),
    )
    table.add_row(
        "trivial ASGI through the edge (req/s)",
        f"{on['rps_median']:.0f}",
        f"{off['rps_median']:.0f}",
        str(ratios["rps_sandboxed_over_off"]),
    )
    table.add_row("  p99 latency (ms)", str(on["p99_ms_median"]), str(off["p99_ms_median"]), "")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs: a smoke run")
    parser.add_argument("--cold-runs", type=int, default=None)
    parser.add_argument("--load-seconds", type=float, default=None)
    parser.add_argument("--load-rounds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--idle-timeout", type=float, default=1.0)
    parser.add_argument("--wheelhouse", type=Path, default=WHEELHOUSE)
    parser.add_argument(
        "--out", type=Path, help="results file (default results/sandbox.json; sandbox-quick.json if --quick)"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.cold_runs = args.cold_runs or (2 if args.quick else 7)
    args.load_seconds = args.load_seconds or (2.0 if args.quick else 5.0)
    args.load_rounds = args.load_rounds or (1 if args.quick else 3)
    if args.out is None:  # a smoke run never overwrites a full run's numbers
        args.out = RESULTS.with_name("sandbox-quick.json") if args.quick else RESULTS
    run_and_report(args, run, render)


if __name__ == "__main__":
    main()
