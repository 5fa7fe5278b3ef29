#!/usr/bin/env python3
"""Dashboard benchmark of anchor-deploy: page times with a long history; a CLI rollback reaching an open page.

    python bench/bench_dashboard.py [--deployments 5000] [--moves 5000] [--rounds 60] [--rollbacks 10]
                                    [--quick]

Starts `anchor up` on free loopback ports in a temporary data dir (all traffic to 127.0.0.1) and writes
bench/results/dashboard.json (see docs/benchmarks.md, "Dashboard"):
  1. the seed: one project with D READY deployments and M production moves. One real deploy (a small static
     site, as a preview) goes through the API, so its blobs and manifest exist; then the platform is stopped
     and the D deployments and M moves are written with the platform's own SqliteStore (add_deployment,
     move_production) into the data dir's anchor.db, each with that real manifest (so the restarted platform
     builds and serves every one), a commit in meta["git"] and times spread over the past weeks. The pages
     read these same rows through the same services as after D real deploys; only the builds are skipped;
  2. server time of the dashboard's pages, signed in through the real /ui/sign-in form: the project's
     deployments (page 1 and a deep page), its production history (page 1 and a deep page) and the projects
     page, R rounds each, interleaved, over one kept-alive loopback connection (the first 5 are warm-up);
  3. a rollback from the real CLI (`anchor rollback P --to ID`, a subprocess) while headless chromium shows
     the project page: from the CLI's start, and from its exit, until the page's #production-id says the new
     deployment (a MutationObserver in the page stamps the change); and without a browser, from the API's
     rollback answer to the `change` event on the page's event stream.
Every process this script starts is stopped in a finally block (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

for _path in (Path(__file__).resolve().parents[1] / "src", Path(__file__).resolve().parents[1]):
    if str(_path) not in sys.path:  # the package, and tests.* (the browser launcher)
        sys.path.insert(0, str(_path))

from anchor_deploy.adapters.local.sqlite_store import SqliteStore  # noqa: E402
from anchor_deploy.model.entities import (  # noqa: E402
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    MoveReason,
    Target,
)
from anchor_deploy.model.git import CommitInfo  # noqa: E402
from anchor_deploy.model.names import deployment_host, new_deployment_id  # noqa: E402
from anchor_deploy.settings import Settings  # noqa: E402
from bench_core import (  # noqa: E402
    BASE_DOMAIN,
    REPO,
    SRC,
    Anchor,
    _command_output,
    _iso_seconds,
    add_run_options,
    deploy_by_hand,
    exit_status,
    finish_results,
    machine_facts,
    percentile,
    results_file,
    run_and_report,
    run_on_platform,
    say,
)

RESULTS = REPO / "bench" / "results" / "dashboard.json"
PROJECT = "shop"
TARGET_MS = 100.0
WARMUP = 5
PAGE_SIZE = 50  # rows per dashboard page (web/views.py)
DEEP_PAGE = 100
POLL_S = 0.5  # the event stream's poll (web/routes_live.py POLL_SECONDS): the live path's floor
TIMEOUT = 30.0
FULL = {"deployments": 5000, "moves": 5000, "rounds": 60, "rollbacks": 10}
QUICK = {"deployments": 300, "moves": 300, "rounds": 12, "rollbacks": 3}
# In the page: stamp (Date.now(), ms) the first moment #production-id says the target, as the DOM changes.
OBSERVE = """(target) => {
  window.__benchSeen = null;
  window.__benchChange = null;
  if (window.__benchObserver) window.__benchObserver.disconnect();
  const check = () => {
    const el = document.getElementById("production-id");
    if (window.__benchSeen === null && el && el.textContent === target) window.__benchSeen = Date.now();
  };
  window.__benchObserver = new MutationObserver(check);
  window.__benchObserver.observe(document.getElementById("main"),
    { subtree: true, childList: true, characterData: true });
  check();
}"""
# Before the page's scripts: every EventSource also stamps when a `change` event reaches the page, before the
# page's own listener starts fetching it again (so the live path splits into detection and browser work).
STAMP_CHANGE = """(() => {
  const Native = window.EventSource;
  if (!Native) return;
  window.EventSource = function (url, options) {
    const source = new Native(url, options);
    source.addEventListener("open", () => { window.__benchOpen = true; });
    source.addEventListener("change", () => {
      if (window.__benchChange === null) window.__benchChange = Date.now();
    });
    return source;
  };
  window.EventSource.prototype = Native.prototype;
})();"""


def ms(values: list[float]) -> dict[str, Any]:
    """Seconds in, a summary in milliseconds out (nearest-rank percentiles)."""
    found = [v * 1000 for v in values]
    if not found:
        return {"n": 0, "p50": None, "p95": None, "max": None, "min": None}
    return {
        "n": len(found),
        "p50": round(statistics.median(found), 1),
        "p95": round(percentile(found, 95) or 0, 1),
        "max": round(max(found), 1),
        "min": round(min(found), 1),
    }


# -- 1. the seed ---------------------------------------------------------------------------------------
class Clock:
    """The store's clock while seeding: each move is stamped with the time the seed says it happened."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def site() -> dict[str, bytes]:
    files = {"index.html": b"<!doctype html><title>shop</title><p>shop</p>\n"}
    for i in range(11):
        files[f"assets/part{i:02d}.css"] = f"/* part {i} */\n.p{i} {{ margin: {i}px }}\n".encode()
    return files


