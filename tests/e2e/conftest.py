from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import AnchorProcess


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
