"""Issue 14's app benchmark, used by bench_apps.py (``--only reference``): a trivial ASGI endpoint through the
platform's edge, on Caddy and then on nginx (the same data dir restarted with ANCHOR_EDGE=nginx), against a
hand-configured reference nginx proxying to the SAME worker's unix socket (upstream keep-alive 32, HTTP/1.1,
``Connection ""``); and, in the same run, the worker's HTTP stack before and after issue 14: uvicorn on
h11 + asyncio against uvicorn on httptools + uvloop, both started by hand (no sandbox) on the same app
code, each hit directly on its unix socket and through the reference nginx.

Every load run uses bench/loadgen.py in its own process; edge and reference always run back to back (the
order alternating by round), so each round gives a paired ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from anchor_deploy.cli.client import ApiClient
from anchor_deploy.model.names import production_host
from bench_apps import (
    ASGI_REQUIREMENTS,
    asgi_app,
    deploy_app,
    load_run,
    median,
    serves,
    wait_until,
    worker_pid,
    worker_socket,
    write_app,
)
from bench_core import (
    BASE_DOMAIN,
    LOOPBACK,
    Anchor,
    Server,
    _parent_death_signal,
    free_port,
    median_cells,
    say,
    start_plain_nginx,
    stop_process,
    stop_server,
    tail,
)
from edge_phases import nginx_binary, serving_edge, switch_edge
from loadgen import LoadConfig

PROJECT = "fast"
BODY = "ok\n"
REFERENCE_RATIO = 0.9
STACKS = {"before": ("asyncio", "h11"), "after": ("uvloop", "httptools")}  # name -> (--loop, --http)


def worker_stack(pid: int | None) -> dict[str, bool] | None:
    """Which fast HTTP pieces a running uvicorn has loaded (its memory maps name their shared objects)."""
    if pid is None:
        return None
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    return {"uvloop": "/uvloop/" in maps, "httptools": "/httptools/" in maps}


# -- the reference nginx and the hand-started workers --------------------------------------------------
def reference_server(port: int, sock: Path, name: str) -> str:
    """One server block: nginx -> a uvicorn's unix socket, as a user would write it for speed."""
    return f"""    upstream {name} {{
        server unix:{sock};
        keepalive 32;
    }}
    server {{
        listen {LOOPBACK}:{port};
        location / {{
            proxy_pass http://{name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}"""


def start_reference_nginx(binary: str, work: Path, sockets: dict[str, Path]) -> tuple[Server, dict[str, str]]:
    """One nginx, one port per upstream socket; name -> "127.0.0.1:port"."""
    ports = {name: free_port() for name in sockets}
    first, *rest = sockets
    blocks = "\n".join(reference_server(ports[n], sockets[n], n.replace("-", "_")) for n in rest)
    http = f"""    default_type text/plain;
    upstream {first.replace("-", "_")} {{
        server unix:{sockets[first]};
        keepalive 32;
    }}
{blocks}"""
    server = f"""        location / {{
            proxy_pass http://{first.replace("-", "_")};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}"""
    started = start_plain_nginx(binary, work / "reference-nginx", ports[first], http, server)
    started.name = "reference-nginx"
    return started, {name: f"{LOOPBACK}:{port}" for name, port in ports.items()}


