"""The dashboard's security in a real browser (Debian's headless chromium) against a real `anchor up`: a
project token's session neither sees nor changes another project (its pages and its form posts), a form
without its csrf field is refused, text from users and other systems (a commit message, deployment meta,
a certificate authority's refusal) is shown as text and never run, and no page carries a secret."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.browser import browser_page, sign_in, take_page_errors
from tests.e2e.dashboard_support import deploy_site, empty_dns, project_token
from tests.e2e.harness import AnchorProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# Markup from a commit message, meta or a CA's answer: it must show as these very characters. Were it
# markup, the page's CSP would block it and the watched page would fail on the violation; the title and
# the img are a second witness should the CSP ever be loosened.
PAYLOAD = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
SECRET_VALUE = "s3cret-value-that-must-never-be-rendered"
MAX_CRAWL = 40


@dataclass
class Seeded:
    anchor: AnchorProcess
    alpha_token: str  # a token of project alpha only
    beta_deployments: list[dict[str, Any]]
    beta_token_id: str
    secrets: list[str]  # every secret the platform holds that a page could leak


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with empty_dns() as dns_env:
        anchor = AnchorProcess(
            tmp_path_factory.mktemp("dashboard-security") / "data", extra_env=dns_env
        ).start()
        try:
            yield _seed(anchor)
        finally:
            anchor.stop()


def _seed(anchor: AnchorProcess) -> Seeded:
    with anchor.api() as api:
        deploy_site(api, "alpha", "alpha 1", message="alpha's first")
        set_env = api.post(
            "/v1/projects/alpha/env", json={"key": "API_KEY", "value": SECRET_VALUE, "secret": True}
        )
        assert set_env.status_code in (200, 201), set_env.text
        deploy_site(api, "alpha", "alpha 2", message=PAYLOAD, meta={"note": PAYLOAD})
        beta = [deploy_site(api, "beta", f"beta {n}", message=f"beta's deployment {n}") for n in (1, 2)]
        added = api.post("/v1/projects/alpha/domains", json={"name": "shop.example.com"})
        assert added.status_code == 201, added.text
    alpha_token = project_token(anchor, "alpha", "alpha-ci")
    beta_token = project_token(anchor, "beta", "beta-ci")
    beta_token_id = next(
        t["id"] for t in anchor.api().get("/v1/tokens").json()["tokens"] if t["name"] == "beta-ci"
    )
    _ca_refusal(anchor, "shop.example.com", f"the certificate authority refused: {PAYLOAD}")
    return Seeded(
        anchor, alpha_token, beta, beta_token_id, [SECRET_VALUE, anchor.token, alpha_token, beta_token]
    )


def _ca_refusal(anchor: AnchorProcess, domain: str, reason: str) -> None:
    """A certificate authority's refusal as the platform stores it. Written into the database (a real CA
    that answers with markup would need an ACME server for this test alone), with the next check a day
    away so the domain loop leaves it as it is."""
    with sqlite3.connect(anchor.data_dir / "anchor.db", timeout=10) as db:
        changed = db.execute(
            "UPDATE domains SET status_reason = ?, next_check_at = ? WHERE name = ?",
            (reason, time.time() + 86400, domain),
        ).rowcount
    assert changed == 1


def post_form(page: Page, action: str, fields: dict[str, str]) -> int:
    """Submits a form the way the page's own forms are submitted (a real browser POST with its cookies and
    Origin); the status of the page it leads to."""
    with page.expect_navigation() as navigation:
        page.evaluate(
            """([action, fields]) => {
              const form = document.createElement("form");
              form.method = "post";
              form.action = action;
              for (const [name, value] of Object.entries(fields)) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value;
                form.append(input);
              }
              document.body.append(form);
              form.submit();
            }""",
            [action, fields],
        )
    response = navigation.value
    assert response is not None
    return response.status


def csrf_of(page: Page) -> str:
    value = page.locator("input[name=csrf]").first.get_attribute("value")
    assert value
    return value


def beta_state(anchor: AnchorProcess) -> list[Any]:
    with anchor.api() as api:
        project = api.get("/v1/projects/beta").json()
        return [
            project["productionDeploymentId"],
            project["pinned"],
            api.get("/v1/projects/beta/env").json(),
            api.get("/v1/projects/beta/domains").json(),
            sorted(t["id"] for t in api.get("/v1/tokens").json()["tokens"]),
        ]


def test_a_project_token_sees_only_its_project(chromium: Browser, seeded: Seeded) -> None:
    first, second = seeded.beta_deployments
    with browser_page(chromium, seeded.anchor) as page:
        sign_in(page, seeded.anchor, seeded.alpha_token)
        assert page.locator("tr[data-project=alpha]").count() == 1
        assert page.locator("tr[data-project=beta]").count() == 0
        for path in (
            "/ui/projects/beta",
            "/ui/projects/beta/history",
            "/ui/projects/beta/env",
            "/ui/projects/beta/domains",
            "/ui/projects/beta/rollback",
            f"/ui/projects/beta/promote?to={second['id']}",
            f"/ui/projects/alpha/promote?to={second['id']}",  # another project's deployment by id
            f"/ui/deployments/{first['id']}",
            f"/ui/tokens/{seeded.beta_token_id}/revoke",
        ):
            response = page.goto(path)
            assert response is not None and response.status == 404, path
            assert page.get_by_role("alert").is_visible(), path
            assert "beta's deployment" not in page.content(), path
        assert all("404" in error for error in take_page_errors(page))
        page.goto("/ui/tokens")
        assert "beta-ci" not in page.content()


def test_a_project_token_cannot_act_on_another_project(chromium: Browser, seeded: Seeded) -> None:
    first, second = seeded.beta_deployments
    before = beta_state(seeded.anchor)
    with browser_page(chromium, seeded.anchor) as page:
        sign_in(page, seeded.anchor, seeded.alpha_token)
        csrf = csrf_of(page)  # a valid form secret: only the project's access can refuse these
        refused = {
            "/ui/projects/beta/rollback": {"from": second["id"], "to": first["id"]},
            "/ui/projects/beta/promote": {"from": second["id"], "to": first["id"]},
            "/ui/projects/alpha/promote": {"from": "", "to": first["id"]},
            "/ui/projects/beta/unpin": {},
            "/ui/projects/beta/env": {"key": "INJECTED", "value": "x"},
            "/ui/projects/beta/env/INJECTED/delete": {},
            "/ui/projects/beta/domains": {"domain": "stolen.example.com"},
            f"/ui/tokens/{seeded.beta_token_id}/revoke": {},
            "/ui/tokens": {"name": "mine-now", "project": "beta"},
        }
        statuses = {
            action: post_form(page, action, {"csrf": csrf, **fields}) for action, fields in refused.items()
        }
        take_page_errors(page)
    assert all(status in (403, 404) for status in statuses.values()), statuses
    assert statuses["/ui/projects/beta/rollback"] == 404  # beta does not exist for this token
    assert beta_state(seeded.anchor) == before


def test_a_form_without_its_csrf_field_is_refused(chromium: Browser, seeded: Seeded) -> None:
    with seeded.anchor.api() as api:
        before = api.get("/v1/projects/alpha/env").json()
    with browser_page(chromium, seeded.anchor) as page:
        sign_in(page, seeded.anchor)
        page.goto("/ui/projects/alpha/env")
        assert post_form(page, "/ui/projects/alpha/env", {"key": "NO_CSRF", "value": "x"}) == 403
        assert page.get_by_role("alert").is_visible()
        assert (
            post_form(page, "/ui/projects/alpha/env", {"csrf": "forged", "key": "NO_CSRF", "value": "x"})
            == 403
        )
        assert post_form(page, "/ui/projects/alpha/env/API_KEY/delete", {}) == 403
        assert len(take_page_errors(page)) == 3
        # The same form with the page's secret goes through: the refusals were for the missing field.
        page.goto("/ui/projects/alpha/env")
        page.get_by_label("Key").fill("WITH_CSRF")
        page.get_by_label("Value").fill("plain")
        page.get_by_role("button", name="Save variable").click()
        page.locator("tr[data-env=WITH_CSRF]").wait_for()
    with seeded.anchor.api() as api:
        after = api.get("/v1/projects/alpha/env").json()
        assert api.delete("/v1/projects/alpha/env/WITH_CSRF").status_code == 200
    assert {v["key"] for v in after["env"]} == {v["key"] for v in before["env"]} | {"WITH_CSRF"}


def test_a_form_posted_from_another_site_is_refused(chromium: Browser, seeded: Seeded) -> None:
    """Even with the form's secret leaked: the SameSite=Strict cookie stays home and the origin is foreign."""
    with seeded.anchor.api() as api:
        before = api.get("/v1/projects/alpha/env").json()
    with browser_page(chromium, seeded.anchor) as page:
        sign_in(page, seeded.anchor)
        page.goto("/ui/projects/alpha/env")
        csrf = csrf_of(page)
        # A page of another site, served by the browser itself (the request never leaves it).
        page.route("http://attacker.localhost/**", lambda route: route.fulfill(body="<p>win a prize</p>"))
        page.goto("http://attacker.localhost/prize")
        action = f"{seeded.anchor.api_url}/ui/projects/alpha/env"
        status = post_form(page, action, {"csrf": csrf, "key": "FROM_ELSEWHERE", "value": "x"})
        assert status in (401, 403)
        assert take_page_errors(page)
    with seeded.anchor.api() as api:
        assert api.get("/v1/projects/alpha/env").json() == before


