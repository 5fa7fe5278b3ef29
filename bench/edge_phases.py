"""Issue 14's edge benchmarks, used by bench_core.py: the platform on each of its two edges (Caddy, nginx).

The platform runs on one data dir; to measure it on the other edge, ``switch_edge`` stops ``anchor up`` and
starts it again with ``ANCHOR_EDGE`` set (no second setup of the projects). Which server really answers on
the edge port is read from the kernel (the processes holding the listening socket), so a build that ignores
``ANCHOR_EDGE`` is reported as such instead of being measured as nginx.

  * ``static_phase``: 1 KiB and 100 KiB files, wrk, interleaved rounds, the platform on one edge vs the
    same server run bare on the same files (a bare Caddy ``file_server``, or nginx as a user would set it
    up); req/s, latency and server CPU per request;
  * ``render_rollback`` / ``rollback_targets`` and ``render_static`` / ``static_targets``: the tables and
    targets of the rollback (per edge, 1 and N projects) and static results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench_core import (
    BASE_DOMAIN,
    Anchor,
    BenchSite,
    Server,
    deploy_by_hand,
    free_port,
    loadavg,
    median_cells,
    production_of,
    rollback_phase,
    run_wrk,
    say,
    server_cpu_seconds,
    setup_projects,
    start_bare_caddy,
    start_plain_nginx,
    stop_server,
)

EDGES = ("caddy", "nginx")
STATIC_PROJECT = "static"
STATIC_FILES = {"1k.html": 1024, "100k.html": 100 * 1024}  # path -> size in bytes
CALL_TO_EDGE_P99_MS = 5.0
ROLLBACK_API_P99_MS = 50.0
STATIC_RATIO = 0.8

# nginx as a user would write it for static files (the reference the platform on nginx is held to).
USER_NGINX_HTTP = """    types { text/html html; }
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    etag on;"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def static_file(path: str, size: int) -> bytes:
    """An HTML page of exactly ``size`` bytes, its name in it."""
    head = f"<!doctype html><title>{path}</title><p>static {path}</p><!--".encode()
    tail = b"-->\n"
    filler = (b"0123456789abcdef" * (size // 16 + 1))[: size - len(head) - len(tail)]
    return head + filler + tail


def make_static_project(anchor: Anchor) -> dict[str, bytes]:
    """The project the static phase reads: one deployment with a 1 KiB and a 100 KiB file (and an index
    page, which the bare servers are checked on when they start)."""
    files = {path: static_file(path, size) for path, size in {"index.html": 200, **STATIC_FILES}.items()}
    with anchor.api() as api:
        api.post("/v1/projects", json={"name": STATIC_PROJECT}).raise_for_status()
        deploy_by_hand(api, STATIC_PROJECT, files)
    return files


# -- which edge answers --------------------------------------------------------------------------------
def listening_processes(port: int) -> dict[int, str]:
    """pid -> command name of every process holding the TCP socket that listens on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if _fd_links(entry / "fd") & inodes:
                found[int(entry.name)] = (entry / "comm").read_text().strip()
        except OSError:
            continue  # gone, or not ours to read
    return found


def _fd_links(folder: Path) -> set[str]:
    """What a process's open files point at; one closed meanwhile is skipped, not the whole process."""
    links = set()
    for fd in folder.iterdir():
        try:
            links.add(os.readlink(fd))
        except OSError:
            continue
    return links


def edge_kind(processes: dict[int, str]) -> str | None:
    names = {name.split()[0].rstrip(":") for name in processes.values()}
    return next((edge for edge in EDGES if any(n.startswith(edge) for n in names)), None)


def switch_edge(anchor: Anchor, edge: str, nginx: str | None) -> dict[str, Any]:
    """Stop ``anchor up`` and start it again on the same data dir with ``edge``; what now answers on the
    edge port and how long the restart took. Raises RuntimeError if the platform does not come up."""
    started = os.times().elapsed
    anchor.stop()
    anchor.extra_env.pop("ANCHOR_EDGE", None)
    anchor.extra_env.pop("ANCHOR_NGINX_BIN", None)
    if edge != "caddy":
        anchor.extra_env["ANCHOR_EDGE"] = edge
        if nginx:
            anchor.extra_env["ANCHOR_NGINX_BIN"] = nginx
    anchor.start(timeout=600)
    processes = listening_processes(anchor.http_port)
    return {
        "edge": edge,
        "serving": edge_kind(processes),
        "processes": sorted(set(processes.values())),
        "restart_s": round(os.times().elapsed - started, 1),
    }


def serving_edge(anchor: Anchor) -> tuple[str | None, list[int]]:
    processes = listening_processes(anchor.http_port)
    return edge_kind(processes), sorted(processes)


# -- static files --------------------------------------------------------------------------------------
def start_user_nginx(binary: str, root: Path, work: Path) -> Server:
    server = f"""        server_name _;
        root {root};
        index index.html;"""
    started = start_plain_nginx(binary, work / "bare-nginx", free_port(), USER_NGINX_HTTP, server)
    started.name = "bare-nginx"
    return started


def static_root(anchor: Anchor, files: dict[str, bytes], work: Path) -> Path:
    """The deployment's own public folder if the platform keeps one, else a copy of the same files."""
    with anchor.api() as api:
        serving = production_of(api, STATIC_PROJECT)
    public = anchor.data_dir / "deployments" / serving / "public"
    if all((public / p).is_file() and (public / p).read_bytes() == b for p, b in files.items()):
        return public
    copy = work / "static-files"
    copy.mkdir(exist_ok=True)
    for path, body in files.items():
        (copy / path).write_bytes(body)
    return copy


def _measure(wrk: str, server: Server, path: str, args: argparse.Namespace) -> dict[str, Any]:
    host = f"{STATIC_PROJECT}.{BASE_DOMAIN}"
    cpu_before = server_cpu_seconds(server)
    measured = run_wrk(wrk, server.url + path, host, args.wrk_seconds, args.wrk_threads, args.wrk_connections)
    cpu = server_cpu_seconds(server) - cpu_before
    n = measured["requests"]
    measured["server_cpu_us_per_request"] = round(cpu / n * 1e6, 1) if n else None
    measured["loadavg_after"] = loadavg()
    return measured


def static_phase(
    anchor: Anchor,
    edge: str,
    files: dict[str, bytes],
    work: Path,
    args: argparse.Namespace,
    servers: list[Server],
) -> dict[str, Any]:
    """The platform on ``edge`` vs the same server bare on the same files, each file size, wrk rounds
    interleaved (the order rotates every round)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install -y wrk)"}
    kind, pids = serving_edge(anchor)
    if kind != edge:
        return {"skipped": f"the platform's edge port is served by {kind}, not {edge}"}
    root = static_root(anchor, files, work)
    platform_ = Server(f"platform-{edge}", f"{anchor.edge_url}/", extra_pids=pids)
    if edge == "caddy":
        bare = start_bare_caddy(args.caddy, root, work)
    else:
        assert args.nginx is not None
        bare = start_user_nginx(args.nginx, root, work)
    servers.append(bare)
    pair = [platform_, bare]
    host = f"{STATIC_PROJECT}.{BASE_DOMAIN}"
    try:
        for server in pair:
            for path, body in files.items():
                got = httpx.get(server.url + path, headers={"Host": host}, timeout=5)
                if got.status_code != 200 or got.content != body:
                    raise RuntimeError(f"{server.name} does not serve {path} ({len(body)} bytes)")
        say(
            f"static, {edge}: wrk -t{args.wrk_threads} -c{args.wrk_connections} -d{args.wrk_seconds:g}s, "
            f"{args.wrk_rounds} round(s), {', '.join(STATIC_FILES)} on {platform_.name} and {bare.name}"
        )
        for server in pair:  # warm-up, not recorded
            for path in STATIC_FILES:
                run_wrk(wrk, server.url + path, host, 1, args.wrk_threads, args.wrk_connections)
        rounds: dict[str, dict[str, list[dict[str, Any]]]] = {
            p: {s.name: [] for s in pair} for p in STATIC_FILES
        }
        for r in range(args.wrk_rounds):
            for path in STATIC_FILES:
                for server in pair[r % 2 :] + pair[: r % 2]:
                    measured = _measure(wrk, server, path, args)
                    rounds[path][server.name].append(measured)
                    say(
                        f"  round {r + 1} {path} {server.name}: {measured['requests_per_s']:.0f} req/s, "
                        f"p99 {measured.get('p99_ms')} ms, {measured['server_cpu_us_per_request']} µs CPU/req"
                    )
    finally:
        stop_server(bare)
        servers.remove(bare)
    return summarize_static(edge, files, rounds, args, platform_.name, bare.name)


def summarize_static(
    edge: str,
    files: dict[str, bytes],
    rounds: dict[str, dict[str, list[dict[str, Any]]]],
    args: argparse.Namespace,
    platform_name: str,
    bare_name: str,
) -> dict[str, Any]:
    by_file: dict[str, Any] = {}
    for path, per_server in rounds.items():
        servers = {name: _server_summary(runs) for name, runs in per_server.items()}
        rps = {name: s["requests_per_s_median"] for name, s in servers.items()}
        cpu = {name: s["server_cpu_us_per_request_median"] for name, s in servers.items()}
        by_file[path] = {
            "bytes": len(files[path]),
            "servers": servers,
            "ratio_rps": round(rps[platform_name] / rps[bare_name], 3) if rps[bare_name] else None,
            # bare CPU / platform CPU per request: higher is better, like req/s, and steadier on a shared box
            "ratio_cpu_efficiency": round(cpu[bare_name] / cpu[platform_name], 3)
            if cpu[platform_name] and cpu[bare_name]
            else None,
        }
    return {
        "edge": edge,
        "platform": platform_name,
        "bare": bare_name,
        "wrk": {
            "threads": args.wrk_threads,
            "connections": args.wrk_connections,
            "seconds": args.wrk_seconds,
            "rounds": args.wrk_rounds,
        },
        "files": by_file,
    }


def _server_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests_per_s_median": round(statistics.median(x["requests_per_s"] for x in runs), 1),
        "p50_ms_median": round(statistics.median(x.get("p50_ms", 0) for x in runs), 3),
        "p99_ms_median": round(statistics.median(x.get("p99_ms", 0) for x in runs), 3),
        "errors": sum(x["non_2xx_3xx"] + x["socket_errors"] for x in runs),
        "server_cpu_us_per_request_median": statistics.median(
            x["server_cpu_us_per_request"] or 0 for x in runs
        ),
        "rounds": runs,
    }


# -- targets and tables --------------------------------------------------------------------------------
Add = Callable[[str, Any, str, bool | None], None]


def failed_count(phase: dict[str, Any]) -> int:
    loaded = phase["loaded"]
    return int(phase["load"]["failed"] + loaded["api_errors"] + loaded["not_visible_within_s"]["count"])


def edge_targets(edges: dict[str, Any], add: Add) -> None:
    """A row for an edge that could not be measured, so the targets table says so."""
    for edge, found in edges.items():
        if found.get("skipped"):
            add(f"{edge}: edge measured", f"skipped: {found['skipped'][:200]}", "measured", None)


def rollback_targets(rollback: dict[str, Any], add: Add) -> None:
    for edge in EDGES:
        phases = rollback.get(edge) or {}
        visible_p99s = {}
        for key in ("one", "many"):
            phase = phases.get(key)
            if not phase:
                continue
            loaded, n = phase["loaded"], phase["projects"]
            api_p99 = loaded["api_ms"]["p99"]
            add(
                f"{edge}: rollback API p99 (ms), {n} project(s), under load",
                api_p99,
                f"< {ROLLBACK_API_P99_MS:g} ms",
                api_p99 is not None and api_p99 < ROLLBACK_API_P99_MS,
            )
            visible = loaded["visible_ms"]["p99"]
            visible_p99s[key] = visible
            add(
                f"{edge}: rollback call -> edge serves new, p99 (ms), {n} project(s), under load",
                visible,
                f"<= {CALL_TO_EDGE_P99_MS:g} ms",
                visible is not None and visible <= CALL_TO_EDGE_P99_MS,
            )
            failed = failed_count(phase)
            add(f"{edge}: failed requests during switches, {n} project(s)", failed, "0", failed == 0)
        if len(visible_p99s) == 2 and all(visible_p99s.values()):
            ratio = round(max(visible_p99s.values()) / min(visible_p99s.values()), 2)
            add(f"{edge}: call->edge p99, N projects vs 1 (larger/smaller)", ratio, "<= 1.5", ratio <= 1.5)


def static_targets(static: dict[str, Any], add: Add) -> None:
    for edge in EDGES:
        phase = static.get(edge)
        if not phase or "files" not in phase:
            continue
        for path, found in phase["files"].items():
            ratio = found["ratio_rps"]
            add(
                f"{edge}: static {path} req/s, platform / {phase['bare']}",
                ratio,
                f">= {STATIC_RATIO:g}",
                ratio is not None and ratio >= STATIC_RATIO,
            )


def render_edges(out: Console, edges: dict[str, Any]) -> None:
    """Which edge each part ran on, and why an edge was skipped."""
    for edge, found in edges.items():
        if found.get("skipped"):
            out.print(f"edge {edge}: skipped: {found['skipped']}")
        elif found.get("restart_s") is not None:
            out.print(f"edge {edge}: serving {found['serving']} after a {found['restart_s']} s restart")
        elif (found.get("restart") or {}).get("restart_s") is not None:
            out.print(
                f"edge {edge}: back on {found['restart']['serving']} after {found['restart']['restart_s']} s"
            )


def render_rollback(out: Console, rollback: dict[str, Any]) -> None:
    table = Table(
        title="1. rollback under keep-alive load (ms): the API call, and from the call until the edge "
        "serves the new body"
    )
    columns = ("edge", "projects", "api p50", "api p99", "call->edge p50", "call->edge p99", "max")
    for col in (*columns, "after answer p99", "load req", "load req/s", "failed", "etag≠body"):
        table.add_column(col, justify="right", no_wrap=True)
    for edge in EDGES:
        for key in ("one", "many"):
            phase = (rollback.get(edge) or {}).get(key)
            if not phase:
                continue
            data, load = phase["loaded"], phase["load"]
            after = data.get("after_answer_ms", {}).get("p99", "-")
            table.add_row(
                edge,
                str(phase["projects"]),
                *(str(data["api_ms"][k]) for k in ("p50", "p99")),
                *(str(data["visible_ms"][k]) for k in ("p50", "p99", "max")),
                str(after),
                str(load["requests"]),
                str(load["requests_per_s"]),
                str(failed_count(phase)),
                str(load["etag_mismatch"]),
            )
    out.print(table)
    for edge in EDGES:
        for key in ("one", "many"):
            idle = ((rollback.get(edge) or {}).get(key) or {}).get("idle")
            if idle:
                out.print(
                    f"{edge}, no load, {key}: "
                    f"api p50/p99 {idle['api_ms']['p50']}/{idle['api_ms']['p99']} ms, "
                    f"call->edge p50/p99 {idle['visible_ms']['p50']}/{idle['visible_ms']['p99']} ms"
                )


def render_static(out: Console, static: dict[str, Any]) -> None:
    for edge in EDGES:
        phase = static.get(edge)
        if not phase:
            continue
        if "files" not in phase:
            out.print(f"static, {edge}: skipped: {phase.get('skipped')}")
            continue
        w = phase["wrk"]
        table = Table(
            title=f"static files on {edge}, wrk -t{w['threads']} -c{w['connections']} -d{w['seconds']:g}s "
            f"x{w['rounds']} (medians, interleaved)"
        )
        for col in ("file", "server", "req/s", "p50 ms", "p99 ms", "server CPU µs/req", "errors"):
            table.add_column(col, justify="right", no_wrap=True)
        for path, found in phase["files"].items():
            for name, s in found["servers"].items():
                table.add_row(
                    path,
                    name,
                    *median_cells(s),
                    str(s["server_cpu_us_per_request_median"]),
                    str(s["errors"]),
                )
        out.print(table)
        out.print(
            "platform / bare: "
            + ", ".join(
                f"{path} req/s {f['ratio_rps']}, CPU efficiency {f['ratio_cpu_efficiency']}"
                for path, f in phase["files"].items()
            )
        )


def edges_to_run(value: str) -> list[str]:
    edges = [e.strip() for e in value.split(",") if e.strip()]
    unknown = [e for e in edges if e not in EDGES]
    if not edges or unknown or edges[0] != "caddy":
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(EDGES)}, caddy first")
    return edges


# -- the run on both edges -----------------------------------------------------------------------------
def measure_edges(
    anchor: Anchor,
    site: BenchSite,
    work: Path,
    args: argparse.Namespace,
    parts: set[str],
    results: dict[str, Any],
    cleanup: list[Callable[[], None]],
    servers: list[Server],
) -> None:
    """Rollback at 1 project on Caddy then nginx, the N-project setup, rollback at N projects and static
    files on nginx, then back to Caddy for the same there: three starts of one data dir. Ends on Caddy."""
    rollback: dict[str, Any] = results.setdefault("rollback", {}) if "rollback" in parts else {}
    static: dict[str, Any] = results.setdefault("static", {}) if "edge" in parts else {}
    files = make_static_project(anchor) if "edge" in parts else {}
    edges: dict[str, Any] = results.setdefault("edges", {})
    edges["caddy"] = {"serving": serving_edge(anchor)[0]}
    many = "rollback" in parts and args.projects > 1
    if "rollback" in parts:
        rollback["caddy"] = {"one": rollback_phase(anchor, site, 1, args, cleanup)}
    on_nginx = "nginx" in args.edges and try_edge(anchor, "nginx", args, edges)
    if on_nginx and "rollback" in parts:
        rollback["nginx"] = {"one": rollback_phase(anchor, site, 1, args, cleanup)}
    if many:  # N projects in all: bench, static (if made) and the rest
        total = args.projects - (1 if files else 0)
        say(f"setup: creating {total - 1} more projects, one deployment each")
        rollback["setup"] = setup_projects(anchor, total, args.setup_workers)
        say(f"  all READY after {rollback['setup']['until_all_ready_s']} s")
    if on_nginx:
        if many:
            rollback["nginx"]["many"] = rollback_phase(anchor, site, args.projects, args, cleanup)
        if "edge" in parts:
            static["nginx"] = static_phase(anchor, "nginx", files, work, args, servers)
        say("restarting anchor up on the same data dir with the Caddy edge")
        edges["caddy"]["restart"] = switch_edge(anchor, "caddy", args.nginx)
    if many:
        rollback["caddy"]["many"] = rollback_phase(anchor, site, args.projects, args, cleanup)
    if "edge" in parts:
        static["caddy"] = static_phase(anchor, "caddy", files, work, args, servers)


def try_edge(anchor: Anchor, edge: str, args: argparse.Namespace, edges: dict[str, Any]) -> bool:
    """Restart the platform on ``edge``; False (and the reason in ``edges``, the platform back on Caddy)
    if it cannot start or the edge port is still served by something else."""
    if args.nginx is None:
        edges[edge] = {"skipped": "nginx is not installed (apt-get install -y nginx-light)"}
        return False
    say(f"restarting anchor up on the same data dir with ANCHOR_EDGE={edge}")
    try:
        edges[edge] = switch_edge(anchor, edge, args.nginx)
    except RuntimeError as exc:
        edges[edge] = {"skipped": f"anchor up did not start with ANCHOR_EDGE={edge}: {str(exc)[-600:]}"}
        say(f"  {edges[edge]['skipped']}")
        edges["caddy"]["restart"] = switch_edge(anchor, "caddy", args.nginx)
        return False
    if edges[edge]["serving"] != edge:
        served_by = edges[edge]["serving"]
        edges[edge]["skipped"] = (
            f"ANCHOR_EDGE={edge} had no effect: the edge port is served by {served_by} (no {edge} edge "
            "in this build)"
        )
        say(f"  {edges[edge]['skipped']}")
        anchor.extra_env.pop("ANCHOR_EDGE", None)
        anchor.extra_env.pop("ANCHOR_NGINX_BIN", None)
        return False
    return True
