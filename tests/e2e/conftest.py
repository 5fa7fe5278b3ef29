from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.browser import Screenshots, launch_chromium
from tests.e2e.harness import AnchorProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def anchor(tmp_path: Path) -> Iterator[AnchorProcess]:
    """A fresh platform per test."""
    platform = AnchorProcess(tmp_path / "data").start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def shared_anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    """One platform for a module's read-mostly tests."""
    platform = AnchorProcess(tmp_path_factory.mktemp("shared") / "data").start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless chromium per browser module (tests/e2e/browser.py); each test opens its own context.
    Not one per run: while Playwright's sync API is alive, this thread counts as running an asyncio loop,
    and the in-process tests after the browser modules (asyncio.run, Mangum's handler) would fail."""
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Screenshots:
    """``screenshot(page, "name")``: a PNG in a temp dir (and in docs/screenshots/ for `make screenshots`)."""
    return Screenshots(tmp_path_factory.mktemp("screenshots"))
