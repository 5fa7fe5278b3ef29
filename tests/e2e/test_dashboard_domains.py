"""A custom domain added in the dashboard, in a real browser against a real `anchor up`: knot plays the
user's DNS provider (records added by RFC 2136 updates), BIND the recursive resolver the platform polls, the
platform issues from its internal CA. The page lists the records to create; once the test has created
exactly those, the page's statuses turn active by themselves (no reload), and the edge serves the name over
HTTPS (checked with curl against the local CA's root)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.browser import Screenshots, browser_page, sign_in
from tests.e2e.dashboard_support import deploy_site, wait_for
from tests.e2e.dns_support import Resolver, UserDns
from tests.e2e.harness import LOOPBACK, AnchorProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator

PROJECT = "bakery"
ZONE = "bakery.test"
VALIDATION_ZONE = "anchor-validation.test"
EDGE_HOST = "edge.anchor.test"
ACTIVE = {".certificate-status": "ISSUED", ".cdn-status": "active", ".dns-status": "ok"}


@pytest.fixture(scope="module")
def user_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserDns]:
    with UserDns([ZONE], workdir=tmp_path_factory.mktemp("knot")) as server:
        yield server


@pytest.fixture(scope="module")
def resolver(user_dns: UserDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resolver]:
    with Resolver({ZONE: user_dns.address}, workdir=tmp_path_factory.mktemp("named")) as server:
        yield server


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, resolver: Resolver) -> Iterator[AnchorProcess]:
    """One platform asking BIND, issuing from its internal CA, with PROJECT deployed to production."""
    env = {
        "ANCHOR_DNS_RESOLVERS": resolver.address,
        "ANCHOR_VALIDATION_ZONE": VALIDATION_ZONE,
        "ANCHOR_EDGE_HOSTNAME": EDGE_HOST,
        "ANCHOR_DOMAIN_CHECK_MIN": "0.2",
        "ANCHOR_DOMAIN_CHECK_MAX": "1",
        "ANCHOR_ISSUER": "internal",
    }
    anchor = AnchorProcess(tmp_path_factory.mktemp("dashboard-domains") / "data", extra_env=env).start()
    try:
        with anchor.api() as api:
            deploy_site(api, PROJECT, "fresh bread", message="Open the bakery")
        yield anchor
    finally:
        anchor.stop()


def records_shown(domain: Locator) -> list[dict[str, str]]:
    """The records the page asks the user to create, read from its table (checked against the copy
    buttons, which are what a user actually pastes)."""
    shown = []
    for row in domain.locator("table.records tr.record").all():
        name, value = (
            row.locator("code.record-name").inner_text(),
            row.locator("code.record-value").inner_text(),
        )
        copies = row.locator("button[data-copy]").evaluate_all("buttons => buttons.map(b => b.dataset.copy)")
        assert copies == [name, value]
        shown.append(
            {
                "type": row.locator(".record-type").inner_text(),
                "name": name,
                "value": value,
                "purpose": row.get_attribute("data-purpose") or "",
            }
        )
    return shown


def statuses(domain: Locator) -> dict[str, str]:
    return {selector: domain.locator(selector).inner_text().strip() for selector in ACTIVE}


def https_body(anchor: AnchorProcess, name: str) -> subprocess.CompletedProcess[str]:
    """GET / for ``name`` over HTTPS at the edge, verified against the platform's local CA root."""
    return subprocess.run(
        [
            "curl", "-sS", "--max-time", "5", "--cacert", str(anchor.data_dir / "ca" / "root.pem"),
            "--resolve", f"{name}:{anchor.https_port}:{LOOPBACK}", f"https://{name}:{anchor.https_port}/",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )  # fmt: skip


def test_records_shown_then_created_turn_the_domain_active_without_a_reload(
    chromium: Browser, platform: AnchorProcess, user_dns: UserDns, screenshot: Screenshots
) -> None:
    name = f"www.{ZONE}"
    with browser_page(chromium, platform) as page:
        sign_in(page, platform)
        page.goto(f"/ui/projects/{PROJECT}")
        page.get_by_role("link", name="Domains").click()
        page.get_by_label("Domain name").fill(name)
        page.get_by_role("button", name="Add domain").click()
        domain = page.locator(f"article[data-domain='{name}']")
        domain.locator("table.records tr.record").first.wait_for()

        with platform.api() as api:
            listed: dict[str, Any] = api.get(f"/v1/projects/{PROJECT}/domains/{name}").json()
        shown = records_shown(domain)
        assert shown == [
            {k: r[k] for k in ("type", "name", "value", "purpose")} for r in listed["dnsRecords"]
        ]
        assert {r["purpose"] for r in shown} == {"validation", "routing"}
        assert statuses(domain)[".certificate-status"] == "PENDING_VALIDATION"
        assert https_body(platform, name).returncode != 0  # nothing served for the name yet
        page.evaluate("window.loadedOnce = true")  # gone if the page were reloaded instead of updated
        url = page.url

        for record in shown:  # what the user copies from the page into their provider
            user_dns.add(record["name"], record["type"], record["value"] + ".")
        wait_for(lambda: statuses(domain) == ACTIVE, timeout=30)

        assert page.evaluate("window.loadedOnce") is True and page.url == url
        assert "anchor-deploy local CA" in domain.locator(".issuer").inner_text()
        assert domain.locator("a.url").get_attribute("href") == f"https://{name}:{platform.https_port}"
        assert page.locator("#live-status").inner_text().startswith("Updated")
        served = https_body(platform, name)
        assert served.returncode == 0, served.stderr
        assert served.stdout == "fresh bread"
        screenshot(page, "domains-active")
