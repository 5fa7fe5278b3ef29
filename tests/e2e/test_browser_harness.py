"""The browser harness itself (tests/e2e/browser.py): Debian's chromium against a real `anchor up`, and the
watch that fails a page with a JavaScript error or a Content-Security-Policy violation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.browser import assert_no_page_errors, browser_page, take_page_errors
from tests.e2e.harness import AnchorProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

STRICT_CSP = "default-src 'self'; script-src 'self'"


def serve(body: str, csp: str = STRICT_CSP) -> object:
    """A route handler answering with ``body`` under ``csp``, in the browser (the request never leaves it)."""

    def handler(route: Route) -> None:
        headers = {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": csp}
        route.fulfill(status=200, headers=headers, body=body)

    return handler


def test_swagger_ui_renders_in_real_chromium(chromium: Browser, shared_anchor: AnchorProcess) -> None:
    with browser_page(chromium, shared_anchor) as page:
        page.goto("/v1/docs")
        # Swagger UI builds the page with its own script from /v1/openapi.json: its title and a documented
        # route only appear when the script ran and fetched the document.
        page.get_by_role("heading", name="anchor-deploy").first.wait_for()
        page.get_by_text("/v1/health", exact=True).first.wait_for()
        assert page.title() == "anchor-deploy API"


def test_a_script_the_csp_blocks_is_an_error(chromium: Browser, shared_anchor: AnchorProcess) -> None:
    with browser_page(chromium, shared_anchor) as page:
        page.route("**/harness/inline", serve("<h1 id=t>before</h1><script>t.textContent='ran'</script>"))
        page.goto("/harness/inline")
        assert page.locator("#t").text_content() == "before"  # the browser really refused the script
        errors = take_page_errors(page)
        assert any("Content Security Policy" in error for error in errors), errors
        assert any("CSP violation: script-src" in error for error in errors), errors


def test_a_script_error_fails_the_page_on_close(chromium: Browser, shared_anchor: AnchorProcess) -> None:
    failing = pytest.raises(AssertionError, match=r"uncaught .*no_such_function")
    with failing, browser_page(chromium, shared_anchor) as page:
        page.route("**/harness/broken", serve("<p>x</p><script>no_such_function()</script>", csp=""))
        page.goto("/harness/broken")


def test_a_clean_page_passes_and_errors_are_per_page(chromium: Browser, shared_anchor: AnchorProcess) -> None:
    with browser_page(chromium, shared_anchor) as page:
        page.context.route("**/harness/clean", serve("<p>fine</p>"))
        page.context.route("**/harness/bad", serve("<script>oops</script>"))
        page.goto("/harness/clean")
        assert_no_page_errors(page)
        popup = page.context.new_page()
        popup.goto(f"{shared_anchor.api_url}/harness/bad")
        assert take_page_errors(page) == []
        assert take_page_errors(popup), "the second page's blocked script went unrecorded"
