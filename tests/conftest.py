"""Fixtures every suite may use: the moto server that stands in for AWS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aws_support import MotoServer, aws_environ, moto_server

# Contract suites run on every adapter of a port; these parameters are the AWS ones (they ask for the moto
# server inside the fixture, where the test's fixture names do not show it).
AWS_PARAMS = {"dynamo", "s3", "kms", "aws"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that reach the moto server are marked ``aws`` (the fast suite on other Pythons leaves them out:
    they need the one server process and take minutes)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        values = {value for value in params.values() if isinstance(value, str)}
        if "moto" in getattr(item, "fixturenames", ()) or AWS_PARAMS & values:
            item.add_marker(pytest.mark.aws)


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
