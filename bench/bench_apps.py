#!/usr/bin/env python3
"""App benchmarks of anchor-deploy (Python apps on uvicorn workers behind Caddy), on loopback only.

    python bench/bench_apps.py [--quick] [--wheelhouse .cache/wheelhouse]

Measures, in one run, and writes bench/results/apps.json (see docs/benchmarks.md, "Apps benchmarks"):
  1. cold start: the first request to a READY preview deployment's immutable URL while its worker is
     stopped (the activator starts it), repeated; the worker is stopped between runs by the idle timeout;
  2. deploy-to-live: a code-only change of a Flask app (its dependency environment is warm), from calling
     anchor_deploy.cli.deploy.deploy(..., production=True) until the production URL answers the new version;
  3. requests/s and latency of a trivial raw ASGI app through the edge (Caddy, TCP, production host) and
     directly on the worker's unix socket, with the same load generator (bench/loadgen.py); to explain the
     gap, also direct with the headers the edge adds and a bare Caddy reverse_proxy; plus the generator's
     ceiling (against nginx) and a wrk cross-check on the edge;
  4. failed requests under steady load during production switches (rollbacks alternating between two app
     versions), and how long after the rollback API answers new requests see the new version;
  5. (issue 14, bench/app_phases.py) the same kind of app through the platform's edge on Caddy and on nginx
     vs a hand-configured reference nginx -> the same worker's socket, and the worker's HTTP stack before
     (h11, asyncio) and after (httptools, uvloop), uvicorn started by hand on the same app.
Builds are offline: pip reads only the wheelhouse (ANCHOR_PIP_ARGS="--no-index --find-links <wheelhouse>").
Every process this script starts is stopped in a finally block (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from anchor_deploy.adapters.local.caddy_process import socket_dir  # noqa: E402
from anchor_deploy.cli.client import ApiClient  # noqa: E402
from anchor_deploy.cli.deploy import deploy  # noqa: E402
from anchor_deploy.model.names import deployment_host, production_host  # noqa: E402
from anchor_deploy.settings import Settings  # noqa: E402
from bench_core import (  # noqa: E402
    BASE_DOMAIN,
    LOOPBACK,
    REPO,
    Anchor,
    Server,
    _command_output,
    _iso_seconds,
    _parent_death_signal,
    free_port,
    leftover_children,
    loadavg,
    machine_facts,
    median_cells,
    percentile,
    process_cpu_seconds,
    run_and_report,
    run_wrk,
    say,
    start_plain_caddy,
    start_plain_nginx,
    stop_server,
    summary_ms,
    tail,
)
from loadgen import LoadConfig, LoadProcess  # noqa: E402

if __name__ == "__main__":  # app_phases imports this module by name: let it find this run's module
    sys.modules.setdefault("bench_apps", sys.modules[__name__])

RESULTS = REPO / "bench" / "results" / "apps.json"
WHEELHOUSE = REPO / ".cache" / "wheelhouse"

FULL = {
    "cold_runs": 7,
    "live_runs": 5,
    "cli_runs": 2,
    "load_seconds": 5.0,
    "load_rounds": 3,
    "switches": 50,
}
QUICK = {
    "cold_runs": 3,
    "live_runs": 2,
    "cli_runs": 1,
    "load_seconds": 2.0,
    "load_rounds": 1,
    "switches": 20,
}

# -- the apps ------------------------------------------------------------------------------------------
FLASK_REQUIREMENTS = "flask\n"
ASGI_REQUIREMENTS = "# no dependencies: the platform installs uvicorn into every app environment\n"


def flask_app(version: str) -> str:
    return f'''from flask import Flask

app = Flask(__name__)
VERSION = "{version}"


@app.get("/")
def index():
    return f"flask {{VERSION}}\\n"
'''


def flask_body(version: str) -> bytes:
    return f"flask {version}\n".encode()


def asgi_app(body: str) -> str:
    """A raw ASGI callable (no framework) answering a short fixed body; it also speaks lifespan. Only
    GET /headers differs: it answers the request headers it got (JSON), to see what the edge adds."""
    return f"""import json

BODY = {body.encode()!r}
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/headers":
        seen = json.dumps([[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(seen)).encode())]
        await send({{"type": "http.response.start", "status": 200, "headers": head}})
        await send({{"type": "http.response.body", "body": seen}})
        return
    await send({{"type": "http.response.start", "status": 200, "headers": HEADERS}})
    await send({{"type": "http.response.body", "body": BODY}})
"""


def write_app(folder: Path, code: str, requirements: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(code)
    (folder / "requirements.txt").write_text(requirements)
    return folder


# -- helpers -------------------------------------------------------------------------------------------
def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def seconds_summary(values: list[float]) -> dict[str, Any]:
    """Seconds, for phases measured in seconds (summary_ms is for milliseconds)."""
    if not values:
        return {"n": 0, "p50": None, "max": None, "min": None, "mean": None}
    return {
        "n": len(values),
        "p50": median(values),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``check`` until it is true (bounded by ``timeout``); return how long it took."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if check():
            return time.perf_counter() - started
        time.sleep(every)
    raise RuntimeError(f"{what}: not within {timeout:.0f}s")


def serves(edge: httpx.Client, host: str, body: bytes) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        response = edge.get("/", headers={"Host": host})
        return response.status_code == 200 and response.content == body
    return False


def deploy_app(
    client: ApiClient, project: str, folder: Path, production: bool, label: str
) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result = deploy(client, project, folder, production, {"bench": label}, False)
    elapsed = time.perf_counter() - started
    deployment = result.deployment
    if deployment["status"] != "READY":
        raise RuntimeError(f"{project} {label}: ended {deployment['status']}: {deployment.get('error')}")
    return deployment, elapsed


def build_log(client: ApiClient, deployment_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/deployments/{deployment_id}/logs?limit=10000")["lines"])


def build_breakdown(deployment: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, float | None]:
    """Where the server spent a build, from the deployment's timestamps and its build log (ms resolution)."""
    created, ready = _iso_seconds(deployment["createdAt"]), _iso_seconds(deployment["readyAt"])

    def at(prefix: str) -> float | None:
        return next((_iso_seconds(x["at"]) for x in lines if str(x["text"]).startswith(prefix)), None)

    first = _iso_seconds(lines[0]["at"]) if lines else None
    starting, healthy = at("starting the app"), at("the app answered its health check")

    def span(a: float | None, b: float | None) -> float | None:
        return round(b - a, 3) if a is not None and b is not None else None

    return {
        "created_to_first_log_line": span(created, first),
        "first_log_line_to_app_start": span(first, starting),
        "app_start_and_health_check": span(starting, healthy),
        "health_check_to_ready": span(healthy, ready),
        "created_to_ready": span(created, ready),
    }


