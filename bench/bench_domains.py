#!/usr/bin/env python3
"""Custom-domain benchmarks of anchor-deploy against real processes, all on loopback (127.0.0.1 only).

    .venv/bin/python bench/bench_domains.py [--quick] [--domains 5000]      (from the repo root)

The same DNS as the end-to-end tests: knot plays the user's DNS provider (records added by RFC 2136
updates, hundreds per message), BIND is the recursive resolver the platform polls; pebble is the ACME CA.
Measures, in one run, and writes bench/results/domains.json (docs/benchmarks.md, "Custom-domain benchmarks"):
  1. record visible -> HTTPS serving: from the moment the validation and routing CNAMEs answer at the
     resolver until a verified TLS handshake + GET for the name returns the deployment, with the internal
     CA and with pebble (ACME dns-01 through the platform's own DNS server);
  2. TLS handshake time (Python ssl, do_handshake only, fresh TCP, no resumption): the first handshake of
     freshly attached names vs repeated handshakes of one name, with few and with N domains attached;
  3. domain #1 vs #N (internal CA): POST add -> active on an empty platform and with N-1 attached, the
     bulk attach rate in between, and Caddy's and the platform's RSS at 1 and at N domains;
  4. requests/s over HTTPS (a custom domain) vs HTTP (the project's production host) for the same 1 KiB
     file, with wrk, in the same run.
Every process this script starts is stopped in a finally block (also on Ctrl-C / SIGTERM); each gets a
parent-death signal, so none outlives a benchmark killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import socket
import sqlite3
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import dns.query
import dns.rcode
import dns.update
import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "src", REPO):  # the package, and tests.* (the e2e DNS and pebble harnesses)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from tests.e2e.dns_support import Record, Resolver, UserDns, fqdn, query, rdata  # noqa: E402
from tests.e2e.dns_support import free_port as free_dns_port  # noqa: E402
from tests.pebble_support import Pebble  # noqa: E402

from anchor_deploy.settings import Settings  # noqa: E402
from bench_core import (  # noqa: E402
    BASE_DOMAIN,
    LOOPBACK,
    Anchor,
    Server,
    _command_output,
    _iso_seconds,
    deploy_by_hand,
    free_port,
    leftover_children,
    loadavg,
    machine_facts,
    page,
    process_cpu_seconds,
    run_and_report,
    run_wrk,
    say,
    start_plain_caddy,
    stop_server,
    summary_ms,
    tail,
)

RESULTS = REPO / "bench" / "results" / "domains.json"
PROJECT = "site"
ZONE = "example.test"  # the user's zone for the internal-CA platform
ACME_ZONE = "acme-example.test"  # ... and for the ACME platform
VALIDATION_ZONE = "anchor-validation.test"  # internal CA: only the CNAME's value is checked
ACME_VALIDATION_ZONE = "validation.anchor.test"  # served by the ACME platform's DNS server
EDGE_HOST = "edge.anchor.test"
UPDATE_RECORDS = 400  # records per RFC 2136 message (about 25 KB: well under the 64 KB TCP limit)

FULL = {
    "domains": 5000,
    "names": 5,
    "samples": 5,
    "handshakes": 200,
    "first_handshakes": 50,
    "wrk_seconds": 5.0,
    "wrk_rounds": 3,
}
QUICK = {
    "domains": 300,
    "names": 3,
    "samples": 3,
    "handshakes": 50,
    "first_handshakes": 10,
    "wrk_seconds": 2.0,
    "wrk_rounds": 1,
}

# wrk connects to the address its URL's host resolves to and sends that host as SNI and Host. A custom
# domain does not resolve on this machine (and /etc/hosts stays untouched): this makes wrk connect to
# 127.0.0.1 while the URL, hence SNI and Host, keep the name.
WRK_LOOPBACK_LUA = """function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
"""


# -- small helpers -------------------------------------------------------------------------------------
def rss_mib(pid: int | None) -> float | None:
    """VmRSS of a process in MiB, from /proc/<pid>/status."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def caddy_pid(anchor: Anchor) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((anchor.data_dir / "run" / "caddy.pid").read_text())
    return None


def memory(anchor: Anchor) -> dict[str, float | None]:
    return {
        "caddy_rss_mib": rss_mib(caddy_pid(anchor)),
        "platform_rss_mib": rss_mib(anchor.proc.pid if anchor.proc else None),
    }


def cpu_seconds(anchor: Anchor) -> dict[str, float]:
    """utime+stime so far of the platform process and of its Caddy."""
    platform_pid = anchor.proc.pid if anchor.proc else None
    caddy = caddy_pid(anchor)
    return {
        "platform": process_cpu_seconds(platform_pid) if platform_pid else 0.0,
        "caddy": process_cpu_seconds(caddy) if caddy else 0.0,
    }


def seconds_summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50": None, "max": None, "min": None}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def records_of(domain: dict[str, Any]) -> list[Record]:
    """The records the API asks the user to add (validation CNAME, routing CNAME), as knot takes them."""
    return [(r["name"], r["type"], r["value"] + ".") for r in domain["dnsRecords"]]


def add_records(user_dns: UserDns, records: Iterable[Record]) -> int:
    """Add records at the user's DNS provider by RFC 2136, many per update message (one per zone and
    chunk); returns the number of messages sent."""
    by_zone: dict[str, list[Record]] = {}
    for record in records:
        by_zone.setdefault(user_dns.zone_of(record[0]), []).append(record)
    sent = 0
    for zone, found in by_zone.items():
        for start in range(0, len(found), UPDATE_RECORDS):
            update = dns.update.UpdateMessage(fqdn(zone))
            for owner, rdtype, value in found[start : start + UPDATE_RECORDS]:
                update.add(fqdn(owner), 1, rdata(rdtype, value))
            response = dns.query.tcp(update, user_dns.host, port=user_dns.port, timeout=10)
            if response.rcode() != dns.rcode.NOERROR:
                raise RuntimeError(f"knot refused an update of {zone}: {dns.rcode.to_text(response.rcode())}")
            sent += 1
    return sent