def commit(i: int) -> dict[str, Any]:
    info = CommitInfo(
        repository="/srv/git/shop.git",
        branch="main",
        sha=hashlib.sha1(f"shop {i}".encode()).hexdigest(),  # a commit id, not security
        message=f"Shop change {i}: {('pricing', 'checkout', 'search', 'images')[i % 4]} tweaks",
        author=f"Dev {i % 7} <dev{i % 7}@example.com>",
    )
    return {"git": info.as_meta()}


def seed(data_dir: Path, real_id: str, deployments: int, moves: int) -> dict[str, Any]:
    """``deployments`` READY deployments (the real one's files) older than it, then ``moves`` production
    moves: mostly deploys in order, every 20th a rollback two back followed by a promote."""
    started = time.perf_counter()
    clock = Clock()
    store = SqliteStore(data_dir / "anchor.db", clock=clock)
    project = store.project_by_name(PROJECT)
    real = store.deployment(real_id)
    assert project is not None and real is not None
    files = store.manifest(real_id)
    step = 600.0  # one deploy every 10 minutes: 5,000 span five weeks
    first = real.created_at - 60 - deployments * step
    ids = []
    for i in range(deployments):
        created = first + i * step
        found = Deployment(
            id=new_deployment_id(),
            project_id=project.id,
            status=DeploymentStatus.READY,
            target=Target.PRODUCTION,
            created_at=created,
            ready_at=created + 8.0,
            file_count=len(files),
            total_size=sum(f.size for f in files),
            meta=commit(i),
            created_by=real.created_by,
        )
        host = HostRoute(
            deployment_host(PROJECT, found.id, BASE_DOMAIN), HostKind.DEPLOYMENT, project.id, found.id
        )
        store.add_deployment(found, files, host)
        ids.append(found.id)
    current: str | None = None
    for k in range(moves):
        to_index, reason = k * deployments // moves, MoveReason.DEPLOY
        if k % 20 == 18 and to_index >= 2:
            to_index, reason = to_index - 2, MoveReason.ROLLBACK
        elif k % 20 == 19:
            reason = MoveReason.PROMOTE
        clock.now = first + (k * deployments // moves) * step + 9.0 + (k % 20 == 19) * 60
        to = ids[to_index]
        store.move_production(project.id, current, to, reason, real.created_by, reason == MoveReason.ROLLBACK)
        current = to
    return {
        "deployments": deployments,
        "moves": moves,
        "files_each": len(files),
        "seed_s": round(time.perf_counter() - started, 2),
        "ids": ids,
    }


def prepare(anchor: Anchor, args: argparse.Namespace) -> dict[str, Any]:
    say(f"1. seed: {args.deployments} deployments and {args.moves} moves through SqliteStore")
    anchor.start()
    with anchor.api() as api:
        api.post("/v1/projects", json={"name": PROJECT}).raise_for_status()
        real = deploy_by_hand(api, PROJECT, site(), target="preview")
    anchor.stop()
    seeded = seed(anchor.data_dir, real["id"], args.deployments, args.moves)
    started = time.perf_counter()
    anchor.start(timeout=300)  # its first reconciler pass builds every seeded deployment's directory
    seeded["restart_s"] = round(time.perf_counter() - started, 2)
    say(f"  seeded in {seeded['seed_s']} s; the platform restarted in {seeded['restart_s']} s")
    return seeded


# -- 2. server time of the pages -----------------------------------------------------------------------
def signed_in(anchor: Anchor) -> httpx.Client:
    """A client signed in through the real form: its cookie jar holds the session."""
    web = httpx.Client(base_url=anchor.api_url, timeout=TIMEOUT)
    form = web.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    if form.status_code != 200 or nonce is None:
        raise RuntimeError(f"no sign-in form: {form.status_code} {form.text[:300]}")
    answer = web.post(
        "/ui/sign-in",
        data={"nonce": html.unescape(nonce.group(1)), "next": "/ui/", "token": anchor.token},
        headers={"Origin": anchor.api_url},
    )
    if answer.status_code != 303 or "anchor_session" not in web.cookies:
        raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")
    return web


def pages_to_time(deployments: int, moves: int) -> dict[str, tuple[str, str, int]]:
    """name -> (path, the row marker, rows expected)."""
    deep_deploy = min(DEEP_PAGE, math.ceil(deployments / PAGE_SIZE))
    deep_moves = min(DEEP_PAGE, math.ceil(moves / PAGE_SIZE))

    def rows(total: int, number: int) -> int:
        return min(PAGE_SIZE, total - (number - 1) * PAGE_SIZE)

    base = f"/ui/projects/{PROJECT}"
    return {
        "deployments, page 1": (base, "data-deployment=", rows(deployments, 1)),
        f"deployments, page {deep_deploy}": (
            f"{base}?page={deep_deploy}",
            "data-deployment=",
            rows(deployments, deep_deploy),
        ),
        "history, page 1": (f"{base}/history", "data-move=", rows(moves, 1)),
        f"history, page {deep_moves}": (
            f"{base}/history?page={deep_moves}",
            "data-move=",
            rows(moves, deep_moves),
        ),
        "projects": ("/ui/", "data-project=", 1),
    }


def server_times(web: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    say(f"2. server time of the pages, {args.rounds} rounds each, interleaved ({WARMUP} warm-up)")
    pages = pages_to_time(args.deployments + 1, args.moves)  # +1: the real deploy
    times: dict[str, list[float]] = {name: [] for name in pages}
    sizes: dict[str, list[int]] = {name: [] for name in pages}
    names = list(pages)
    for n in range(args.rounds):
        for name in names[n % len(names) :] + names[: n % len(names)]:  # rotated: none always goes first
            path, marker, expected = pages[name]
            started = time.perf_counter()
            answer = web.get(path)
            took = time.perf_counter() - started
            found = answer.text.count(marker)
            if answer.status_code != 200 or found != expected:
                raise RuntimeError(f"{path}: {answer.status_code}, {found} rows (wanted {expected})")
            if n >= WARMUP:
                times[name].append(took)
                sizes[name].append(len(answer.content))
    return {
        name: {
            "path": pages[name][0],
            "rows": pages[name][2],
            "bytes": int(statistics.median(sizes[name])),
            "ms": ms(times[name]),
        }
        for name in pages
    }


# -- 3. rollback -> page -------------------------------------------------------------------------------
def production(api: httpx.Client) -> str:
    return str(api.get(f"/v1/projects/{PROJECT}").json()["productionDeploymentId"])


def other(api: httpx.Client, pair: list[str]) -> str:
    """The one of the two deployments that production is not on: each round moves it to the other."""
    return pair[1] if production(api) == pair[0] else pair[0]


def sse_case(web: httpx.Client, api: httpx.Client, pair: list[str], rounds: int) -> dict[str, Any]:
    """From the API's rollback answer to the `change` event on the project page's own stream."""
    say(f"3b. rollback (API) -> `change` on the page's event stream, {rounds} rounds")
    events = re.search(r'data-events="([^"]+)"', web.get(f"/ui/projects/{PROJECT}").text)
    assert events is not None
    rng = random.Random(13)
    took = []
    with web.stream("GET", html.unescape(events.group(1))) as stream:
        lines = stream.iter_lines()
        next(lines)  # "retry: ...": the stream is open and has its first state
        for _ in range(rounds):
            time.sleep(rng.uniform(0.1, 0.1 + POLL_S))  # an arbitrary phase against the stream's poll
            target = other(api, pair)
            answer = api.post(f"/v1/projects/{PROJECT}/rollback", json={"deploymentId": target})
            answered = time.perf_counter()
            answer.raise_for_status()
            for line in lines:
                if line == "event: change":
                    break
                if line.startswith("event: "):
                    raise RuntimeError(f"the stream said {line!r}")
            took.append(time.perf_counter() - answered)
    return {"answer_to_change_ms": ms(took), "runs_ms": [round(t * 1000, 1) for t in took]}


def cli_env(anchor: Anchor, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
    env.update(
        {
            "ANCHOR_API_URL": anchor.api_url,
            "ANCHOR_TOKEN": anchor.token,
            "ANCHOR_CONFIG": str(work / "cli-config.json"),  # never the user's own
            "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p),
        }
    )
    return env


def browser_case(
    anchor: Anchor, api: httpx.Client, work: Path, pair: list[str], rounds: int
) -> dict[str, Any]:
    """`anchor rollback` in a subprocess while chromium shows the project page; the page stamps the change."""
    from tests.e2e.browser import CSP_LISTENER, VIEWPORT, launch_chromium, take_page_errors, watch

    say(f"3a. `anchor rollback` (CLI) -> the open page shows it (headless chromium), {rounds} rounds")
    rng = random.Random(31)
    env = cli_env(anchor, work)
    runs = []
    with launch_chromium() as browser:
        context = browser.new_context(base_url=anchor.api_url, viewport=VIEWPORT)  # type: ignore[arg-type]
        context.add_init_script(CSP_LISTENER)
        context.add_init_script(STAMP_CHANGE)
        page = watch(context.new_page())
        failed: list[str] = []  # what a "Failed to load resource" error was about
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto("/ui/sign-in")
        page.get_by_label("Token").fill(anchor.token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{anchor.api_url}/ui/")
        page.goto(f"/ui/projects/{PROJECT}")
        page.wait_for_function("() => window.__benchOpen === true")  # the page's stream is open
        for _ in range(rounds):
            target = other(api, pair)
            page.evaluate(OBSERVE, target)
            time.sleep(rng.uniform(0.1, 0.1 + POLL_S))
            started = time.time()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "anchor_deploy.cli.main",
                    "rollback",
                    PROJECT,
                    "--to",
                    target,
                    "--json",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            exited = time.time()
            if done.returncode != 0 or target not in done.stdout:
                raise RuntimeError(f"anchor rollback failed ({done.returncode}): {done.stdout} {done.stderr}")
            moved = _iso_seconds(json.loads(done.stdout)["at"])  # the move's commit, by the server's clock
            page.wait_for_function("() => window.__benchSeen !== null", timeout=TIMEOUT * 1000)
            stamps = page.evaluate("[window.__benchSeen, window.__benchChange]")
            seen, change = (float(x) / 1000 for x in stamps)
            assert moved is not None
            runs.append(
                {
                    "cli_s": exited - started,
                    "from_start_s": seen - started,
                    "from_exit_s": seen - exited,
                    "moved_to_change_s": change - moved,
                    "change_to_shown_s": seen - change,
                }
            )
        errors = take_page_errors(page)
        context.close()
    return {
        "cli_start_to_shown_ms": ms([r["from_start_s"] for r in runs]),
        "cli_exit_to_shown_ms": ms([max(0.0, r["from_exit_s"]) for r in runs]),
        "cli_run_ms": ms([r["cli_s"] for r in runs]),
        "shown_before_cli_exit": sum(r["from_exit_s"] < 0 for r in runs),
        "moved_to_change_ms": ms([r["moved_to_change_s"] for r in runs]),
        "change_to_shown_ms": ms([r["change_to_shown_s"] for r in runs]),
        "page_errors": errors,
        "failed_requests": failed,
        "runs": [{k: round(v, 4) for k, v in r.items()} for r in runs],
    }


# -- report --------------------------------------------------------------------------------------------
def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name, timed in results.get("pages", {}).items():
        p95 = timed["ms"]["p95"]
        found.append(
            {
                "name": f"{name} ({timed['path']}), p95 server time",
                "p95_ms": p95,
                "target_ms": TARGET_MS,
                "p95_over_target": round(p95 / TARGET_MS, 2),
                "met": p95 < TARGET_MS,
            }
        )
    return found


def render(results: dict[str, Any]) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    m, s = results["machine"], results["seed"]
    out.print(
        f"anchor-deploy dashboard benchmark  {results['started_at']}  nproc={m['nproc']}  "
        f"python {m['python']}  {m['chromium']}  load average start {m['loadavg_start']} "
        f"end {m.get('loadavg_end')}  {results['total_s']} s"
    )
    out.print(
        f"seed: {s['deployments']} READY deployments and {s['moves']} moves written in {s['seed_s']} s; "
        f"restart (first reconciler pass) {s['restart_s']} s"
    )
    if "pages" in results:
        table = Table(
            title=f"page times over loopback, ms ({results['rounds']} rounds, {WARMUP} warm-up dropped)"
        )
        for col in ("page", "rows", "KiB", "p50", "p95", "max", "target", "p95/target", "met"):
            table.add_column(col, justify="right", no_wrap=True)
        for target, (name, timed) in zip(results["targets"], results["pages"].items(), strict=True):
            t = timed["ms"]
            table.add_row(
                name,
                str(timed["rows"]),
                f"{timed['bytes'] / 1024:.1f}",
                str(t["p50"]),
                str(t["p95"]),
                str(t["max"]),
                f"< {TARGET_MS:g}",
                str(target["p95_over_target"]),
                "yes" if target["met"] else "NO",
            )
        out.print(table)
    table = Table(
        title=f"a rollback reaching an open project page, ms (event stream polled every {POLL_S} s)"
    )
    for col in ("from", "to", "n", "p50", "max", "min"):
        table.add_column(col, justify="right", no_wrap=True)
    shown = "#production-id says it"
    rows = []
    if "browser" in results:
        b = results["browser"]
        rows += [
            ("`anchor rollback` start", shown, b["cli_start_to_shown_ms"]),
            ("`anchor rollback` exit", shown, b["cli_exit_to_shown_ms"]),
            ("`anchor rollback` start", "its exit", b["cli_run_ms"]),
            ("the move committed (server)", "`change` reaches the page", b["moved_to_change_ms"]),
            ("`change` reaches the page", shown, b["change_to_shown_ms"]),
        ]
    if "sse" in results:
        rows.append(("API rollback answered", "`change` event", results["sse"]["answer_to_change_ms"]))
    for start, end, t in rows:
        table.add_row(start, end, str(t["n"]), str(t["p50"]), str(t["max"]), str(t["min"]))
    if rows:
        out.print(table)
    if results.get("browser", {}).get("page_errors"):
        out.print(f"the page logged errors: {results['browser']['page_errors']}")


# -- main ----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deployments", type=int, help="seeded READY deployments (default 5000)")
    parser.add_argument("--moves", type=int, help="seeded production moves (default 5000)")
    parser.add_argument("--rounds", type=int, help="requests per page, warm-up included (default 60)")
    parser.add_argument("--rollbacks", type=int, help="rollbacks per live-path measurement (default 10)")
    parser.add_argument(
        "--quick", action="store_true", help="300 deployments and moves, few rounds: a smoke run"
    )
    parser.add_argument(
        "--only", choices=("pages", "browser", "sse"), action="append", help="run only these parts"
    )
    add_run_options(parser, RESULTS)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not (2 <= args.deployments <= 100_000 and 1 <= args.moves <= args.deployments):
        parser.error("--deployments is 2..100000 and --moves 1..--deployments")
    if not (WARMUP < args.rounds <= 1000 and 1 <= args.rollbacks <= 100):
        parser.error(f"--rounds is {WARMUP + 1}..1000 and --rollbacks 1..100")
    if "browser" in (args.only or ("browser",)) and shutil.which("chromium") is None:
        parser.error(
            "the browser part needs Debian's chromium (apt-get install chromium), or --only pages/sse"
        )
    args.out = results_file(args, RESULTS)
    return args


def measure(anchor: Anchor, work: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    parts = set(args.only or ("pages", "browser", "sse"))
    seeded = prepare(anchor, args)
    pair = seeded.pop("ids")[-2:]  # production (the newest seeded deployment) and the one before it
    results["seed"] = seeded
    with anchor.api() as api, contextlib.closing(signed_in(anchor)) as web:
        if "pages" in parts:
            results["pages"] = server_times(web, args)
        if "browser" in parts:
            results["browser"] = browser_case(anchor, api, work, pair, args.rollbacks)
        if "sse" in parts:
            results["sse"] = sse_case(web, api, pair, args.rollbacks)


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "rounds": args.rounds,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            **machine_facts(Settings().caddy_bin),
            "chromium": _command_output(["chromium", "--version"]),
        },
        "target_ms": TARGET_MS,
        "poll_s": POLL_S,
        "notes": ["the machine was shared with other test runs; compare p95 with the target"],
    }
    work = Path(tempfile.mkdtemp(prefix="anchor-bench-dashboard-"))
    anchor = Anchor(work / "data")
    say(f"work dir {work}; starting anchor up (API {anchor.api_url}, edge {anchor.edge_url})")
    started = time.perf_counter()
    kept = run_on_platform(anchor, work, args.keep, lambda: measure(anchor, work, args, results))
    return finish_results(results, started, work, kept, targets)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_status(args, run_and_report(args, run, render))


if __name__ == "__main__":
    sys.exit(main())
