"""The dashboard in a real browser (Debian's headless chromium through Playwright) against a real `anchor up`
(API, Caddy, SQLite): signing in, a deployment made with the CLI appearing live, a rollback asked for on a
confirmation page and then served by the edge, the history showing the move, promote and unpin.

The tests of this module share one platform and run in order: each starts from the production the one
before left. `make screenshots` writes the pictures they take into docs/screenshots/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.browser import Screenshots, browser_page, sign_in, take_page_errors
from tests.e2e.dashboard_support import deploy_site, empty_dns, production_host, wait_for
from tests.e2e.harness import AnchorProcess
from tests.git_worktree import WorkTree

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PROJECT = "shop"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    """One platform for the module, with two production deployments of PROJECT (v1, then v2 live)."""
    with empty_dns() as dns_env:
        anchor = AnchorProcess(tmp_path_factory.mktemp("dashboard") / "data", extra_env=dns_env).start()
        try:
            with anchor.api() as api:
                deploy_site(api, PROJECT, "version 1", message="First version of the shop")
                deploy_site(api, PROJECT, "version 2", message="Second version: a new header")
            yield anchor
        finally:
            anchor.stop()


@pytest.fixture
def page(chromium: Browser, platform: AnchorProcess) -> Iterator[Page]:
    """A fresh browser context signed in with the admin token, on the project's page."""
    with browser_page(chromium, platform) as opened:
        sign_in(opened, platform)
        opened.goto(f"/ui/projects/{PROJECT}")
        yield opened


def api_project(anchor: AnchorProcess) -> dict[str, Any]:
    with anchor.api() as api:
        found: dict[str, Any] = api.get(f"/v1/projects/{PROJECT}").json()
        return found


def served(anchor: AnchorProcess) -> str:
    return anchor.edge(production_host(anchor, PROJECT)).text


def latest(anchor: AnchorProcess, index: int = 0) -> dict[str, Any]:
    with anchor.api() as api:
        found: dict[str, Any] = api.get(f"/v1/projects/{PROJECT}/deployments").json()["deployments"][index]
        return found


def test_sign_in_with_a_token(
    chromium: Browser, platform: AnchorProcess, screenshot: Screenshots, tmp_path: Path
) -> None:
    with browser_page(chromium, platform) as page:
        page.goto("/ui/")
        assert page.url.startswith(f"{platform.api_url}/ui/sign-in")  # no session: sent to sign in
        screenshot(page, "sign-in")

        page.get_by_label("Token").fill("anc_not-a-real-token")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("alert").filter(has_text="not accepted").wait_for()
        assert any("401" in error for error in take_page_errors(page))  # the refusal's status, logged
        assert not [c for c in page.context.cookies() if c["name"] == "anchor_session"]

        sign_in(page, platform)
        cookie = next(c for c in page.context.cookies() if c["name"] == "anchor_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert platform.token not in cookie["value"]  # a session id, never the token
        row = page.locator(f"tr[data-project={PROJECT}]")
        row.get_by_role("link", name=PROJECT, exact=True).wait_for()
        assert "Signed in with admin" in page.get_by_role("banner").inner_text()
        screenshot(page, "projects")

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r".*/ui/sign-in.*"))
        page.goto("/ui/")
        assert "/ui/sign-in" in page.url  # the session ended


