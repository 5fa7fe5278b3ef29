"""Retention on Lambda: a pruned deployment's alias, function URL and version go (LambdaAppRuntime.discard,
which retention calls while the deployment's row still names its project, then
LambdaFunctions.remove_deployment); production's version and the kept deployments' stay.

On tests/aws_fakes.FakeLambda, since moto ignores MaxItems and Marker (one page whatever the size) and keeps
one URL per function whatever the qualifier: here the listings come in pages of 10, and each alias has its
own URL. The same path through the whole assembly on the moto server is in
tests/e2e/test_lambda_control.py (a scheduled round's build prunes).
"""

from __future__ import annotations

from typing import Any

import pytest

from anchor_deploy.adapters.aws.deployments import LambdaAppRuntime, Publisher
from anchor_deploy.adapters.aws.lambda_functions import FunctionSettings, LambdaFunctions
from anchor_deploy.model.entities import Deployment, DeploymentStatus, Target
from tests.aws_fakes import FakeClients, FakeLambda

PROJECT = "prj_0123456789abcdef"
PAGE = 10
COUNT = 35  # deployments: four pages of versions with $LATEST


def deployment_id(n: int) -> str:
    return f"dpl_{n:012d}"


class Rows:
    """The database's deployment rows, as the Publisher reads them."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = set(ids)

    def deployment(self, deployment_id: str) -> Deployment | None:
        if deployment_id not in self.ids:
            return None
        return Deployment(deployment_id, PROJECT, DeploymentStatus.READY, Target.PREVIEW, 0.0, 1, 1)


@pytest.fixture
def fake() -> FakeLambda:
    """COUNT published deployments, each with its alias and URL except every fifth (a crash between the
    version and its alias); production names deployment 1's version."""
    fake = FakeLambda(f"anchor-{PROJECT}")
    for n in range(1, COUNT + 1):
        version = fake.publish(deployment_id(n))
        if n % 5:
            name = deployment_id(n)
            fake.create_alias(FunctionName=fake.name, Name=name, FunctionVersion=version, Description=name)
            fake.create_function_url_config(FunctionName=fake.name, Qualifier=name, AuthType="NONE")
    fake.create_alias(FunctionName=fake.name, Name="production", FunctionVersion="1")
    fake.create_function_url_config(FunctionName=fake.name, Qualifier="production", AuthType="NONE")
    fake.calls.clear()
    return fake


def runtime_on(fake: FakeLambda, rows: Rows) -> tuple[LambdaAppRuntime, LambdaFunctions]:
    settings = FunctionSettings(role_arn="arn:aws:iam::123456789012:role/r", bucket="b", page_size=PAGE)
    functions = LambdaFunctions(FakeClients(**{"lambda": fake}), settings)
    store: Any = rows  # the Publisher reads only deployment rows here
    publisher = Publisher(functions, store, "b", "holder")
    unused: Any = None  # blobs, box, CDN and invokers: discard touches none of them
    runtime = LambdaAppRuntime(publisher, store, unused, unused, unused, unused, unused, 256)
    return runtime, functions


def version_of(fake: FakeLambda, n: int) -> str | None:
    return next((v for v, d in fake.versions.items() if d == deployment_id(n)), None)


def test_discard_deletes_the_alias_url_and_version_and_nothing_else(fake: FakeLambda) -> None:
    runtime, functions = runtime_on(fake, Rows([deployment_id(n) for n in range(1, COUNT + 1)]))
    before = dict(fake.versions)
    runtime.discard(deployment_id(3))
    assert deployment_id(3) not in fake.aliases and deployment_id(3) not in fake.urls
    assert set(before) - set(fake.versions) == {"3"}
    assert fake.aliases["production"]["FunctionVersion"] == "1" and "1" in fake.versions
    assert "production" in fake.urls
    for n in (2, 4, 34):
        assert functions.version_of(PROJECT, deployment_id(n)) == str(n)
        assert deployment_id(n) in fake.urls
    runtime.discard(deployment_id(3))  # again: nothing left to delete, no error
    assert set(before) - set(fake.versions) == {"3"}


def test_a_version_without_its_alias_is_found_past_the_first_page(fake: FakeLambda) -> None:
    runtime, _ = runtime_on(fake, Rows([deployment_id(n) for n in range(1, COUNT + 1)]))
    assert deployment_id(30) not in fake.aliases and version_of(fake, 30) == "30"
    runtime.discard(deployment_id(30))
    assert version_of(fake, 30) is None
    assert fake.calls["ListVersionsByFunction"] == 4  # 36 versions with $LATEST, in pages of 10
    assert len(fake.versions) == COUNT - 1


def test_production_keeps_its_version(fake: FakeLambda) -> None:
    """Retention never plans production's deployment; if asked anyway, Lambda keeps serving it."""
    runtime, functions = runtime_on(fake, Rows([deployment_id(1)]))
    runtime.discard(deployment_id(1))
    assert functions.remove_deployment(PROJECT, deployment_id(1)) is False  # and again: no version to delete
    assert deployment_id(1) not in fake.aliases and deployment_id(1) not in fake.urls
    assert "1" in fake.versions and fake.aliases["production"]["FunctionVersion"] == "1"


def test_a_deployment_whose_row_is_gone_is_left_to_its_projects_function(fake: FakeLambda) -> None:
    runtime, _ = runtime_on(fake, Rows([]))
    runtime.discard(deployment_id(3))
    assert len(fake.versions) == COUNT and deployment_id(3) in fake.aliases
    assert sum(fake.calls.values()) == 0


def test_pruning_many_deployments_keeps_the_kept_ones(fake: FakeLambda) -> None:
    runtime, _ = runtime_on(fake, Rows([deployment_id(n) for n in range(1, COUNT + 1)]))
    kept = {1, *range(COUNT - 4, COUNT + 1)}
    for n in range(2, COUNT + 1):
        if n not in kept:
            runtime.discard(deployment_id(n))
    assert sorted(fake.versions, key=int) == sorted(str(n) for n in kept)
    assert set(fake.aliases) == {"production", *(deployment_id(n) for n in kept if n % 5)}
    assert set(fake.urls) == set(fake.aliases)  # each remaining alias with its own URL