def test_markup_from_users_and_other_systems_shows_as_text(chromium: Browser, seeded: Seeded) -> None:
    with seeded.anchor.api() as api:
        deployment = api.get("/v1/projects/alpha/deployments").json()["deployments"][0]
    with browser_page(chromium, seeded.anchor) as page:  # a blocked script or a JS error fails it here
        sign_in(page, seeded.anchor)
        for path, where in (
            ("/ui/projects/alpha", "#deployments"),
            ("/ui/projects/alpha/history", "#history"),
            (f"/ui/deployments/{deployment['id']}", "#deployment-commit"),
            (f"/ui/deployments/{deployment['id']}", "dd.meta"),
            ("/ui/projects/alpha/domains", ".status-reason"),
        ):
            page.goto(path)
            assert PAYLOAD in page.locator(where).first.inner_text(), (path, where)
            assert page.locator("#main script, #main img").count() == 0, path
            assert page.title() != "pwned"


def test_no_page_carries_a_secret(chromium: Browser, seeded: Seeded) -> None:
    """Every page an admin can reach by links from the projects page, as sent and as rendered."""
    seen = 0
    with browser_page(chromium, seeded.anchor) as page:
        sign_in(page, seeded.anchor)
        created = create_token_in_the_page(page)  # shown once, on the answer to the form only
        for path in crawl(page, "/ui/"):
            response = page.goto(path)
            assert response is not None and response.ok, path
            for text in (response.text(), page.content()):
                leaked = [s[:8] + "…" for s in [*seeded.secrets, created] if s in text]
                assert not leaked, f"{path} carries a secret: {leaked}"
            seen += 1
    # The projects and tokens pages, both projects' tabs, their deployments, the confirmation pages of
    # rollbacks, revocations and a domain's removal.
    assert seen >= 20


def create_token_in_the_page(page: Page) -> str:
    page.goto("/ui/tokens")
    page.get_by_label("Name").fill("made-in-the-browser")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#token-secret").input_value()
    assert secret.startswith("anc_")
    page.get_by_role("button", name="Copy the secret").wait_for()
    return secret


def crawl(page: Page, start: str) -> Iterator[str]:
    """Dashboard paths reachable by links from ``start``, breadth first, each once (pages of a list
    once), at most MAX_CRAWL."""
    queue, seen = [start], {start}
    while queue and len(seen) <= MAX_CRAWL:
        path = queue.pop(0)
        yield path  # the caller opens it: the links below are read from that page
        for href in page.locator("a[href^='/ui/']").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        ):
            target = urlsplit(href)
            link = target.path + (f"?{target.query}" if target.query else "")
            if link not in seen and "page=" not in target.query:
                seen.add(link)
                queue.append(link)