def test_a_cli_deployment_appears_live(
    page: Page, platform: AnchorProcess, screenshot: Screenshots, tmp_path: Path
) -> None:
    """`anchor deploy --prod` from a git working tree, run while the page is open: its row, then production
    moving to it, show up on the page without a reload."""
    site = WorkTree(tmp_path / "site", home=tmp_path)
    commit = site.commit({"index.html": "version 3"}, "Third version")
    shown_before = set(
        page.locator("tr[data-deployment]").evaluate_all("rows => rows.map(r => r.dataset.deployment)")
    )
    page.evaluate("window.loadedOnce = true")  # gone if the page were reloaded instead of updated
    with ThreadPoolExecutor(max_workers=1) as pool:
        deploying = pool.submit(
            platform.cli, "deploy", str(site.path), "--project", PROJECT, "--prod", "--json"
        )
        newest = page.locator("tr[data-deployment]").first
        # A new row while the CLI runs (or the CLI's failure, raised below at once rather than waited out).
        wait_for(lambda: newest.get_attribute("data-deployment") not in shown_before or deploying.done())
        deployed = json.loads(deploying.result(timeout=120).stdout)
    assert deployed["status"] == "READY"
    wait_for(lambda: newest.get_attribute("data-deployment") == deployed["id"])
    assert deployed["meta"]["git"]["commitSha"] == commit and deployed["meta"]["source"] == "cli"
    wait_for(lambda: page.locator("#production-id").inner_text() == deployed["id"])
    row = page.locator(f"tr[data-deployment={deployed['id']}]")
    assert row.locator(".production-marker").is_visible()
    assert "Third version" in row.inner_text() and commit[:7] in row.inner_text()
    assert page.evaluate("window.loadedOnce") is True
    assert page.locator("#live-status").inner_text().startswith("Updated")
    assert served(platform) == "version 3"
    screenshot(page, "project")


def test_rollback_confirmed_then_served(page: Page, platform: AnchorProcess, screenshot: Screenshots) -> None:
    current, previous = latest(platform, 0), latest(platform, 1)
    assert api_project(platform)["productionDeploymentId"] == current["id"]
    page.get_by_role("link", name="Roll back production…").click()

    assert page.locator("#move-from").inner_text() == current["id"]
    assert page.locator("#move-to").inner_text() == previous["id"]
    assert served(platform) == "version 3"  # nothing moves before the confirmation
    screenshot(page, "confirm-rollback")
    page.get_by_role("button", name=f"Roll back to {previous['id']}").click()

    page.wait_for_url(re.compile(r".*notice=rolled-back$"))
    assert page.get_by_role("status").filter(has_text="Production was rolled back.").is_visible()
    assert page.locator("#production-id").inner_text() == previous["id"]
    assert page.locator("#production .pin").is_visible()
    assert served(platform) == "version 2"
    assert api_project(platform)["pinned"] is True

    page.get_by_role("link", name="Production history").click()
    newest = page.locator("#history tr[data-move]").first
    assert "rollback" in newest.inner_text()
    assert previous["id"] in newest.inner_text() and current["id"] in newest.inner_text()
    assert page.locator("#history tr[data-move]").count() == 4  # v1, v2, v3 deployed, then the rollback
    screenshot(page, "history")


def test_a_stale_confirmation_changes_nothing(page: Page, platform: AnchorProcess) -> None:
    newest, older = latest(platform, 0), latest(platform, 2)  # production is v2 after the rollback
    page.goto(f"/ui/projects/{PROJECT}/promote?to={newest['id']}")
    with platform.api() as api:  # production moves elsewhere while the confirmation is open
        moved = api.post(f"/v1/projects/{PROJECT}/rollback", json={"deploymentId": older["id"]})
        assert moved.status_code == 200, moved.text
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=f"Promote to {newest['id']}").click()
    assert navigation.value is not None and navigation.value.status == 409
    assert "production moved" in page.get_by_role("alert").inner_text()
    assert any("409" in error for error in take_page_errors(page))
    assert api_project(platform)["productionDeploymentId"] == older["id"]
    assert served(platform) == "version 1"


def test_promote_releases_the_pin(page: Page, platform: AnchorProcess) -> None:
    with platform.api() as api:  # pinned to v1: a new production deployment builds but waits
        waiting = deploy_site(api, PROJECT, "version 4", message="Fourth version")
    assert served(platform) == "version 1"
    row = page.locator(f"tr[data-deployment={waiting['id']}]")
    row.wait_for()
    assert not row.locator(".production-marker").count()

    row.get_by_role("link", name=f"Promote {waiting['id']}").click()
    assert page.locator("#move-to").inner_text() == waiting["id"]
    page.get_by_role("button", name=f"Promote to {waiting['id']}").click()
    page.wait_for_url(re.compile(r".*notice=promoted$"))
    assert page.locator("#production-id").inner_text() == waiting["id"]
    assert not page.locator("#production .pin").count()
    assert served(platform) == "version 4"
    assert api_project(platform)["pinned"] is False


