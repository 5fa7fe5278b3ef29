"""Custom domains end to end with the internal CA: knot plays the user's DNS provider (records added by RFC
2136 updates), BIND is the recursive resolver the platform polls, the platform issues from its local CA and
a real Caddy serves the name over HTTPS, checked with curl against the CA's root."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.dns_support import Resolver, UserDns
from tests.e2e.harness import LOOPBACK, AnchorProcess, ensure_project, upload_and_deploy
from tests.support import write_old_style_root

pytestmark = pytest.mark.e2e

ZONE = "example.test"
VALIDATION_ZONE = "anchor-validation.test"
EDGE_HOST = "edge.anchor.test"


@pytest.fixture(scope="module")
def user_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserDns]:
    with UserDns([ZONE, "other.test"], workdir=tmp_path_factory.mktemp("knot")) as server:
        yield server


@pytest.fixture(scope="module")
def resolver(user_dns: UserDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resolver]:
    forwards = {ZONE: user_dns.address, "other.test": user_dns.address}
    with Resolver(forwards, workdir=tmp_path_factory.mktemp("named")) as server:
        yield server


def platform_env(resolver: Resolver, **extra: str) -> dict[str, str]:
    return {
        "ANCHOR_DNS_RESOLVERS": resolver.address,
        "ANCHOR_VALIDATION_ZONE": VALIDATION_ZONE,
        "ANCHOR_EDGE_HOSTNAME": EDGE_HOST,
        "ANCHOR_DOMAIN_CHECK_MIN": "0.2",
        "ANCHOR_DOMAIN_CHECK_MAX": "1",
        "ANCHOR_DOMAIN_QUOTA": "200",  # test_two_hundred_domains_attach holds 200 in one project
        **extra,
    }


@pytest.fixture
def anchor(tmp_path: Path, resolver: Resolver, edge_server: str) -> Iterator[AnchorProcess]:
    env = platform_env(resolver)
    platform = AnchorProcess(tmp_path / "data", extra_env=env, edge_server=edge_server).start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, resolver: Resolver) -> Iterator[AnchorProcess]:
    """One platform for the tests that only read answers (names), to keep the suite short."""
    data = tmp_path_factory.mktemp("shared") / "data"
    platform = AnchorProcess(data, extra_env=platform_env(resolver)).start()
    try:
        yield platform
    finally:
        platform.stop()


def curl(
    anchor: AnchorProcess, name: str, path: str = "/", root: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """HTTPS to the edge for ``name``, verified against ``root`` (default: the platform's local CA)."""
    root = root or anchor.data_dir / "ca" / "root.pem"
    return subprocess.run(
        [
            "curl", "-sS", "--max-time", "5", "--cacert", str(root),
            "--resolve", f"{name}:{anchor.https_port}:{LOOPBACK}",
            f"https://{name}:{anchor.https_port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )  # fmt: skip


class Handshakes:
    """New HTTPS connections to one name every 50 ms in a thread, recording every one that fails or does
    not return ``body``: what a certificate swap must never cause."""

    def __init__(self, anchor: AnchorProcess, name: str, body: str, root: Path | None = None) -> None:
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(anchor, name, body, root))

    def _run(self, anchor: AnchorProcess, name: str, body: str, root: Path | None) -> None:
        while not self._stop.is_set():
            done = curl(anchor, name, root=root)
            if done.returncode != 0 or done.stdout != body:
                self.failures.append(done.stderr or done.stdout)
            time.sleep(0.05)

    def __enter__(self) -> Handshakes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # a few more after the swap
        self._stop.set()
        self._thread.join()


def wait_domain(
    api: httpx.Client, project: str, name: str, until: Any, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    domain: dict[str, Any] = {}
    while time.monotonic() < deadline:
        domain = api.get(f"/v1/projects/{project}/domains/{name}").json()
        if until(domain):
            return domain
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached the expected state; last: {domain}")


def active(domain: dict[str, Any]) -> bool:
    return domain.get("certificateStatus") == "ISSUED" and domain.get("cdnStatus") == "active"


def add_records(user_dns: UserDns, domain: dict[str, Any]) -> None:
    for record in domain["dnsRecords"]:
        user_dns.add(record["name"], record["type"], record["value"] + ".")


@pytest.mark.edges
def test_domain_is_validated_issued_served_follows_rollback_and_is_released(
    anchor: AnchorProcess, user_dns: UserDns
) -> None:
    name = f"shop.{ZONE}"
    with anchor.api() as api:
        ensure_project(api, "shop")
        v1 = upload_and_deploy(api, "shop", {"index.html": b"shop v1"})
        upload_and_deploy(api, "shop", {"index.html": b"shop v2"})
        created = api.post("/v1/projects/shop/domains", json={"name": "Shop.Example.Test."})
        assert created.status_code == 201, created.text
        domain = created.json()
        assert domain["name"] == name and domain["certificateStatus"] == "PENDING_VALIDATION"
        validation, routing = domain["dnsRecords"]
        assert validation["type"] == "CNAME" and validation["name"] == f"_acme-challenge.{name}"
        assert validation["value"].endswith("." + VALIDATION_ZONE) and validation["purpose"] == "validation"
        assert routing == {"type": "CNAME", "name": name, "value": EDGE_HOST, "purpose": "routing"}

        # Nothing at the provider yet: the reason says what was looked for and what was found.
        pending = api.get(f"/v1/projects/shop/domains/{name}").json()
        assert pending["certificateStatus"] == "PENDING_VALIDATION"
        assert f"CNAME _acme-challenge.{name} not found" in pending["statusReason"]
        assert "found nothing" in pending["statusReason"]
        assert pending["lastCheckedAt"] is not None

        # A wrong target is named in the reason.
        user_dns.add(f"_acme-challenge.{name}", "CNAME", f"wrong.{VALIDATION_ZONE}.")
        wrong = wait_domain(api, "shop", name, lambda d: f"wrong.{VALIDATION_ZONE}" in d["statusReason"])
        assert wrong["certificateStatus"] == "PENDING_VALIDATION"
        assert validation["value"] in wrong["statusReason"]
        user_dns.delete(f"_acme-challenge.{name}", "CNAME")

        add_records(user_dns, domain)
        live = wait_domain(api, "shop", name, lambda d: active(d) and d["dnsStatus"] == "ok")
        assert "CN=anchor-deploy local CA" in live["certificate"]["issuer"]

        served = curl(anchor, name)
        assert served.returncode == 0, served.stderr
        assert served.stdout == "shop v2"
        # Plain HTTP for the name redirects to HTTPS.
        plain = anchor.edge(name, "/page?x=1")
        assert plain.status_code == 308
        assert plain.headers["location"] == f"https://{name}:{anchor.https_port}/page?x=1"

        # A rollback moves the custom domain with production, at once.
        assert api.post("/v1/projects/shop/rollback", json={"deploymentId": v1["id"]}).status_code == 200
        assert curl(anchor, name).stdout == "shop v1"

        # Another project cannot take the name while shop holds it.
        ensure_project(api, "rival")
        taken = api.post("/v1/projects/rival/domains", json={"name": name})
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "domain_taken"
        assert api.get("/v1/projects/rival/domains").json()["domains"] == []

        removed = api.delete(f"/v1/projects/shop/domains/{name}")
        assert removed.status_code == 200
        assert {r["name"] for r in removed.json()["dnsRecords"]} == {name, f"_acme-challenge.{name}"}
        gone = curl(anchor, name)
        assert gone.returncode != 0 and "alert internal error" in gone.stderr
        assert anchor.edge(name).status_code == 404
        assert not list((anchor.data_dir / "certificates").glob("*.pem"))
        assert api.get(f"/v1/projects/shop/domains/{name}").status_code == 404
        assert api.post("/v1/projects/rival/domains", json={"name": name}).status_code == 201
    user_dns.delete(f"_acme-challenge.{name}")
    user_dns.delete(name)


def test_two_domains_on_one_project_each_serve_their_own_certificate(
    anchor: AnchorProcess, user_dns: UserDns
) -> None:
    names = [f"a.{ZONE}", "www.other.test"]
    with anchor.api() as api:
        ensure_project(api, "pair")
        upload_and_deploy(api, "pair", {"index.html": b"pair"})
        for name in names:
            add_records(user_dns, api.post("/v1/projects/pair/domains", json={"name": name}).json())
        serials = set()
        for name in names:
            live = wait_domain(api, "pair", name, active)
            serials.add(live["certificate"]["serial"])
            assert curl(anchor, name).stdout == "pair"
        assert len(serials) == 2
        listed = api.get("/v1/projects/pair/domains").json()["domains"]
        assert sorted(d["name"] for d in listed) == sorted(names)
        for name in names:
            api.delete(f"/v1/projects/pair/domains/{name}")
            user_dns.delete(f"_acme-challenge.{name}")
            user_dns.delete(name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1", 422),
        ("::1", 422),
        ("localhost", 422),
        ("a..b.com", 422),
        ("x" * 64 + ".com", 422),
        (".".join(["a" * 60] * 4) + ".com", 422),  # 247: its _acme-challenge record would pass 253
        (".".join(["a" * 63] * 4) + ".com", 422),  # 259
        ("*.*.x.com", 422),
        ("foo.*.com", 422),
        ("_x.com", 422),
        ("shop.localhost", 422),
        ("localhost.", 422),
        ("", 422),
        (42, 422),
    ],
)
def test_bad_names_are_refused_and_nothing_is_stored(
    shared: AnchorProcess, raw: object, expected: int
) -> None:
    with shared.api() as api:
        ensure_project(api, "names")
        response = api.post("/v1/projects/names/domains", json={"name": raw})
        assert response.status_code == expected, response.text
        error = response.json()["error"]
        assert error["code"] in ("invalid_name", "invalid_input") and error["message"]
        assert api.get("/v1/projects/names/domains").json()["domains"] == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("co.uk", "'co.uk' is a public suffix (on the Public Suffix List)"),
        ("github.io", "'github.io' is a public suffix"),
        ("*.co.uk", "'*.co.uk' is a wildcard directly under the public suffix co.uk"),
        ("p\u0430ypal.com", "label 'p\u0430ypal' mixes Latin and Cyrillic letters"),
    ],
)
def test_names_the_rules_refuse_get_the_reason_on_the_api_and_the_cli(
    shared: AnchorProcess, raw: str, reason: str
) -> None:
    with shared.api() as api:
        ensure_project(api, "rules")
        response = api.post("/v1/projects/rules/domains", json={"name": raw})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_name" and reason in error["message"], error
        assert api.get("/v1/projects/rules/domains").json()["domains"] == []
    done = shared.cli("domains", "add", "rules", raw, check=False)
    assert done.returncode != 0 and reason in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_an_apex_under_a_two_label_suffix_is_offered_address_records(shared: AnchorProcess) -> None:
    with shared.api() as api:
        ensure_project(api, "apex")
        apex = api.post("/v1/projects/apex/domains", json={"name": "example.co.uk"}).json()
        sub = api.post("/v1/projects/apex/domains", json={"name": "www.example.co.uk"}).json()
    routing = [(r["type"], r["name"]) for r in apex["dnsRecords"] if r["purpose"] == "routing"]
    assert routing and all(t in ("A", "AAAA") for t, _ in routing), apex["dnsRecords"]
    assert {n for _, n in routing} == {"example.co.uk"}
    assert [(r["type"], r["name"], r["value"]) for r in sub["dnsRecords"] if r["purpose"] == "routing"] == [
        ("CNAME", "www.example.co.uk", EDGE_HOST)
    ]


