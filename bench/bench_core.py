#!/usr/bin/env python3
"""Core benchmarks of anchor-deploy against real processes on loopback (127.0.0.1 only).

    python bench/bench_core.py [--projects 10000] [--switches 200] [--files 10000] [--quick]

Measures, in one run, and writes bench/results/core.json (see docs/benchmarks.md):
  1. rollback latency (API call, and API call until the edge serves the new body) with 1 project and with
     N projects, on each edge (Caddy, and nginx: the same data dir restarted with ANCHOR_EDGE=nginx), while
     a steady keep-alive load on the production URL counts every failed request; plus the time to set up
     the N projects through the API;
  2. first deploy of F small files through the real CLI deploy code, then an unchanged redeploy;
  3. static files (1 KiB and 100 KiB), wrk, interleaved rounds: the platform on Caddy vs a bare Caddy
     file_server, the platform on nginx vs a bare nginx as a user would set it up, on the same files
     (bench/edge_phases.py).
Every process this script starts is stopped in a finally block (also on Ctrl-C / SIGTERM), and each child
gets a parent-death signal so none outlives a killed benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from anchor_deploy.model.names import deployment_host  # noqa: E402
from anchor_deploy.settings import Settings  # noqa: E402

if __name__ == "__main__":  # edge_phases imports this module by name: let it find this run's module
    sys.modules.setdefault("bench_core", sys.modules[__name__])

LOOPBACK = "127.0.0.1"
BENCH_PROJECT = "bench"
BASE_DOMAIN = "localhost"
PAGE_SIZE = 1024
RESULTS = REPO / "bench" / "results" / "core.json"
console = Console(stderr=True, highlight=False, soft_wrap=True)
_T0 = time.monotonic()

FULL = {"projects": 10_000, "switches": 200, "files": 10_000, "wrk_seconds": 5.0, "wrk_rounds": 3}
QUICK = {"projects": 200, "switches": 50, "files": 1_000, "wrk_seconds": 2.0, "wrk_rounds": 1}


# -- small helpers -------------------------------------------------------------------------------------
def say(message: str) -> None:
    console.print(f"[{time.monotonic() - _T0:7.1f}s] {message}", markup=False)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def page(label: str) -> bytes:
    """A valid HTML page of exactly PAGE_SIZE bytes, different for each label."""
    head = f"<!doctype html><title>{label}</title><p>deployment {label}</p><!--".encode()
    tail = b"-->\n"
    return head + label[0].lower().encode() * (PAGE_SIZE - len(head) - len(tail)) + tail


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p99 of 200 samples is the 2nd largest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def median_cells(summary: dict[str, Any]) -> list[str]:
    """The req/s, p50 ms and p99 ms medians of a load run's summary over rounds, as table cells."""
    return [
        f"{summary['requests_per_s_median']:.0f}",
        str(summary["p50_ms_median"]),
        str(summary["p99_ms_median"]),
    ]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50) or 0, 2),
        "p99": round(percentile(ms, 99) or 0, 2),
        "max": round(max(ms), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _parent_death_signal() -> None:
    """Runs in each child before exec: if this script dies (even by SIGKILL), the child gets SIGTERM."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _command_output(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc.__class__.__name__})"
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else ""


def _command_output_all(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces, so split after the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def leftover_children() -> dict[int, str]:
    """Children still running, except multiprocessing's resource tracker (it exits with this process)."""
    found = {}
    for pid in children_of(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "multiprocessing.resource_tracker" not in cmdline:
            found[pid] = cmdline[:200]
    return found


def stop_process(proc: subprocess.Popen[bytes] | None, name: str, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        say(f"{name} (pid {proc.pid}) ignored SIGTERM for 20 s; killing it")
        proc.kill()
        proc.wait(timeout=10)


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    name: str,
    log: Path,
    timeout: float = 20,
    headers: dict[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer 200 at {url} within {timeout:.0f}s: {tail(log)}")


def tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"


def _iso_seconds(value: str | None) -> float | None:
    """An API timestamp (ISO 8601, ``Z`` or an offset) as epoch seconds; None stays None. The apps, git,
    domains and dashboard benchmarks import it from here."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


# -- the platform under test ---------------------------------------------------------------------------
@dataclass
class Anchor:
    """`anchor up` (API + reconciler + build queue + its supervised Caddy) on free loopback ports."""

    data_dir: Path
    api_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)  # more ANCHOR_* settings (bench_apps.py)

    @property
    def log(self) -> Path:
        return self.data_dir.parent / "anchor-up.log"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def edge_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def start(self, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
        env.update(
            {
                "ANCHOR_DATA_DIR": str(self.data_dir),
                "ANCHOR_API_ADDR": f"{LOOPBACK}:{self.api_port}",
                "ANCHOR_HTTP_ADDR": f"{LOOPBACK}:{self.http_port}",
                "ANCHOR_HTTPS_ADDR": f"{LOOPBACK}:{free_port()}",
                "ANCHOR_BASE_DOMAIN": BASE_DOMAIN,
                "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p),
            }
        )
        env.update(self.extra_env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "anchor_deploy.cli.main", "up"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_parent_death_signal,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"anchor up exited with {self.proc.returncode}:\n{tail(self.log)}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                health = httpx.get(f"{self.api_url}/v1/health", timeout=2).json()
                if health.get("ok") and health.get("edge"):
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"anchor up did not become healthy:\n{tail(self.log)}")
        self.token = (self.data_dir / "admin-token").read_text().strip()

    def stop(self) -> None:
        stop_process(self.proc, "anchor up")

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url, timeout=60, headers={"Authorization": f"Bearer {self.token}"}
        )


def deploy_by_hand(
    api: httpx.Client,
    project: str,
    files: dict[str, bytes],
    wait: float = 120,
    target: str = "production",
) -> dict[str, Any]:
    """The deploy protocol by hand (as tests/e2e/harness.py does): offer, upload what is missing, wait."""
    manifest = [{"path": p, "sha256": sha(b), "size": len(b), "mode": 0o644} for p, b in files.items()]
    body = {"files": manifest, "target": target}
    response = api.post(f"/v1/projects/{project}/deployments", json=body)
    if response.status_code == 409 and response.json()["error"]["code"] == "missing_files":
        by_digest = {sha(b): b for b in files.values()}
        for digest in response.json()["error"]["missing"]:
            api.put(f"/v1/blobs/{digest}", content=by_digest[digest]).raise_for_status()
        response = api.post(f"/v1/projects/{project}/deployments", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"deploy to {project} failed: {response.status_code} {response.text[:300]}")
    deployment_id = response.json()["id"]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        found = api.get(f"/v1/deployments/{deployment_id}").json()
        # A READY production build is final once its go-live is decided (as the CLI's wait_ready reads it).
        live = found["status"] == "READY" and not found.get("goLivePending")
        if found["status"] in ("ERROR", "CANCELED") or live:
            if found["status"] != "READY":
                raise RuntimeError(f"{deployment_id} ended {found['status']}: {found.get('error')}")
            return dict(found)
        time.sleep(0.02)
    raise RuntimeError(f"{deployment_id} was not READY after {wait:.0f}s")


def production_of(api: httpx.Client, project: str) -> str:
    return str(api.get(f"/v1/projects/{project}").json()["productionDeploymentId"])


# -- steady load (a separate process, so its GIL does not slow the measuring thread) ---------------------
def _load_thread(
    edge_url: str,
    host: str,
    bodies: dict[bytes, str],
    stop: threading.Event,
    rate: float,
    stats: dict[str, Any],
    etags: dict[str, str],
) -> None:
    interval = 1 / rate if rate > 0 else 0.0
    failures: Counter[str] = stats["failures"]
    with httpx.Client(base_url=edge_url, headers={"Host": host}, timeout=5) as client:
        next_at = time.perf_counter()
        while not stop.is_set():
            if interval:
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            started = time.perf_counter()
            try:
                response = client.get("/")
            except httpx.HTTPError as exc:
                failures["connection_error"] += 1
                if len(stats["samples"]) < 5:
                    stats["samples"].append(repr(exc)[:200])
                stop.wait(0.01)
                continue
            stats["latencies"].append(time.perf_counter() - started)
            if response.status_code != 200:
                failures[f"status_{response.status_code}"] += 1
                if len(stats["samples"]) < 5:
                    stats["samples"].append(f"{response.status_code}: {response.text[:120]!r}")
                continue
            label = bodies.get(response.content)
            if label is None:
                failures["bad_body"] += 1
                if len(stats["samples"]) < 5:
                    stats["samples"].append(f"bad body ({len(response.content)} bytes)")
                continue
            stats["served"][label] += 1
            etag = response.headers.get("etag", "").removeprefix("W/").strip('"')
            if etag and etag != etags.get(label, sha(response.content)):
                # A whole, correct body that carries the other deployment's ETag (see docs/benchmarks.md).
                stats["etag_mismatch"] += 1
                if len(stats["etag_samples"]) < 5:
                    other = {v: k for k, v in etags.items()}.get(etag, etag[:16])
                    stats["etag_samples"].append(f"body {label} with the ETag of {other}")
            stats["ok"] += 1


def load_main(
    edge_url: str,
    host: str,
    bodies: dict[bytes, str],
    threads: int,
    rate: float,
    stop: Any,
    ready: Any,
    out: Any,
    max_seconds: float,
    etags: dict[str, str],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us through `stop`
    _parent_death_signal()  # and if the parent is killed outright, we get SIGTERM and end
    local_stop = threading.Event()
    stats = [
        {
            "failures": Counter(),
            "samples": [],
            "latencies": [],
            "served": Counter(),
            "ok": 0,
            "etag_mismatch": 0,
            "etag_samples": [],
        }
        for _ in range(threads)
    ]
    workers = [
        threading.Thread(
            target=_load_thread,
            daemon=True,
            args=(edge_url, host, bodies, local_stop, rate / threads if rate else 0, s, etags),
        )
        for s in stats
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    ready.set()
    stop.wait(max_seconds)
    local_stop.set()
    for worker in workers:
        worker.join(timeout=10)
    elapsed = time.perf_counter() - started
    failures: Counter[str] = Counter()
    served: Counter[str] = Counter()
    latencies: list[float] = []
    for s in stats:
        failures.update(s["failures"])
        served.update(s["served"])
        latencies.extend(s["latencies"])
    ok = sum(s["ok"] for s in stats)
    out.put(
        {
            "threads": threads,
            "seconds": round(elapsed, 2),
            "requests": ok + sum(failures.values()),
            "ok": ok,
            "failed": sum(failures.values()),
            "failures": dict(failures),
            "failure_samples": [x for s in stats for x in s["samples"]][:5],
            "served": dict(served),
            "etag_mismatch": sum(s["etag_mismatch"] for s in stats),
            "etag_mismatch_samples": [x for s in stats for x in s["etag_samples"]][:5],
            "requests_per_s": round((ok + sum(failures.values())) / elapsed, 1) if elapsed else None,
            "latency_ms": summary_ms(latencies),
        }
    )


class Load:
    def __init__(
        self,
        edge_url: str,
        host: str,
        bodies: dict[bytes, str],
        threads: int,
        rate: float,
        etags: dict[str, str] | None = None,
    ) -> None:
        """``etags``: label -> the ETag the edge gives that body (default: its sha256, like Caddy's)."""
        etags = etags or {label: sha(body) for body, label in bodies.items()}
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._ready = ctx.Event()
        self._out: Any = ctx.Queue()
        self._proc = ctx.Process(
            target=load_main,
            daemon=True,
            name="bench-load",
            args=(edge_url, host, bodies, threads, rate, self._stop, self._ready, self._out, 1800.0, etags),
        )

    def start(self) -> None:
        self._proc.start()
        if not self._ready.wait(60):
            raise RuntimeError("the load process did not start")

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        try:
            return dict(self._out.get(timeout=60))
        finally:
            self.kill()

    def kill(self) -> None:
        self._stop.set()
        if self._proc.pid is None:
            return
        self._proc.join(timeout=15)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=10)


# -- 1. rollback ---------------------------------------------------------------------------------------
@dataclass
class BenchSite:
    ids: list[str]  # [A, B]
    bodies: list[bytes]


def make_bench_project(anchor: Anchor) -> BenchSite:
    with anchor.api() as api:
        api.post("/v1/projects", json={"name": BENCH_PROJECT}).raise_for_status()
        bodies = [page("A"), page("B")]
        ids = [deploy_by_hand(api, BENCH_PROJECT, {"index.html": b})["id"] for b in bodies]
        if production_of(api, BENCH_PROJECT) != ids[1]:
            raise RuntimeError("production is not on B after deploying A then B")
    return BenchSite(ids, bodies)


def switch_series(
    anchor: Anchor, site: BenchSite, switches: int, gap: float, visible_timeout: float = 2.0
) -> dict[str, Any]:
    host = f"{BENCH_PROJECT}.{BASE_DOMAIN}"
    api_s: list[float] = []
    visible_s: list[float] = []
    after_answer_s: list[float] = []  # from the API's answer until the edge serves the new body
    api_errors: list[str] = []
    invisible = 0
    poll_errors = 0
    polls = 0
    with (
        anchor.api() as api,
        httpx.Client(base_url=anchor.edge_url, headers={"Host": host}, timeout=5) as edge,
    ):
        current = site.ids.index(production_of(api, BENCH_PROJECT))
        if edge.get("/").content != site.bodies[current]:
            raise RuntimeError("the edge does not serve the production deployment before switching")
        for i in range(switches):
            to = 1 - current if i % 2 == 0 else current
            started = time.perf_counter()
            response = api.post(f"/v1/projects/{BENCH_PROJECT}/rollback", json={"deploymentId": site.ids[to]})
            answered = time.perf_counter()
            if response.status_code != 200:
                api_errors.append(f"{response.status_code}: {response.text[:200]}")
                continue
            api_s.append(answered - started)
            deadline = answered + visible_timeout
            while True:
                polls += 1
                try:
                    if edge.get("/").content == site.bodies[to]:
                        visible_s.append(time.perf_counter() - started)
                        after_answer_s.append(time.perf_counter() - answered)
                        break
                except httpx.HTTPError:
                    poll_errors += 1
                if time.perf_counter() > deadline:
                    invisible += 1
                    break
            if gap:
                time.sleep(gap)
    return {
        "switches": switches,
        "api_ms": summary_ms(api_s),
        "visible_ms": summary_ms(visible_s),
        "after_answer_ms": summary_ms(after_answer_s),
        "api_errors": len(api_errors),
        "api_error_samples": api_errors[:5],
        "not_visible_within_s": {"seconds": visible_timeout, "count": invisible},
        "edge_polls": polls,
        "edge_poll_errors": poll_errors,
        "raw_visible_ms": [round(x * 1000, 3) for x in visible_s],
    }


def served_etags(anchor: Anchor, site: BenchSite) -> dict[str, str]:
    """The ETag the edge gives each deployment's index.html, read on its immutable URL: a sha256 on Caddy,
    an mtime-size pair on nginx (the mtime a content stamp)."""
    found = {}
    with httpx.Client(base_url=anchor.edge_url, timeout=5) as edge:
        for label, deployment_id, body in zip("AB", site.ids, site.bodies, strict=True):
            host = deployment_host(BENCH_PROJECT, deployment_id, BASE_DOMAIN)
            response = edge.get("/", headers={"Host": host})
            if response.status_code != 200 or response.content != body:
                raise RuntimeError(f"the immutable URL of {deployment_id} does not serve its page")
            found[label] = response.headers.get("etag", "").removeprefix("W/").strip('"')
    return found


def rollback_phase(
    anchor: Anchor,
    site: BenchSite,
    projects: int,
    args: argparse.Namespace,
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    result: dict[str, Any] = {"projects": projects}
    if args.idle_pass:
        say(f"rollback, {projects} project(s): {args.switches} switches without load")
        result["idle"] = switch_series(anchor, site, args.switches, args.gap)
    say(
        f"rollback, {projects} project(s): {args.switches} switches under load "
        f"({args.load_threads} keep-alive threads in a separate process)"
    )
    host = f"{BENCH_PROJECT}.{BASE_DOMAIN}"
    bodies = {site.bodies[0]: "A", site.bodies[1]: "B"}
    load = Load(anchor.edge_url, host, bodies, args.load_threads, args.load_rate, served_etags(anchor, site))
    cleanup.append(load.kill)
    load.start()
    time.sleep(1.0)  # let the load reach steady state
    result["loadavg_before"] = loadavg()
    try:
        result["loaded"] = switch_series(anchor, site, args.switches, args.gap)
    finally:
        time.sleep(0.5)
        result["load"] = load.finish()
    loaded = result["loaded"]
    api_ms, visible_ms = loaded["api_ms"], loaded["visible_ms"]
    say(
        f"  api p50/p99/max {api_ms['p50']}/{api_ms['p99']}/{api_ms['max']} ms, "
        f"visible p50/p99/max {visible_ms['p50']}/{visible_ms['p99']}/"
        f"{visible_ms['max']} ms, load {result['load']['requests']} requests, "
        f"{result['load']['failed']} failed"
    )
    return result


def setup_projects(anchor: Anchor, total: int, workers: int, timeout: float = 3600) -> dict[str, Any]:
    """Create projects 2..total through the API, each with one READY production deployment."""
    count = total - 1
    blob = b"<!doctype html><p>one of many projects</p>\n"
    digest = sha(blob)
    manifest = [{"path": "index.html", "sha256": digest, "size": len(blob), "mode": 0o644}]
    width = max(5, len(str(total)))
    names = [f"p{i:0{width}d}" for i in range(1, count + 1)]
    local = threading.local()
    clients: list[httpx.Client] = []
    guard = threading.Lock()
    deadline = time.monotonic() + timeout

    def client() -> httpx.Client:
        found: httpx.Client | None = getattr(local, "client", None)
        if found is None:
            found = anchor.api()
            local.client = found
            with guard:
                clients.append(found)
        return found

    def create(name: str) -> str:
        if time.monotonic() > deadline:
            raise TimeoutError("project setup took too long")
        api = client()
        made = api.post("/v1/projects", json={"name": name})
        if made.status_code != 201:
            raise RuntimeError(f"create {name}: {made.status_code} {made.text[:200]}")
        posted = api.post(
            f"/v1/projects/{name}/deployments", json={"files": manifest, "target": "production"}
        )
        if posted.status_code != 201:
            raise RuntimeError(f"deploy {name}: {posted.status_code} {posted.text[:200]}")
        return str(posted.json()["id"])

    def ready(deployment_id: str) -> str:
        api = client()
        while time.monotonic() < deadline:
            status = str(api.get(f"/v1/deployments/{deployment_id}").json()["status"])
            if status != "QUEUED" and status != "BUILDING":
                return status
            time.sleep(0.05)
        return "TIMEOUT"

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="setup")
    try:
        with anchor.api() as api:
            api.put(f"/v1/blobs/{digest}", content=blob).raise_for_status()
        started = time.perf_counter()
        ids: list[str] = []
        for deployment_id in pool.map(create, names):
            ids.append(deployment_id)
            if len(ids) % 1000 == 0:
                say(f"  {len(ids)}/{count} projects created ({time.perf_counter() - started:.1f}s)")
        created = time.perf_counter()
        statuses = Counter(pool.map(ready, ids))
        finished = time.perf_counter()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for c in clients:
            c.close()
    if statuses != Counter({"READY": count}):
        raise RuntimeError(f"not every setup deployment became READY: {dict(statuses)}")
    # The production alias moves right after READY; check a sample of hosts on the edge.
    sample = random.Random(7).sample(names, min(20, len(names)))
    with httpx.Client(base_url=anchor.edge_url, timeout=5) as edge:
        for name in sample:
            for _ in range(100):
                if edge.get("/", headers={"Host": f"{name}.{BASE_DOMAIN}"}).content == blob:
                    break
                time.sleep(0.02)
            else:
                raise RuntimeError(f"{name}.{BASE_DOMAIN} does not serve its deployment")
    return {
        "projects_created": count,
        "workers": workers,
        "create_and_post_s": round(created - started, 2),
        "until_all_ready_s": round(finished - started, 2),
        "projects_per_s": round(count / (finished - started), 1),
        "edge_sample_checked": len(sample),
    }


def measure_reconcile_pass(data_dir: Path) -> dict[str, Any]:
    """Diagnostic, after `anchor up` has stopped: what one periodic reconciler pass costs with this data."""
    from anchor_deploy.providers.local import build_platform

    platform_ = build_platform(Settings(data_dir=data_dir, base_domain=BASE_DOMAIN), with_caddy=False)
    times = []
    changed: dict[str, int] = {}
    for _ in range(2):
        started = time.perf_counter()
        report = platform_.services.reconciler.run_once()
        times.append(time.perf_counter() - started)
        changed = {k: len(v) for k, v in vars(report).items() if v}
    return {"pass_s": [round(t, 3) for t in times], "changed_on_last_pass": changed}


# -- 2. deploy of many small files ---------------------------------------------------------------------
# -- 3. edge throughput --------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra_pids: list[int] = field(default_factory=list)


def start_plain_caddy(
    binary: str,
    folder: Path,
    route: dict[str, Any],
    name: str,
    extra_servers: dict[str, Any] | None = None,
    extra_apps: dict[str, Any] | None = None,
) -> Server:
    """The pinned Caddy binary with a minimal config: one server, one route, admin API off. More servers
    and apps (a TLS server and its certificates, say) can be added; the plain server is the one waited on."""
    folder.mkdir()
    port = free_port()
    config = {
        "admin": {"disabled": True, "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "storage": {"module": "file_system", "root": str(folder / "storage")},
        "apps": {
            "http": {
                "servers": {
                    "bare": {
                        "listen": [f"{LOOPBACK}:{port}"],
                        "automatic_https": {"disable": True},
                        "routes": [route],
                    },
                    **(extra_servers or {}),
                }
            },
            **(extra_apps or {}),
        },
    }
    (folder / "caddy.json").write_text(json.dumps(config, indent=1))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "XDG_DATA_HOME": str(folder / "data"),
        "XDG_CONFIG_HOME": str(folder / "config"),
    }
    log = folder / "caddy.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [binary, "run", "--config", str(folder / "caddy.json")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_parent_death_signal,
        )
    server = Server(name, f"http://{LOOPBACK}:{port}/", proc, log)
    wait_http(server.url, proc, name, log)
    return server


def start_bare_caddy(binary: str, root: Path, work: Path) -> Server:
    route = {"handle": [{"handler": "file_server", "root": str(root), "index_names": ["index.html"]}]}
    return start_plain_caddy(binary, work / "bare-caddy", route, "bare-caddy")


def start_plain_nginx(binary: str, folder: Path, port: int, http: str, server: str) -> Server:
    """nginx in the foreground with its own minimal config (pid, logs and temp paths in ``folder``):
    ``http`` and ``server`` are the directives of the http block and of its one server block."""
    folder.mkdir()
    user = ""
    if os.geteuid() == 0:  # the data dir is 0700: workers must run as its owner to read the files
        import grp
        import pwd

        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"
    temp_paths = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = folder / "nginx.conf"
    conf.write_text(f"""{user}
worker_processes auto;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp_paths}
    keepalive_requests 1000000;
{http}
    server {{
        listen {LOOPBACK}:{port};
{server}
    }}
}}
""")
    log = folder / "error.log"
    with open(folder / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(folder), "-e", str(log), "-c", str(conf), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_parent_death_signal,
        )
    started = Server("nginx", f"http://{LOOPBACK}:{port}/", proc, log)
    wait_http(started.url, proc, "nginx", log)
    started.extra_pids = children_of(proc.pid)  # the workers, to make sure none outlives the master
    return started


def stop_server(server: Server) -> None:
    stop_process(server.proc, server.name)
    if server.proc is None:
        return  # the platform's edge belongs to anchor up, which stops it
    for pid in server.extra_pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip().startswith("nginx"):
                os.kill(pid, signal.SIGKILL)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(server: Server) -> float:
    """CPU time of the serving process(es): Caddy, or nginx's master and workers."""
    pids = set(server.extra_pids) | ({server.proc.pid} if server.proc else set())
    return sum(process_cpu_seconds(pid) for pid in pids)


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> dict[str, Any]:
    def ms(value: str, unit: str) -> float:
        return round(float(value) * _UNIT[unit], 3)

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    latency = {
        f"p{m[1]}_ms": ms(m[2], m[3])
        for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requests_per_s": float(rps[1]),
        **latency,
        "requests": int(total[1]) if total else None,
        "non_2xx_3xx": int(non2xx[1]) if non2xx else 0,
        "socket_errors": sum(int(x) for x in sockets.groups()) if sockets else 0,
    }


def run_wrk(
    wrk: str,
    url: str,
    host: str,
    seconds: float,
    threads: int,
    connections: int,
    script: Path | None = None,
) -> dict[str, Any]:
    """wrk against ``url`` with ``Host: host``; ``script`` is an optional Lua file (``-s``)."""
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-H",
        f"Host: {host}",
        *(["-s", str(script)] if script else []),
        url,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_parent_death_signal,
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out.decode(errors='replace')}")
    return parse_wrk(out.decode(errors="replace"))


# -- report --------------------------------------------------------------------------------------------
def machine_facts(caddy: str) -> dict[str, Any]:
    nginx = shutil.which("nginx")
    wrk = shutil.which("wrk")
    return {
        "nproc": _command_output(["nproc"]),
        "cpu_count": os.cpu_count(),
        "cpu_model": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            None,
        )
        if Path("/proc/cpuinfo").exists()
        else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "caddy": _command_output([caddy, "version"]),
        "caddy_binary": caddy,
        "nginx": _command_output([nginx, "-v"]) if nginx else None,
        "wrk": _command_output([wrk, "-v"]) if wrk else None,
        "git_commit": _command_output(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
        "git_dirty_files": len(
            _command_output_all(["git", "-C", str(REPO), "status", "--porcelain"]).splitlines()
        ),
        "loadavg_start": loadavg(),
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, value: Any, goal: str, met: bool | None) -> None:
        found.append({"name": name, "value": value, "target": goal, "met": met})

    from edge_phases import edge_targets, rollback_targets, static_targets

    edge_targets(results.get("edges", {}), add)
    rollback_targets(results.get("rollback", {}), add)
    static_targets(results.get("static", {}), add)
    from deploy_phase import deploy_targets

    deploy_targets(results.get("deploy", {}), add)
    return found


def render(results: dict[str, Any]) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    machine = results["machine"]
    out.print(
        f"anchor-deploy core benchmark  {results['started_at']}  nproc={machine['nproc']}  "
        f"python {machine['python']}  {machine['caddy'].split()[0]}  {machine.get('nginx') or ''}"
    )
    out.print(f"load average start {machine['loadavg_start']}  end {machine.get('loadavg_end')}")

    from edge_phases import render_edges, render_rollback, render_static

    render_edges(out, results.get("edges", {}))
    rollback = results.get("rollback", {})
    if rollback:
        render_rollback(out, rollback)
        setup = rollback.get("setup")
        if setup:
            out.print(
                f"setup of {setup['projects_created']} projects (+ the bench and static projects) with "
                f"{setup['workers']} client threads: {setup['until_all_ready_s']} s until all READY "
                f"({setup['projects_per_s']} projects/s; create+post {setup['create_and_post_s']} s)"
            )
        if rollback.get("reconcile_pass"):
            out.print(
                f"one reconciler pass over this data (diagnostic, platform stopped): "
                f"{rollback['reconcile_pass']['pass_s']} s"
            )

    deploy_ = results.get("deploy")
    if deploy_:
        table = Table(title=f"2. deploy of {deploy_['files']} small files ({deploy_['bytes']} bytes)")
        from deploy_phase import RUNS

        columns = ("seconds", "uploaded_files", "uploaded_bytes", "upload_batches", "cached_files")
        columns += ("server_build_s",)
        table.add_column("run", no_wrap=True)
        for col in columns:
            table.add_column(col.replace("_", " "), justify="right", no_wrap=True)
        for run in RUNS:
            if run in deploy_:
                table.add_row(run, *(str(deploy_[run].get(col)) for col in columns))
        out.print(table)
        out.print(f"unchanged redeploy breakdown (s): {deploy_['unchanged_redeploy'].get('breakdown_s')}")

    if results.get("static"):
        render_static(out, results["static"])

    table = Table(title="targets")
    for col in ("target", "value", "goal", "met"):
        table.add_column(col)
    for t in results["targets"]:
        table.add_row(
            t["name"], str(t["value"]), t["target"], {True: "yes", False: "NO", None: "?"}[t["met"]]
        )
    out.print(table)


def write_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)


# -- main ----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, help="N for the many-projects rollback (default 10000)")
    parser.add_argument("--switches", type=int, help="rollbacks per measurement (default 200)")
    parser.add_argument("--files", type=int, help="files in the deploy benchmark (default 10000)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--wrk-seconds", type=float, help="seconds per wrk run (default 5)")
    parser.add_argument("--wrk-rounds", type=int, help="wrk rounds per server, interleaved (default 3)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--load-threads", type=int, default=4, help="keep-alive load threads (default 4)")
    parser.add_argument(
        "--load-rate", type=float, default=0.0, help="total load requests/s, 0 = as fast as they go (default)"
    )
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between two switches (default 0.02)")
    parser.add_argument(
        "--no-idle-pass",
        dest="idle_pass",
        action="store_false",
        help="skip the extra switch series without load",
    )
    parser.add_argument("--setup-workers", type=int, default=8)
    parser.add_argument(
        "--caddy", default=Settings().caddy_bin, help="Caddy binary (default: the pinned one)"
    )
    parser.add_argument(
        "--edges",
        default="caddy,nginx",
        help="the platform's edges to measure, caddy first (default caddy,nginx: the same data dir is "
        "restarted with ANCHOR_EDGE=nginx)",
    )
    parser.add_argument("--nginx", help="nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default bench/results/core.json; core-quick.json or core-partial.json for "
        "--quick or --only runs, so a smoke run never overwrites a full run's numbers)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp work dir (data dir, logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--only",
        choices=("rollback", "deploy", "edge"),
        action="append",
        help="run only these parts (repeatable; default all)",
    )
    args = parser.parse_args(argv)
    from edge_phases import edges_to_run, nginx_binary

    try:
        args.edges = edges_to_run(args.edges)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--edges: {exc}")
    args.nginx = args.nginx or nginx_binary()
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = RESULTS.with_name("core-quick.json" if args.quick else "core-partial.json")
        if not args.quick and not args.only:
            args.out = RESULTS
    if args.projects < 1 or args.switches < 2 or args.files < 2:
        parser.error("--projects >= 1, --switches >= 2 and --files >= 2")
    return args


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    render: Callable[[dict[str, Any]], None],
) -> dict[str, Any] | None:
    """Run a benchmark (SIGTERM stops it as Ctrl-C does), write its JSON, print its table; None if stopped."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        results = run(args)
    except KeyboardInterrupt:
        console.print("interrupted; every process this benchmark started has been stopped")
        return None
    write_results(results, args.out)
    render(results)
    say(f"wrote {args.out}")
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = set(args.only or ("rollback", "deploy", "edge"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_facts(args.caddy),
        "notes": ["the machine was shared with other test runs; compare ratios within one run"],
    }
    work = Path(tempfile.mkdtemp(prefix="anchor-bench-"))
    anchor = Anchor(work / "data")
    cleanup: list[Callable[[], None]] = []
    servers: list[Server] = []
    say(f"work dir {work}; starting anchor up (API {anchor.api_url}, edge {anchor.edge_url})")
    started = time.perf_counter()
    keep = args.keep
    interrupted = False
    try:
        anchor.start()
        site = make_bench_project(anchor)
        from edge_phases import measure_edges

        measure_edges(anchor, site, work, args, parts, results, cleanup, servers)  # ends on Caddy
        if "deploy" in parts:
            from deploy_phase import files_phase

            results["deploy"] = files_phase(anchor, work, args.files)
    except KeyboardInterrupt:
        interrupted = True
        raise
    except BaseException:
        keep = True  # the logs explain the failure
        say(f"failed; logs are kept in {work} (anchor-up.log, data/logs/caddy.log)")
        raise
    finally:
        for server in reversed(servers):
            stop_server(server)
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                step()
        anchor.stop()
        leftovers = leftover_children()
        if leftovers:
            say(f"warning: child processes still running: {leftovers}")
        if interrupted and not keep:
            shutil.rmtree(work, ignore_errors=True)
    if "rollback" in parts and args.projects > 1:
        say("diagnostic: timing one reconciler pass over the data dir (platform stopped)")
        results["rollback"]["reconcile_pass"] = measure_reconcile_pass(anchor.data_dir)
    results["machine"]["loadavg_end"] = loadavg()
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = targets(results)
    if keep:
        results["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return results


def add_run_options(parser: argparse.ArgumentParser, results: Path) -> None:
    """The options every benchmark run takes: where its results go, keeping its work dir, failing on a
    missed target."""
    stem = results.stem
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results file (default bench/results/{results.name}; {stem}-quick.json for --quick, "
        f"{stem}-partial.json for --only, so a smoke run never overwrites a full run's numbers)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp work dir (data dir, logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")


def results_file(args: argparse.Namespace, results: Path) -> Path:
    """``--out``, else the full run's file, or its -quick / -partial twin for a smoke or partial run."""
    if args.out is not None:
        return Path(args.out)
    if args.quick:
        return results.with_name(f"{results.stem}-quick.json")
    return results.with_name(f"{results.stem}-partial.json") if args.only else results