def test_unpin_lets_the_next_deployment_go_live(page: Page, platform: AnchorProcess) -> None:
    earlier = latest(platform, 1)
    page.goto(f"/ui/projects/{PROJECT}/history")
    page.get_by_role("link", name=f"Roll back to this ({earlier['id']})").first.click()
    page.get_by_role("button", name=f"Roll back to {earlier['id']}").click()
    page.wait_for_url(re.compile(r".*notice=rolled-back$"))
    assert api_project(platform)["pinned"] is True

    page.get_by_role("button", name="Unpin").click()
    page.wait_for_url(re.compile(r".*notice=unpinned$"))
    assert "no longer pinned" in page.locator(".notice").inner_text()
    assert not page.locator("#production .pin").count()
    assert api_project(platform)["pinned"] is False
    assert api_project(platform)["productionDeploymentId"] == earlier["id"]  # unpinning moves nothing

    with platform.api() as api:
        live = deploy_site(api, PROJECT, "version 5", message="Fifth version")
    wait_for(lambda: page.locator("#production-id").inner_text() == live["id"])  # the page follows
    assert served(platform) == "version 5"


def test_deployment_page_shows_build(page: Page, platform: AnchorProcess, screenshot: Screenshots) -> None:
    production = api_project(platform)["productionDeploymentId"]
    page.locator("#production").get_by_role("link", name=production).click()
    assert page.locator("#deployment-id").inner_text() == production
    assert "READY" in page.locator("#deployment-status").inner_text()
    assert "Fifth version" in page.locator("#deployment-commit").inner_text()
    assert page.locator("#production-marker").is_visible()
    log = page.get_by_role("region", name="Build log").locator("#build-log")
    assert f"building {production}" in log.inner_text() and "ready" in log.inner_text()
    assert page.locator("#build-log").get_attribute("data-final") == "true"
    page.locator("#file-list tr[data-file='index.html']").wait_for()
    screenshot(page, "deployment")


def test_settings_pages(page: Page, platform: AnchorProcess, screenshot: Screenshots) -> None:
    """Environment variables, domains and tokens set through their forms (and pictured for the docs)."""
    page.get_by_role("link", name="Environment").click()
    for key, value, secret in (("GREETING", "hello", False), ("API_KEY", "never-shown-again", True)):
        page.get_by_label("Key").fill(key)
        page.get_by_label("Value").fill(value)
        page.get_by_label("Secret").set_checked(secret)
        page.get_by_role("button", name="Save variable").click()
        page.locator(f"tr[data-env={key}]").wait_for()
    assert page.locator("tr[data-env=GREETING] code.env-value").inner_text() == "hello"
    assert page.locator("tr[data-env=API_KEY] .secret-badge").is_visible()
    assert "never-shown-again" not in page.content()
    screenshot(page, "env")

    page.get_by_role("link", name="Domains").click()
    page.get_by_label("Domain name").fill("www.shop.example")
    page.get_by_role("button", name="Add domain").click()
    domain = page.locator("article[data-domain='www.shop.example']")
    domain.locator("table.records tr.record").first.wait_for()
    assert domain.get_by_role("button", name="Copy").count() >= 2  # each record's name and value
    screenshot(page, "domains")
    with platform.api() as api:
        assert api.get(f"/v1/projects/{PROJECT}/domains/www.shop.example").status_code == 200

    page.get_by_role("link", name="Tokens").click()
    assert page.locator("#tokens tr[data-token] .you-marker").count() == 1
    screenshot(page, "tokens")