def worker_socket(anchor: Anchor, deployment_id: str) -> Path:
    # The same folder the platform picks (providers/local.py: socket_dir(<data>/run)); it exists already.
    return socket_dir(anchor.data_dir.resolve() / "run") / "worker" / f"{deployment_id}.sock"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pid(anchor: Anchor, deployment_id: str) -> int | None:
    """The app's own process (inside its sandbox: not the bwrap processes whose command lines name it too)."""
    sock = str(worker_socket(anchor, deployment_id).with_name(f"{deployment_id}.d")) + "/app.sock"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = _cmdline(int(entry.name))
            if sock in line and "--uds" in line and not line.split(" ", 1)[0].endswith("bwrap"):
                return int(entry.name)
    return None


def caddy_pid(anchor: Anchor) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((anchor.data_dir / "run" / "caddy.pid").read_text())
    return None


def env_python(anchor: Anchor, module: str) -> Path | None:
    """The app environment's python that has ``module`` installed (diagnostics only)."""
    for env in sorted((anchor.data_dir / "envs").glob("*")):
        if list(env.glob(f"lib/python*/site-packages/{module}")):
            return env / "bin" / "python"
    return None


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def header_names(response: httpx.Response) -> list[str]:
    return [name.decode("latin-1").lower() for name, _value in response.headers.raw]


def timed_run(cmd: list[str], timeout: float = 60) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=timeout, preexec_fn=_parent_death_signal)
    return time.perf_counter() - started


