"""The control plane as a Lambda, called in this process with the events Lambda hands it: function URL
requests (payload format 2.0) are the API through Mangum; EventBridge's "Scheduled Event" is one leased
background round. The stack is bootstrapped on the moto server (`anchor aws bootstrap --yes`); what a
published version serves is read as Lambda would answer (tests/e2e/aws_platform.py).

moto cannot run code, so nothing here invokes the control-plane function itself: its handler is the same
function Lambda would call, given the same event shapes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from anchor_deploy.providers import build_platform
from anchor_deploy.providers.platform import Platform
from anchor_deploy.runtime import lambda_control
from anchor_deploy.services.retention import RetentionPolicy
from anchor_deploy.settings import Settings
from tests.aws_support import MotoServer
from tests.e2e.lambda_control_support import (
    ADMIN,
    Context,
    aliases_of,
    build_lines,
    call,
    control_plane_env,
    deployment,
    make_project,
    queue_deployment,
    scheduled_event,
    sha,
    versions_of,
)


@pytest.fixture
def stack(aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with control_plane_env(aws, tmp_path / "lambda-tmp", monkeypatch) as name:
        yield name


# -- the API through function URL events ---------------------------------------------------------------
def test_health_answers_json(stack: str) -> None:
    status, answer = call("GET", "/v1/health", token=None)
    assert status == 200
    assert answer["status"] in ("ok", "degraded"), answer


def test_projects_need_the_admin_token(stack: str) -> None:
    status, refused = call("POST", "/v1/projects", {"name": "blog"}, token=None)
    assert status == 401 and refused["error"]["code"], refused
    status, wrong = call("POST", "/v1/projects", {"name": "blog"}, token="not-" + ADMIN)
    assert status == 401, wrong
    assert call("GET", "/v1/projects/blog")[0] == 404  # nothing was made
    project = make_project("blog")
    status, found = call("GET", "/v1/projects/blog")
    assert status == 200 and found["id"] == project["id"]


# -- the schedule's rounds ------------------------------------------------------------------------------
def test_a_scheduled_round_builds_a_queued_static_deployment(stack: str) -> None:
    project = make_project("site")
    files = {"index.html": b"<h1>hello from the round</h1>", "about.html": b"about"}
    queued = queue_deployment("site", files)
    assert deployment(queued["id"])["status"] == "QUEUED"  # nothing builds outside the round

    done = lambda_control.handler(scheduled_event(), Context())
    assert done["built"] == [queued["id"]]
    assert done["reconciled"] is True
    ready = deployment(queued["id"])
    assert ready["status"] == "READY", ready
    assert queued["id"] in versions_of(project["id"])
    status, found = call("GET", "/v1/projects/site")
    assert status == 200 and found["productionDeploymentId"] == queued["id"]
    assert done["collected"] is not None  # collection ran under its lease too

    again = lambda_control.handler(scheduled_event(), Context())
    assert again["built"] == [] and again["leftForBuildSandbox"] == []
    assert list(versions_of(project["id"])) == [queued["id"]]  # nothing published twice
    assert sum("building" in line for line in build_lines(queued["id"])) == 1


def test_an_app_is_left_queued_for_a_machine_with_the_build_sandbox(stack: str) -> None:
    make_project("api")
    files = {
        "app.py": b"from flask import Flask\napp = Flask(__name__)\n",
        "requirements.txt": b"flask\n",
    }
    queued = queue_deployment("api", files)
    assert queued["kind"] == "app", queued
    static = queue_deployment("api", {"index.html": b"static beside"}, target="preview")

    done = lambda_control.handler(scheduled_event(), Context())
    assert done["built"] == [static["id"]]
    assert done["leftForBuildSandbox"] == [queued["id"]]
    assert deployment(queued["id"])["status"] == "QUEUED"
    assert deployment(static["id"])["status"] == "READY"


def _platform() -> Platform:
    """Another execution environment's control plane (its own lease holder)."""
    settings = Settings.from_env()
    return build_platform(settings)