def visible(resolver: Resolver, records: list[Record]) -> bool:
    """Every CNAME answers at the resolver with its value."""
    for owner, rdtype, value in records:
        try:
            answer = query(resolver.address, owner, rdtype, timeout=1.0)
        except Exception:
            return False
        if value.lower() not in (v.lower() for v in answer.values(rdtype)):
            return False
    return True


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:g}s")
        time.sleep(every)


def resolver_negative_cache(user_dns: UserDns, resolver: Resolver, tries: int = 3) -> dict[str, Any]:
    """How long the resolver keeps hiding a record added right after it answered NXDOMAIN for it (the
    platform's first check of a new domain always gets that answer)."""
    hidden = []
    for i in range(tries):
        record = (f"_acme-challenge.calibrate{i}.{ZONE}", "CNAME", f"calibrate.{VALIDATION_ZONE}.")
        query(resolver.address, record[0], "CNAME")
        started = time.perf_counter()
        add_records(user_dns, [record])
        wait_until(partial(visible, resolver, [record]), 10, record[0], 0.005)
        hidden.append(time.perf_counter() - started)
    return seconds_summary(hidden)


# -- TLS client ----------------------------------------------------------------------------------------
def tls_client(cafile: Path | None = None, cadata: str | None = None) -> ssl.SSLContext:
    """Verifies the chain against the given root and the name; never resumes a session."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None, cadata=cadata)
    context.options |= ssl.OP_NO_TICKET
    return context


def handshake(
    port: int, name: str, context: ssl.SSLContext, timeout: float = 5.0
) -> tuple[ssl.SSLSocket, float]:
    """A fresh TCP connection (not timed) and a full TLS handshake for ``name``: (socket, handshake s)."""
    raw = socket.create_connection((LOOPBACK, port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        tls = context.wrap_socket(raw, server_hostname=name, do_handshake_on_connect=False)
        started = time.perf_counter()
        tls.do_handshake()
        return tls, time.perf_counter() - started
    except BaseException:
        raw.close()
        raise


def https_get(port: int, name: str, context: ssl.SSLContext, path: str = "/") -> tuple[float, int, bytes]:
    """(handshake seconds, status, body) of one GET over a new verified TLS connection."""
    tls, seconds = handshake(port, name, context)
    with tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = bytes(data).partition(b"\r\n\r\n")
            if sep:
                lengths = [
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ]
                if lengths and len(body) >= lengths[0]:
                    break
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return seconds, int(head.split(b" ", 2)[1]), body


def handshake_series(port: int, name: str, context: ssl.SSLContext, count: int) -> list[float]:
    times = []
    for _ in range(count):
        tls, seconds = handshake(port, name, context)
        tls.close()
        times.append(seconds)
    return times


def handshake_summary(seconds: list[float]) -> dict[str, Any]:
    found = summary_ms(seconds)
    found["raw_ms"] = [round(s * 1000, 3) for s in seconds]
    return found


# -- the platform ----------------------------------------------------------------------------------------
class Platform:
    """`anchor up` with custom domains: its HTTPS port, the project it serves, the root to verify against."""

    def __init__(self, folder: Path, https_port: int, env: dict[str, str]) -> None:
        self.https_port = https_port
        self.anchor = Anchor(
            folder / "data", extra_env={"ANCHOR_HTTPS_ADDR": f"{LOOPBACK}:{https_port}", **env}
        )
        self.context: ssl.SSLContext | None = None
        self.body = page("D")
        self._api: httpx.Client | None = None

    def start(self) -> None:
        self.anchor.start()
        self._api = self.anchor.api()
        self.api.post("/v1/projects", json={"name": PROJECT}).raise_for_status()
        deploy_by_hand(self.api, PROJECT, {"index.html": self.body})

    @property
    def api(self) -> httpx.Client:
        assert self._api is not None
        return self._api

    def stop(self) -> None:
        if self._api is not None:
            self._api.close()
        self.anchor.stop()

    def add(self, name: str) -> dict[str, Any]:
        response = self.api.post(f"/v1/projects/{PROJECT}/domains", json={"name": name})
        if response.status_code != 201:
            raise RuntimeError(f"adding {name}: {response.status_code} {response.text[:300]}")
        return dict(response.json())

    def domain(self, name: str) -> dict[str, Any]:
        response = self.api.get(f"/v1/projects/{PROJECT}/domains/{name}", params={"check": "false"})
        response.raise_for_status()
        return dict(response.json())

    def serves(self, name: str) -> tuple[bool, float | None]:
        """Does a verified HTTPS GET for ``name`` return the deployment? (and its handshake seconds)"""
        assert self.context is not None
        try:
            seconds, status, body = https_get(self.https_port, name, self.context)
        except (OSError, ssl.SSLError, ValueError, IndexError):
            return False, None
        return status == 200 and body == self.body, seconds

    def status_counts(self) -> Counter[str]:
        """Domains by state, read from the platform's database (read-only, WAL: it never blocks a writer)."""
        db = sqlite3.connect(f"file:{self.anchor.data_dir / 'anchor.db'}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT certificate_status, cdn_status, count(*) FROM domains GROUP BY 1, 2")
            return Counter({f"{cert}/{cdn}": n for cert, cdn, n in rows})
        finally:
            db.close()


