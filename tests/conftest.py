"""Fixtures every suite may use: the moto server that stands in for AWS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aws_support import MotoServer, aws_environ, moto_server


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server process for the whole run (started on first use)."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer) -> Iterator[MotoServer]:
    """An empty AWS (every moto backend reset) reached through this process's standard AWS variables."""
    moto.reset()
    with aws_environ(moto):
        yield moto