def start_hand_worker(app_dir: Path, stack: str, sock: Path, log: Path) -> subprocess.Popen[bytes]:
    """uvicorn on ``app_dir``'s app with the given loop and HTTP parser, from this Python (no sandbox)."""
    loop, http = STACKS[stack]
    cmd = [sys.executable, "-m", "uvicorn", "app:app", "--uds", str(sock), "--loop", loop, "--http", http]
    cmd += ["--no-access-log", "--log-level", "warning", "--app-dir", str(app_dir)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=app_dir,
            preexec_fn=_parent_death_signal,
        )
    deadline = time.monotonic() + 30
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn ({stack}) exited with {proc.returncode}: {tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("http://app/").text == BODY:
                    return proc
            time.sleep(0.05)
    stop_process(proc, f"uvicorn ({stack})")
    raise RuntimeError(f"uvicorn ({stack}) did not answer on {sock}: {tail(log)}")


# -- the phase -----------------------------------------------------------------------------------------
def reference_phase(
    anchor: Anchor,
    client: ApiClient,
    work: Path,
    args: argparse.Namespace,
    servers: list[Server],
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    """Measured on Caddy, then the platform restarts on nginx (if it can) and the edge pair is measured
    again. The platform is left running on whichever edge came last."""
    folder = write_app(work / PROJECT, asgi_app(BODY), ASGI_REQUIREMENTS)
    say("reference: production deploy of a raw ASGI app; the reference nginx and two hand-started uvicorns")
    deployment, _ = deploy_app(client, PROJECT, folder, True, PROJECT)
    deployment_id = deployment["id"]
    host = production_host(PROJECT, BASE_DOMAIN)
    sock = worker_socket(anchor, deployment_id)
    wake_worker(anchor, host)
    nginx = args.nginx or nginx_binary()
    if nginx is None:
        return {"skipped": "nginx is not installed (apt-get install -y nginx-light)"}
    hand: dict[str, subprocess.Popen[bytes]] = {}
    sockets = {"platform-worker": sock}
    for stack in STACKS:
        sockets[stack] = work / f"uvicorn-{stack}.sock"
        hand[stack] = start_hand_worker(folder, stack, sockets[stack], work / f"uvicorn-{stack}.log")
        cleanup.append(lambda proc=hand[stack], name=stack: stop_process(proc, f"uvicorn ({name})"))
    reference, ports = start_reference_nginx(nginx, work, sockets)
    servers.append(reference)
    nginx_pids = [p for p in (reference.proc.pid if reference.proc else None, *reference.extra_pids) if p]
    result: dict[str, Any] = {
        "deployment": deployment_id,
        "connections": args.connections,
        "seconds": args.load_seconds,
        "rounds": args.load_rounds,
        "hand_workers": {
            s: {"loop": STACKS[s][0], "http": STACKS[s][1], "python": sys.executable} for s in STACKS
        },
        "stacks_loaded": {s: worker_stack(p.pid) for s, p in hand.items()},
        "edges": {},
    }
    common = {
        "host": host,
        "path": "/",
        "connections": args.connections,
        "duration": args.load_seconds,
        "warmup": 1.0,
        "expect": {BODY: "ok"},
    }
    try:
        stacks = {}
        for stack, proc in hand.items():
            direct = (LoadConfig(unix=str(sockets[stack]), **common), {"uvicorn": proc.pid})
            proxied = (LoadConfig(tcp=ports[stack], **common), {"uvicorn": proc.pid, **pid_names(nginx_pids)})
            stacks[stack] = {"direct": direct, "via-reference-nginx": proxied}
        result["stacks"] = measure_stacks(stacks, args, cleanup)
        for edge in args.edges:
            if edge != "caddy":
                say(f"reference: restarting anchor up on the same data dir with ANCHOR_EDGE={edge}")
                restart = switch_edge(anchor, edge, nginx)
                if restart["serving"] != edge:
                    result["edges"][edge] = {"skipped": f"the edge port is served by {restart['serving']}"}
                    continue
                wake_worker(anchor, host)
            result["edges"][edge] = measure_edge(
                anchor, edge, deployment_id, ports, nginx_pids, common, args, cleanup
            )
            result["edges"][edge]["worker_stack"] = worker_stack(worker_pid(anchor, deployment_id))
    finally:
        stop_server(reference)
        servers.remove(reference)
        for stack, proc in hand.items():
            stop_process(proc, f"uvicorn ({stack})")
    return result


def wake_worker(anchor: Anchor, host: str) -> None:
    with httpx.Client(base_url=anchor.edge_url, timeout=10) as edge:
        wait_until(lambda: serves(edge, host, BODY.encode()), 60, "the edge to serve the ASGI app")


def pid_names(pids: list[int]) -> dict[str, int | None]:
    return {f"nginx-{i}": pid for i, pid in enumerate(pids)}


def measure_edge(
    anchor: Anchor,
    edge: str,
    deployment_id: str,
    ports: dict[str, str],
    nginx_pids: list[int],
    common: dict[str, Any],
    args: argparse.Namespace,
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    """The platform's edge and the reference nginx, both to the platform's worker, back to back."""
    worker = worker_pid(anchor, deployment_id)
    edge_pids = {f"{edge}-{i}": pid for i, pid in enumerate(serving_edge(anchor)[1])}
    targets = {
        f"platform-{edge}": (
            LoadConfig(tcp=f"{LOOPBACK}:{anchor.http_port}", **common),
            {"worker": worker, **edge_pids},
        ),
        "reference-nginx": (
            LoadConfig(tcp=ports["platform-worker"], **common),
            {"worker": worker, **pid_names(nginx_pids)},
        ),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for r in range(args.load_rounds):
        for name in list(targets)[:: 1 if r % 2 == 0 else -1]:
            config, pids = targets[name]
            measured = load_run(config, pids, cleanup)
            runs[name].append(measured)
            say(
                f"  {edge} round {r + 1} {name}: {measured['requests_per_s']:.0f} req/s, "
                f"failed {measured['failed']}"
            )
    paired = [
        round(e["requests_per_s"] / ref["requests_per_s"], 3)
        for e, ref in zip(runs[f"platform-{edge}"], runs["reference-nginx"], strict=True)
        if ref["requests_per_s"]
    ]
    return {
        "summary": {name: summarize(found) for name, found in runs.items()},
        "ratio_per_round": paired,
        "ratio": median(paired),
        "runs": runs,
    }


def measure_stacks(
    stacks: dict[str, dict[str, tuple[LoadConfig, dict[str, int | None]]]],
    args: argparse.Namespace,
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    """Before and after, each path back to back by round (the order alternating)."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {p: [] for p in paths} for s, paths in stacks.items()
    }
    for r in range(args.load_rounds):
        for path in ("direct", "via-reference-nginx"):
            for stack in list(stacks)[:: 1 if r % 2 == 0 else -1]:
                config, pids = stacks[stack][path]
                measured = load_run(config, pids, cleanup)
                runs[stack][path].append(measured)
                say(
                    f"  worker {stack} {path}: {measured['requests_per_s']:.0f} req/s, "
                    f"failed {measured['failed']}"
                )
    return {
        stack: {path: {**summarize(found), "runs": found} for path, found in paths.items()}
        for stack, paths in runs.items()
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cpu_names = runs[0]["server_cpu_us_per_response"]
    return {
        "requests_per_s_median": median([x["requests_per_s"] for x in runs]),
        "p50_ms_median": median([x["latency_ms"]["p50"] for x in runs if x["latency_ms"]["p50"]]),
        "p99_ms_median": median([x["latency_ms"]["p99"] for x in runs if x["latency_ms"]["p99"]]),
        "failed": sum(x["failed"] for x in runs),
        "server_cpu_us_per_response_median": {
            # nginx's and the edge's processes summed, the worker apart
            group: median(
                [
                    sum(v or 0 for k, v in x["server_cpu_us_per_response"].items() if _group(k) == group)
                    for x in runs
                ]
            )
            for group in sorted({_group(k) for k in cpu_names})
        },
        "loadgen_cpu_fraction_median": median(
            [x["loadgen_cpu_fraction"] for x in runs if x.get("loadgen_cpu_fraction")]
        ),
    }


def _group(name: str) -> str:
    return name.rsplit("-", 1)[0] if name[-1].isdigit() else name


# -- targets and tables --------------------------------------------------------------------------------
def reference_targets(found: dict[str, Any], add: Callable[[str, Any, str, bool | None], None]) -> None:
    for edge, phase in found.get("edges", {}).items():
        ratio = phase.get("ratio")
        add(
            f"{edge}: req/s platform edge / reference nginx -> same worker (median of paired rounds)",
            ratio if ratio is not None else f"skipped: {phase.get('skipped')}",
            f">= {REFERENCE_RATIO:g}",
            None if ratio is None else ratio >= REFERENCE_RATIO,
        )
    stacks = found.get("stacks", {})
    if stacks:
        before = stacks["before"]["direct"]["requests_per_s_median"]
        after = stacks["after"]["direct"]["requests_per_s_median"]
        add(
            "worker req/s direct, before (h11, asyncio) -> after (httptools, uvloop)",
            f"{before:.0f} -> {after:.0f}",
            "-",
            None,
        )


def render_reference(out: Console, found: dict[str, Any]) -> None:
    if "skipped" in found:
        out.print(f"5. reference: skipped: {found['skipped']}")
        return
    table = Table(
        title="5. raw ASGI app: platform edge vs a reference nginx -> the same worker, "
        f"{found['connections']} connections, {found['seconds']:g}s x{found['rounds']} (medians)"
    )
    for col in ("edge", "path", "req/s", "p50 ms", "p99 ms", "failed", "server CPU µs/req", "worker stack"):
        table.add_column(col, justify="right", no_wrap=True)
    for edge, phase in found["edges"].items():
        if "summary" not in phase:
            out.print(f"edge {edge}: skipped: {phase.get('skipped')}")
            continue
        stack = phase.get("worker_stack")
        names = "?" if stack is None else ", ".join(k for k, v in stack.items() if v) or "h11, asyncio"
        for name, s in phase["summary"].items():
            table.add_row(
                edge,
                name,
                *median_cells(s),
                str(s["failed"]),
                _cpu(s),
                names,
            )
    out.print(table)
    out.print(
        "platform / reference: "
        + ", ".join(
            f"{e} {p.get('ratio')} (rounds {p.get('ratio_per_round')})"
            for e, p in found["edges"].items()
            if "ratio" in p
        )
    )
    table = Table(title="the worker's HTTP stack, uvicorn started by hand on the same app (medians)")
    for col in ("stack", "path", "req/s", "p50 ms", "p99 ms", "failed", "server CPU µs/req"):
        table.add_column(col, justify="right", no_wrap=True)
    for stack, paths in found["stacks"].items():
        loop, http = STACKS[stack]
        for path, s in paths.items():
            table.add_row(
                f"{stack} ({http}, {loop})",
                path,
                *median_cells(s),
                str(s["failed"]),
                _cpu(s),
            )
    out.print(table)


def _cpu(summary: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in summary["server_cpu_us_per_response_median"].items())
