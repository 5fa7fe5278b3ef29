from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from anchor_deploy.adapters.local.nginx_config import NJS_MODULE
from anchor_deploy.settings import Settings
from tests.e2e.browser import Screenshots, launch_chromium
from tests.e2e.harness import AnchorProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser


EDGES = ("caddy", "nginx")


def nginx_missing() -> str | None:
    """Why the nginx edge cannot run here, or None."""
    settings = Settings.from_env({})
    if not Path(settings.nginx_bin).is_file():
        return f"nginx is not installed ({settings.nginx_bin}): apt-get install nginx libnginx-mod-http-js"
    if not NJS_MODULE.is_file():
        return f"nginx's njs module is not installed ({NJS_MODULE}): apt-get install libnginx-mod-http-js"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test (or module) marked ``edges`` runs once per edge web server, ids [caddy] and [nginx]: every
    platform fixture it uses (``anchor``, ``shared_anchor``, or its own through ``edge_server``) gets it."""
    if "edge_server" in metafunc.fixturenames and metafunc.definition.get_closest_marker("edges"):
        missing = nginx_missing()
        skip = pytest.mark.skipif(missing is not None, reason=missing or "")
        params = [pytest.param(edge, marks=skip if edge == "nginx" else ()) for edge in EDGES]
        metafunc.parametrize("edge_server", params, ids=EDGES, scope="module")


@pytest.fixture(scope="session")
def edge_server() -> str:
    """The edge's web server of a test not marked ``edges``: the default one."""
    return "caddy"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def anchor(tmp_path: Path, edge_server: str) -> Iterator[AnchorProcess]:
    """A fresh platform per test."""
    platform = AnchorProcess(tmp_path / "data", edge_server=edge_server).start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def shared_anchor(tmp_path_factory: pytest.TempPathFactory, edge_server: str) -> Iterator[AnchorProcess]:
    """One platform for a module's read-mostly tests (one per edge in a module marked ``edges``)."""
    platform = AnchorProcess(tmp_path_factory.mktemp("shared") / "data", edge_server=edge_server).start()
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
