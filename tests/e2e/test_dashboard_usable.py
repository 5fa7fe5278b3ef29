"""The dashboard is usable (Debian's headless chromium against a real `anchor up`): every page fits a phone's
width with its text readable (AA contrast) and its controls big enough to touch; every control has a label
or a name that says what it does; a rollback can be done with the keyboard alone, the focus visible at every
step and on every control; a refused action says why in the page, in plain words, with the focus on the
field at fault.

The tests share one platform and run in order; the keyboard's rollback moves production, and the error
test names its targets from wherever production is."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from anchor_deploy.model import errors
from tests.e2e.browser import PHONE, Screenshots, browser_page, sign_in, take_page_errors
from tests.e2e.dashboard_support import deploy_site, empty_dns, production_host, project_token
from tests.e2e.harness import AnchorProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PROJECT = "garden"
DOMAIN = "www.garden.example"
# Removed by the page tests (one each) to see the page that answers a removal.
DOMAINS_TO_REMOVE = ("phone.garden.example", "labels.garden.example")
# The errors' machine codes (invalid_input, deployment_not_found ...; those that read as words, such as
# conflict, are left out): a person reads a sentence instead.
ERROR_CODES = sorted(
    cls.code
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.AnchorError) and "_" in cls.code
)
MAX_TABS = 60  # Tab presses allowed to reach a control: the project page has about 30 stops

# Form controls a user fills in, and whether each has a label with text (a <label for>, a wrapping label,
# aria-label or aria-labelledby); ids used twice; links and buttons whose names say the same thing but do
# different things (the name is the text, visually hidden parts included, as a screen reader reads it).
PAGE_AUDIT = """() => {
  const words = (text) => (text || "").replace(/\\s+/g, " ").trim();
  const describe = (el) => el.outerHTML.slice(0, 160);
  const labelled = (el) =>
    [...el.labels].some((label) => words(label.textContent)) ||
    words(el.getAttribute("aria-label")) ||
    (el.getAttribute("aria-labelledby") || "").split(/\\s+/).some(
      (id) => id && words(document.getElementById(id)?.textContent));
  const unlabelled = [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
    .filter((el) => el.checkVisibility())
    .filter((el) => !labelled(el))
    .map(describe);
  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  const duplicateIds = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
  const destinations = new Map();
  for (const el of document.querySelectorAll("a[href], button")) {
    const name = words(el.getAttribute("aria-label") || el.textContent);
    const form = el.closest("form");
    const goes = el.tagName === "A" ? el.getAttribute("href")
      : `${form ? form.getAttribute("action") : ""} ${el.dataset.copy || ""}`;
    const key = `${el.tagName} ${name}`;
    destinations.set(key, new Set([...(destinations.get(key) || []), goes]));
  }
  const ambiguous = [...destinations].filter(([, goes]) => goes.size > 1).map(([key]) => key);
  const headings = document.querySelectorAll("main h1, main h2, main h3, main h4");
  const levels = [...headings].map((h) => +h.tagName[1]);
  const skippedHeadings = levels.filter((level, i) => level > (i ? levels[i - 1] : 0) + 1);
  const tabOrderChanged = [...document.querySelectorAll("[tabindex]")]
    .filter((el) => el.tabIndex > 0).map(describe);
  return {unlabelled, duplicateIds, ambiguous, skippedHeadings, tabOrderChanged};
}"""

# Controls smaller than 24 x 24 CSS px at phone width (WCAG's minimum target size; links are left out: most
# are words in a sentence or a table cell, which the rule exempts).
SMALL_TARGETS = """() => [...document.querySelectorAll("button, input:not([type=hidden]), select, textarea")]
  .filter((el) => el.checkVisibility())
  .map((el) => [el.getBoundingClientRect(), el])
  .filter(([box]) => box.width < 24 || box.height < 24)
  .map(([box, el]) => `${Math.round(box.width)}x${Math.round(box.height)} ${el.outerHTML.slice(0, 100)}`)"""

# Text whose contrast with what is behind it is below WCAG's AA ratio (4.5, or 3 for large text): the nearest
# background colour that is not transparent, the page's own colours being opaque (no images behind text).
LOW_CONTRAST = """() => {
  const rgb = (color) => color.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = (c) => (c /= 255) <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const behind = (el) => {
    for (let at = el; at; at = at.parentElement) {
      const color = rgb(getComputedStyle(at).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join("").trim();
    if (!text || !el.checkVisibility()) continue;
    const style = getComputedStyle(el);
    const [fg, bg] = [luminance(rgb(style.color)), luminance(behind(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && +style.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) low.push(`${ratio.toFixed(2)} ${el.outerHTML.slice(0, 100)}`);
  }
  return low;
}"""

# Every element the keyboard can reach, focused in turn after one Tab (so the browser shows focus as it does
# for the keyboard): those whose focus cannot be seen, with no outline and no shadow.
FOCUS_UNSEEN = """() => [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, [tabindex]")]
  .filter((el) => el.checkVisibility() && el.tabIndex >= 0)
  .filter((el) => {
    el.focus();
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    return document.activeElement === el && !outline && style.boxShadow === "none";
  })
  .map((el) => el.outerHTML.slice(0, 120))"""

# The focused element: what it is called and whether its focus indicator can be seen.
FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    tag: el.tagName, name: (el.textContent || "").replace(/\\s+/g, " ").trim(),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== "none",
    onScreen: box.width > 0 && box.height > 0 && box.left >= 0 && box.right <= innerWidth,
  };
}"""


@dataclass
class Site:
    anchor: AnchorProcess
    deployments: list[dict[str, Any]]  # oldest first; the last is production at the start
    token_id: str

    def pages(self) -> list[tuple[str, int]]:
        """Every kind of page a signed-in admin sees (the sign-in page is checked signed out); its status."""
        first, _, last = self.deployments
        project = f"/ui/projects/{PROJECT}"
        return [
            ("/ui/", 200),
            (project, 200),
            (f"{project}/history", 200),
            (f"{project}/rollback?to={first['id']}", 200),
            (f"/ui/deployments/{last['id']}", 200),
            (f"{project}/domains", 200),
            (f"{project}/domains/{DOMAIN}/remove", 200),
            (f"{project}/env", 200),
            ("/ui/tokens", 200),
            (f"/ui/tokens/{self.token_id}/revoke", 200),
            ("/ui/projects/no-such-project", 404),  # an error page
        ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Three deployments of PROJECT (the third live), three domains, a plain and a secret variable, a
    project token."""
    with empty_dns() as dns_env:
        anchor = AnchorProcess(
            tmp_path_factory.mktemp("dashboard-usable") / "data", extra_env=dns_env
        ).start()
        try:
            with anchor.api() as api:
                deployments = [
                    deploy_site(api, PROJECT, f"version {n}", message=f"Version {n} of the garden")
                    for n in (1, 2, 3)
                ]
                for key, value, secret in (("GREETING", "hello", False), ("API_KEY", "hidden", True)):
                    set_env = api.post(
                        f"/v1/projects/{PROJECT}/env", json={"key": key, "value": value, "secret": secret}
                    )
                    assert set_env.status_code in (200, 201), set_env.text
                for name in (DOMAIN, *DOMAINS_TO_REMOVE):
                    added = api.post(f"/v1/projects/{PROJECT}/domains", json={"name": name})
                    assert added.status_code == 201, added.text
            project_token(anchor, PROJECT, "garden-ci")
            tokens = anchor.api().get("/v1/tokens").json()["tokens"]
            token_id = next(t["id"] for t in tokens if t["name"] == "garden-ci")
            yield Site(anchor, deployments, token_id)
        finally:
            anchor.stop()


def answer_pages(page: Page, domain: str) -> Iterator[str]:
    """Pages shown only as the answer to a form, each in turn: a new token's secret, then the records left
    after removing ``domain``."""
    page.goto("/ui/tokens")
    page.get_by_label("Name").fill(f"made-for-{domain.split('.')[0]}")
    page.get_by_role("button", name="Create token").click()
    page.locator("#token-secret").wait_for()
    yield "a new token"
    page.goto(f"/ui/projects/{PROJECT}/domains/{domain}/remove")
    page.get_by_role("button", name=f"Remove {domain}").click()
    page.locator("#removed-domain").wait_for()
    yield "a removed domain"


def visit(page: Page, path: str, status: int) -> None:
    response = page.goto(path)
    assert response is not None and response.status == status, path
    if status >= 400:  # the browser logs the page's status as a failed load: expected here
        assert all(str(status) in error for error in take_page_errors(page)), path


def assert_fits_the_width(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths[0]} px wide in {widths[1]} px"
    heading = page.get_by_role("heading", level=1)
    assert heading.is_visible(), page.url
    box = heading.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= widths[1], page.url


def test_every_page_fits_a_phone(chromium: Browser, site: Site, screenshot: Screenshots) -> None:
    with browser_page(chromium, site.anchor, viewport=PHONE) as page:
        visit(page, "/ui/sign-in", 200)
        assert_fits_the_width(page)
        assert page.evaluate(SMALL_TARGETS) == []
        assert page.evaluate(LOW_CONTRAST) == []
        sign_in(page, site.anchor)
        for path, status in site.pages():
            visit(page, path, status)
            assert_fits_the_width(page)
            assert page.evaluate(SMALL_TARGETS) == [], path
            assert page.evaluate(LOW_CONTRAST) == [], path
            if path == f"/ui/projects/{PROJECT}":
                screenshot(page, "project-phone")
                # a table laid out as cards still has its column headers for a screen reader
                assert "columnheader" in ax_roles(page)
                # a commit reads as words: branch, short id, message (not "main229c758Version 3")
                commit = page.locator("#production .commit").inner_text()
                assert re.fullmatch(r"main [0-9a-f]{7} Version 3 of the garden", commit), commit
        for answer in answer_pages(page, DOMAINS_TO_REMOVE[0]):
            assert_fits_the_width(page)
            assert page.evaluate(SMALL_TARGETS) == [], answer
            assert page.evaluate(LOW_CONTRAST) == [], answer


def ax_roles(page: Page) -> list[str]:
    """The roles in the page's accessibility tree (chromium's, as assistive technology gets it)."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        return [node.get("role", {}).get("value") for node in nodes if not node.get("ignored")]
    finally:
        cdp.detach()


def unnamed_controls(page: Page) -> list[str]:
    """Links, buttons and form controls the browser's accessibility tree gives no name (its own computation
    of the accessible name: label, aria-label, text with visually hidden parts)."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        roles = {"link", "button", "textbox", "combobox", "checkbox", "radio", "listbox", "searchbox"}
        unnamed = []
        for node in nodes:
            role = node.get("role", {}).get("value")
            if node.get("ignored") or role not in roles or str(node.get("name", {}).get("value", "")).strip():
                continue
            described = cdp.send("DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]})["node"]
            unnamed.append(f"{role} {described['nodeName']} {described.get('attributes', [])}")
        return unnamed
    finally:
        cdp.detach()


def test_every_control_is_labelled(chromium: Browser, site: Site) -> None:
    titles = set()
    with browser_page(chromium, site.anchor) as page:
        visits = [("/ui/sign-in", 200), *site.pages()]
        for path, status in visits:
            visit(page, path, status)
            audit = page.evaluate(PAGE_AUDIT)
            assert not any(audit.values()), f"{path}: {audit}"
            assert unnamed_controls(page) == [], path
            titles.add(page.title())
            if path == "/ui/sign-in":
                sign_in(page, site.anchor)
        for answer in answer_pages(page, DOMAINS_TO_REMOVE[1]):
            audit = page.evaluate(PAGE_AUDIT)
            assert not any(audit.values()), f"{answer}: {audit}"
            assert unnamed_controls(page) == [], answer
    assert len(titles) == len(visits), f"pages share a title: {sorted(titles)}"


def test_focus_is_visible_on_every_control(chromium: Browser, site: Site) -> None:
    with browser_page(chromium, site.anchor) as page:
        sign_in(page, site.anchor)
        for path, status in site.pages():
            visit(page, path, status)
            page.keyboard.press("Tab")
            assert page.evaluate(FOCUS_UNSEEN) == [], path


def focus_on(page: Page) -> dict[str, Any]:
    """The focused element after one more Tab; its focus must be visible."""
    page.keyboard.press("Tab")
    focused: dict[str, Any] = page.evaluate(FOCUSED)
    assert focused["outline"] or focused["shadow"], f"no visible focus on {focused} at {page.url}"
    assert focused["onScreen"], f"focused but off screen: {focused} at {page.url}"
    return focused


def tab_to(page: Page, name: str) -> int:
    """Presses Tab until the element named ``name`` has the focus; how many presses it took."""
    for presses in range(1, MAX_TABS + 1):
        if focus_on(page)["name"] == name:
            return presses
    raise AssertionError(f"{name!r} not reached in {MAX_TABS} Tab presses at {page.url}")


def production(anchor: AnchorProcess) -> str:
    with anchor.api() as api:
        found: str = api.get(f"/v1/projects/{PROJECT}").json()["productionDeploymentId"]
        return found


def test_a_rollback_with_the_keyboard_alone(chromium: Browser, site: Site) -> None:
    first, _, last = site.deployments
    assert production(site.anchor) == last["id"]
    with browser_page(chromium, site.anchor) as page:
        sign_in(page, site.anchor)
        page.goto(f"/ui/projects/{PROJECT}")
        assert focus_on(page)["name"] == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"  # past the header's links

        tab_to(page, f"Roll back to {first['id']}")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#move-to").inner_text() == first["id"]
        tab_to(page, f"Roll back to {first['id']}")
        with page.expect_navigation():
            page.keyboard.press("Enter")

        assert page.url.endswith("notice=rolled-back")
        assert page.get_by_role("status").filter(has_text="rolled back").is_visible()
        assert page.locator("#production-id").inner_text() == first["id"]
    assert production(site.anchor) == first["id"]
    assert site.anchor.edge(production_host(site.anchor, PROJECT)).text == "version 1"


def assert_plain_words(page: Page, status: int) -> str:
    """The page's alert: a sentence for a person, not a machine's answer."""
    alert = page.locator("[role=alert]")
    assert alert.count() == 1 and alert.is_visible(), page.url
    text = alert.inner_text().strip()
    assert len(text.split()) >= 3 and re.search(r"[a-z]{3,}", text), text
    for machine in ("{", "}", "Traceback", "Internal Server Error", '"error"', *ERROR_CODES):
        assert machine not in text, f"{machine!r} in the alert: {text}"
    assert str(status) in " ".join(take_page_errors(page))
    return text


def submit(page: Page, button: str, status: int) -> str:
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=button).click()
    assert navigation.value is not None and navigation.value.status == status, page.url
    return assert_plain_words(page, status)


def assert_focus_on_the_field(page: Page, label: str, error: str) -> None:
    """After a refused form, the focus is on the field at fault, whose description is the error: a screen
    reader says both at once."""
    field = page.get_by_label(label, exact=True)
    assert field.evaluate("(el) => el === document.activeElement"), f"{label} not focused at {page.url}"
    assert field.get_attribute("aria-invalid") == "true"
    described = field.evaluate(
        """(el) => (el.getAttribute("aria-describedby") || "").split(/\\s+/)
          .map((id) => document.getElementById(id)?.textContent || "").join(" ")"""
    )
    assert error in described


def test_refused_actions_say_why_in_plain_words(chromium: Browser, site: Site) -> None:
    anchor = site.anchor
    with anchor.api() as api:
        tokens_before = len(api.get("/v1/tokens").json()["tokens"])
    current = production(anchor)
    shown, elsewhere = [d["id"] for d in site.deployments if d["id"] != current][:2]
    with browser_page(chromium, anchor) as page:
        page.goto("/ui/sign-in")
        page.get_by_label("Token").fill("anc_not-a-real-token")
        assert "not accepted" in submit(page, "Sign in", 401)

        sign_in(page, anchor)
        page.goto(f"/ui/projects/{PROJECT}/promote?to={shown}")
        with anchor.api() as api:  # production moves while the confirmation is open
            moved = api.post(f"/v1/projects/{PROJECT}/rollback", json={"deploymentId": elsewhere})
            assert moved.status_code == 200, moved.text
        assert "production moved" in submit(page, f"Promote to {shown}", 409)
        assert production(anchor) == elsewhere

        page.goto(f"/ui/projects/{PROJECT}/domains")
        page.get_by_label("Domain name").fill("not a domain!")
        assert_focus_on_the_field(page, "Domain name", submit(page, "Add domain", 422))
        assert page.get_by_label("Domain name").input_value() == "not a domain!"

        page.goto(f"/ui/projects/{PROJECT}/env")
        page.get_by_label("Key").fill("1 bad key")
        page.get_by_label("Value").fill("x")
        assert_focus_on_the_field(page, "Key", submit(page, "Save variable", 422))
        assert page.get_by_label("Key").input_value() == "1 bad key"

        page.goto("/ui/tokens")
        page.get_by_label("Name").fill("   ")  # passes the browser's required check, not the platform's
        assert_focus_on_the_field(page, "Name", submit(page, "Create token", 422))
    with anchor.api() as api:
        names = [d["name"] for d in api.get(f"/v1/projects/{PROJECT}/domains").json()["domains"]]
        assert DOMAIN in names and "not a domain!" not in names
        keys = sorted(v["key"] for v in api.get(f"/v1/projects/{PROJECT}/env").json()["env"])
        assert keys == ["API_KEY", "GREETING"]
        assert len(api.get("/v1/tokens").json()["tokens"]) == tokens_before
