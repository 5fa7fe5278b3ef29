"""Custom domains on the AWS provider, for bench_aws.py: what a domain costs in AWS calls and control-plane
time to add, attach and remove, domain #1 against domain #N, and what a rollback costs with N attached.

On the AWS platform bench_aws.py built (its own AwsClients, so every call is counted by "service:Operation")
and its project with a production deployment: a Route 53 hosted zone (``bench.example``) is made on the
moto server and linked to the project with the platform's own DnsLinks (admin token), so the platform writes
every record itself (moto's ACM issues a certificate once its validation CNAME is in a zone covering the
name). Then N domains, one after the other, driven as the domain worker drives them but in this thread:
``domains.add`` then ``domains.step`` until the row is ISSUED and ACTIVE (a short pause between steps while
moto deploys the distribution; only the time inside the service calls is control-plane time). With N
attached: rollbacks and promotions (no CloudFront or ACM call expected, and the calls of a move without
domains). Then every domain removed (``domains.remove``, then steps until the row is gone), converge passes
until CloudFront and ACM let go, and a check that no alias, certificate or record of ours is left.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import dns.exception
import dns.message
import dns.rcode
from rich.console import Console
from rich.table import Table

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.model.domains import CdnStatus, CertificateStatus, Domain
from anchor_deploy.model.entities import Project, Token
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.dns_automation import LinkRequest

ZONE = "bench.example"
SERVICES = ("acm", "cloudfront", "route53", "dynamodb")
PAUSE = 0.1  # seconds between two steps of a domain that waits on moto (CloudFront deploys in ~0.5 s)
STEP_LIMIT = 300  # steps after which a domain counts as stuck
CONVERGE_SECONDS = 60.0  # converge passes after the removals, until nothing of ours is left
MOVES = 3  # rollbacks, and as many promotions, with every domain attached
LOOPBACK = "127.0.0.1"
# The AWS limits the plane plans by (AWS's defaults; the bench sets no ANCHOR_AWS_QUOTA_*).
NAMES_PER_CERTIFICATE = 10
ALIASES_PER_DISTRIBUTION = 100
DISTRIBUTIONS = 500
CERTIFICATES = 2500


NOTES = [
    "domains run on moto with CloudFront's and ACM's rules patched in (tests/moto_rules): ACM validates a "
    "name once its CNAME is in a moto Route 53 zone covering it, a distribution is Deployed 0.5 s after a "
    "change; on AWS validation takes minutes and a deployment several, so the steps spent waiting (and the "
    "wall time) would be many more, each a few reads: the calls per step carry over, the number of waiting "
    "steps does not",
    "control-plane ms is the time inside domains.add/step/remove only (not the pauses between steps); the "
    "platform's DNS checks ask a resolver on 127.0.0.1 that answers NXDOMAIN at once (the zone lives in "
    "moto), so the routing and renewal diagnoses report the records as not seen: they do not gate attachment",
]


class Measuring(Protocol):
    """bench_aws.Side: the AWS platform, its admin token, its clients, and ``measure`` (result, calls,
    seconds)."""

    platform: Platform
    token: Token
    clients: AwsClients | None

    def measure(self, op: Callable[[], Any]) -> tuple[Any, Counter[str], float]: ...


Move = Callable[[str, str], tuple[Counter[str], float]]  # (deployment id, "rollback"|"promote")


# -- a resolver on loopback, so the platform's DNS checks never leave the machine ----------------------
class LoopbackResolver:
    """UDP on 127.0.0.1 answering NXDOMAIN at once to every query (the platform's routing and renewal
    checks ask its resolvers; the bench's zone lives only in moto, which ACM reads directly)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((LOOPBACK, 0))
        self._socket.settimeout(0.2)
        self.address = f"{LOOPBACK}:{self._socket.getsockname()[1]}"
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bench-resolver", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
                query = dns.message.from_wire(data)
            except TimeoutError:
                continue
            except (OSError, dns.exception.DNSException):
                if self._stop.is_set():
                    return
                continue
            answer = dns.message.make_response(query)
            answer.set_rcode(dns.rcode.NXDOMAIN)
            self.queries += 1
            self._socket.sendto(answer.to_wire(), peer)

    def __enter__(self) -> LoopbackResolver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


class CallClock:
    """Seconds spent inside AWS calls on the platform's clients, from botocore's before-call to its
    after-call (signing, the HTTP round trip, moto's own work, parsing): the rest of the control-plane time
    is the platform's own Python."""

    def __init__(self, clients: AwsClients | None) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        if clients is None:
            return
        for service in (*SERVICES, "service-quotas"):
            events = clients.client(service).meta.events
            events.register("before-call", self._start)
            events.register("after-call", self._stop)
            events.register("after-call-error", self._stop)

    def _start(self, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _stop(self, context: dict[str, Any], **_: Any) -> None:
        started = context.pop("bench_started", None)
        if started is not None:
            with self._lock:
                self.seconds += time.perf_counter() - started


# -- one domain's phases -------------------------------------------------------------------------------
def by_service(calls: Counter[str]) -> dict[str, int]:
    services: Counter[str] = Counter()
    for key, count in calls.items():
        services[key.split(":", 1)[0]] += count
    return dict(sorted(services.items()))


@dataclass
class Phase:
    """One domain's add, attach (every step until active) or removal: its calls, the services' seconds,
    the steps, the DNS lookups, and the wall time including the pauses."""

    calls: Counter[str] = field(default_factory=Counter)
    control_s: float = 0.0
    aws_s: float = 0.0  # of control_s, inside AWS calls (moto's answers)
    steps: int = 0
    lookups: int = 0
    wall_s: float = 0.0

    def facts(self) -> dict[str, Any]:
        return {
            "total": sum(self.calls.values()),
            "services": by_service(self.calls),
            "calls": dict(sorted(self.calls.items())),
            "steps": self.steps,
            "control_ms": round(self.control_s * 1000, 2),
            "in_aws_calls_ms": round(self.aws_s * 1000, 2),
            "dns_lookups": self.lookups,
            "wall_s": round(self.wall_s, 3),
        }


@dataclass
class Driver:
    side: Measuring
    project: Project
    resolver: LoopbackResolver
    clock: CallClock

    @property
    def domains(self) -> Any:
        return self.side.platform.domains

    def row(self, name: str) -> Domain | None:
        """The domain's row as the API reads it (its calls are not counted: outside ``measure``)."""
        found: Domain | None = self.domains.store.domain(name)
        return found

    def timed(self, phase: Phase, op: Callable[[], Any]) -> Any:
        lookups, in_calls = self.resolver.queries, self.clock.seconds
        result, calls, seconds = self.side.measure(op)
        phase.calls += calls
        phase.control_s += seconds
        phase.aws_s += self.clock.seconds - in_calls
        phase.lookups += self.resolver.queries - lookups
        return result

    def add(self, name: str) -> Phase:
        phase = Phase()
        started = time.perf_counter()
        self.timed(phase, lambda: self.domains.add(self.project, name))
        phase.wall_s = time.perf_counter() - started
        return phase

    def steps_until(self, name: str, done: Callable[[Domain | None], bool], phase: Phase) -> Phase:
        """``domains.step(name)`` until ``done(row)``, pausing while it waits on moto. RuntimeError, with the
        row's last reason, after STEP_LIMIT steps."""
        started = time.perf_counter()
        while not done(self.row(name)):
            if phase.steps >= STEP_LIMIT:
                row = self.row(name)
                shown = "gone" if row is None else f"{_status(row)}: {row.status_reason}"
                raise RuntimeError(f"{name} did not get there in {STEP_LIMIT} steps ({shown})")
            if phase.steps:
                time.sleep(PAUSE)
            self.timed(phase, lambda: self.domains.step(name))
            phase.steps += 1
        phase.wall_s += time.perf_counter() - started
        return phase

    def attach(self, name: str) -> Phase:
        return self.steps_until(name, _active, Phase())

    def remove(self, name: str) -> Phase:
        phase = Phase()
        started = time.perf_counter()
        self.timed(phase, lambda: self.domains.remove(self.project, name))
        phase.wall_s = time.perf_counter() - started
        return self.steps_until(name, lambda row: row is None, phase)

    def converge_until_clean(self) -> dict[str, Any]:
        """Converge passes (as the worker runs them) until moto holds nothing of ours but the production
        distribution, or CONVERGE_SECONDS."""
        phase = Phase()
        deadline = time.monotonic() + CONVERGE_SECONDS
        while True:
            left = inventory()
            clean = not left["certificates"] and len(left["distributions"]) <= 1
            if clean or time.monotonic() > deadline:
                break
            if phase.steps:
                time.sleep(PAUSE * 5)
            self.timed(phase, self.domains.converge)
            phase.steps += 1
        return phase.facts() | {"clean": clean}


def _active(row: Domain | None) -> bool:
    return (
        row is not None
        and row.certificate_status == CertificateStatus.ISSUED
        and row.cdn_status == CdnStatus.ACTIVE
    )


def _status(row: Domain) -> str:
    return f"certificate {row.certificate_status.value}, cdn {row.cdn_status.value}"


# -- what moto holds (read with clients of the bench's own: not counted) ---------------------------------
def make_zone(zone: str) -> str:
    route53 = AwsClients().client("route53")
    made = route53.create_hosted_zone(Name=zone + ".", CallerReference=f"anchor-bench-{time.time()}")
    return str(made["HostedZone"]["Id"])


def inventory(zone_id: str | None = None) -> dict[str, Any]:
    """Every distribution (its aliases), every certificate (its names, status, users) and, given a zone,
    its records other than SOA and NS. The moto server is this run's own: all of it is ours."""
    clients = AwsClients()
    cloudfront, acm = clients.client("cloudfront"), clients.client("acm")
    distributions = []
    for page in cloudfront.get_paginator("list_distributions").paginate():
        for item in page.get("DistributionList", {}).get("Items", []) or []:
            distributions.append(
                {
                    "id": item["Id"],
                    "comment": item.get("Comment", ""),
                    "status": item.get("Status"),
                    "enabled": item.get("Enabled"),
                    "aliases": list(item.get("Aliases", {}).get("Items", []) or []),
                }
            )
    certificates = []
    for page in acm.get_paginator("list_certificates").paginate():
        for summary in page.get("CertificateSummaryList", []):
            described = acm.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
            certificates.append(
                {
                    "arn": described["CertificateArn"],
                    "status": described.get("Status"),
                    "names": list(described.get("SubjectAlternativeNames", [])),
                    "in_use_by": len(described.get("InUseBy", [])),
                }
            )
    records: list[str] = []
    if zone_id:
        route53 = clients.client("route53")
        for page in route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id):
            records += [
                f"{s['Type']} {s['Name']}"
                for s in page["ResourceRecordSets"]
                if s["Type"] not in ("SOA", "NS")
            ]
    return {"distributions": distributions, "certificates": certificates, "records": records}


def layout(held: dict[str, Any]) -> dict[str, Any]:
    """The counts the quotas bound, from an inventory."""
    certificates = held["certificates"]
    largest = max(certificates, key=lambda c: len(c["names"]), default=None)
    return {
        "distributions": len(held["distributions"]),
        "distributions_with_aliases": sum(bool(d["aliases"]) for d in held["distributions"]),
        "most_aliases": max((len(d["aliases"]) for d in held["distributions"]), default=0),
        "aliases": sum(len(d["aliases"]) for d in held["distributions"]),
        "certificates": len(certificates),
        "certificates_issued": sum(c["status"] == "ISSUED" for c in certificates),
        "largest_certificate_names": len(largest["names"]) if largest else 0,
        "largest_certificate": largest["names"] if largest else [],
        "records": len(held.get("records", [])),
    }


# -- the run -------------------------------------------------------------------------------------------
def summary(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 2),
        "p50": round(statistics.median(values), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


def per_domain(phases: list[Phase]) -> dict[str, Any]:
    """The phase over every domain: calls per domain (mean by service and operation, spread of the total),
    steps, control-plane ms."""
    total: Counter[str] = Counter()
    for phase in phases:
        total += phase.calls
    n = len(phases)
    return {
        "n": n,
        "mean_by_service": {k: round(v / n, 2) for k, v in by_service(total).items()},
        "mean_by_operation": {k: round(v / n, 2) for k, v in sorted(total.items())},
        "total": summary([sum(p.calls.values()) for p in phases]),
        "steps": summary([p.steps for p in phases]),
        "control_ms": summary([p.control_s * 1000 for p in phases]),
        "in_aws_calls_ms": summary([p.aws_s * 1000 for p in phases]),
        "own_ms": summary([(p.control_s - p.aws_s) * 1000 for p in phases]),
        "dns_lookups": summary([p.lookups for p in phases]),
    }


def first_vs_last(adds: list[Phase], attaches: list[Phase]) -> dict[str, Any]:
    """Domain #1 against domain #N, add and attach together: calls and control-plane ms (and of those, the
    ms inside AWS calls and the platform's own), and the medians of the first and the last tenth (a single
    sample is noisy)."""
    pairs = list(zip(adds, attaches, strict=True))
    calls = [sum(a.calls.values()) + sum(b.calls.values()) for a, b in pairs]
    ms = [(a.control_s + b.control_s) * 1000 for a, b in pairs]
    aws = [(a.aws_s + b.aws_s) * 1000 for a, b in pairs]
    own = [total - inside for total, inside in zip(ms, aws, strict=True)]
    tenth = max(1, len(ms) // 10)

    def ratio(hi: float, lo: float) -> float | None:
        return round(hi / lo, 2) if lo else None

    def one(i: int) -> dict[str, Any]:
        return {
            "calls": calls[i],
            "steps": attaches[i].steps,
            "control_ms": round(ms[i], 2),
            "in_aws_calls_ms": round(aws[i], 2),
            "own_ms": round(own[i], 2),
            "services": _services(adds[i], attaches[i]),
        }

    def tenths(values: list[float]) -> tuple[float, float, float | None]:
        head, tail = statistics.median(values[:tenth]), statistics.median(values[-tenth:])
        return round(head, 2), round(tail, 2), ratio(tail, head)

    head, tail, tenth_ratio = tenths(ms)
    return {
        "first": one(0),
        "last": one(-1),
        "calls_ratio": ratio(calls[-1], calls[0]),
        "ms_ratio": ratio(ms[-1], ms[0]),
        "tenth": tenth,
        "first_tenth_ms_p50": head,
        "last_tenth_ms_p50": tail,
        "tenth_ms_ratio": tenth_ratio,
        "in_aws_calls_tenths": tenths(aws),  # (first tenth p50, last tenth p50, ratio)
        "own_tenths": tenths(own),
    }


def _services(*phases: Phase) -> dict[str, int]:
    total: Counter[str] = Counter()
    for phase in phases:
        total += phase.calls
    return by_service(total)


def _progress(say: Callable[[str], None], count: int, what: str) -> Callable[[int], None]:
    every = max(1, count // 6)

    def tick(i: int) -> None:
        if (i + 1) % every == 0 or i + 1 == count:
            say(f"  {what} {i + 1}/{count}")

    return tick


def measure_domains(
    side: Measuring,
    project: Project,
    pair: tuple[str, str],
    count: int,
    move: Move,
    resolver: LoopbackResolver,
    say: Callable[[str], None],
) -> dict[str, Any]:
    driver = Driver(side, project, resolver, CallClock(side.clients))
    names = [f"d{i:03d}.{ZONE}" for i in range(1, count + 1)]
    zone_id = make_zone(ZONE)
    link = Phase()
    driver.timed(
        link, lambda: side.platform.dns_links.link(project, LinkRequest(ZONE, "route53", zone_id), side.token)
    )
    say(f"domains: zone {ZONE} ({zone_id}) linked; {count} domains, each added then stepped until active")
    adds: list[Phase] = []
    attaches: list[Phase] = []
    tick = _progress(say, count, "active")
    for i, name in enumerate(names):
        adds.append(driver.add(name))
        attaches.append(driver.attach(name))
        tick(i)
    attached = inventory(zone_id)
    quotas = driver.timed(Phase(), lambda: side.platform.domains.quotas(project))
    requested = sum(p.calls["acm:RequestCertificate"] for p in [*adds, *attaches])
    say(f"domains: {MOVES} rollbacks and {MOVES} promotions with {count} attached")
    moves = []
    for i in range(MOVES * 2):
        how = "rollback" if i % 2 == 0 else "promote"
        calls, seconds = move(pair[i % 2], how)
        moves.append({"how": how, "calls": dict(calls), "ms": round(seconds * 1000, 2)})
    say(f"domains: removing all {count}")
    removals: list[Phase] = []
    tick = _progress(say, count, "removed")
    for i, name in enumerate(names):
        removals.append(driver.remove(name))
        tick(i)
    converged = driver.converge_until_clean()
    left = inventory(zone_id)
    quotas_after = driver.timed(Phase(), lambda: side.platform.domains.quotas(project))
    return {
        "count": count,
        "zone": ZONE,
        "notes": NOTES,
        "link": link.facts(),
        "add": per_domain(adds),
        "attach": per_domain(attaches),
        "removal": per_domain(removals),
        "first_vs_last": first_vs_last(adds, attaches),
        "removal_first_vs_last": {
            "first": removals[0].facts(),
            "last": removals[-1].facts(),
        },
        "attached": layout(attached) | {"inventory": attached},
        "quotas": quota_facts(quotas),
        "acm_requests_made": requested,  # RequestCertificate calls until all were active, against the above
        "quotas_after_removal": quota_facts(quotas_after),
        "moves": moves,
        "converge_after_removal": converged,
        "left": layout(left) | {"inventory": left},
        "every": [
            {"name": n, "add": a.facts(), "attach": b.facts(), "removal": r.facts()}
            for n, a, b, r in zip(names, adds, attaches, removals, strict=True)
        ],
    }


def quota_facts(quotas: list[Any]) -> list[dict[str, Any]]:
    """QuotaUse as the results show it."""
    fields = ("code", "name", "limit", "used", "scope", "source")
    return [{k: getattr(q, k) for k in fields} for q in quotas]


# -- checks --------------------------------------------------------------------------------------------
def domain_checks(results: dict[str, Any]) -> list[str]:
    """The failures, in words: a move with domains attached that calls CloudFront or ACM, or differs from a
    move without; a layout beyond a quota; anything of ours left after the removals."""
    domains = results.get("aws_domains")
    if not domains:
        return []
    failed = []
    for i, moved in enumerate(domains["moves"]):
        calls = Counter(moved["calls"])
        cdn = {k: v for k, v in calls.items() if k.split(":", 1)[0] in ("cloudfront", "acm")}
        baseline = _usual(results["aws"][moved["how"]]["every"])
        if cdn or calls != baseline:
            failed.append(
                f"{moved['how']} #{i // 2 + 1} with {domains['count']} domains attached: CloudFront/ACM "
                f"calls {cdn or 0}; calls {dict(calls)} vs {dict(baseline)} without domains"
            )
    at = domains["attached"]
    limits = (
        ("largest_certificate_names", NAMES_PER_CERTIFICATE, "names on one certificate"),
        ("most_aliases", ALIASES_PER_DISTRIBUTION, "aliases on one distribution"),
        ("distributions", DISTRIBUTIONS, "distributions"),
        ("certificates", CERTIFICATES, "certificates"),
    )
    for key, limit, what in limits:
        if at[key] > limit:
            failed.append(f"with {domains['count']} domains attached: {at[key]} {what}, quota {limit}")
    if at["aliases"] != domains["count"]:
        failed.append(f"{at['aliases']} aliases on CloudFront for {domains['count']} active domains")
    for quota in domains["quotas"]:
        if quota["used"] > quota["limit"]:
            failed.append(f"quota {quota['code']} ({quota['scope']}): {quota['used']} of {quota['limit']}")
    left = domains["left"]
    if left["aliases"] or left["certificates"] or left["records"]:
        failed.append(
            f"after removing every domain: {left['aliases']} aliases, {left['certificates']} certificates, "
            f"{left['records']} records left ({left['inventory']})"
        )
    extra = [f"{d['id']} ({d['comment']})" for d in left["inventory"]["distributions"] if "#" in d["comment"]]
    if extra:
        failed.append(
            f"after removing every domain and up to {CONVERGE_SECONDS:g} s of converge passes: "
            f"{len(extra)} extra distributions left: {', '.join(extra)}"
        )
    placed = [q for q in domains["quotas_after_removal"] if q["code"] == "domains_per_project" and q["used"]]
    if placed:
        failed.append(
            "after removing every domain, the platform still counts "
            + ", ".join(f"{q['used']} of {q['name'].lower()} ({q['source']})" for q in placed)
        )
    return failed


def _usual(every: list[dict[str, int]]) -> Counter[str]:
    shapes = Counter(tuple(sorted(calls.items())) for calls in every)
    return Counter(dict(shapes.most_common(1)[0][0]))


# -- report --------------------------------------------------------------------------------------------
def render_domains(out: Console, results: dict[str, Any]) -> None:
    domains = results.get("aws_domains")
    if not domains:
        return
    n = domains["count"]
    table = Table(
        title=f"3. custom domains on AWS: calls per domain (mean of {n}; records written by the platform)"
    )
    for col in (
        "phase",
        "calls",
        *SERVICES,
        "other",
        "steps p50",
        "control ms p50",
        "in calls p50",
        "ms max",
    ):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for key, label in (
        ("add", "add"),
        ("attach", "attach (steps until active)"),
        ("removal", "removal (until gone)"),
    ):
        phase = domains[key]
        services = phase["mean_by_service"]
        other = sum(v for k, v in services.items() if k not in SERVICES)
        table.add_row(
            label,
            f"{phase['total']['mean']:g} ({phase['total']['min']:g}-{phase['total']['max']:g})",
            *(f"{services.get(s, 0):g}" for s in SERVICES),
            f"{other:g}",
            f"{phase['steps']['p50']:g}",
            f"{phase['control_ms']['p50']:,}",
            f"{phase['in_aws_calls_ms']['p50']:,}",
            f"{phase['control_ms']['max']:,}",
        )
    out.print(table)
    fl = domains["first_vs_last"]
    out.print(
        f"domain #1 vs #{n} (add + attach): calls {fl['first']['calls']} vs {fl['last']['calls']} "
        f"(x{fl['calls_ratio']}), control plane {fl['first']['control_ms']:,} vs "
        f"{fl['last']['control_ms']:,} ms "
        f"(x{fl['ms_ratio']}); first vs last {fl['tenth']}: p50 {fl['first_tenth_ms_p50']:,} vs "
        f"{fl['last_tenth_ms_p50']:,} ms (x{fl['tenth_ms_ratio']}): inside AWS calls "
        f"{fl['in_aws_calls_tenths'][0]:,} vs {fl['in_aws_calls_tenths'][1]:,} ms "
        f"(x{fl['in_aws_calls_tenths'][2]}), the platform's own {fl['own_tenths'][0]:,} vs "
        f"{fl['own_tenths'][1]:,} ms (x{fl['own_tenths'][2]})"
    )
    at = domains["attached"]
    out.print(
        f"with {n} active: {at['distributions']} distributions "
        f"({at['distributions_with_aliases']} with aliases, at most {at['most_aliases']}), "
        f"{at['certificates']} certificates, the largest with "
        f"{at['largest_certificate_names']} names; quotas: "
        + ", ".join(f"{q['code']} {q['used']}/{q['limit']}" for q in domains["quotas"])
    )
    for moved in domains["moves"]:
        cdn = sum(v for k, v in moved["calls"].items() if k.split(":", 1)[0] in ("cloudfront", "acm"))
        writes = {
            k: v
            for k, v in moved["calls"].items()
            if k in ("lambda:UpdateAlias", "dynamodb:TransactWriteItems")
        }
        out.print(
            f"{moved['how']} with {n} domains: {sum(moved['calls'].values())} calls, CloudFront+ACM {cdn}, "
            f"writes {writes}, {moved['ms']} ms"
        )
    left = domains["left"]
    conv = domains["converge_after_removal"]
    out.print(
        f"after removing all {n}: {left['aliases']} aliases, {left['certificates']} certificates, "
        f"{left['records']} records, {left['distributions']} distributions left "
        f"(converge passes after the removals: {conv['steps']}, {conv['total']} calls)"
    )
    for note in domains["notes"]:
        out.print(f"note: {note}")
