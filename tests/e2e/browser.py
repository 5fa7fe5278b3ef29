"""Real-browser support for the dashboard's tests: Playwright driving Debian's headless chromium.

The browser is the system's /usr/bin/chromium (``scripts/test`` installs it), launched through Playwright's
``executable_path``: no browser is ever downloaded (never ``playwright install``). Playwright itself is
imported only inside the functions here, so collecting the suite (the fast suite on other Pythons
collects tests/e2e too, then leaves it out by marker) never needs it.

Every page opened through :func:`browser_page` is watched: a JavaScript error, an uncaught exception or a
Content-Security-Policy violation on it fails the test that opened it (checked when the page closes, or at
once with :func:`assert_no_page_errors`). A test that provokes an expected error (a 403 page logs "Failed
to load resource") takes it with :func:`take_page_errors` and asserts on it.
"""

from __future__ import annotations

import os
import re
import shutil
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.harness import AnchorProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

TIMEOUT_MS = 10_000  # every wait and navigation: a page that does not answer in 10 s is a failure
VIEWPORT = {"width": 1280, "height": 800}  # fixed, so screenshots in docs/ are reproducible
PHONE = {"width": 375, "height": 740}  # a phone held upright: the narrowest width the pages must fit
# Running as root in a container, chromium's own sandbox cannot start; the browser only ever loads pages
# from the platform under test on 127.0.0.1.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
# On a watched page: errors of the page's own (CSP violations are reported by the browser as console
# errors; the listener below makes sure of it and names the directive).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""

_page_errors: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def chromium_path() -> str:
    """Debian's chromium; its absence fails (not skips) the browser tests, saying how to get it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "the dashboard's browser tests need Debian's chromium: `apt-get install chromium "
            "fonts-dejavu-core` (scripts/test installs it)",
            pytrace=False,
        )
    return path


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """One headless chromium for a whole session (launching costs about a second; contexts are cheap)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch(page: Page) -> Page:
    """Records the page's console errors, uncaught exceptions and CSP violations."""
    errors = _page_errors.setdefault(page, [])

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console error at {page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught {error.name} at {page.url}: {error.message}"))
    return page


def take_page_errors(page: Page) -> list[str]:
    """The errors the page has recorded so far, which are forgotten (for tests that expect some)."""
    errors = _page_errors.get(page, [])
    taken = list(errors)
    errors.clear()
    return taken


def assert_no_page_errors(page: Page) -> None:
    errors = take_page_errors(page)
    assert not errors, "the page had errors:\n" + "\n".join(errors)


@contextmanager
def browser_page(
    browser: Browser, anchor: AnchorProcess, *, check: bool = True, viewport: dict[str, int] | None = None
) -> Iterator[Page]:
    """A fresh browser context (its own cookies) on the platform's API address, with one watched page.

    Relative URLs (``page.goto("/ui/")``) go to ``anchor``. With ``check`` (the default) the test fails
    if the page, or any page it opened, logged an error that no one took. ``viewport`` (``PHONE``, say)
    replaces the default ``VIEWPORT``."""
    context = browser.new_context(base_url=anchor.api_url, viewport=viewport or VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.add_init_script(CSP_LISTENER)
    opened: list[Page] = []
    context.on("page", lambda page: opened.append(watch(page)))
    try:
        page = context.new_page()
        yield page
        if check:
            for each in opened:
                assert_no_page_errors(each)
    finally:
        context.close()


def sign_in(page: Page, anchor: AnchorProcess, token: str | None = None) -> None:
    """Signs in through the sign-in form with ``token`` (the admin token by default: ``anchor.token``,
    read from ``ANCHOR_ADMIN_TOKEN`` or from the data dir's ``admin-token`` file by the harness)."""
    page.goto("/ui/sign-in")
    page.get_by_label("Token").fill(token or anchor.token)
    page.get_by_role("button", name=re.compile("sign in", re.IGNORECASE)).click()
    page.wait_for_url(f"{anchor.api_url}/ui/")


class Screenshots:
    """PNGs of pages: always into the test's temp dir; also into docs/screenshots/ with ANCHOR_SCREENSHOTS=1
    (``make screenshots``), which is how the pictures in the docs are made."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.for_docs = os.environ.get("ANCHOR_SCREENSHOTS") == "1"

    def __call__(self, page: Page, name: str) -> Path:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise ValueError(f"screenshot names are lowercase words joined by '-', not {name!r}")
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.for_docs:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            partial = DOCS_SCREENSHOTS / f".{name}.png.partial"
            shutil.copyfile(path, partial)
            partial.replace(DOCS_SCREENSHOTS / f"{name}.png")
        return path