def test_mixed_case_trailing_dot_and_unicode_names_are_normalized(shared: AnchorProcess) -> None:
    with shared.api() as api:
        ensure_project(api, "norm")
        upper = api.post("/v1/projects/norm/domains", json={"name": "WWW.Example.TEST."}).json()
        assert upper["name"] == "www.example.test"
        idn = api.post("/v1/projects/norm/domains", json={"name": "Bücher.example.test"}).json()
        assert idn["name"] == "xn--bcher-kva.example.test" and idn["unicodeName"] == "bücher.example.test"
        again = api.post("/v1/projects/norm/domains", json={"name": "xn--bcher-kva.example.test"})
        assert again.status_code == 409
        assert api.get("/v1/projects/norm/domains/B%C3%BCcher.example.test?check=false").status_code == 200


def test_wrong_record_then_deadline_then_retry_after_fixing(
    tmp_path: Path, resolver: Resolver, user_dns: UserDns
) -> None:
    env = platform_env(resolver, ANCHOR_VALIDATION_DEADLINE="3")
    name = f"late.{ZONE}"
    anchor = AnchorProcess(tmp_path / "data", extra_env=env).start()
    try:
        with anchor.api() as api:
            ensure_project(api, "late")
            upload_and_deploy(api, "late", {"index.html": b"late"})
            domain = api.post("/v1/projects/late/domains", json={"name": name}).json()
            early = api.post(f"/v1/projects/late/domains/{name}/retry")
            assert early.status_code == 409 and early.json()["error"]["code"] == "domain_not_retryable"
            timed_out = wait_domain(
                api, "late", name, lambda d: d["certificateStatus"] != "PENDING_VALIDATION"
            )
            assert timed_out["certificateStatus"] == "VALIDATION_TIMED_OUT"
            assert "not seen within" in timed_out["statusReason"] and "retry" in timed_out["statusReason"]
            assert timed_out["nextCheckAt"] is None
            add_records(user_dns, domain)
            retried = api.post(f"/v1/projects/late/domains/{name}/retry")
            assert retried.status_code == 200, retried.text
            wait_domain(api, "late", name, active)
            assert curl(anchor, name).stdout == "late"
    finally:
        anchor.stop()
        user_dns.delete(f"_acme-challenge.{name}")
        user_dns.delete(name)