def test_two_racing_rounds_build_each_deployment_once(stack: str) -> None:
    project = make_project("race")
    queued = [
        queue_deployment("race", {"index.html": f"page {n}".encode()}, target="preview")["id"]
        for n in range(3)
    ]
    platforms = [_platform(), _platform()]
    answers: list[dict[str, Any]] = [{}, {}]
    start = threading.Barrier(2)

    def round_of(n: int) -> None:
        start.wait(10)
        answers[n] = lambda_control.background_round(platforms[n], time.monotonic() + 120)

    threads = [threading.Thread(target=round_of, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    built = answers[0]["built"] + answers[1]["built"]
    assert sorted(built) == sorted(queued)  # each once, by one round or the other
    assert [deployment(d)["status"] for d in queued] == ["READY"] * 3
    assert sorted(versions_of(project["id"])) == sorted(queued)  # one version each
    for deployment_id in queued:
        assert sum("building" in line for line in build_lines(deployment_id)) == 1


# -- fsck: S3 checks its own copies, so only missing blobs are the platform's to find -------------------
def test_fsck_on_aws_checks_no_copies_and_reports_a_missing_blob(stack: str) -> None:
    make_project("kept")
    page = b"<p>kept</p>"
    queued = queue_deployment("kept", {"index.html": page})
    lambda_control.handler(scheduled_event(), Context())
    assert deployment(queued["id"])["status"] == "READY"

    for repair in (False, True):
        status, report = call("POST", "/v1/admin/fsck", {"repair": repair})
        assert status == 200, report
        assert report["clean"] is True and report["problems"] == []
        assert report["checked"] == {"copies": 0, "bytes": 0}

    s3 = boto3.client("s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(stack))
    s3.delete_object(Bucket=bucket, Key=f"blobs/{sha(page)}")
    for repair in (False, True):
        status, report = call("POST", "/v1/admin/fsck", {"repair": repair})
        assert status == 200, report
        assert report["clean"] is False
        [problem] = report["problems"]
        assert problem["digest"] == sha(page) and problem["problem"] == "missing"
        assert problem["deployments"] == [queued["id"]]
    status, refused = call("POST", "/v1/admin/fsck", {"repair": "yes"})
    assert status == 422 and refused["error"]["code"], refused


# -- retention: a pruned deployment's alias and version go ----------------------------------------------
# (moto keeps one function URL per function whatever the qualifier: each alias's own URL going with it is
# tested on tests/aws_fakes.FakeLambda in tests/contract/test_aws_retention.py)
def test_retention_in_a_round_deletes_pruned_versions_and_keeps_production(stack: str) -> None:
    project = make_project("old")
    first = queue_deployment("old", {"index.html": b"production"})["id"]
    lambda_control.handler(scheduled_event(), Context())
    lambda_control.platform().services.retention.policy = RetentionPolicy(keep_newest=2, keep_production=1)
    previews = []
    for n in range(4):
        previews.append(queue_deployment("old", {"index.html": f"preview {n}".encode()}, "preview")["id"])
        lambda_control.handler(scheduled_event(), Context())
    pruned, kept = previews[:2], [first, *previews[2:]]

    assert [call("GET", f"/v1/deployments/{d}")[0] for d in pruned] == [404, 404]
    assert sorted(versions_of(project["id"])) == sorted(kept)
    aliases = aliases_of(project["id"])
    assert aliases["production"] == versions_of(project["id"])[first]
    assert set(aliases) == {"production", *kept}
    for deployment_id in kept:
        assert aliases[deployment_id] == versions_of(project["id"])[deployment_id]


def test_two_rounds_of_one_execution_environment_take_turns(stack: str) -> None:
    """One lease holder may take a lease it holds again: its rounds must not build side by side."""
    project = make_project("turns")
    queued = [
        queue_deployment("turns", {"index.html": f"turn {n}".encode()}, target="preview")["id"]
        for n in range(2)
    ]
    shared = lambda_control.platform()
    answers: list[dict[str, Any]] = [{}, {}]
    start = threading.Barrier(2)

    def round_of(n: int) -> None:
        start.wait(10)
        answers[n] = lambda_control.background_round(shared, time.monotonic() + 120)

    threads = [threading.Thread(target=round_of, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(answers[0]["built"] + answers[1]["built"]) == sorted(queued)
    assert sorted(versions_of(project["id"])) == sorted(queued)
    for deployment_id in queued:
        assert sum("building" in line for line in build_lines(deployment_id)) == 1
