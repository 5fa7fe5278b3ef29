#!/usr/bin/env python3
"""What the AWS provider asks of AWS per operation, and its control plane's time next to the local provider's.

    python bench/bench_aws.py [--files 10000] [--rollbacks 50] [--promotes 10] [--deploys 5] [--domains 60]
                              [--quick]

In one process, against a moto server this script starts on 127.0.0.1 (reached only through the standard AWS
variables), with the stack made by the bootstrap `anchor aws bootstrap` runs. The local provider (SQLite,
blobs on disk, the edge's symlinks; no Caddy) and the AWS provider (DynamoDB, S3, Lambda, CloudFront) are each
built with providers.build_platform and driven through their services as the API drives them: a project
created; a production deploy of F static files (the manifest offered, the blobs the 409 asks for uploaded,
on AWS straight to S3 with its presigned PUTs, offered again, then built as the build queue builds it, under
its lease, until READY); the same files deployed again; rollbacks and promotions between two deployments.

  1. AWS API calls per operation (the headline: deterministic), counted on the platform's own clients
     (AwsClients.count_calls), the client's presigned PUTs counted apart (they do not go through boto3).
  2. The control plane's own time per rollback, promotion and deploy (the service calls, not the client's
     uploads), local and AWS interleaved in the same run, and their ratio. moto answers in place of AWS: the
     AWS times include moto's own, so they are relative; the call counts are what carries over to AWS.
  3. Custom domains on AWS (bench/aws_domains.py): a Route 53 zone linked to the project, N domains added
     and stepped until active one after the other, then removed: calls per domain add, attach and removal by
     service, domain #1 vs #N, the distributions and certificates N need, rollbacks with N attached.

Exits 1 (after writing the results) if a rollback or promotion is not exactly one lambda:UpdateAlias and one
dynamodb:TransactWriteItems with no CloudFront call, or if the unchanged redeploy makes any S3 PUT; with
domains, if a move with N attached calls CloudFront or ACM or differs from a move without, if the layout
exceeds a quota, or if an alias, certificate or record of ours is left after removing them all.
Writes bench/results/aws.json (aws-quick.json for --quick); see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "src", REPO):  # the package, and tests.aws_support (the moto server the tests use)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from tests.aws_support import MotoServer, aws_environ, moto_server  # noqa: E402

from anchor_deploy import providers  # noqa: E402
from anchor_deploy.adapters.aws.clients import AwsClients  # noqa: E402
from anchor_deploy.adapters.aws.stack_deploy import StackDeployer  # noqa: E402
from anchor_deploy.cli.direct_upload import DirectUploader, read_targets  # noqa: E402
from anchor_deploy.model.entities import Deployment, DeploymentStatus, Project, Token  # noqa: E402
from anchor_deploy.model.errors import MissingFiles  # noqa: E402
from anchor_deploy.providers.aws import build_platform as build_aws_platform  # noqa: E402
from anchor_deploy.providers.platform import Platform  # noqa: E402
from anchor_deploy.settings import Settings  # noqa: E402
from aws_domains import LoopbackResolver, domain_checks, measure_domains, render_domains  # noqa: E402

RESULTS = REPO / "bench" / "results" / "aws.json"
# moto has no cache policy API: distributions get an operator's cache policy id (as the e2e tests do).
CACHE_POLICY = "anchor-bench-cache-policy"
FULL = {"files": 10_000, "rollbacks": 50, "promotes": 10, "deploys": 5, "domains": 60}
QUICK = {"files": 500, "rollbacks": 20, "promotes": 6, "deploys": 3, "domains": 12}
UPLOAD_THREADS = 8  # as `anchor deploy` uploads
READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "Head", "BatchGet", "TransactGet")
MOVE_WRITES = Counter({"lambda:UpdateAlias": 1, "dynamodb:TransactWriteItems": 1})
console = Console(stderr=True, highlight=False, soft_wrap=True)
_T0 = time.monotonic()


def say(message: str) -> None:
    console.print(f"[{time.monotonic() - _T0:7.1f}s] {message}", markup=False)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank (p90 of 50 samples is the 45th smallest; of 5 samples, the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(statistics.median(ms), 2),
        "p90": round(percentile(ms, 90), 2),
        "max": round(max(ms), 2),
        "runs": [round(m, 2) for m in ms],
    }


def is_read(call: str) -> bool:
    return call.split(":", 1)[1].startswith(READ_PREFIXES)


def split_calls(calls: Counter[str]) -> dict[str, Any]:
    """A call count as the results show it: total, writes and reads by "service:Operation"."""
    return {
        "total": sum(calls.values()),
        "writes": dict(sorted((k, v) for k, v in calls.items() if not is_read(k))),
        "reads": dict(sorted((k, v) for k, v in calls.items() if is_read(k))),
    }


def make_site(count: int, seed: int = 20261130) -> dict[str, bytes]:
    """``count`` static files with distinct contents: index.html and files of 100-500 random bytes, 100 a
    folder (the shape of bench_core.py's deploy phase)."""
    rng = random.Random(seed)
    files = {"index.html": b"<!doctype html><title>bench</title><p>version 0</p>\n"}
    for i in range(1, count):
        head = f"file {i:06d}\n".encode()
        files[f"d{i // 100:03d}/f{i:06d}.txt"] = head + rng.randbytes(rng.randint(100, 500) - len(head))
    return files


# -- one provider, driven as the API drives it -----------------------------------------------------------
@dataclass
class Side:
    """One provider's platform, the token the "API" calls it with, and (AWS) the count of its calls."""

    name: str
    platform: Platform
    token: Token
    calls: Counter[str] = field(default_factory=Counter)
    clients: AwsClients | None = None  # AWS: the platform's clients (aws_domains times the calls on them)

    def measure(self, op: Callable[[], Any]) -> tuple[Any, Counter[str], float]:
        """(result, the AWS calls ``op`` made, its seconds)."""
        before = Counter(self.calls)
        started = time.perf_counter()
        result = op()
        elapsed = time.perf_counter() - started
        return result, self.calls - before, elapsed


@dataclass
class DeployRun:
    deployment: Deployment
    offers: int  # manifest posts: the 409 rounds, then the one that made the deployment
    offer_calls: Counter[str]
    upload_calls: Counter[str]  # blobs sent through the upload service (the API's blob route)
    build_calls: Counter[str]
    presigned_puts: int  # the client's PUTs straight to S3 (not through boto3: not in the counts)
    api_uploads: int  # blobs sent through the upload service
    uploaded_bytes: int
    control_s: float  # the services' time: the offers, uploads through the API, the build
    wall_s: float  # that and the client's direct uploads

    def calls(self) -> Counter[str]:
        return self.offer_calls + self.upload_calls + self.build_calls

    def s3_puts(self) -> int:
        return self.calls()["s3:PutObject"] + self.presigned_puts

    def facts(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment.id,
            "offers": self.offers,
            "calls": split_calls(self.calls()),
            "offer_calls": split_calls(self.offer_calls),
            "upload_calls": split_calls(self.upload_calls),
            "build_calls": split_calls(self.build_calls),
            "s3_put_object": self.calls()["s3:PutObject"],
            "presigned_puts": self.presigned_puts,
            "api_uploads": self.api_uploads,
            "uploaded_bytes": self.uploaded_bytes,
            "control_s": round(self.control_s, 4),
            "wall_s": round(self.wall_s, 4),
        }


@dataclass
class Uploads:
    presigned: int = 0
    through_api: int = 0
    sent: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    control_s: float = 0.0


def deploy(side: Side, project: Project, files: dict[str, bytes]) -> DeployRun:
    """`anchor deploy --prod` in process: offer the manifest, upload what the 409 asks for (to its presigned
    targets if it offers them, else through the upload service), offer again; then what the build queue does
    (the build under its lease ``build:<id>``) until READY."""
    p = side.platform
    manifest = [{"path": k, "sha256": sha(v), "size": len(v), "mode": 0o644} for k, v in files.items()]
    body = {"files": manifest, "target": "production"}
    by_digest = {sha(data): data for data in files.values()}
    started = time.perf_counter()
    control = 0.0
    offers = 0
    offer_calls: Counter[str] = Counter()
    uploads = Uploads()

    def offer() -> Deployment | MissingFiles:
        try:
            return p.deployments.create(project, body, side.token)
        except MissingFiles as exc:
            return exc

    for _round in range(3 + len(manifest) // 1000):  # as the CLI: the 409 offers 1,000 targets at a time
        offers += 1
        answer, calls, seconds = side.measure(offer)
        offer_calls += calls
        control += seconds
        if isinstance(answer, Deployment):
            created = answer
            break
        upload_asked(side, answer.extra, by_digest, uploads)
    else:
        raise RuntimeError(f"{side.name}: the platform kept asking for files")
    built, build_calls, seconds = side.measure(lambda: build_as_the_queue(p, created.id))
    control += seconds + uploads.control_s
    if built is None or built.status is not DeploymentStatus.READY:
        raise RuntimeError(
            f"{side.name}: {created.id} ended {built and built.status}: {built and built.error}"
        )
    return DeployRun(
        built,
        offers,
        offer_calls,
        uploads.calls,
        build_calls,
        uploads.presigned,
        uploads.through_api,
        uploads.sent,
        control,
        time.perf_counter() - started,
    )


def upload_asked(side: Side, answer: dict[str, Any], by_digest: dict[str, bytes], uploads: Uploads) -> None:
    """What `anchor deploy` does with a missing_files answer: the blobs it offers direct targets for go
    straight to S3 (the rest are asked again next round); with no target, each goes through the API."""
    missing = [d for d in answer.get("missing", []) if d in by_digest]
    targets = read_targets(answer)
    batch = [d for d in missing if d in targets] or missing
    refused: list[str] = []
    if targets:
        with DirectUploader(targets) as direct, ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            taken = list(pool.map(lambda d: direct.put(d, by_digest[d]), batch))
        refused = [d for d, ok in zip(batch, taken, strict=True) if not ok]
        uploads.presigned += len(batch) - len(refused)
        uploads.sent += sum(len(by_digest[d]) for d, ok in zip(batch, taken, strict=True) if ok)
    through_api = refused if targets else batch
    if not through_api:
        return
    store = side.platform.uploads

    def put_all() -> int:
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            return sum(pool.map(lambda d: store.put(d, iter([by_digest[d]])), through_api))

    _stored, calls, seconds = side.measure(put_all)
    uploads.calls += calls
    uploads.control_s += seconds
    uploads.through_api += len(through_api)
    uploads.sent += sum(len(by_digest[d]) for d in through_api)


def build_as_the_queue(p: Platform, deployment_id: str) -> Deployment | None:
    """The build queue's work for one claimed deployment (services/runner.py LeasedBuilds): its lease taken,
    the build, the lease released. (The queue's poll for QUEUED deployments is shared by every build and
    left out.)"""
    keeper = p.services.runner.keeper
    lease = f"build:{deployment_id}"
    if not keeper.take(lease):
        raise RuntimeError(f"the build lease of {deployment_id} is held elsewhere")
    try:
        return p.deployments.build(deployment_id)
    finally:
        keeper.release(lease)


def move(side: Side, project: Project, to: str, how: str) -> tuple[Counter[str], float]:
    """A rollback (pins production) or a promotion (unpins it) to ``to``: its calls and seconds."""
    aliases = side.platform.aliases
    if how == "rollback":
        moved, calls, seconds = side.measure(lambda: aliases.rollback(project, to, side.token))
    else:
        moved, calls, seconds = side.measure(lambda: aliases.promote(project, to, side.token))
    if moved.to_deployment_id != to:
        raise RuntimeError(f"{side.name}: the {how} went to {moved.to_deployment_id}, not {to}")
    return calls, seconds


# -- the two platforms -------------------------------------------------------------------------------------
def bootstrap(stack: str) -> dict[str, Any]:
    """The stack as `anchor aws bootstrap --yes --stack NAME` makes it (the same StackDeployer)."""
    clients = AwsClients()
    calls = clients.count_calls()
    started = time.perf_counter()
    deployer = StackDeployer(clients, stack)
    deployer.apply(deployer.plan(None), lambda line: say(f"  bootstrap: {line}"))
    return {"stack": stack, "seconds": round(time.perf_counter() - started, 2), "calls": sum(calls.values())}


def local_side(work: Path) -> Side:
    settings = Settings.from_env({}, data_dir=work / "local", base_domain="localhost")
    built = providers.build_platform(settings, with_caddy=False)
    return Side("local", built, built.tokens.create("bench")[0])


def aws_side(work: Path, stack: str, resolver: str) -> Side:
    settings = Settings.from_env(
        {},
        provider="aws",
        aws_stack=stack,
        aws_invoke="sandbox",
        aws_cache_policy=CACHE_POLICY,
        data_dir=work / "aws",
        base_domain="localhost",
        dns_resolvers=resolver,  # the domain checks' lookups stay on loopback
    )
    clients = AwsClients()
    built = build_aws_platform(settings, with_caddy=False, clients=clients)
    token = built.tokens.create("bench")[0]
    return Side("aws", built, token, clients.count_calls(), clients)


def serving_version(stack_project_id: str, deployment_id: str) -> tuple[str | None, str | None]:
    """(the production alias's version, the version published for ``deployment_id``), read with clients of
    their own (not counted): the check that the moves really moved Lambda's alias."""
    lam = AwsClients().client("lambda")
    names = [
        f["FunctionName"]
        for page in lam.get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if f["FunctionName"].endswith(stack_project_id)
    ]
    if not names:
        return None, None
    alias = lam.get_alias(FunctionName=names[0], Name="production")["FunctionVersion"]
    versions = [
        v
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=names[0])
        for v in page["Versions"]
    ]
    published = [v for v in versions if v["Version"] != "$LATEST"]  # $LATEST says the latest deploy's id
    mine = next((v["Version"] for v in published if v.get("Description") == deployment_id), None)
    return str(alias), mine


# -- the run -----------------------------------------------------------------------------------------------
def interleaved(count: int, sides: list[Side], step: Callable[[int, Side], None]) -> None:
    """``step(i, side)`` for i < count, both sides each round, the first side alternating (the machine's
    noise falls on both alike)."""
    for i in range(count):
        for side in sides if i % 2 == 0 else sides[::-1]:
            step(i, side)


def measure(args: argparse.Namespace, sides: list[Side], resolver: LoopbackResolver) -> dict[str, Any]:
    site = make_site(args.files)
    out: dict[str, Any] = {side.name: {} for side in sides}
    projects: dict[str, Project] = {}
    pair: dict[str, tuple[str, str]] = {}  # A (the first deploy) and B (the unchanged redeploy)
    for side in sides:
        projects[side.name], calls, seconds = side.measure(
            functools.partial(side.platform.projects.create, "site", side.token)
        )
        out[side.name]["project_create"] = {"calls": split_calls(calls), "ms": round(seconds * 1000, 2)}
        say(f"{side.name}: first deploy of {args.files:,} files")
        first = deploy(side, projects[side.name], site)
        say(f"  {first.wall_s:.1f} s; {side.name}: unchanged redeploy")
        again = deploy(side, projects[side.name], site)
        say(f"  {again.wall_s:.1f} s")
        out[side.name]["first_deploy"] = first.facts()
        out[side.name]["unchanged_redeploy"] = again.facts()
        pair[side.name] = (first.deployment.id, again.deployment.id)
    say(f"{args.rollbacks} rollbacks, then {args.promotes} promotions, each side in turn")
    for how, count, offset in (("rollback", args.rollbacks, 0), ("promote", args.promotes, args.rollbacks)):
        runs = moves(sides, projects, pair, how, count, offset)
        for side in sides:
            out[side.name][how] = move_facts(runs[side.name])
    out["aws_serving"] = aws_serving(sides, projects, pair, args.rollbacks + args.promotes)
    say(f"{args.deploys} deploys of the same site with index.html changed, each side in turn")
    for name, deploys in changed_deploys(sides, projects, site, args.deploys).items():
        out[name]["changed_deploy"] = {
            "control_ms": summary_ms([r.control_s for r in deploys]),
            "wall_ms": summary_ms([r.wall_s for r in deploys]),
            "first": deploys[0].facts(),
            "s3_puts": [r.s3_puts() for r in deploys],
        }
    if args.domains:
        aws = sides[-1]
        out["aws_domains"] = measure_domains(
            aws,
            projects["aws"],
            pair["aws"],
            args.domains,
            lambda to, how: move(aws, projects["aws"], to, how),
            resolver,
            say,
        )
    return out


def moves(
    sides: list[Side],
    projects: dict[str, Project],
    pair: dict[str, tuple[str, str]],
    how: str,
    count: int,
    offset: int,
) -> dict[str, list[tuple[Counter[str], float]]]:
    """``count`` rollbacks or promotions on each side, between A and B (production is B at first: offset 0
    goes to A, then B, then A...)."""
    runs: dict[str, list[tuple[Counter[str], float]]] = {s.name: [] for s in sides}

    def one(i: int, side: Side) -> None:
        runs[side.name].append(move(side, projects[side.name], pair[side.name][(offset + i) % 2], how))

    interleaved(count, sides, one)
    return runs


def changed_deploys(
    sides: list[Side], projects: dict[str, Project], site: dict[str, bytes], count: int
) -> dict[str, list[DeployRun]]:
    """``count`` production deploys of the site, index.html changed each time (one upload, a new package)."""
    runs: dict[str, list[DeployRun]] = {s.name: [] for s in sides}

    def one(i: int, side: Side) -> None:
        changed = {**site, "index.html": f"<!doctype html><p>version {i + 1}</p>\n".encode()}
        runs[side.name].append(deploy(side, projects[side.name], changed))

    interleaved(count, sides, one)
    return runs


def move_facts(runs: list[tuple[Counter[str], float]]) -> dict[str, Any]:
    shapes = Counter(json.dumps(split_calls(calls), sort_keys=True) for calls, _s in runs)
    common, times = shapes.most_common(1)[0]
    return {
        "ms": summary_ms([s for _calls, s in runs]),
        "calls": json.loads(common),
        "same_calls": times,
        "shapes": [json.loads(shape) | {"times": n} for shape, n in shapes.items()],
        "every": [dict(calls) for calls, _s in runs],
    }


def aws_serving(
    sides: list[Side], projects: dict[str, Project], pair: dict[str, tuple[str, str]], moves: int
) -> dict[str, Any] | None:
    """Where production is after ``moves`` moves, by the database and by Lambda's alias."""
    if "aws" not in projects:
        return None
    expected = pair["aws"][(moves - 1) % 2]
    production = sides[-1].platform.projects.reload(projects["aws"]).production_deployment_id
    alias, version = serving_version(projects["aws"].id, expected)
    return {
        "expected": expected,
        "database": production,
        "alias_version": alias,
        "deployment_version": version,
    }


def checks(results: dict[str, Any]) -> list[str]:
    """What the benchmark also asserts (the headline): the failures, in words."""
    aws = results.get("aws")
    if not aws:
        return []
    failed = []
    for how in ("rollback", "promote"):
        for i, calls in enumerate(aws[how]["every"]):
            writes = Counter({k: v for k, v in calls.items() if not is_read(k)})
            cloudfront = {k: v for k, v in calls.items() if k.startswith("cloudfront:")}
            if writes != MOVE_WRITES or cloudfront:
                failed.append(
                    f"{how} #{i + 1} wrote {dict(writes) or 'nothing'}, CloudFront calls {cloudfront or 0}; "
                    "expected exactly 1 lambda:UpdateAlias + 1 dynamodb:TransactWriteItems, no CloudFront"
                )
                break
    redeploy = aws["unchanged_redeploy"]
    puts = redeploy["s3_put_object"] + redeploy["presigned_puts"]
    if puts or redeploy["offers"] != 1:
        failed.append(
            f"the unchanged redeploy made {redeploy['s3_put_object']} S3 PutObject calls and "
            f"{redeploy['presigned_puts']} presigned PUTs in {redeploy['offers']} offers; expected none in 1"
        )
    serving = results.get("aws_serving") or {}
    if serving and not (
        serving["database"] == serving["expected"]
        and serving["alias_version"] == serving["deployment_version"]
    ):
        failed.append(
            f"after the moves, Lambda's production alias does not serve what the database says: {serving}"
        )
    return failed + domain_checks(results)


# -- report ------------------------------------------------------------------------------------------------
def _calls_text(calls: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in calls.items()) or "-"


def render(results: dict[str, Any]) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    m = results["machine"]
    out.print(
        f"anchor-deploy AWS provider benchmark  {results['started_at']}  nproc={m['nproc']}"
        f"  python {m['python']}  boto3 {m['boto3']}  moto {m['moto']}  files={results['args']['files']:,}"
    )
    out.print(f"load average start {m['loadavg_start']}  end {m.get('loadavg_end')}")
    aws = results["aws"]
    table = Table(title="1. AWS API calls per operation (the platform's own clients; deterministic)")
    for col in ("operation", "calls", "writes", "reads", "S3 PutObject", "presigned PUT"):
        table.add_column(col, justify="left" if col in ("operation", "writes", "reads") else "right")
    rows: list[tuple[str, dict[str, Any], int, int]] = [
        ("project create", aws["project_create"]["calls"], 0, 0)
    ]
    for key, label in (("first_deploy", "first deploy"), ("unchanged_redeploy", "unchanged redeploy")):
        d = aws[key]
        rows.append((f"{label} ({d['offers']} offers)", d["calls"], d["s3_put_object"], d["presigned_puts"]))
    for how in ("rollback", "promote"):
        f = aws[how]
        label = f"{how} ({f['same_calls']} of {f['ms']['n']} alike)"
        rows.append((label, f["calls"], f["calls"]["writes"].get("s3:PutObject", 0), 0))
    changed = aws["changed_deploy"]["first"]
    rows.append(
        (
            f"deploy, 1 file changed ({changed['offers']} offers)",
            changed["calls"],
            changed["s3_put_object"],
            changed["presigned_puts"],
        )
    )
    for label, calls, puts, presigned in rows:
        table.add_row(
            label,
            f"{calls['total']:,}",
            _calls_text(calls["writes"]),
            _calls_text(calls["reads"]),
            f"{puts:,}",
            f"{presigned:,}",
        )
    out.print(table)
    times = Table(title="2. the control plane's own time (ms): local vs AWS on moto, same run")
    for col in ("operation", "local p50", "local p90", "aws p50", "aws p90", "aws/local p50"):
        times.add_column(col, justify="left" if col == "operation" else "right")
    local = results["local"]

    def row(label: str, lo: dict[str, Any], hi: dict[str, Any]) -> None:
        ratio = hi["p50"] / lo["p50"] if lo["p50"] else float("nan")
        times.add_row(
            label, f"{lo['p50']:,}", f"{lo['p90']:,}", f"{hi['p50']:,}", f"{hi['p90']:,}", f"{ratio:.1f}"
        )

    def once(label: str, lo_s: float, hi_s: float) -> None:
        lo, hi = round(lo_s * 1000, 2), round(hi_s * 1000, 2)
        row(f"{label} (1 run)", {"p50": lo, "p90": lo}, {"p50": hi, "p90": hi})

    once("project create", local["project_create"]["ms"] / 1000, aws["project_create"]["ms"] / 1000)
    once("first deploy", local["first_deploy"]["control_s"], aws["first_deploy"]["control_s"])
    once(
        "unchanged redeploy", local["unchanged_redeploy"]["control_s"], aws["unchanged_redeploy"]["control_s"]
    )
    for how in ("rollback", "promote"):
        row(f"{how} (x{local[how]['ms']['n']})", local[how]["ms"], aws[how]["ms"])
    n = local["changed_deploy"]["control_ms"]["n"]
    row(
        f"deploy, 1 file changed (x{n})",
        local["changed_deploy"]["control_ms"],
        aws["changed_deploy"]["control_ms"],
    )
    out.print(times)
    render_domains(out, results)
    for note in results["notes"]:
        out.print(f"note: {note}")
    for failure in results["failures"]:
        out.print(f"[bold red]FAILED[/]: {failure}")
    if not results["failures"]:
        out.print(
            "checks: every rollback and promotion was 1 UpdateAlias + 1 TransactWriteItems, no CloudFront "
            "call; the unchanged redeploy made no S3 PUT; Lambda's production alias serves what the database "
            "says"
            + (
                "; with the domains attached, moves called neither CloudFront nor ACM, the layout stayed "
                "within the quotas, and nothing of theirs was left after their removal"
                if results.get("aws_domains")
                else ""
            )
        )


def machine_facts() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            None,
        )
        if Path("/proc/cpuinfo").exists()
        else None
    )
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "boto3": version("boto3"),
        "moto": version("moto"),
        "git_commit": commit,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