def is_active(domain: dict[str, Any]) -> bool:
    return domain.get("certificateStatus") == "ISSUED" and domain.get("cdnStatus") == "active"


def platform_env(resolver: Resolver, args: argparse.Namespace, validation_zone: str) -> dict[str, str]:
    env = {
        "ANCHOR_DNS_RESOLVERS": resolver.address,
        "ANCHOR_VALIDATION_ZONE": validation_zone,
        "ANCHOR_EDGE_HOSTNAME": EDGE_HOST,
        "ANCHOR_DOMAIN_CHECK_MIN": f"{args.check_min:g}",
        "ANCHOR_DOMAIN_CHECK_MAX": f"{args.check_max:g}",
        # One project holds every domain of a run: above the per-project quota (100 by default).
        "ANCHOR_DOMAIN_QUOTA": str(max(100, args.domains + 100)),
    }
    if args.platform_src:  # A/B a patch: `anchor up` imports anchor_deploy from this tree
        env["PYTHONPATH"] = str(args.platform_src.resolve())
    return env


class BenchPebble(Pebble):
    """Pebble with a parent-death signal, like every other child of the benchmarks."""

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        setpriv = shutil.which("setpriv")
        super()._spawn([setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv, env)


def start_tls_caddy(binary: str, work: Path, bundle: Path) -> tuple[Server, int]:
    """A bare Caddy (admin off) with one TLS server whose certificate is loaded from ``bundle`` (chain and
    key in one PEM file, as the platform stores them): a handshake baseline without the fetch."""
    port = free_port()
    tls_server = {
        "listen": [f"{LOOPBACK}:{port}"],
        "automatic_https": {"disable": True},
        "tls_connection_policies": [{}],
        "routes": [{"handle": [{"handler": "static_response", "body": "bare\n"}]}],
    }
    load = [{"certificate": str(bundle), "key": str(bundle)}]
    certificates = {"tls": {"certificates": {"load_files": load}}}
    route = {"handle": [{"handler": "static_response", "body": "ok\n"}]}
    server = start_plain_caddy(
        binary, work / "bare-tls-caddy", route, "bare-tls-caddy", {"tls": tls_server}, certificates
    )
    return server, port


# -- 1. record visible -> HTTPS serving ------------------------------------------------------------------
def visible_to_serving(
    platform: Platform, user_dns: UserDns, resolver: Resolver, names: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    rng = random.Random(f"settle {names[0]}")  # the same delays in every run
    for name in names:
        records = records_of(platform.add(name))
        # The user adds the records some time after adding the domain: by then the platform's checks of
        # the (still missing) record have backed off to the cap, ANCHOR_DOMAIN_CHECK_MAX. The random part
        # (up to one check interval) keeps the records' arrival from locking to the check schedule.
        settle = args.settle + rng.uniform(0, args.check_max)
        time.sleep(settle)
        add_records(user_dns, records)
        wait_until(partial(visible, resolver, records), 10, f"{name}'s records at the resolver", 0.005)
        seen_wall, seen = time.time(), time.perf_counter()
        polls = 0
        deadline = seen + 60
        while True:
            polls += 1
            ok, first_handshake = platform.serves(name)
            if ok:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{name} not served over HTTPS 60 s after its records were visible")
            time.sleep(args.poll)
        serving = time.perf_counter() - seen
        domain = platform.domain(name)
        checked = _iso_seconds(domain.get("lastCheckedAt"))
        run: dict[str, Any] = {
            "name": name,
            "settle_s": round(settle, 3),
            "visible_to_serving_s": round(serving, 3),
            "https_polls": polls,
            # The successful check's start, relative to the moment the records were visible: the wait for
            # the next poll of the domain (negative: that check began just before this script saw them).
            "visible_to_check_s": round(checked - seen_wall, 3) if checked else None,
            "check_to_serving_s": round(serving - (checked - seen_wall), 3) if checked else None,
            "first_handshake_ms": round(first_handshake * 1000, 3) if first_handshake else None,
            "issuer": (domain.get("certificate") or {}).get("issuer"),
        }
        runs.append(run)
        say(
            f"  {name}: served {serving:.3f} s after its records were visible "
            f"(check began at +{run['visible_to_check_s']} s), {polls} HTTPS polls"
        )
    return {
        "names": len(names),
        "settle_s": [args.settle, args.settle + args.check_max],
        "poll_s": args.poll,
        "check_min_s": args.check_min,
        "check_max_s": args.check_max,
        "visible_to_serving_s": seconds_summary([r["visible_to_serving_s"] for r in runs]),
        "visible_to_check_s": seconds_summary(
            [r["visible_to_check_s"] for r in runs if r["visible_to_check_s"] is not None]
        ),
        "check_to_serving_s": seconds_summary(
            [r["check_to_serving_s"] for r in runs if r["check_to_serving_s"] is not None]
        ),
        "runs": runs,
    }


# -- 3. POST add -> active, and the bulk attach ------------------------------------------------------------
def add_until_active(
    platform: Platform, user_dns: UserDns, resolver: Resolver, name: str, timeout: float = 60
) -> dict[str, Any]:
    """POST the domain, add its records (one RFC 2136 message), wait until the resolver answers them, then
    GET the domain with a check (what `anchor domains wait` does: the check runs in the request) until it
    is active. The worker's poll schedule stays out of this number; part 1 measures the worker's path."""
    wall0, started = time.time(), time.perf_counter()
    records = records_of(platform.add(name))
    posted = time.perf_counter()
    add_records(user_dns, records)
    recorded = time.perf_counter()
    wait_until(partial(visible, resolver, records), 10, f"{name}'s records at the resolver", 0.005)
    seen = time.perf_counter()
    deadline = started + timeout
    gets = []
    while True:
        asked = time.perf_counter()
        response = platform.api.get(f"/v1/projects/{PROJECT}/domains/{name}")  # check=true: checks now
        response.raise_for_status()
        gets.append(round((time.perf_counter() - asked) * 1000, 2))
        domain = response.json()
        if is_active(domain):
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(
                f"{name} not active {timeout:g} s after it was added: {domain['statusReason']}"
            )
        time.sleep(0.005)
    active = time.perf_counter()
    checked = _iso_seconds(domain.get("lastCheckedAt"))
    return {
        "name": name,
        "post_ms": round((posted - started) * 1000, 2),
        "records_added_ms": round((recorded - posted) * 1000, 2),
        # Up to the resolver's negative caching when the worker's first check (at the POST) asked first.
        "records_visible_s": round(seen - started, 3),
        "visible_to_active_s": round(active - seen, 3),
        "post_to_active_s": round(active - started, 3),
        "get_ms": gets,  # the GET(s) with a check; usually one
        # Which check made it active: this script's GET, or the worker's (it starts at the POST).
        "check_started_after_post_s": round(checked - wall0, 3) if checked else None,
    }


def samples_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "n": len(runs),
        "post_to_active_s_median": med("post_to_active_s"),
        "visible_to_active_s_median": med("visible_to_active_s"),
        "records_visible_s_median": med("records_visible_s"),
        "post_ms_median": med("post_ms"),
        "runs": runs,
    }


def bulk_attach(
    platform: Platform,
    user_dns: UserDns,
    names: list[str],
    args: argparse.Namespace,
    deadline: float,
) -> dict[str, Any]:
    """POST the domains with a few client threads, in batches; after each batch one RFC 2136 message per
    400 records adds their validation and routing CNAMEs; then wait until every one is active. Stops
    posting (and says so) when ``deadline`` (monotonic) passes."""
    already = platform.status_counts().get("ISSUED/active", 0)
    local = threading.local()
    clients: list[httpx.Client] = []
    guard = threading.Lock()

    def post(name: str) -> list[Record]:
        client: httpx.Client | None = getattr(local, "client", None)
        if client is None:
            client = platform.anchor.api()
            local.client = client
            with guard:
                clients.append(client)
        response = client.post(f"/v1/projects/{PROJECT}/domains", json={"name": name})
        if response.status_code != 201:
            raise RuntimeError(f"adding {name}: {response.status_code} {response.text[:300]}")
        return records_of(response.json())

    cpu0 = cpu_seconds(platform.anchor)
    started = time.perf_counter()
    posted = 0
    messages = 0
    truncated = False
    progress: list[dict[str, Any]] = []
    pool = ThreadPoolExecutor(args.post_threads, thread_name_prefix="bulk-post")
    try:
        for start in range(0, len(names), args.batch):
            if time.monotonic() > deadline:
                truncated = True
                break
            batch = names[start : start + args.batch]
            records = [r for found in pool.map(post, batch) for r in found]
            messages += add_records(user_dns, records)
            posted += len(batch)
            if posted % 1000 < args.batch:
                counts = platform.status_counts()
                progress.append(
                    {"t_s": round(time.perf_counter() - started, 1), "posted": posted, "states": dict(counts)}
                )
                say(f"  posted {posted}/{len(names)} ({time.perf_counter() - started:.1f} s), {dict(counts)}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for client in clients:
            client.close()
    all_posted = time.perf_counter()
    expected = already + posted
    grace = deadline + 60  # posting stopped in time: give the worker a bounded while to finish
    last_report = time.perf_counter()
    while True:
        counts = platform.status_counts()
        active = counts.get("ISSUED/active", 0)
        if active >= expected:
            break
        if time.monotonic() > grace:
            truncated = True
            say(f"  stopped waiting: {active - already} of {posted} bulk domains active ({dict(counts)})")
            break
        if time.perf_counter() - last_report > 10:
            last_report = time.perf_counter()
            progress.append(
                {"t_s": round(last_report - started, 1), "posted": posted, "states": dict(counts)}
            )
            say(f"  {active - already}/{posted} active ({last_report - started:.1f} s), {dict(counts)}")
        time.sleep(0.25)
    finished = time.perf_counter()
    cpu1 = cpu_seconds(platform.anchor)
    attached = counts.get("ISSUED/active", 0) - already
    return {
        "requested": len(names),
        "posted": posted,
        "attached": attached,
        "truncated_by_time_bound": truncated,
        "batch": args.batch,
        "post_threads": args.post_threads,
        "rfc2136_messages": messages,
        "post_s": round(all_posted - started, 2),
        "until_all_active_s": round(finished - started, 2),
        "domains_per_s": round(attached / (finished - started), 1) if finished > started else None,
        "posts_per_s": round(posted / (all_posted - started), 1) if all_posted > started else None,
        "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0},
        "cpu_ms_per_domain": {
            k: round((cpu1[k] - cpu0[k]) / attached * 1000, 2) if attached else None for k in cpu0
        },
        "final_states": dict(counts),
        "progress": progress,
    }


# -- 4. HTTPS vs HTTP ------------------------------------------------------------------------------------
def throughput_phase(platform: Platform, name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install -y wrk)"}
    script = work / "wrk-loopback.lua"
    script.write_text(WRK_LOOPBACK_LUA)
    anchor = platform.anchor
    production = f"{PROJECT}.{BASE_DOMAIN}"
    # Same file, same bytes on both: check before measuring.
    ok, _ = platform.serves(name)
    plain = httpx.get(f"{anchor.edge_url}/", headers={"Host": production}, timeout=5)
    if not ok or plain.status_code != 200 or plain.content != platform.body:
        raise RuntimeError(
            "the custom domain (HTTPS) and the production host (HTTP) do not serve the same page"
        )
    redirect = httpx.get(f"{anchor.edge_url}/", headers={"Host": name}, timeout=5)
    targets = {
        "https": (f"https://{name}:{platform.https_port}/", name, script),
        "http": (f"{anchor.edge_url}/", production, None),
    }
    caddy = caddy_pid(anchor)
    rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
    say(
        f"throughput: wrk -t{args.wrk_threads} -c{args.wrk_connections} -d{args.wrk_seconds:g}s, "
        f"{args.wrk_rounds} round(s): https://{name}:{platform.https_port}/ vs http://{production}/"
    )
    for url, host, lua in targets.values():  # warm-up, not recorded
        run_wrk(wrk, url, host, 1, args.wrk_threads, args.wrk_connections, script=lua)
    order = list(targets)
    for r in range(args.wrk_rounds):
        for kind in order if r % 2 == 0 else order[::-1]:  # alternate which goes first
            url, host, lua = targets[kind]
            caddy0 = process_cpu_seconds(caddy) if caddy else 0.0
            cpu0 = cpu_seconds(anchor)["platform"]
            measured = run_wrk(
                wrk, url, host, args.wrk_seconds, args.wrk_threads, args.wrk_connections, script=lua
            )
            caddy_cpu = (process_cpu_seconds(caddy) if caddy else 0.0) - caddy0
            measured["platform_cpu_s"] = round(cpu_seconds(anchor)["platform"] - cpu0, 3)
            measured["caddy_cpu_us_per_request"] = (
                round(caddy_cpu / measured["requests"] * 1e6, 1) if measured["requests"] else None
            )
            measured["loadavg_after"] = loadavg()
            rounds[kind].append(measured)
            say(
                f"  round {r + 1} {kind}: {measured['requests_per_s']:.0f} req/s, "
                f"p99 {measured.get('p99_ms')} ms, Caddy {measured['caddy_cpu_us_per_request']} µs/req"
            )
    result: dict[str, Any] = {
        "file_bytes": len(platform.body),
        "https_url": targets["https"][0],
        "http_host": production,
        "http_redirect_for_the_custom_domain": {
            "status": redirect.status_code,
            "location": redirect.headers.get("location"),
        },
        "wrk": {
            "threads": args.wrk_threads,
            "connections": args.wrk_connections,
            "seconds": args.wrk_seconds,
            "rounds": args.wrk_rounds,
        },
        "targets": {},
    }
    for kind, runs in rounds.items():
        result["targets"][kind] = {
            "requests_per_s_median": round(statistics.median(x["requests_per_s"] for x in runs), 1),
            "p50_ms_median": round(statistics.median(x.get("p50_ms", 0) for x in runs), 3),
            "p99_ms_median": round(statistics.median(x.get("p99_ms", 0) for x in runs), 3),
            "caddy_cpu_us_per_request_median": statistics.median(
                x["caddy_cpu_us_per_request"] or 0 for x in runs
            ),
            "errors": sum(x["non_2xx_3xx"] + x["socket_errors"] for x in runs),
            "rounds": runs,
        }
    per_round = [
        round(h["requests_per_s"] / p["requests_per_s"], 3)
        for h, p in zip(rounds["https"], rounds["http"], strict=True)
        if p["requests_per_s"]
    ]
    result["https_over_http_per_round"] = per_round
    result["https_over_http"] = round(statistics.median(per_round), 3) if per_round else None
    https, http = result["targets"]["https"], result["targets"]["http"]
    if https["caddy_cpu_us_per_request_median"] and http["caddy_cpu_us_per_request_median"]:
        result["caddy_cpu_per_request_https_over_http"] = round(
            https["caddy_cpu_us_per_request_median"] / http["caddy_cpu_us_per_request_median"], 3
        )
    return result


# -- phases -----------------------------------------------------------------------------------------------
def acme_phase(
    work: Path,
    user_dns: UserDns,
    resolver: Resolver,
    dns_port: int,
    args: argparse.Namespace,
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    (work / "pebble").mkdir()
    pebble = BenchPebble(work / "pebble", resolver.address)
    cleanup.append(pebble.stop)
    pebble.start()
    env = {
        **platform_env(resolver, args, ACME_VALIDATION_ZONE),
        "ANCHOR_ISSUER": "acme",
        "ANCHOR_ACME_DIRECTORY": pebble.directory_url,
        "ANCHOR_ACME_CA_BUNDLE": pebble.ca_bundle,
        "ANCHOR_ACME_EMAIL": f"ops@{ACME_ZONE}",
        "ANCHOR_DNS_ADDR": f"{LOOPBACK}:{dns_port}",
    }
    platform = Platform(work / "acme", free_dns_port(), env)
    cleanup.append(platform.stop)
    say(f"ACME: pebble {pebble.directory_url}, anchor up with ANCHOR_ISSUER=acme, DNS {LOOPBACK}:{dns_port}")
    try:
        platform.start()
        # Pebble makes a new issuance root at each start; the served chain must verify against it.
        platform.context = tls_client(cadata=pebble.issuance_roots().decode())
        names = [f"vis{i}.{ACME_ZONE}" for i in range(1, args.names + 1)]
        say(f"1. record visible -> HTTPS serving, ACME (pebble), {len(names)} names")
        result = {"visible_to_serving": visible_to_serving(platform, user_dns, resolver, names, args)}
        assert platform.context is not None
        say(f"2. handshakes, ACME: {args.handshakes} to {names[0]}")
        result["handshake_later"] = handshake_summary(
            handshake_series(platform.https_port, names[0], platform.context, args.handshakes)
        )
        result["memory"] = memory(platform.anchor)
        return result
    finally:
        platform.stop()
        pebble.stop()


def internal_phase(
    work: Path,
    user_dns: UserDns,
    resolver: Resolver,
    args: argparse.Namespace,
    deadline: float,
    cleanup: list[Callable[[], None]],
) -> dict[str, Any]:
    platform = Platform(work / "internal", free_dns_port(), platform_env(resolver, args, VALIDATION_ZONE))
    cleanup.append(platform.stop)
    total, samples = args.domains, args.samples
    names = [f"d{i:05d}.{ZONE}" for i in range(1, total + 1)]  # names[i - 1] is domain #i
    result: dict[str, Any] = {"memory": {}}
    try:
        platform.start()
        platform.context = tls_client(cafile=platform.anchor.data_dir / "ca" / "root.pem")
        result["memory"]["0"] = memory(platform.anchor)
        time.sleep(1)
        cpu0, idle_started = cpu_seconds(platform.anchor), time.perf_counter()
        time.sleep(args.idle_seconds)
        cpu1, idle = cpu_seconds(platform.anchor), time.perf_counter() - idle_started
        result["idle_cpu_cores"] = {k: round((cpu1[k] - cpu0[k]) / idle, 4) for k in cpu0}
        say(
            f"idle, no domain yet: platform {result['idle_cpu_cores']['platform']:.3f} cores, "
            f"Caddy {result['idle_cpu_cores']['caddy']:.3f} cores"
        )

        say(f"3. POST add -> active on an empty platform: domains #1-#{samples}")
        first = []
        for i, name in enumerate(names[:samples]):
            first.append(add_until_active(platform, user_dns, resolver, name))
            say(
                f"  #{i + 1}: active {first[-1]['post_to_active_s']} s after the POST "
                f"({first[-1]['post_ms']} ms)"
            )
            if i == 0:
                result["memory"]["1"] = memory(platform.anchor)
        result["first"] = samples_summary(first)

        say(f"2. handshakes with {samples} domains: the first of each, then {args.handshakes} to {names[0]}")
        firsts = []
        for name in names[:samples]:
            ok, seconds = platform.serves(name)
            if not ok or seconds is None:
                raise RuntimeError(f"{name} is active but not served over HTTPS")
            firsts.append(seconds)
        result["handshake_few"] = {
            "attached": samples,
            "first": handshake_summary(firsts),
            "later": handshake_summary(
                handshake_series(platform.https_port, names[0], platform.context, args.handshakes)
            ),
        }

        visible_names = names[samples : samples + args.names]
        say(f"1. record visible -> HTTPS serving, internal CA, {len(visible_names)} names")
        result["visible_to_serving"] = visible_to_serving(platform, user_dns, resolver, visible_names, args)
        result["memory"][str(samples + len(visible_names))] = memory(platform.anchor)

        result["throughput"] = throughput_phase(platform, names[0], work, args)

        bulk_names = names[samples + len(visible_names) : total - samples]
        say(
            f"3. bulk: domains #{samples + len(visible_names) + 1}-#{total - samples} "
            f"({len(bulk_names)}; batches of {args.batch}, {args.post_threads} client threads)"
        )
        result["bulk"] = bulk_attach(platform, user_dns, bulk_names, args, deadline)
        bulk = result["bulk"]
        say(
            f"  {bulk['attached']} attached in {bulk['until_all_active_s']} s ({bulk['domains_per_s']}/s; "
            f"posting took {bulk['post_s']} s)"
        )
        attached = platform.status_counts().get("ISSUED/active", 0)
        last_names = names[total - samples :]
        say(f"3. POST add -> active with {attached} attached: the next {samples}")
        last = []
        for name in last_names:
            last.append(add_until_active(platform, user_dns, resolver, name))
            say(
                f"  {name}: active {last[-1]['post_to_active_s']} s after the POST ({last[-1]['post_ms']} ms)"
            )
        result["last"] = samples_summary(last)
        result["last"]["attached_before"] = attached
        result["last"]["numbers"] = [attached + 1, attached + samples]
        final = attached + samples
        result["memory"][str(final)] = memory(platform.anchor)

        say(
            f"2. handshakes with {final} domains: {args.first_handshakes} never-visited names, "
            f"then {args.handshakes} to one"
        )
        candidates = bulk_names[: bulk["posted"]]
        step = max(1, len(candidates) // max(1, args.first_handshakes))
        firsts = []
        for name in candidates[::step][: args.first_handshakes]:
            ok, seconds = platform.serves(name)
            if ok and seconds is not None:
                firsts.append(seconds)
            elif not bulk["truncated_by_time_bound"]:  # a cut-short bulk may have left some unattached
                raise RuntimeError(f"{name} (bulk) is not served over HTTPS")
        # The same name's handshakes, alternating in blocks with a bare Caddy (the same binary) that has
        # the same certificate loaded from a file: the difference is the per-handshake certificate fetch.
        bundle = platform.anchor.data_dir / "certificates" / f"{last_names[-1]}.pem"
        bare, bare_port = start_tls_caddy(args.caddy, work, bundle)
        later: list[float] = []
        bare_later: list[float] = []
        try:
            block = max(1, args.handshakes // 4)
            while len(later) < args.handshakes:
                count = min(block, args.handshakes - len(later))
                later += handshake_series(platform.https_port, last_names[-1], platform.context, count)
                bare_later += handshake_series(bare_port, last_names[-1], platform.context, count)
        finally:
            stop_server(bare)
        result["handshake_many"] = {
            "attached": final,
            "first": handshake_summary(firsts),
            "later": handshake_summary(later),
            "bare_caddy_same_certificate": handshake_summary(bare_later),
        }

        started = time.perf_counter()
        listed = platform.api.get(f"/v1/projects/{PROJECT}/domains", timeout=120)
        listed.raise_for_status()
        domains = listed.json()["domains"]
        result["list_all"] = {
            "seconds": round(time.perf_counter() - started, 3),
            "domains": len(domains),
            "active": sum(is_active(d) for d in domains),
            "bytes": len(listed.content),
        }
        result["certificate_files"] = len(list((platform.anchor.data_dir / "certificates").glob("*.pem")))
        result["edge_links"] = sum(1 for _ in (platform.anchor.data_dir / "edge" / "c").iterdir())
        return result
    finally:
        platform.stop()


# -- report --------------------------------------------------------------------------------------------
def machine(caddy: str) -> dict[str, Any]:
    facts = machine_facts(caddy)
    for name in ("knot", "bind9", "pebble"):
        facts[name] = _command_output(["dpkg-query", "-W", "-f=${Version}", name])
    return facts


def _ms_pair(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("n"):
        return "-"
    return f"{summary['p50']} / {summary['p99']} ms (n={summary['n']})"


def _s_pair(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("n"):
        return "-"
    return f"{summary['p50']} / {summary['max']} s (n={summary['n']})"


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    internal, acme = results.get("internal", {}), results.get("acme", {})
    bound = f"poll interval {results['args']['check_min']:g}-{results['args']['check_max']:g} s"
    for label, part in (("internal CA", internal), ("ACME (pebble)", acme)):
        found = part.get("visible_to_serving")
        if found:
            rows.append(
                (
                    "1",
                    f"record visible -> HTTPS serving, {label}",
                    _s_pair(found["visible_to_serving_s"]) + " p50/max",
                    bound,
                )
            )
            rows.append(
                (
                    "1",
                    f"  of which: successful check -> serving, {label}",
                    _s_pair(found["check_to_serving_s"]) + " p50/max",
                    "issue + install + probe + 50 ms polls",
                )
            )
    for key, label in (("handshake_few", "few"), ("handshake_many", "many")):
        found = internal.get(key)
        if found:
            rows.append(
                (
                    "2",
                    f"handshake, first per name, {found['attached']} attached",
                    _ms_pair(found["first"]) + " p50/p99",
                    "fresh TCP, full handshake",
                )
            )
            rows.append(
                (
                    "2",
                    f"handshake, later (one name), {found['attached']} attached",
                    _ms_pair(found["later"]) + " p50/p99",
                    "",
                )
            )
    bare = internal.get("handshake_many", {}).get("bare_caddy_same_certificate")
    if bare:
        rows.append(
            (
                "2",
                "handshake, bare Caddy with the same certificate from a file",
                _ms_pair(bare) + " p50/p99",
                "baseline: no per-handshake fetch",
            )
        )
    if acme.get("handshake_later"):
        rows.append(
            (
                "2",
                "handshake, later (one name), ACME chain",
                _ms_pair(acme["handshake_later"]) + " p50/p99",
                "leaf + intermediate",
            )
        )
    first, last = internal.get("first"), internal.get("last")
    if first:
        rows.append(
            (
                "3",
                f"POST add -> active, #1-#{first['n']} (median)",
                f"{first['post_to_active_s_median']} s",
                f"POST {first['post_ms_median']} ms; records visible -> active "
                f"{first['visible_to_active_s_median']} s",
            )
        )
    if last:
        a, b = last["numbers"]
        rows.append(
            (
                "3",
                f"POST add -> active, #{a}-#{b} (median)",
                f"{last['post_to_active_s_median']} s",
                f"POST {last['post_ms_median']} ms; records visible -> active "
                f"{last['visible_to_active_s_median']} s",
            )
        )
    if first and last:
        n = last["numbers"][1]
        ratios = results.setdefault("ratios", {})
        for key, label, note in (
            ("post_to_active_s_median", "POST -> active", "includes the resolver's caching"),
            ("visible_to_active_s_median", "records visible -> active", "the platform's own work"),
            ("post_ms_median", "POST latency", ""),
        ):
            if first.get(key) and last.get(key):
                ratio = round(last[key] / first[key], 2)
                ratios[f"{key}_last_over_first"] = ratio
                value = f"{ratio} ({first[key]} -> {last[key]})"
                rows.append(
                    ("3", f"ratio #{n - last['n'] + 1}-#{n} / #1-#{first['n']}: {label}", value, note)
                )
    bulk = internal.get("bulk")
    if bulk:
        note = (
            "TRUNCATED by the time bound"
            if bulk["truncated_by_time_bound"]
            else f"posting {bulk['post_s']} s"
        )
        rows.append(
            (
                "3",
                f"bulk attach of {bulk['posted']} domains",
                f"{bulk['until_all_active_s']} s = {bulk['domains_per_s']} domains/s",
                note,
            )
        )
    memory_points = internal.get("memory", {})
    if "1" in memory_points and len(memory_points) > 1:
        top = max(memory_points, key=int)
        for key, label in (("caddy_rss_mib", "Caddy RSS"), ("platform_rss_mib", "platform RSS")):
            rows.append(
                (
                    "3",
                    f"{label} at 1 / {top} domains",
                    f"{memory_points['1'][key]} / {memory_points[top][key]} MiB",
                    "",
                )
            )
    throughput = internal.get("throughput", {})
    if "targets" in throughput:
        for kind in ("https", "http"):
            t = throughput["targets"][kind]
            rows.append(
                (
                    "4",
                    f"{kind.upper()} req/s, p99",
                    f"{t['requests_per_s_median']:.0f} req/s, {t['p99_ms_median']} ms",
                    f"Caddy {t['caddy_cpu_us_per_request_median']} µs/req",
                )
            )
        rows.append(
            (
                "4",
                "ratio HTTPS / HTTP (req/s, median of rounds)",
                f"{throughput['https_over_http']}",
                f"per round {throughput['https_over_http_per_round']}",
            )
        )
    return rows


def render(results: dict[str, Any]) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    facts = results["machine"]
    out.print(
        f"anchor-deploy custom-domain benchmark  {results['started_at']}  nproc={facts['nproc']}  "
        f"python {facts['python']}  {facts['caddy'].split()[0]}  total {results.get('total_s')} s"
    )
    out.print(f"load average start {facts['loadavg_start']}  end {facts.get('loadavg_end')}")
    table = Table(title="custom domains")
    for col in ("part", "measurement", "value", "note"):
        table.add_column(col, no_wrap=col != "note")
    for row in summary_rows(results):
        table.add_row(*row)
    out.print(table)


# -- main ----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", type=int, help="N: the domain count of part 3 (default 5000)")
    parser.add_argument("--names", type=int, help="names per issuer in part 1 (default 5)")
    parser.add_argument("--samples", type=int, help="adds timed at each end of part 3 (default 5)")
    parser.add_argument("--handshakes", type=int, help="repeated handshakes per series (default 200)")
    parser.add_argument("--first-handshakes", type=int, help="never-visited names at N (default 50)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds between adding a domain and its records (part 1), plus up to --check-max at random",
    )
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between two HTTPS polls (part 1)")
    parser.add_argument("--check-min", type=float, default=0.2, help="ANCHOR_DOMAIN_CHECK_MIN (default 0.2)")
    parser.add_argument("--check-max", type=float, default=1.0, help="ANCHOR_DOMAIN_CHECK_MAX (default 1)")
    parser.add_argument("--batch", type=int, default=200, help="domains per bulk batch (default 200)")
    parser.add_argument("--post-threads", type=int, default=8, help="client threads of the bulk POSTs")
    parser.add_argument("--wrk-seconds", type=float, help="seconds per wrk run (default 5)")
    parser.add_argument("--wrk-rounds", type=int, help="wrk rounds per target, alternating (default 3)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument(
        "--budget", type=float, default=600.0, help="seconds: the bulk stops posting in time for this"
    )
    parser.add_argument("--no-acme", dest="acme", action="store_false", help="skip the pebble part")
    parser.add_argument(
        "--caddy", default=Settings().caddy_bin, help="Caddy binary (default: the pinned one)"
    )
    parser.add_argument(
        "--platform-src",
        type=Path,
        help="run `anchor up` from this folder (holding anchor_deploy/) instead of src/, to A/B a patch",
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="CPU of the idle platform over this")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/domains.json)")
    parser.add_argument("--keep", action="store_true", help="keep the temp work dir (data dirs, logs)")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = RESULTS.with_name("domains-quick.json") if args.quick else RESULTS
    if args.samples < 1 or args.names < 1 or args.domains < 2 * args.samples + args.names:
        parser.error("--samples >= 1, --names >= 1 and --domains >= 2 * samples + names")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine(args.caddy),
        "notes": ["the machine was shared with other work; compare ratios within one run"],
    }
    work = Path(tempfile.mkdtemp(prefix="anchor-bench-domains-"))
    started = time.perf_counter()
    # The bulk stops posting when this passes, leaving time for the rest (bounded waits of about a minute).
    deadline = time.monotonic() + args.budget - 90
    cleanup: list[Callable[[], None]] = []
    keep = args.keep
    interrupted = False
    say(f"work dir {work}; starting knot (the user's DNS) and BIND (the resolver)")
    try:
        acme_dns_port = free_dns_port()
        user_dns = UserDns([ZONE, ACME_ZONE], workdir=work / "knot")
        cleanup.append(user_dns.stop)
        user_dns.start()
        forwards: dict[str, str | tuple[str, int]] = {
            ZONE: user_dns.address,
            ACME_ZONE: user_dns.address,
            ACME_VALIDATION_ZONE: (LOOPBACK, acme_dns_port),
        }
        resolver = Resolver(forwards, workdir=work / "named")
        cleanup.append(resolver.stop)
        resolver.start()
        results["resolver_negative_cache_s"] = resolver_negative_cache(user_dns, resolver)
        say(
            f"the resolver hides a new record for {results['resolver_negative_cache_s']['p50']} s "
            "after it answered NXDOMAIN for it"
        )
        if args.acme:
            results["acme"] = acme_phase(work, user_dns, resolver, acme_dns_port, args, cleanup)
        results["internal"] = internal_phase(work, user_dns, resolver, args, deadline, cleanup)
    except KeyboardInterrupt:
        interrupted = True
        raise
    except BaseException:
        keep = True
        say(f"failed; logs are kept in {work} (*/anchor-up.log, */data/logs/, knot/, named/, pebble/)")
        for log in sorted(work.glob("*/anchor-up.log")):
            with contextlib.suppress(Exception):
                say(f"{log} ends with:\n{tail(log, 1500)}")
        raise
    finally:
        for step in reversed(cleanup):
            with contextlib.suppress(Exception):
                step()
        leftovers = leftover_children()
        if leftovers:
            say(f"warning: child processes still running: {leftovers}")
        if interrupted and not keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = loadavg()
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["summary"] = [
        {"part": p, "measurement": m, "value": v, "note": n} for p, m, v, n in summary_rows(results)
    ]
    if keep:
        results["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_and_report(args, run, render)
    if results is None:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