# -- 1. cold start -------------------------------------------------------------------------------------
def cold_phase(anchor: Anchor, client: ApiClient, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    folder = write_app(work / "cold", flask_app("cold"), FLASK_REQUIREMENTS)
    say("cold start: first build of a Flask app (preview; creates its environment from the wheelhouse)")
    deployment, first_build_s = deploy_app(client, "cold", folder, False, "cold")
    deployment_id = deployment["id"]
    host = deployment_host("cold", deployment_id, BASE_DOMAIN)
    body = flask_body("cold")
    sock = worker_socket(anchor, deployment_id)
    say(f"  built in {first_build_s:.1f}s; {args.cold_runs} cold requests to {host}")
    runs: list[dict[str, Any]] = []
    heads: dict[str, list[str]] = {}
    limit = args.idle_timeout + 15
    for i in range(args.cold_runs):
        waited = wait_until(lambda: not sock.exists(), limit, f"the idle worker of {deployment_id} to stop")
        time.sleep(0.2)  # the worker process is gone too (stop() unlinks the socket after it exited)
        if worker_pid(anchor, deployment_id) is not None:
            raise RuntimeError(f"the worker of {deployment_id} still runs after its socket was removed")
        # A new TCP connection, as a first visitor would open.
        with httpx.Client(base_url=anchor.edge_url, headers={"Host": host}, timeout=60) as edge:
            started = time.perf_counter()
            response = edge.get("/")
            cold = time.perf_counter() - started
            started = time.perf_counter()
            warm_response = edge.get("/")
            warm = time.perf_counter() - started
        if response.status_code != 200 or response.content != body or warm_response.content != body:
            raise RuntimeError(f"cold request {i + 1}: {response.status_code} {response.text[:200]!r}")
        heads = {"cold": header_names(response), "warm": header_names(warm_response)}
        runs.append(
            {"cold_s": round(cold, 4), "warm_next_s": round(warm, 4), "waited_for_idle_s": round(waited, 2)}
        )
        say(f"  run {i + 1}: cold {cold * 1000:.0f} ms, next request {warm * 1000:.1f} ms")
    # Floors, for reading the number: the environment's Python starting, and importing the app's stack.
    floors: dict[str, Any] = {}
    python = env_python(anchor, "flask")
    if python is not None:
        for name, code in (("python_startup", "pass"), ("import_flask_and_uvicorn", "import flask, uvicorn")):
            floors[name + "_s"] = median([timed_run([str(python), "-c", code]) for _ in range(3)])
    return {
        "deployment": deployment_id,
        "host": host,
        "first_build_with_new_env_s": round(first_build_s, 2),
        "idle_timeout_s": args.idle_timeout,
        "cold_s": seconds_summary([r["cold_s"] for r in runs]),
        "warm_next_request_ms": summary_ms([r["warm_next_s"] for r in runs]),
        "floors": floors,
        # The response heads (names, in order) of the last cold request (answered through the activator)
        # and of the next one (Caddy straight to the worker): they should not differ.
        "response_header_names": heads,
        "cold_response_duplicate_headers": sorted(
            {h for h in heads.get("cold", []) if heads["cold"].count(h) > 1}
        ),
        "runs": runs,
    }


# -- 2. deploy to live ---------------------------------------------------------------------------------
def live_phase(anchor: Anchor, client: ApiClient, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    project = "live"
    folder = write_app(work / "live", flask_app("v0"), FLASK_REQUIREMENTS)
    host = production_host(project, BASE_DOMAIN)
    say("deploy-to-live: first production deploy of the Flask app (same dependencies: environment reused)")
    deployment, first_s = deploy_app(client, project, folder, True, "v0")
    reused = any("reusing environment" in str(x["text"]) for x in build_log(client, deployment["id"]))
    runs: list[dict[str, Any]] = []
    with httpx.Client(base_url=anchor.edge_url, timeout=10) as edge:
        wait_until(lambda: serves(edge, host, flask_body("v0")), 30, "production to serve v0")
        for i in range(args.live_runs + args.cli_runs):
            via_cli = i >= args.live_runs
            version = f"v{i + 1}-{os.urandom(4).hex()}"
            (folder / "app.py").write_text(flask_app(version))
            started = time.perf_counter()
            if via_cli:
                deployment = cli_deploy(anchor, folder, project, work)
            else:
                deployment, _ = deploy_app(client, project, folder, True, version)
            returned = time.perf_counter() - started
            polls = 0

            def live(version: str = version) -> bool:
                nonlocal polls
                polls += 1
                return serves(edge, host, flask_body(version))

            wait_until(live, 30, f"production to serve {version}", every=0.0)
            total = time.perf_counter() - started
            run = {
                "via": "cli process" if via_cli else "deploy() in process",
                "total_s": round(total, 3),
                "deploy_returned_s": round(returned, 3),
                "live_after_return_s": round(total - returned, 3),
                "polls_after_return": polls,
                "server": build_breakdown(deployment, build_log(client, deployment["id"])),
                "deployment": deployment["id"],
            }
            runs.append(run)
            say(
                f"  {run['via']}: live after {total:.2f}s (deploy returned {returned:.2f}s, "
                f"server created->ready {run['server']['created_to_ready']}s)"
            )
    api_runs = [r for r in runs if r["via"] != "cli process"]
    cli_runs = [r for r in runs if r["via"] == "cli process"]
    parts = list(api_runs[0]["server"]) if api_runs else []
    return {
        "project": project,
        "first_deploy_s": round(first_s, 2),
        "environment_reused": reused,
        "total_s": seconds_summary([r["total_s"] for r in api_runs]),
        "cli_total_s": seconds_summary([r["total_s"] for r in cli_runs]),
        "median_breakdown_s": {
            "deploy_returned": median([r["deploy_returned_s"] for r in api_runs]),
            "live_after_return": median([r["live_after_return_s"] for r in api_runs]),
            **{
                f"server_{k}": median([r["server"][k] for r in api_runs if r["server"][k] is not None])
                for k in parts
            },
        },
        "runs": runs,
    }


def cli_deploy(anchor: Anchor, folder: Path, project: str, work: Path) -> dict[str, Any]:
    """`anchor deploy DIR --project P --create --prod --json` as a user runs it (a new Python process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
    env.update(
        {
            "ANCHOR_API_URL": anchor.api_url,
            "ANCHOR_TOKEN": anchor.token,
            "XDG_CONFIG_HOME": str(work / "cli-config"),  # never the user's own config
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p),
        }
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "anchor_deploy.cli.main",
            "deploy",
            str(folder),
            "-p",
            project,
            "--create",
            "--prod",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_parent_death_signal,
    )
    if done.returncode != 0:
        raise RuntimeError(f"anchor deploy failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


# -- 3. edge vs direct ---------------------------------------------------------------------------------
def start_nginx_ceiling(binary: str, work: Path) -> tuple[Server, str, Path]:
    """nginx answering a fixed 3-byte body on TCP and on a unix socket: what the load generator can do."""
    folder = work / "nginx"
    port = free_port()
    sock = folder / "n.sock"
    server = f"""        listen unix:{sock};
        location / {{ return 200 "ok\\n"; }}"""
    started = start_plain_nginx(binary, folder, port, "    default_type text/plain;", server)
    return started, f"{LOOPBACK}:{port}", sock


def edge_forwarded_headers(edge_tcp: str, host: str) -> list[list[str]]:
    """GET /headers through the edge with the load generator's request head; what reached the app besides
    Host and User-Agent."""
    address, _, port = edge_tcp.rpartition(":")
    request = (
        f"GET /headers HTTP/1.1\r\nHost: {host}\r\nUser-Agent: anchor-bench-loadgen\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    chunks = []
    with socket.create_connection((address, int(port)), timeout=10) as conn:
        conn.sendall(request)
        while data := conn.recv(65536):
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET /headers through the edge: {head[:200]!r}")
    seen = json.loads(body)
    return [[k, v] for k, v in seen if k.lower() not in ("host", "user-agent")]


def start_bare_caddy_proxy(binary: str, sock: Path, work: Path) -> Server:
    """The same Caddy binary with a minimal config: one reverse_proxy to the worker's unix socket (no host
    routing, no file checks). Separates what any Caddy proxy costs from what the platform's routes add."""
    route = {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": f"unix/{sock}"}]}]}
    return start_plain_caddy(binary, work / "bare-caddy-proxy", route, "bare-caddy-proxy")


def load_run(
    config: LoadConfig, cpu_pids: dict[str, int | None], cleanup: list[Callable[[], None]]
) -> dict[str, Any]:
    """One load generator run in its own process; CPU of the given processes over its measured window."""
    load = LoadProcess(config).start()
    cleanup.append(load.kill)
    load.wait_measuring()
    busy = machine_busy_seconds()
    before = {name: process_cpu_seconds(pid) for name, pid in cpu_pids.items() if pid}
    result = load.result()
    after = {name: process_cpu_seconds(pid) for name, pid in cpu_pids.items() if pid}
    busy = machine_busy_seconds() - busy
    responses = result["responses"] or 0
    result["server_cpu_us_per_response"] = {
        name: round((after[name] - before[name]) / responses * 1e6, 1) if responses else None
        for name in before
    }
    result["server_cpu_fraction"] = {
        name: round((after[name] - before[name]) / result["seconds"], 3) for name in before
    }
    ours = result["loadgen_cpu_s"] + sum(after[name] - before[name] for name in before)
    add_machine_cpu(result, busy, ours, result["seconds"])
    result["loadavg_after"] = loadavg()
    return result


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), for the share others took."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def add_machine_cpu(result: dict[str, Any], busy: float, ours: float, seconds: float) -> None:
    """Cores busy on the machine during a run, and how many of them were neither the load generator nor
    the servers measured (the API process, other tenants' tests): the noise of that run, in cores."""
    result["machine_busy_cores"] = round(busy / seconds, 2) if seconds else None
    result["other_cpu_cores"] = round(max(0.0, busy - ours) / seconds, 2) if seconds else None


def throughput_phase(
    anchor: Anchor,
    client: ApiClient,
    work: Path,
    args: argparse.Namespace,
    servers: list[Server],
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    project = "asgi"
    body = "ok\n"
    folder = write_app(work / "asgi", asgi_app(body), ASGI_REQUIREMENTS)
    say("edge vs direct: production deploy of a raw ASGI app (requirements.txt: a comment only)")
    deployment, deploy_s = deploy_app(client, project, folder, True, "asgi")
    deployment_id = deployment["id"]
    host = production_host(project, BASE_DOMAIN)
    sock = worker_socket(anchor, deployment_id)
    with httpx.Client(base_url=anchor.edge_url, timeout=10) as edge:
        wait_until(lambda: serves(edge, host, body.encode()), 30, "the edge to serve the ASGI app")
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=10) as direct:
        answer = direct.get("http://app/", headers={"Host": host})
        if answer.status_code != 200 or answer.text != body:
            raise RuntimeError(
                f"the worker socket {sock} answered {answer.status_code} {answer.text[:100]!r}"
            )
    pids = {"worker": worker_pid(anchor, deployment_id), "caddy": caddy_pid(anchor)}
    if not all(pids.values()):
        raise RuntimeError(f"cannot find the worker or Caddy process: {pids}")
    edge_tcp = f"{LOOPBACK}:{anchor.http_port}"
    common = {
        "host": host,
        "path": "/",
        "connections": args.connections,
        "duration": args.load_seconds,
        "warmup": 1.0,
        "expect": {body: "ok"},
    }
    # The headers the worker gets through the edge besides the load generator's own Host and User-Agent:
    # the third target sends them directly, to split the edge's cost into Caddy's CPU and the worker's
    # extra header parsing.
    forwarded = edge_forwarded_headers(edge_tcp, host)
    bare = start_bare_caddy_proxy(args.caddy, sock, work)
    servers.append(bare)
    assert bare.proc is not None
    targets = {
        "edge": LoadConfig(tcp=edge_tcp, **common),
        "direct": LoadConfig(unix=str(sock), **common),
        "direct+edge-headers": LoadConfig(unix=str(sock), headers=forwarded, **common),
        "bare-caddy-proxy": LoadConfig(tcp=bare.url.removeprefix("http://").rstrip("/"), **common),
    }
    cpu_of = {
        "edge": pids,
        "direct": {"worker": pids["worker"]},
        "direct+edge-headers": {"worker": pids["worker"]},
        "bare-caddy-proxy": {"worker": pids["worker"], "caddy": bare.proc.pid},
    }
    result: dict[str, Any] = {
        "deployment": deployment_id,
        "edge_adds_headers": forwarded,
        "deploy_s": round(deploy_s, 2),
        "body_bytes": len(body),
        "connections": args.connections,
        "seconds": args.load_seconds,
        "rounds": args.load_rounds,
        "worker": "uvicorn (h11, asyncio: the app environment has plain uvicorn), 1 process",
        "runs": {name: [] for name in targets},
        "notes": [],
    }
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx:
        say("  load generator ceiling: against nginx `return 200` on TCP and on a unix socket")
        server, nginx_tcp, nginx_sock = start_nginx_ceiling(nginx, work)
        servers.append(server)
        ceiling = {}
        nginx_common = {**common, "expect": {}, "duration": min(args.load_seconds, 3.0)}
        for name, config in (
            ("tcp", LoadConfig(tcp=nginx_tcp, **nginx_common)),
            ("unix", LoadConfig(unix=str(nginx_sock), **nginx_common)),
        ):
            nginx_pids = {f"nginx-{i}": pid for i, pid in enumerate([server.proc.pid, *server.extra_pids])}
            ceiling[name] = load_run(config, nginx_pids, cleanup)
            say(
                f"    {name}: {ceiling[name]['requests_per_s']:.0f} req/s, loadgen CPU "
                f"{ceiling[name]['loadgen_cpu_fraction']:.2f} of a core"
            )
        result["loadgen_ceiling"] = ceiling
        stop_server(server)
        servers.remove(server)
    else:
        result["notes"].append("nginx is not installed: no load generator ceiling measured")
    wrk = shutil.which("wrk")
    if wrk:
        result["runs"]["wrk-edge"] = []
    say(
        f"  {args.load_rounds} round(s) of {args.load_seconds:g}s, {args.connections} connections: "
        f"{', '.join(result['runs'])}"
    )
    # edge and direct always run back to back (alternating which goes first), so each round gives a paired
    # ratio; the units rotate so that no target always runs first.
    units: list[list[str]] = [
        ["edge", "direct"],
        *([n] for n in result["runs"] if n not in ("edge", "direct")),
    ]
    for r in range(args.load_rounds):
        turned = units[r % len(units) :] + units[: r % len(units)]
        order = [n for unit in turned for n in (unit if r % 2 == 0 else unit[::-1])]
        for name in order:
            if name == "wrk-edge":
                assert wrk is not None
                before = {k: process_cpu_seconds(p) for k, p in pids.items() if p}
                busy, reaped = machine_busy_seconds(), children_cpu_seconds()
                started = time.perf_counter()
                measured = run_wrk(
                    wrk, f"{anchor.edge_url}/", host, args.load_seconds, args.wrk_threads, args.connections
                )
                seconds = time.perf_counter() - started
                wrk_cpu = children_cpu_seconds() - reaped  # wrk is the only child reaped meanwhile
                busy = machine_busy_seconds() - busy
                after = {k: process_cpu_seconds(p) for k, p in pids.items() if p}
                measured["wrk_cpu_fraction"] = round(wrk_cpu / seconds, 3)
                # wrk's wall time includes its start and exit, so the shares are slightly low.
                add_machine_cpu(measured, busy, wrk_cpu + sum(after[k] - before[k] for k in before), seconds)
                n = measured["requests"] or 0
                measured["server_cpu_us_per_response"] = {
                    k: round((after[k] - before[k]) / n * 1e6, 1) if n else None for k in before
                }
                measured["latency_ms"] = {"p50": measured.get("p50_ms"), "p99": measured.get("p99_ms")}
                measured["failed"] = measured["non_2xx_3xx"] + measured["socket_errors"]
            else:
                measured = load_run(targets[name], cpu_of[name], cleanup)
            result["runs"][name].append(measured)
            say(
                f"    round {r + 1} {name}: {measured['requests_per_s']:.0f} req/s, "
                f"p99 {measured['latency_ms']['p99']} ms, failed {measured['failed']}"
                + (
                    f", loadgen CPU {measured['loadgen_cpu_fraction']:.2f}"
                    if "loadgen_cpu_fraction" in measured
                    else ""
                )
            )
    stop_server(bare)
    servers.remove(bare)
    summary: dict[str, Any] = {}
    for name, runs in result["runs"].items():
        summary[name] = {
            "requests_per_s_median": median([x["requests_per_s"] for x in runs]),
            "p50_ms_median": median([x["latency_ms"]["p50"] for x in runs if x["latency_ms"]["p50"]]),
            "p99_ms_median": median([x["latency_ms"]["p99"] for x in runs if x["latency_ms"]["p99"]]),
            "failed": sum(x["failed"] for x in runs),
            # the load generator's CPU (wrk's for the wrk row), in cores
            "loadgen_cpu_fraction_median": median(
                [
                    x.get("loadgen_cpu_fraction", x.get("wrk_cpu_fraction"))
                    for x in runs
                    if x.get("loadgen_cpu_fraction", x.get("wrk_cpu_fraction")) is not None
                ]
            ),
            "server_cpu_us_per_response_median": {
                k: median([x["server_cpu_us_per_response"][k] or 0 for x in runs])
                for k in runs[0]["server_cpu_us_per_response"]
            },
            "other_cpu_cores_median": median(
                [x["other_cpu_cores"] for x in runs if x.get("other_cpu_cores") is not None]
            ),
        }
    result["summary"] = summary
    # edge and direct of one round ran back to back: their ratio is steadier than a ratio of medians when
    # other work comes and goes on the machine.
    paired = [
        round(e["requests_per_s"] / d["requests_per_s"], 3)
        for e, d in zip(result["runs"]["edge"], result["runs"]["direct"], strict=True)
        if d["requests_per_s"]
    ]
    result["edge_direct_ratio_per_round"] = paired
    rps = {k: v["requests_per_s_median"] for k, v in summary.items()}
    result["ratios"] = {
        "edge/direct": round(rps["edge"] / rps["direct"], 3) if rps["direct"] else None,
        "edge/direct, median of per-round ratios": median(paired),
    }
    for a, b in (
        ("direct+edge-headers", "direct"),
        ("bare-caddy-proxy", "direct"),
        ("edge", "bare-caddy-proxy"),
    ):
        if rps.get(a) and rps.get(b):
            result["ratios"][f"{a}/{b}"] = round(rps[a] / rps[b], 3)
    if "wrk-edge" in rps and rps["edge"]:
        result["ratios"]["wrk-edge/loadgen-edge"] = round(rps["wrk-edge"] / rps["edge"], 3)
    cpu_edge = sum(summary["edge"]["server_cpu_us_per_response_median"].values())
    cpu_direct = sum(summary["direct"]["server_cpu_us_per_response_median"].values())
    # The same comparison by CPU per request (inverted, so higher is better like req/s): on a shared 2-core
    # machine, req/s also depends on who else runs; this shows the cost the edge adds per request.
    result["ratios"]["cpu_per_request direct/edge"] = round(cpu_direct / cpu_edge, 3) if cpu_edge else None
    return result


# -- 4. switches under load ----------------------------------------------------------------------------
def switch_phase(
    anchor: Anchor,
    client: ApiClient,
    work: Path,
    args: argparse.Namespace,
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    project = "switch"
    host = production_host(project, BASE_DOMAIN)
    bodies = {"A": "version A\n", "B": "version B\n"}
    ids: dict[str, str] = {}
    say("switches: two production deploys (raw ASGI apps A, then B; the environment is reused)")
    for label, body in bodies.items():
        folder = write_app(work / f"switch-{label}", asgi_app(body), ASGI_REQUIREMENTS)
        ids[label] = deploy_app(client, project, folder, True, label)[0]["id"]
    result: dict[str, Any] = {
        "switches": args.switches,
        "gap_s": args.gap,
        "deployments": ids,
        "load": {"connections": args.switch_connections, "rate": args.switch_rate},
    }
    api_s: list[float] = []
    visible_s: list[float] = []
    api_errors: list[str] = []
    not_visible = 0
    poll_errors = 0
    moves: list[tuple[float, float, str]] = []  # (called, answered, to) on time.monotonic()
    with (
        httpx.Client(base_url=anchor.edge_url, headers={"Host": host}, timeout=10) as edge,
        anchor.api() as api,
    ):
        wait_until(lambda: serves(edge, host, bodies["B"].encode()), 30, "production to serve B")
        load = LoadProcess(
            LoadConfig(
                tcp=f"{LOOPBACK}:{anchor.http_port}",
                host=host,
                connections=args.switch_connections,
                rate=args.switch_rate,
                duration=None,
                warmup=0.0,
                expect={body: label for label, body in bodies.items()},
                max_seconds=600,
                timeline=True,
            )
        ).start()
        cleanup.append(load.kill)
        try:
            load.wait_measuring()
            time.sleep(1.0)  # steady state before the first switch
            result["loadavg_before"] = loadavg()
            current = "B"
            say(
                f"  {args.switches} rollbacks alternating A/B under load "
                f"({args.switch_connections} keep-alive connections, "
                f"{'closed loop' if not args.switch_rate else f'{args.switch_rate:g} req/s'})"
            )
            for _ in range(args.switches):
                to = "A" if current == "B" else "B"
                started = time.monotonic()
                response = api.post(f"/v1/projects/{project}/rollback", json={"deploymentId": ids[to]})
                answered = time.monotonic()
                if response.status_code != 200:
                    api_errors.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                current = to
                moves.append((started, answered, to))
                api_s.append(answered - started)
                want = bodies[to].encode()
                deadline = answered + 2.0
                while True:
                    try:
                        if edge.get("/").content == want:
                            visible_s.append(time.monotonic() - answered)
                            break
                    except httpx.HTTPError:
                        poll_errors += 1
                    if time.monotonic() > deadline:
                        not_visible += 1
                        break
                time.sleep(args.gap)
            time.sleep(0.5)
        finally:
            load.stop()
            result["load"].update(load.result(timeout=60))
    timeline = result["load"].pop("timeline", None)
    if timeline:
        result["stale_after_answer"] = stale_after_answer(moves, timeline)
    result.update(
        {
            "api_ms": summary_ms(api_s),
            "visible_after_answer_ms": summary_ms(visible_s),
            "api_errors": len(api_errors),
            "api_error_samples": api_errors[:5],
            "not_visible_within_2s": not_visible,
            "poll_errors": poll_errors,
            "failed_requests": result["load"]["failed"] + poll_errors,
            "stale_requests_after_answer": result.get("stale_after_answer", {}).get("requests"),
            "raw_visible_after_answer_ms": [round(x * 1000, 3) for x in visible_s],
        }
    )
    load_ = result["load"]
    say(
        f"  load {load_['responses']} responses ({load_['requests_per_s']} req/s), {load_['failed']} failed; "
        f"visible after answer p50/p99 {result['visible_after_answer_ms']['p50']}/"
        f"{result['visible_after_answer_ms']['p99']} ms"
    )
    return result


def stale_after_answer(moves: list[tuple[float, float, str]], timeline: dict[str, Any]) -> dict[str, Any]:
    """Load requests sent after a rollback's API answer (and before the next call) that still got the
    version it moved away from: each would be a user seeing the old version after the platform said done.
    Also how long before the answer the load first saw the new version (negative: after it)."""
    labels = timeline["labels"]
    sent = [(at, labels[index]) for at, index in timeline["sent_label"]]
    sent.sort()
    stale = 0
    stale_samples: list[str] = []
    lead_ms: list[float] = []
    for i, (called, answered, to) in enumerate(moves):
        until = moves[i + 1][0] if i + 1 < len(moves) else float("inf")
        first_new = next((at for at, label in sent if called <= at < until and label == to), None)
        if first_new is not None:
            lead_ms.append(round((answered - first_new) * 1000, 3))
        for at, label in sent:
            if answered <= at < until and label != to:
                stale += 1
                if len(stale_samples) < 5:
                    stale_samples.append(
                        f"switch {i + 1} to {to}: got {label} {1000 * (at - answered):.2f} ms late"
                    )
    return {
        "requests": stale,
        "samples": stale_samples,
        "new_version_seen_before_answer_ms": {
            "p50": percentile(lead_ms, 50),
            "min": min(lead_ms) if lead_ms else None,
            "max": max(lead_ms) if lead_ms else None,
        },
    }


# -- report --------------------------------------------------------------------------------------------
def app_versions(anchor: Anchor) -> dict[str, Any]:
    found: dict[str, Any] = {}
    python = env_python(anchor, "flask")
    if python is not None:
        code = "from importlib.metadata import version as v; print(v('uvicorn'), v('flask'), v('h11'))"
        out = _command_output([str(python), "-c", code]).split()
        if len(out) == 3:
            found.update({"uvicorn_in_app_env": out[0], "flask": out[1], "h11": out[2]})
    return found


def machine(caddy: str) -> dict[str, Any]:
    facts = machine_facts(caddy)
    from importlib.metadata import PackageNotFoundError, version

    for package in ("uvicorn", "uvloop", "httpx"):
        try:
            facts[package] = version(package)
        except PackageNotFoundError:
            facts[package] = None
    return facts


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, value: Any, goal: str, met: bool | None) -> None:
        found.append({"name": name, "value": value, "target": goal, "met": met})

    cold = results.get("cold")
    if cold:
        p50, worst = cold["cold_s"]["p50"], cold["cold_s"]["max"]
        add("cold start p50 (s)", p50, "< 2 s", p50 is not None and p50 < 2)
        add("cold start max (s)", worst, "< 2 s", worst is not None and worst < 2)
        dupes = cold.get("cold_response_duplicate_headers")
        if dupes is not None:
            add("duplicate headers in a cold-start response", ", ".join(dupes) or "none", "none", not dupes)
    live = results.get("live")
    if live:
        p50, worst = live["total_s"]["p50"], live["total_s"]["max"]
        add("deploy-to-live p50, code-only change (s)", p50, "< 3 s", p50 is not None and p50 < 3)
        add("deploy-to-live max (s)", worst, "< 3 s", worst is not None and worst < 3)
    edge = results.get("throughput")
    if edge:
        ratio = edge["ratios"]["edge/direct, median of per-round ratios"]
        add(
            "req/s edge / direct worker socket (median of back-to-back rounds)",
            ratio,
            ">= 0.7",
            ratio is not None and ratio >= 0.7,
        )
    switch = results.get("switch")
    if switch:
        failed = switch["failed_requests"] + switch["api_errors"] + switch["not_visible_within_2s"]
        add(f"failed requests during {switch['switches']} switches under load", failed, "0", failed == 0)
        stale = switch.get("stale_requests_after_answer")
        if stale is not None:
            add(
                "load requests sent after a rollback answered that got the old version",
                stale,
                "0",
                stale == 0,
            )
        visible = switch["visible_after_answer_ms"]
        add(
            "switch visibility after API answer p50 / p99 (ms)",
            f"{visible['p50']} / {visible['p99']}",
            "-",
            None,
        )
    if results.get("reference"):
        from app_phases import reference_targets

        reference_targets(results["reference"], add)
    return found


def render(results: dict[str, Any]) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    m = results["machine"]
    out.print(
        f"anchor-deploy apps benchmark  {results['started_at']}  nproc={m['nproc']}  python {m['python']}  "
        f"{m['caddy'].split()[0]}  uvicorn {m.get('uvicorn_in_app_env') or m.get('uvicorn')}"
    )
    out.print(f"load average start {m['loadavg_start']}  end {m.get('loadavg_end')}")

    cold = results.get("cold")
    if cold:
        table = Table(title=f"1. cold start of a Flask app on its immutable URL ({cold['cold_s']['n']} runs)")
        for col in (
            "p50 s",
            "min s",
            "max s",
            "next request p50 ms",
            "python start s",
            "import flask+uvicorn s",
        ):
            table.add_column(col, justify="right", no_wrap=True)
        c = cold["cold_s"]
        table.add_row(
            str(c["p50"]),
            str(c["min"]),
            str(c["max"]),
            str(cold["warm_next_request_ms"]["p50"]),
            str(cold["floors"].get("python_startup_s", "-")),
            str(cold["floors"].get("import_flask_and_uvicorn_s", "-")),
        )
        out.print(table)

    live = results.get("live")
    if live:
        table = Table(title="2. deploy-to-live of a code-only change (Flask, warm environment), seconds")
        for col in ("via", "runs", "p50", "min", "max"):
            table.add_column(col, justify="right", no_wrap=True)
        for label, key in (
            ("deploy() in process", "total_s"),
            ("anchor deploy (CLI process)", "cli_total_s"),
        ):
            s = live[key]
            if s["n"]:
                table.add_row(label, str(s["n"]), str(s["p50"]), str(s["min"]), str(s["max"]))
        out.print(table)
        out.print(
            "median breakdown (s): " + ", ".join(f"{k} {v}" for k, v in live["median_breakdown_s"].items())
        )

    edge = results.get("throughput")
    if edge:
        table = Table(
            title=f"3. raw ASGI app, {edge['body_bytes']}-byte body, {edge['connections']} keep-alive "
            f"connections, {edge['seconds']:g}s x{edge['rounds']} (medians)"
        )
        for col in (
            "path",
            "req/s",
            "p50 ms",
            "p99 ms",
            "failed",
            "loadgen CPU",
            "worker µs/req",
            "caddy µs/req",
            "others, cores",
        ):
            table.add_column(col, justify="right", no_wrap=True)
        for name, s in edge["summary"].items():
            cpu = s["server_cpu_us_per_response_median"]
            table.add_row(
                name,
                *median_cells(s),
                str(s["failed"]),
                str(
                    s["loadgen_cpu_fraction_median"] if s["loadgen_cpu_fraction_median"] is not None else "-"
                ),
                str(cpu.get("worker", "-")),
                str(cpu.get("caddy", "-")),
                str(s["other_cpu_cores_median"]),
            )
        for name, s in edge.get("loadgen_ceiling", {}).items():
            table.add_row(
                f"ceiling: nginx {name}",
                f"{s['requests_per_s']:.0f}",
                str(s["latency_ms"]["p50"]),
                str(s["latency_ms"]["p99"]),
                str(s["failed"]),
                str(s["loadgen_cpu_fraction"]),
                "-",
                "-",
                str(s.get("other_cpu_cores", "-")),
            )
        out.print(table)
        out.print("ratios: " + ", ".join(f"{k} = {v}" for k, v in edge["ratios"].items()))
        out.print(f"edge/direct per round (back to back): {edge['edge_direct_ratio_per_round']}")

    switch = results.get("switch")
    if switch:
        load = switch["load"]
        table = Table(title=f"4. {switch['switches']} production switches (rollbacks A<->B) under load, ms")
        for col in (
            "api p50",
            "api p99",
            "visible p50",
            "visible p99",
            "visible max",
            "load req",
            "load req/s",
            "served A/B",
            "failed",
            "stale after answer",
        ):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_row(
            str(switch["api_ms"]["p50"]),
            str(switch["api_ms"]["p99"]),
            str(switch["visible_after_answer_ms"]["p50"]),
            str(switch["visible_after_answer_ms"]["p99"]),
            str(switch["visible_after_answer_ms"]["max"]),
            str(load["responses"]),
            str(load["requests_per_s"]),
            f"{load['served'].get('A', 0)}/{load['served'].get('B', 0)}",
            str(switch["failed_requests"] + switch["api_errors"] + switch["not_visible_within_2s"]),
            str(switch.get("stale_requests_after_answer", "-")),
        )
        out.print(table)
        lead = switch.get("stale_after_answer", {}).get("new_version_seen_before_answer_ms")
        if lead:
            out.print(
                "the load saw the new version this long before the API answered (ms): "
                f"p50 {lead['p50']}, min {lead['min']}, max {lead['max']}"
            )

    if results.get("reference"):
        from app_phases import render_reference

        render_reference(out, results["reference"])

    table = Table(title="targets")
    for col in ("target", "value", "goal", "met"):
        table.add_column(col)
    for t in results["targets"]:
        table.add_row(
            t["name"], str(t["value"]), t["target"], {True: "yes", False: "NO", None: "-"}[t["met"]]
        )
    out.print(table)


# -- main ----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter loads: a smoke run")
    parser.add_argument("--cold-runs", type=int, help="cold starts (default 7)")
    parser.add_argument("--live-runs", type=int, help="timed deploy() calls (default 5)")
    parser.add_argument("--cli-runs", type=int, help="timed `anchor deploy` processes after them (default 2)")
    parser.add_argument("--load-seconds", type=float, help="seconds per throughput run (default 5)")
    parser.add_argument("--load-rounds", type=int, help="interleaved throughput rounds (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument(
        "--wrk-threads", type=int, default=1, help="wrk threads for the cross-check (default 1)"
    )
    parser.add_argument("--switches", type=int, help="production switches under load (default 50)")
    parser.add_argument("--switch-connections", type=int, default=8)
    parser.add_argument(
        "--switch-rate", type=float, default=1000.0, help="total load req/s during switches, 0 = closed loop"
    )
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between two switches (default 0.1)")
    parser.add_argument("--idle-timeout", type=float, default=1.0, help="ANCHOR_IDLE_TIMEOUT (default 1 s)")
    parser.add_argument("--wheelhouse", type=Path, default=WHEELHOUSE, help="offline wheels for app builds")
    parser.add_argument(
        "--edges",
        default="caddy,nginx",
        help="the platform's edges for the reference part, caddy first (default caddy,nginx)",
    )
    parser.add_argument("--nginx", help="nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
    parser.add_argument(
        "--caddy", default=Settings().caddy_bin, help="Caddy binary (default: the pinned one)"
    )
    parser.add_argument(
        "--only",
        choices=("cold", "live", "throughput", "switch", "reference"),
        action="append",
        help="run only these parts (repeatable; default all)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default bench/results/apps.json; apps-quick.json for --quick, apps-partial.json "
        "for --only, so a smoke run never overwrites a full run's numbers)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp work dir (data dir, logs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    from edge_phases import edges_to_run, nginx_binary

    try:
        args.edges = edges_to_run(args.edges)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--edges: {exc}")
    args.nginx = args.nginx or nginx_binary()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = RESULTS.with_name(
            "apps-quick.json" if args.quick else ("apps-partial.json" if args.only else RESULTS.name)
        )
    if not (
        1 <= args.cold_runs <= 100
        and 1 <= args.live_runs <= 100
        and 0 <= args.cli_runs <= 20
        and 0.5 <= args.load_seconds <= 120
        and 1 <= args.load_rounds <= 20
        and 1 <= args.connections <= 512
        and 2 <= args.switches <= 1000
        and 1 <= args.switch_connections <= 256
        and 0.1 <= args.idle_timeout <= 30
    ):
        parser.error("a count or duration is out of its range (see --help)")
    wheels = list(args.wheelhouse.glob("*.whl")) if args.wheelhouse.is_dir() else []
    if not any(w.name.lower().startswith("flask-") for w in wheels):
        parser.error(
            f"no flask wheel in {args.wheelhouse}; make the wheelhouse first (docs/benchmarks.md, Apps): "
            f"pip download -d {args.wheelhouse} uvicorn==<the platform's version> flask"
        )
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = set(args.only or ("cold", "live", "throughput", "switch", "reference"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine(args.caddy),
        "notes": ["the machine was shared with other test runs; compare ratios within one run"],
    }
    work = Path(tempfile.mkdtemp(prefix="anchor-bench-apps-"))
    anchor = Anchor(
        work / "data",
        extra_env={
            "ANCHOR_PIP_ARGS": f"--no-index --find-links {args.wheelhouse.resolve()}",
            "ANCHOR_IDLE_TIMEOUT": f"{args.idle_timeout:g}",
        },
    )
    cleanup: list[Callable[[], None]] = []
    servers: list[Server] = []
    say(f"work dir {work}; starting anchor up (API {anchor.api_url}, edge {anchor.edge_url})")
    started = time.perf_counter()
    keep = args.keep
    interrupted = False
    client: ApiClient | None = None
    try:
        anchor.start()
        client = ApiClient(anchor.api_url, anchor.token)
        if "cold" in parts:
            results["cold"] = cold_phase(anchor, client, work, args)
        if "live" in parts:
            results["live"] = live_phase(anchor, client, work, args)
        if "throughput" in parts:
            results["throughput"] = throughput_phase(anchor, client, work, args, servers, cleanup)
        if "switch" in parts:
            results["switch"] = switch_phase(anchor, client, work, args, cleanup)
        if "reference" in parts:  # last: it restarts the platform on each edge
            from app_phases import reference_phase

            results["reference"] = reference_phase(anchor, client, work, args, servers, cleanup)
        results["machine"].update(app_versions(anchor))
    except KeyboardInterrupt:
        interrupted = True
        raise
    except BaseException:
        keep = True  # the logs explain the failure
        say(f"failed; logs are kept in {work} (anchor-up.log, data/logs/)")
        with contextlib.suppress(Exception):
            say(f"anchor up log ends with:\n{tail(anchor.log, 2000)}")
        raise
    finally:
        if client is not None:
            client.close()
        for server in reversed(servers):
            stop_server(server)
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                step()
        anchor.stop()
        stray_workers(work)
        leftovers = leftover_children()
        if leftovers:
            say(f"warning: child processes still running: {leftovers}")
        if interrupted and not keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = loadavg()
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = targets(results)
    if keep:
        results["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return results


def stray_workers(work: Path) -> None:
    """App workers run in their own sessions; `anchor up` stops them, but make sure none of ours is left."""
    marker = str(work)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and marker in _cmdline(int(entry.name)):
            say(f"warning: process {entry.name} still runs after anchor up stopped; killing it")
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_and_report(args, run, render)
    if results is None:
        return 130
    return 1 if args.strict and not all(t["met"] in (True, None) for t in results["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
