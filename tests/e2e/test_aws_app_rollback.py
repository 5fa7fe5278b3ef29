"""App deployments on AWS carry their dependencies in their Lambda versions: a control plane that never built
an app (no dependency folder on its machine, as the control-plane Lambda's fresh /tmp) rebuilds nothing at
start, and a rollback to that app only moves the production alias.

Process A is a machine's control plane (the build sandbox; health checks run the published package there,
ANCHOR_AWS_INVOKE=sandbox, since moto cannot run code); process B is the control-plane Lambda, called with
function URL events, with an empty data dir of its own. Both share the stack on the moto server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from anchor_deploy.adapters.aws.lambda_deps import LambdaDependencies
from anchor_deploy.providers import build_platform
from anchor_deploy.runtime import lambda_control
from anchor_deploy.settings import Settings
from tests.aws_support import MotoServer
from tests.e2e.apps_support import app_files, as_bytes, wheelhouse
from tests.e2e.lambda_control_support import (
    aliases_of,
    build_lines,
    call,
    control_plane_env,
    deployment,
    function_of,
    make_project,
    queue_deployment,
    versions_of,
)


@pytest.fixture
def stack(aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with control_plane_env(aws, tmp_path / "machine-a", monkeypatch) as name:
        yield name


def build_on_machine_a(monkeypatch: pytest.MonkeyPatch, deployment_ids: list[str]) -> None:
    """A machine's control plane builds the queued apps in its build sandbox (as its build threads would)."""
    with monkeypatch.context() as local:
        local.setenv("ANCHOR_AWS_INVOKE", "sandbox")
        local.setenv("ANCHOR_PIP_ARGS", f"--no-index --find-links {wheelhouse()}")
        machine = build_platform(Settings.from_env())
    for deployment_id in deployment_ids:
        machine.services.deployments.build(deployment_id)


def production_config(project_id: str) -> dict[str, Any]:
    function = function_of(project_id)
    version = aliases_of(project_id)["production"]
    found: dict[str, Any] = boto3.client("lambda").get_function_configuration(
        FunctionName=function, Qualifier=version
    )
    return found


def test_another_control_plane_rebuilds_nothing_and_rolls_back_by_moving_the_alias(
    stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project("shop")
    ids = []
    for version in ("v1", "v2"):
        queued = queue_deployment("shop", as_bytes(app_files(version)))
        assert queued["kind"] == "app"
        build_on_machine_a(monkeypatch, [queued["id"]])
        assert deployment(queued["id"])["status"] == "READY", build_lines(queued["id"])
        ids.append(queued["id"])
    first, second = ids
    assert any((tmp_path / "machine-a" / "lambda-deps").iterdir())  # A built the dependencies
    versions = versions_of(project["id"])
    assert aliases_of(project["id"])["production"] == versions[second]

    # Process B: the control-plane Lambda, cold, with a data dir of its own; it must never build.
    lambda_b = tmp_path / "lambda-b"
    monkeypatch.setenv("ANCHOR_DATA_DIR", str(lambda_b))
    monkeypatch.setattr(lambda_control, "_state", {})
    rebuilt: list[bytes] = []

    def no_rebuild(self: LambdaDependencies, requirements: bytes, *args: Any, **kwargs: Any) -> Path:
        rebuilt.append(requirements)
        raise AssertionError("a READY app's version carries its dependencies: nothing is rebuilt")

    monkeypatch.setattr(LambdaDependencies, "ensure", no_rebuild)
    logs_before = {d: build_lines(d) for d in ids}
    platform_b = lambda_control.platform()
    assert platform_b.services.apps.restore_environments() == []
    platform_b._warm_production()  # what a start does after serving: warm sets, then missing environments
    assert platform_b.services.apps.spec(first) is not None  # B can describe how the app runs
    assert rebuilt == []
    assert {d: build_lines(d) for d in ids} == logs_before  # no "environment is missing" line

    status, moved = call("POST", "/v1/projects/shop/rollback", {"deploymentId": first})
    assert status == 200, moved
    assert moved["toDeploymentId"] == first
    assert aliases_of(project["id"])["production"] == versions[first]
    assert versions_of(project["id"]) == versions  # no version published by the rollback
    config = production_config(project["id"])
    assert config["Description"] == first
    assert config["Environment"]["Variables"]["ANCHOR_DEPLOYMENT_ID"] == first
    assert rebuilt == []
    assert not any(p.is_dir() and any(p.iterdir()) for p in (lambda_b / "lambda-deps").glob("*"))