def run_on_platform(anchor: Anchor, work: Path, keep: bool, body: Callable[[], None]) -> bool:
    """Run a benchmark's ``body`` against ``anchor``, then stop the platform and warn of child processes
    left running. A failure keeps the work dir (its logs explain it), shows the end of the platform's log
    and is raised again; otherwise the work dir goes unless ``keep``. Whether the work dir was kept."""
    try:
        body()
    except KeyboardInterrupt:
        raise
    except BaseException:
        keep = True  # the logs explain the failure
        say(f"failed; logs are kept in {work}")
        with contextlib.suppress(Exception):
            say(f"anchor up log ends with:\n{tail(anchor.log, 2000)}")
        raise
    finally:
        anchor.stop()
        leftovers = leftover_children()
        if leftovers:
            say(f"warning: child processes still running: {leftovers}")
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return keep


def finish_results(
    results: dict[str, Any],
    started: float,
    work: Path,
    kept: bool,
    targets: Callable[[dict[str, Any]], Any],
) -> dict[str, Any]:
    """The closing facts every results file has: the load at the end, the run's length, the targets met,
    and where the kept work dir is."""
    results["machine"]["loadavg_end"] = loadavg()
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = targets(results)
    if kept:
        results["work_dir"] = str(work)
    return results


def exit_status(args: argparse.Namespace, results: dict[str, Any] | None) -> int:
    """A benchmark's exit status: 130 when stopped; with --strict, 1 if a target was not met."""
    if results is None:
        return 130
    return 1 if args.strict and not all(t["met"] for t in results["targets"]) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_status(args, run_and_report(args, run, render))


if __name__ == "__main__":
    sys.exit(main())