@pytest.mark.edges
def test_renewal_swaps_the_certificate_without_a_failed_handshake(
    tmp_path: Path, resolver: Resolver, user_dns: UserDns, edge_server: str
) -> None:
    env = platform_env(resolver, ANCHOR_CERTIFICATE_LIFETIME="9")
    name = f"renew.{ZONE}"
    anchor = AnchorProcess(tmp_path / "data", extra_env=env, edge_server=edge_server).start()
    try:
        with anchor.api() as api:
            ensure_project(api, "renew")
            upload_and_deploy(api, "renew", {"index.html": b"renew"})
            add_records(user_dns, api.post("/v1/projects/renew/domains", json={"name": name}).json())
            first = wait_domain(api, "renew", name, active)["certificate"]["serial"]
            with Handshakes(anchor, name, "renew") as handshakes:
                renewed = wait_domain(
                    api,
                    "renew",
                    name,
                    lambda d: active(d) and d["certificate"]["serial"] != first,
                    timeout=30,
                )
            second = renewed["certificate"]["serial"]
            assert second != first
            served = subprocess.run(
                ["openssl", "s_client", "-connect", f"{LOOPBACK}:{anchor.https_port}", "-servername", name],
                input="", capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            assert "anchor-deploy local CA" in served.stdout
        assert handshakes.failures == []
    finally:
        anchor.stop()
        user_dns.delete(f"_acme-challenge.{name}")
        user_dns.delete(name)


@pytest.mark.parametrize("fault", ["domain:after_issue", "domain:after_detach"])
def test_a_crash_during_attach_or_delete_converges_on_restart(
    tmp_path: Path, resolver: Resolver, user_dns: UserDns, fault: str
) -> None:
    name = f"crash-{fault.split(':')[1].replace('_', '-')}.{ZONE}"
    data = tmp_path / "data"
    env = platform_env(resolver)
    attaching = fault == "domain:after_issue"
    anchor = AnchorProcess(data, extra_env={**env, "ANCHOR_FAULT": fault} if attaching else env).start()
    try:
        with anchor.api() as api:
            ensure_project(api, "crash")
            upload_and_deploy(api, "crash", {"index.html": b"crash"})
            domain = api.post("/v1/projects/crash/domains", json={"name": name}).json()
            add_records(user_dns, domain)
            if attaching:
                assert anchor.proc is not None
                anchor.proc.wait(timeout=30)  # killed itself right after the certificate was stored
            else:
                wait_domain(api, "crash", name, active)
                anchor.stop()
                anchor = AnchorProcess(
                    data, extra_env={**env, "ANCHOR_FAULT": fault},
                    api_port=anchor.api_port, http_port=anchor.http_port, https_port=anchor.https_port,
                ).start()  # fmt: skip
                with anchor.api() as crashing, pytest.raises(httpx.HTTPError):
                    crashing.delete(f"/v1/projects/crash/domains/{name}")
                assert anchor.proc is not None
                anchor.proc.wait(timeout=30)
        anchor = AnchorProcess(
            data,
            extra_env=env,
            api_port=anchor.api_port,
            http_port=anchor.http_port,
            https_port=anchor.https_port,
        ).start()
        with anchor.api() as api:
            if attaching:
                wait_domain(api, "crash", name, active)
                assert curl(anchor, name).stdout == "crash"
                assert [p.name for p in (data / "certificates").glob("*.pem")] == [f"{name}.pem"]
            else:
                deadline = time.monotonic() + 20
                while api.get(f"/v1/projects/crash/domains/{name}?check=false").status_code != 404:
                    assert time.monotonic() < deadline, "the removal was never finished"
                    time.sleep(0.2)
                assert curl(anchor, name).returncode != 0
                assert not list((data / "certificates").glob("*.pem"))
                assert not list((data / "edge" / "c").iterdir())
                assert api.post("/v1/projects/crash/domains", json={"name": name}).status_code == 201
    finally:
        anchor.stop()
        user_dns.delete(f"_acme-challenge.{name}")
        user_dns.delete(name)


def test_two_hundred_domains_attach(anchor: AnchorProcess, user_dns: UserDns) -> None:
    count = 200
    names = [f"site{i}.{ZONE}" for i in range(count)]
    with anchor.api() as api:
        ensure_project(api, "many")
        upload_and_deploy(api, "many", {"index.html": b"many"})
        for name in names:
            add_records(user_dns, api.post("/v1/projects/many/domains", json={"name": name}).json())
        deadline = time.monotonic() + 120
        while True:
            listed = api.get("/v1/projects/many/domains").json()["domains"]
            if sum(active(d) for d in listed) == count:
                break
            assert time.monotonic() < deadline, f"{sum(active(d) for d in listed)} of {count} active"
            time.sleep(0.5)
        for name in (names[0], names[count // 2], names[-1]):
            assert curl(anchor, name).stdout == "many"
        assert len(list((anchor.data_dir / "certificates").glob("*.pem"))) == count
    for name in names:
        user_dns.delete(f"_acme-challenge.{name}")
        user_dns.delete(name)


@pytest.mark.edges
def test_wildcard_domain_serves_every_name_one_level_below(anchor: AnchorProcess, user_dns: UserDns) -> None:
    name = f"*.wild.{ZONE}"
    with anchor.api() as api:
        ensure_project(api, "wild")
        upload_and_deploy(api, "wild", {"index.html": b"wild"})
        domain = api.post("/v1/projects/wild/domains", json={"name": name}).json()
        records = {(r["type"], r["name"]) for r in domain["dnsRecords"]}
        assert records == {("CNAME", f"_acme-challenge.wild.{ZONE}"), ("CNAME", name)}
        add_records(user_dns, domain)
        # The routing record may show after validation: dnsStatus follows within a check or two.
        wait_domain(api, "wild", "%2A.wild." + ZONE, lambda d: active(d) and d["dnsStatus"] == "ok")
        for host in (f"a.wild.{ZONE}", f"other-name.wild.{ZONE}"):
            served = curl(anchor, host)
            assert served.returncode == 0, served.stderr
            assert served.stdout == "wild"
        # One level only: neither the parent nor a name two levels below is covered.
        assert curl(anchor, f"wild.{ZONE}").returncode != 0
        assert curl(anchor, f"x.y.wild.{ZONE}").returncode != 0
        assert anchor.edge(f"a.wild.{ZONE}").status_code == 308
        api.delete("/v1/projects/wild/domains/%2A.wild." + ZONE)
        assert curl(anchor, f"a.wild.{ZONE}").returncode != 0
    user_dns.delete(f"_acme-challenge.wild.{ZONE}")
    user_dns.delete(name)


def test_a_project_token_cannot_see_or_touch_another_projects_domains(shared: AnchorProcess) -> None:
    with shared.api() as admin:
        ensure_project(admin, "mine")
        ensure_project(admin, "theirs")
        assert (
            admin.post("/v1/projects/theirs/domains", json={"name": "theirs.other.test"}).status_code == 201
        )
        token = admin.post("/v1/tokens", json={"name": "mine-ci", "project": "mine"}).json()["token"]
    with shared.api(token) as mine:
        # Another project does not exist for this token: 404, as for a project nobody has.
        assert mine.post("/v1/projects/theirs/domains", json={"name": "x.other.test"}).status_code == 404
        assert mine.get("/v1/projects/theirs/domains").status_code == 404
        assert mine.delete("/v1/projects/theirs/domains/theirs.other.test").status_code == 404
        assert mine.post("/v1/projects/theirs/domains/theirs.other.test/retry").status_code == 404
        # Looked up by name alone, another project's domain does not exist for this token.
        found = mine.get("/v1/domains/theirs.other.test")
        assert found.status_code == 404 and found.json()["error"]["code"] == "domain_not_found"
        # Its own project works, and the other project's name is still taken (409, not stolen).
        taken = mine.post("/v1/projects/mine/domains", json={"name": "theirs.other.test"})
        assert taken.status_code == 409
        # Deleting a project is for admins: refused, and its domains are untouched.
        assert mine.post("/v1/projects/mine/domains", json={"name": "mine.other.test"}).status_code == 201
        assert mine.delete("/v1/projects/mine").status_code == 403
        kept = mine.get("/v1/projects/mine/domains").json()["domains"]
        assert [d["name"] for d in kept] == ["mine.other.test"]
    with httpx.Client(base_url=shared.api_url, timeout=10) as anonymous:
        assert anonymous.post("/v1/projects/mine/domains", json={"name": "a.other.test"}).status_code == 401
        assert anonymous.get("/v1/ca").status_code == 401
    with shared.api() as admin:
        assert admin.get("/v1/projects/theirs/domains/theirs.other.test?check=false").status_code == 200
        missing = admin.post("/v1/projects/mine/domains", json={})
        assert missing.status_code == 422 and "name" in missing.json()["error"]["message"]
        assert admin.get("/v1/projects/mine/domains/a..b.com").status_code == 422
        assert admin.get("/v1/projects/mine/domains/nowhere.other.test").status_code == 404
        # An admin's project delete removes its domains with it: the name is free again.
        assert admin.delete("/v1/projects/mine").status_code == 200
        assert admin.post("/v1/projects/theirs/domains", json={"name": "mine.other.test"}).status_code == 201


def test_cli_adds_waits_inspects_and_removes_a_domain(anchor: AnchorProcess, user_dns: UserDns) -> None:
    name = f"cli.{ZONE}"
    with anchor.api() as api:
        ensure_project(api, "cli")
        upload_and_deploy(api, "cli", {"index.html": b"cli"})
    added = anchor.cli("domains", "add", "cli", name)
    assert f"_acme-challenge.{name}" in added.stdout and EDGE_HOST in added.stdout
    domain = json.loads(anchor.cli("domains", "inspect", name, "--json").stdout)
    assert domain["certificateStatus"] == "PENDING_VALIDATION"
    add_records(user_dns, domain)
    waited = anchor.cli("domains", "wait", name, "--timeout", "60")
    assert f"{name} is live: https://{name}:{anchor.https_port}" in waited.stdout
    with anchor.api() as api:  # the routing record may be seen a check after the validation one
        wait_domain(api, "cli", name, lambda d: d["dnsStatus"] == "ok")
    inspected = anchor.cli("domains", "inspect", name).stdout
    assert "certificate ISSUED, edge active, dns ok" in inspected and "serial" in inspected
    listed = json.loads(anchor.cli("domains", "ls", "cli", "--json").stdout)
    assert [d["name"] for d in listed["domains"]] == [name]
    root = anchor.cli("ca", "path").stdout.strip()
    assert Path(root) == (anchor.data_dir / "ca" / "root.pem").resolve()
    assert curl(anchor, name).stdout == "cli"
    removed = anchor.cli("domains", "rm", name, "--yes")
    assert "you may now delete these DNS records" in removed.stdout
    missing = anchor.cli("domains", "inspect", name, check=False)
    assert (
        missing.returncode == 1 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    )
    bad = anchor.cli("domains", "add", "cli", "a..b", check=False)
    assert bad.returncode == 1 and "empty label" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    user_dns.delete(f"_acme-challenge.{name}")
    user_dns.delete(name)


def _strict_handshake(anchor: AnchorProcess, name: str) -> str | None:
    """A TLS handshake for ``name`` that verifies like Python 3.13's default (VERIFY_X509_STRICT) against the
    platform's current root; None when it succeeds, else the error."""
    context = ssl.create_default_context(cafile=str(anchor.data_dir / "ca" / "root.pem"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        with (
            socket.create_connection((LOOPBACK, anchor.https_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name),
        ):
            return None
    except (OSError, ssl.SSLError) as exc:
        return str(exc)


def test_a_root_strict_clients_refuse_is_replaced_and_its_domains_reissued(
    tmp_path: Path, resolver: Resolver, user_dns: UserDns
) -> None:
    name = f"strict.{ZONE}"
    data = tmp_path / "data"
    env = platform_env(resolver)
    anchor = AnchorProcess(data, extra_env=env).start()
    try:
        with anchor.api() as api:
            ensure_project(api, "strict")
            upload_and_deploy(api, "strict", {"index.html": b"strict"})
            add_records(user_dns, api.post("/v1/projects/strict/domains", json={"name": name}).json())
            issued = wait_domain(api, "strict", name, active)
        assert _strict_handshake(anchor, name) is None
        anchor.stop()
        # The data dir of an older release: its root has no key identifiers.
        shutil.rmtree(data / "ca")
        write_old_style_root(data / "ca")
        anchor = AnchorProcess(
            data, extra_env=env, api_port=anchor.api_port, http_port=anchor.http_port,
            https_port=anchor.https_port,
        ).start()  # fmt: skip
        said = [line for line in anchor.log_tail().splitlines() if "local CA got a new root" in line]
        assert len(said) == 1 and str(data / "ca" / "root.pem") in said[0], anchor.log_tail()
        assert list((data / "ca").glob("root-replaced-*.pem"))
        with anchor.api() as api:
            old_serial = issued["certificate"]["serial"]
            reissued = wait_domain(
                api, "strict", name, lambda d: active(d) and d["certificate"]["serial"] != old_serial
            )
        assert _strict_handshake(anchor, name) is None, "the re-issued certificate must verify strictly"
        assert curl(anchor, name).stdout == "strict"
        assert reissued["certificate"]["issuer"] != issued["certificate"]["issuer"]
    finally:
        anchor.stop()