NOTES = [
    "call counts are the headline: they do not depend on the machine, and AWS would answer the same calls",
    "times are the services' own (the manifest offers, uploads through the API, the build; not the client's "
    "hashing or its direct uploads), local and AWS interleaved in one run; moto answers for AWS, in a "
    "process of its own on the same 2 cores, so the AWS times include moto's work and loopback HTTP, not "
    "AWS's latency: compare the ratio within a run, not across machines",
    "the machine was shared with other engineers' test runs: a few ms of noise on any sample",
]


def write_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, help="static files in the site (default 10000; --quick 500)")
    parser.add_argument("--rollbacks", type=int, help="rollbacks per provider (default 50; --quick 20)")
    parser.add_argument("--promotes", type=int, help="promotions per provider (default 10; --quick 6)")
    parser.add_argument("--deploys", type=int, help="deploys with one file changed (default 5; --quick 3)")
    parser.add_argument("--domains", type=int, help="custom domains on AWS (default 60; --quick 12; 0: none)")
    parser.add_argument("--quick", action="store_true", help="a smoke run; writes aws-quick.json")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/aws.json)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (data dirs, moto's log)")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = RESULTS.with_name("aws-quick.json") if args.quick else RESULTS
    if args.files < 2 or args.rollbacks < 2 or args.promotes < 2 or args.deploys < 1 or args.domains < 0:
        parser.error("--files, --rollbacks and --promotes >= 2, --deploys >= 1, --domains >= 0")
    return args


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def aws_on_moto(work: Path) -> Iterator[MotoServer]:
    """A moto server of this run's own on 127.0.0.1, this process's standard AWS variables pointing at it."""
    with moto_server(work) as moto, aws_environ(moto):
        yield moto


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_facts(),
        "notes": NOTES,
    }
    work = Path(tempfile.mkdtemp(prefix="anchor-bench-aws-"))
    started = time.perf_counter()
    keep = args.keep
    try:
        with ExitStack() as cleanup:
            cleanup.enter_context(aws_on_moto(work))
            stack = "bench-" + secrets.token_hex(3)
            say(f"work dir {work}; moto on 127.0.0.1; bootstrapping stack {stack}")
            results["bootstrap"] = bootstrap(stack)
            resolver = cleanup.enter_context(LoopbackResolver())
            sides = [local_side(work), aws_side(work, stack, resolver.address)]
            for side in sides:
                cleanup.callback(side.platform.stop)
            results.update(measure(args, sides, resolver))
    except BaseException:
        keep = True
        say(f"stopped; the work dir is kept: {work} (moto-*.log, the data dirs)")
        raise
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["failures"] = checks(results)
    if keep:
        results["work_dir"] = str(work)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        results = run(args)
    except KeyboardInterrupt:
        console.print("interrupted; the moto server this benchmark started has been stopped")
        return 130
    write_results(results, args.out)
    render(results)
    say(f"wrote {args.out}")
    if results["failures"]:
        console.print(
            f"FAILED: {len(results['failures'])} check(s) of the headline did not hold", markup=False
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
