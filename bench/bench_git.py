#!/usr/bin/env python3
"""Git deploy benchmark of anchor-deploy: `git push` to the platform's own remote, and forge webhooks.

    python bench/bench_git.py [--rounds 9] [--files 300] [--quick] [--wheelhouse .cache/wheelhouse]

Starts `anchor up` on free loopback ports in a temporary data dir (all traffic to 127.0.0.1) and measures,
writing bench/results/git.json (see docs/benchmarks.md, "Git deploys"):
  1. a static site (a few hundred small files, one changed per round) pushed with real `git push` to the
     project's smart-HTTP remote (a token as the password, from a credential helper), to a preview branch;
  2. a code-only change of a Flask app with a warm environment (the same requirements.txt as the previous
     push, so the app's environment is reused), pushed the same way;
  3. a connected repository (a bare repository on this machine) told of each push by a signed generic
     webhook delivery: from the POST to the build start (BUILDING), to READY and to the branch URL serving.
A push to the platform blocks while its hook streams the build log back and waits for READY, so each push
round records four clocks (see COLUMNS). App builds are offline: pip reads only the wheelhouse.
Every process this script starts is stopped in a finally block (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

for _path in (Path(__file__).resolve().parents[1] / "src", Path(__file__).resolve().parents[1]):
    if str(_path) not in sys.path:  # the package, and tests.* (the git working tree)
        sys.path.insert(0, str(_path))

from tests.git_worktree import WorkTree  # noqa: E402

from anchor_deploy.model.git import branch_host  # noqa: E402
from anchor_deploy.model.webhooks import sign_generic  # noqa: E402
from anchor_deploy.settings import Settings  # noqa: E402
from bench_core import (  # noqa: E402
    BASE_DOMAIN,
    LOOPBACK,
    REPO,
    Anchor,
    _iso_seconds,
    add_run_options,
    exit_status,
    finish_results,
    machine_facts,
    results_file,
    run_and_report,
    run_on_platform,
    say,
)

RESULTS = REPO / "bench" / "results" / "git.json"
WHEELHOUSE = REPO / ".cache" / "wheelhouse"
BRANCH = "feature/bench"
TIMEOUT = 90.0  # the most any one push, build or wait may take
TARGETS_S = {"static": 2.0, "app": 3.0}
CASES = {"static": "static site, one file changed", "app": "app, code-only change"}
# Where a push's time goes (medians): git and the hook's POST, the server's build, the edge serving it.
BREAKDOWN = ("push_start_to_created_s", "created_to_ready_s", "ready_to_served_s")
COLUMNS = {
    "push_s": "wall time of the `git push` command (transfer, then the hook follows the build until READY)",
    "served_from_push_start_s": "from starting `git push` until the branch URL first serves the new content "
    "(polled every 10 ms over keep-alive); the compared number: it bounds 'end of push -> served' from above",
    "served_from_received_s": "from the moment the platform had the push (the hook's deployment createdAt, "
    "right after git moved the ref) until the branch URL served it",
    "served_after_push_returned_s": "how long after `git push` returned the new content was first served "
    "(0: it was served before the command returned)",
}


# -- helpers -------------------------------------------------------------------------------------------
def seconds(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50": None, "max": None, "min": None}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
    }


class Poller:
    """Polls a host on the edge from just before an action until it serves ``body``; ``at`` is when."""

    def __init__(self, edge_url: str, host: str, body: bytes) -> None:
        self.host, self.body = host, body
        self.at: float | None = None  # perf_counter
        self.wall: float | None = None  # time.time(), to compare with the server's timestamps
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=edge_url, timeout=5)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.close()

    def wait(self, timeout: float) -> float:
        self._thread.join(timeout)
        if self.at is None:
            raise RuntimeError(f"{self.host} did not serve the new content within {timeout:.0f}s")
        return self.at

    def _run(self) -> None:
        deadline = time.perf_counter() + TIMEOUT
        while not self._stop.is_set() and time.perf_counter() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                answer = self._client.get("/", headers={"Host": self.host})
                if answer.status_code == 200 and answer.content == self.body:
                    self.at, self.wall = time.perf_counter(), time.time()
                    return
            time.sleep(0.01)


def deployment(api: httpx.Client, deployment_id: str) -> dict[str, Any]:
    answer = api.get(f"/v1/deployments/{deployment_id}")
    answer.raise_for_status()
    return dict(answer.json())


def first_log_at(api: httpx.Client, deployment_id: str) -> float | None:
    lines = api.get(f"/v1/deployments/{deployment_id}/logs?limit=10000").json()["lines"]
    return _iso_seconds(lines[0]["at"]) if lines else None


def log_text(api: httpx.Client, deployment_id: str) -> str:
    lines = api.get(f"/v1/deployments/{deployment_id}/logs?limit=10000").json()["lines"]
    return "\n".join(str(line["text"]) for line in lines)


# -- the sites -----------------------------------------------------------------------------------------
def static_site(count: int, version: str) -> dict[str, str]:
    """``count`` files: index.html (which names ``version``) and small assets, 50 to a folder."""
    rng = random.Random(20261130)
    files = {"index.html": static_index(version)}
    for i in range(count - 1):
        files[f"assets/d{i // 50:02d}/f{i:04d}.txt"] = f"asset {i}\n" + "x" * rng.randint(80, 400) + "\n"
    return files


def static_index(version: str) -> str:
    return f"<!doctype html><title>bench</title><p>version {version}</p>\n"


def flask_app(version: str) -> str:
    return (
        "from flask import Flask\n\napp = Flask(__name__)\n\n\n"
        f'@app.get("/")\ndef index():\n    return "flask {version}\\n"\n'
    )


# -- 1 and 2: git push to the platform -----------------------------------------------------------------
def push_round(
    anchor: Anchor, api: httpx.Client, work: WorkTree, remote: str, host: str, body: bytes
) -> dict[str, Any]:
    """One timed `git push` of the commit already made; the branch URL is polled from just before it."""
    with Poller(anchor.edge_url, host, body) as poller:
        wall_start, started = time.time(), time.perf_counter()
        pushed = work.git("push", "-q", remote, f"HEAD:refs/heads/{BRANCH}")
        returned = time.perf_counter()
        served = poller.wait(TIMEOUT)
    lines = [x.removeprefix("remote: ") for x in pushed.stderr.splitlines() if x.startswith("remote: ")]
    building = [x.split()[-1] for x in lines if x.startswith(f"anchor: {BRANCH}: building ")]
    if not building or not any(x.startswith(f"anchor: {BRANCH}: ready at ") for x in lines):
        raise RuntimeError("the push did not report a READY build:\n" + "\n".join(lines[-20:]))
    found = deployment(api, building[-1])
    created, ready = _iso_seconds(found["createdAt"]), _iso_seconds(found["readyAt"])
    assert created is not None and ready is not None and poller.wall is not None
    return {
        "deployment": found["id"],
        "push_s": round(returned - started, 3),
        "served_from_push_start_s": round(served - started, 3),
        "served_from_received_s": round(poller.wall - created, 3),
        "served_after_push_returned_s": round(max(0.0, served - returned), 3),
        "push_start_to_created_s": round(created - wall_start, 3),
        "created_to_ready_s": round(ready - created, 3),
        "ready_to_served_s": round(poller.wall - ready, 3),
        "remote_lines": len(lines),
    }


def push_case(
    anchor: Anchor,
    api: httpx.Client,
    work_dir: Path,
    project: str,
    first: dict[str, str],
    change: Callable[[str], tuple[dict[str, str], bytes]],
    rounds: int,
) -> dict[str, Any]:
    """Push ``first`` (not timed: it makes the branch, and for an app its environment), then ``rounds``
    timed pushes of one change each."""
    api.post("/v1/projects", json={"name": project}).raise_for_status()
    home = work_dir / f"{project}-home"
    home.mkdir()
    store = home / "credentials"
    store.write_text(f"http://x:{anchor.token}@{LOOPBACK}:{anchor.api_port}\n")
    store.chmod(0o600)
    work = WorkTree(work_dir / project, home, TIMEOUT)
    work.git("config", "credential.helper", f"store --file={store}")
    remote = f"{anchor.api_url}/git/{project}.git"
    host = branch_host(project, BRANCH, BASE_DOMAIN)
    work.commit(first, "first")
    files, body = change("v0")
    work.commit(files, "v0")
    started = time.perf_counter()
    warm = push_round(anchor, api, work, remote, host, body)
    say(f"  {project}: first push (not timed as a round) served after {warm['served_from_push_start_s']}s")
    warmup = {"wall_s": round(time.perf_counter() - started, 2), **warm}
    runs = []
    for n in range(1, rounds + 1):
        files, body = change(f"v{n}-{uuid.uuid4().hex[:8]}")
        work.commit(files, f"round {n}")
        run = push_round(anchor, api, work, remote, host, body)
        runs.append(run)
        say(
            f"  {project} round {n}: push {run['push_s']}s, served {run['served_from_push_start_s']}s after "
            f"push start, {run['served_from_received_s']}s after the platform had it"
        )
    summary = {key: seconds([r[key] for r in runs]) for key in (*COLUMNS, *BREAKDOWN)}
    return {"project": project, "branch_host": host, "first_push": warmup, "summary": summary, "runs": runs}


def static_case(anchor: Anchor, api: httpx.Client, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    say(f"1. static site, {args.files} files, one changed per push")

    def change(version: str) -> tuple[dict[str, str], bytes]:
        return {"index.html": static_index(version)}, static_index(version).encode()

    result = push_case(anchor, api, work, "site", static_site(args.files, "first"), change, args.rounds)
    result["files"] = args.files
    return result


def app_case(anchor: Anchor, api: httpx.Client, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    say("2. Flask app, code-only changes (the same requirements.txt: the environment is reused)")

    def change(version: str) -> tuple[dict[str, str], bytes]:
        return {"app.py": flask_app(version)}, f"flask {version}\n".encode()

    first = {"app.py": flask_app("first"), "requirements.txt": "flask\n"}
    result = push_case(anchor, api, work, "web", first, change, args.rounds)
    texts = [log_text(api, r["deployment"]) for r in result["runs"]]
    result["environment_reused_every_round"] = all("reusing environment" in t for t in texts)
    return result


# -- 3. webhooks ---------------------------------------------------------------------------------------
def webhook_case(
    anchor: Anchor, api: httpx.Client, work_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    say("3. signed generic webhooks for a connected repository on this machine")
    project = "hooked"
    api.post("/v1/projects", json={"name": project}).raise_for_status()
    bare = work_dir / "hooked.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, timeout=30)
    connected = api.post(
        f"/v1/projects/{project}/git",
        json={"repoUrl": str(bare), "productionBranch": "main", "forge": "generic"},
    )
    connected.raise_for_status()
    secret = str(connected.json()["webhookSecret"]).encode()
    home = work_dir / "hooked-home"
    home.mkdir()
    work = WorkTree(work_dir / "hooked", home, TIMEOUT)
    host = branch_host(project, BRANCH, BASE_DOMAIN)
    before = "0" * 40
    runs = []
    with httpx.Client(base_url=anchor.api_url, timeout=30) as hooks:
        for n in range(args.rounds + 1):  # round 0 makes the branch: not counted
            version = f"h{n}-{uuid.uuid4().hex[:8]}"
            files = static_site(args.files, version) if n == 0 else {"index.html": static_index(version)}
            after = work.commit(files, f"delivery {n}")
            work.git("push", "-q", str(bare), f"HEAD:refs/heads/{BRANCH}")
            body = json.dumps(
                {"ref": f"refs/heads/{BRANCH}", "before": before, "after": after, "repository": str(bare)}
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Anchor-Event": "push",
                "X-Anchor-Delivery": str(uuid.uuid4()),
                "X-Anchor-Signature": sign_generic(body, secret),
            }
            run = delivery(anchor, api, hooks, project, body, headers, host, static_index(version).encode())
            before = after
            if n == 0:
                say(f"  first delivery (not counted): READY after {run['post_to_ready_s']}s")
                continue
            runs.append(run)
            say(
                f"  delivery {n}: answered {run['post_answered_s']}s, BUILDING {run['post_to_building_s']}s, "
                f"READY {run['post_to_ready_s']}s, served {run['post_to_served_s']}s"
            )
    keys = (
        "post_answered_s",
        "post_to_building_s",
        "post_to_first_log_line_s",
        "post_to_ready_s",
        "post_to_served_s",
    )
    return {
        "project": project,
        "branch_host": host,
        "summary": {key: seconds([r[key] for r in runs if r[key] is not None]) for key in keys},
        "runs": runs,
    }


def delivery(
    anchor: Anchor,
    api: httpx.Client,
    hooks: httpx.Client,
    project: str,
    body: bytes,
    headers: dict[str, str],
    host: str,
    page: bytes,
) -> dict[str, Any]:
    """POST one delivery; poll its deployment (every 2 ms until it leaves QUEUED, then 20 ms) and the
    branch URL."""
    with Poller(anchor.edge_url, host, page) as poller:
        wall_start, started = time.time(), time.perf_counter()
        answer = hooks.post(f"/v1/git/webhooks/{project}", content=body, headers=headers)
        answered = time.perf_counter()
        if answer.status_code != 202:
            raise RuntimeError(f"the delivery was answered {answer.status_code}: {answer.text[:300]}")
        deployment_id = answer.json()["deployment"]["id"]
        building = ready = None
        deadline = started + TIMEOUT
        while ready is None and time.perf_counter() < deadline:
            status = deployment(api, deployment_id)["status"]
            if status != "QUEUED" and building is None:
                building = time.perf_counter()
            if status == "READY":
                ready = time.perf_counter()
            elif status in ("ERROR", "CANCELED"):
                raise RuntimeError(f"{deployment_id} ended {status}:\n{log_text(api, deployment_id)[-2000:]}")
            time.sleep(0.002 if building is None else 0.02)
        if building is None or ready is None:
            raise RuntimeError(f"{deployment_id} was not READY within {TIMEOUT:.0f}s")
        served = poller.wait(TIMEOUT)
    first_line = first_log_at(api, deployment_id)
    return {
        "deployment": deployment_id,
        "post_answered_s": round(answered - started, 3),
        "post_to_building_s": round(building - started, 3),
        "post_to_first_log_line_s": round(first_line - wall_start, 3) if first_line is not None else None,
        "post_to_ready_s": round(ready - started, 3),
        "post_to_served_s": round(served - started, 3),
    }


# -- report --------------------------------------------------------------------------------------------
def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for case, label in CASES.items():
        if case not in results:
            continue
        goal = TARGETS_S[case]
        served = results[case]["summary"]["served_from_push_start_s"]
        found.append(
            {
                "case": case,
                "name": f"{label}: push start -> branch URL serves it",
                "p50_s": served["p50"],
                "max_s": served["max"],
                "target_s": goal,
                "p50_over_target": round(served["p50"] / goal, 2),
                "met": served["p50"] < goal,
            }
        )
    return found


def render_pushes(out: Console, results: dict[str, Any]) -> None:
    table = Table(title=f"git push to the platform, {results['rounds']} rounds each, seconds (p50 / max)")
    for col in (
        "case",
        "push cmd",
        "push start→served",
        "received→served",
        "served after return",
        "target",
        "p50/target",
        "met",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    goals = {t["case"]: t for t in results["targets"]}
    breakdown = []
    for case, label in CASES.items():
        if case not in results:
            continue
        s = results[case]["summary"]
        goal = goals[case]

        def pair(key: str, s: dict[str, Any] = s) -> str:
            return f"{s[key]['p50']} / {s[key]['max']}"

        table.add_row(
            label,
            pair("push_s"),
            pair("served_from_push_start_s"),
            pair("served_from_received_s"),
            pair("served_after_push_returned_s"),
            f"< {goal['target_s']:g}",
            str(goal["p50_over_target"]),
            "yes" if goal["met"] else "NO",
        )
        parts = ", ".join(f"{key.removesuffix('_s')} {s[key]['p50']}" for key in BREAKDOWN)
        breakdown.append(f"  {label}, median parts (s): {parts}")
    out.print(table)
    for key, meaning in COLUMNS.items():
        out.print(f"  {key}: {meaning}")
    for line in breakdown:
        out.print(line)


def render(results: dict[str, Any]) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    m = results["machine"]
    out.print(
        f"anchor-deploy git benchmark  {results['started_at']}  nproc={m['nproc']}  python {m['python']}  "
        f"load average start {m['loadavg_start']} end {m.get('loadavg_end')}  {results['total_s']} s"
    )
    if any(case in results for case in CASES):
        render_pushes(out, results)
    hooked = results.get("webhook")
    if hooked:
        table = Table(title=f"signed generic webhook -> build, {len(hooked['runs'])} deliveries, seconds")
        for col in ("from the POST to", "p50", "max"):
            table.add_column(col, justify="right", no_wrap=True)
        for key, label in (
            ("post_answered_s", "its 202 answer"),
            ("post_to_building_s", "BUILDING (build start)"),
            ("post_to_first_log_line_s", "the build log's first line"),
            ("post_to_ready_s", "READY"),
            ("post_to_served_s", "the branch URL serving it"),
        ):
            s = hooked["summary"][key]
            table.add_row(label, str(s["p50"]), str(s["max"]))
        out.print(table)


# -- main ----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, help="timed pushes and deliveries per case (default 9)")
    parser.add_argument("--files", type=int, help="files of the static site (default 300)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 60 files: a smoke run")
    parser.add_argument(
        "--wheelhouse", type=Path, default=WHEELHOUSE, help="offline wheels for the app build"
    )
    parser.add_argument(
        "--only", choices=("static", "app", "webhook"), action="append", help="run only these parts"
    )
    add_run_options(parser, RESULTS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 9)
    args.files = args.files or (60 if args.quick else 300)
    if not (1 <= args.rounds <= 50 and 2 <= args.files <= 5000):
        parser.error("--rounds is 1..50 and --files 2..5000")
    args.out = results_file(args, RESULTS)
    parts = set(args.only or ("static", "app", "webhook"))
    if "app" in parts and not any(args.wheelhouse.glob("flask-*.whl")):
        parser.error(f"no flask wheel in {args.wheelhouse} (see docs/benchmarks.md, Apps benchmarks)")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = set(args.only or ("static", "app", "webhook"))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "rounds": args.rounds,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_facts(Settings().caddy_bin),
        "columns": COLUMNS,
        "notes": ["the machine was shared with other test runs; compare medians with their targets"],
    }
    work = Path(tempfile.mkdtemp(prefix="anchor-bench-git-"))
    anchor = Anchor(
        work / "data", extra_env={"ANCHOR_PIP_ARGS": f"--no-index --find-links {args.wheelhouse.resolve()}"}
    )
    say(f"work dir {work}; starting anchor up (API {anchor.api_url}, edge {anchor.edge_url})")
    started = time.perf_counter()

    def body() -> None:
        anchor.start()
        with anchor.api() as api:
            for name, case in (("static", static_case), ("app", app_case), ("webhook", webhook_case)):
                if name in parts:
                    results[name] = case(anchor, api, work, args)

    kept = run_on_platform(anchor, work, args.keep, body)
    return finish_results(results, started, work, kept, targets)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_status(args, run_and_report(args, run, render))


if __name__ == "__main__":
    sys.exit(main())
