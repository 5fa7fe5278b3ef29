"""One scenario suite, every provider: the same user-visible flows run unchanged on `local` and on `aws`.

Deploy, rollback, promote, pin and unpin with the alias history; an app's frozen environment and its secrets
across a rollback; bad input answered the same way; project deletion. Each provider also checks its own
data plane (tests/e2e/platforms.py): on AWS the `production` Lambda alias and CloudFront.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apps_support import app_files, write_tree
from tests.e2e.platforms import PlatformUnderTest, json_of, open_platform

PROVIDERS = ["local", "aws"]


@pytest.fixture(scope="module", params=PROVIDERS)
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp(f"scenarios-{request.param}")
    with open_platform(request.param, root, request) as platform:
        yield platform


def _site(root: Path, name: str, body: str) -> Path:
    folder = root / name
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(body)
    (folder / "assets" / f"app.{hashlib.sha256(body.encode()).hexdigest()[:8]}.js").write_text(f"// {body}")
    return folder


def _deploy(platform: PlatformUnderTest, folder: Path, project: str, *extra: str) -> dict[str, Any]:
    done = platform.cli("deploy", str(folder), "--project", project, "--json", *extra, check=False)
    deployment: dict[str, Any] = json_of(done)
    assert done.returncode == 0 and deployment["status"] == "READY", (done.stdout, done.stderr)
    return deployment


def _project(platform: PlatformUnderTest, project: str) -> dict[str, Any]:
    with platform.api() as api:
        found: dict[str, Any] = api.get(f"/v1/projects/{project}").json()
    return found


def test_deploy_rollback_promote_pin_unpin_and_history(platform: PlatformUnderTest, tmp_path: Path) -> None:
    project = "flow"
    v1 = _deploy(platform, _site(tmp_path, "v1", "version 1"), project, "--prod", "--create")
    cdn = platform.cdn_marker(project)
    assert (cdn is not None) == (platform.provider == "aws"), "on AWS a distribution comes with production"
    v2 = _deploy(platform, _site(tmp_path, "v2", "version 2"), project, "--prod")
    prod = _project(platform, project)
    assert platform.production(prod).text == "version 2"
    platform.check_production(project, v2["id"])

    moved = json_of(platform.cli("rollback", project, "--json"))
    assert (moved["fromDeploymentId"], moved["toDeploymentId"]) == (v2["id"], v1["id"])
    assert platform.production(prod).text == "version 1"
    platform.check_production(project, v1["id"])
    # Every deployment keeps its own URL, whatever production is.
    for deployment, body in ((v1, "version 1"), (v2, "version 2")):
        assert platform.deployment(deployment).text == body

    # Pinned by the rollback: a new production deploy is built but does not go live.
    v3 = _deploy(platform, _site(tmp_path, "v3", "version 3"), project, "--prod")
    assert v3["productionPinned"] is True
    assert platform.production(prod).text == "version 1"

    json_of(platform.cli("promote", v3["id"], "--json"))
    assert platform.production(prod).text == "version 3"
    platform.check_production(project, v3["id"])

    json_of(platform.cli("rollback", project, "--to", v2["id"], "--json"))
    assert platform.production(prod).text == "version 2"
    with platform.api() as api:
        assert api.post(f"/v1/projects/{project}/unpin").json()["pinned"] is False
    assert platform.production(prod).text == "version 2"  # unpinning moves nothing by itself
    v4 = _deploy(platform, _site(tmp_path, "v4", "version 4"), project, "--prod")
    assert platform.production(prod).text == "version 4"
    platform.check_production(project, v4["id"])

    history = json_of(platform.cli("history", project, "--json"))["history"]
    assert [(m["reason"], m["toDeploymentId"]) for m in history] == [
        ("deploy", v1["id"]),
        ("deploy", v2["id"]),
        ("rollback", v1["id"]),
        ("promote", v3["id"]),
        ("rollback", v2["id"]),
        ("unpin", v2["id"]),
        ("deploy", v4["id"]),
    ]
    # No move touched the CDN: production switches behind it.
    assert platform.cdn_marker(project) == cdn


def test_anchor_up_says_where_it_serves(platform: PlatformUnderTest) -> None:
    log = (platform.anchor.data_dir.parent / f"{platform.anchor.data_dir.name}-up.log").read_text()
    first = next(line for line in log.splitlines() if line.startswith("anchor-deploy is up:"))
    assert first.startswith(f"anchor-deploy is up: API {platform.anchor.api_url}")
    # On AWS no edge runs here (Lambda and CloudFront serve): none is announced.
    assert ("edge http://" in first) == (platform.provider == "local")


def test_preview_never_moves_production(platform: PlatformUnderTest, tmp_path: Path) -> None:
    project = "previews"
    _deploy(platform, _site(tmp_path, "p1", "prod"), project, "--prod", "--create")
    preview = _deploy(platform, _site(tmp_path, "p2", "preview"), project)
    assert preview["isProduction"] is False
    assert platform.production(_project(platform, project)).text == "prod"
    assert platform.deployment(preview).text == "preview"


def test_app_env_is_frozen_per_version_and_secrets_stay_sealed(
    platform: PlatformUnderTest, tmp_path: Path
) -> None:
    project = "greeter"
    secret = "tok-" + secrets.token_hex(16)
    with platform.api() as api:
        assert api.post("/v1/projects", json={"name": project}).status_code == 201
    platform.cli("env", "set", project, "GREETING", "one")
    shown = platform.cli("env", "set", project, "TOKEN", secret, "--secret")
    assert secret not in shown.stdout + shown.stderr
    v1 = _deploy(platform, write_tree(tmp_path / "a1", app_files("v1")), project, "--prod")
    platform.cli("env", "set", project, "GREETING", "two")
    v2 = _deploy(platform, write_tree(tmp_path / "a2", app_files("v2")), project, "--prod")
    prod = _project(platform, project)
    answer = platform.production(prod)
    assert answer.status == 200, answer.text
    body = json_of_bytes(answer.body)
    assert (body["version"], body["greeting"]) == ("v2", "two")
    assert body["token_sha256"] == hashlib.sha256(secret.encode()).hexdigest()

    platform.cli("rollback", project)
    body = json_of_bytes(platform.production(prod).body)
    assert (body["version"], body["greeting"]) == ("v1", "one"), "a rollback brings back v1's own env"
    platform.check_production(project, v1["id"])
    assert json_of_bytes(platform.deployment(v2).body)["greeting"] == "two"

    with platform.api() as api:
        listing = api.get(f"/v1/projects/{project}/env")
        assert secret not in listing.text
        assert secret not in api.get(f"/v1/deployments/{v1['id']}").text
    for where, data in platform.stored_text():
        assert secret.encode() not in data, f"the secret is in clear in {where}"


def json_of_bytes(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/v1/projects", {"name": "Bad Name!"}, 422, "invalid_name"),
        ("post", "/v1/projects/nope/rollback", {}, 404, "project_not_found"),
        ("post", "/v1/projects/flow/rollback", {"deploymentId": "dpl_nope"}, 404, "deployment_not_found"),
        (
            "post",
            "/v1/projects/flow/deployments",
            {"files": [{"path": "../x", "sha256": "0" * 64, "size": 1}]},
            422,
            "invalid_manifest",
        ),
    ],
)
def test_bad_input_is_refused_the_same_way(
    platform: PlatformUnderTest, method: str, path: str, body: Any, status: int, code: str
) -> None:
    with platform.api() as api:
        before = api.get("/v1/projects").json()
        response = getattr(api, method)(path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
        assert api.get("/v1/projects").json() == before


def test_custom_domains_are_offered_locally_and_refused_plainly_on_aws(platform: PlatformUnderTest) -> None:
    with platform.api() as api:
        assert api.post("/v1/projects", json={"name": "named"}).status_code == 201
        answer = api.post("/v1/projects/named/domains", json={"name": "www.example.com"})
        listed = api.get("/v1/projects/named/domains").json()["domains"]
    if platform.provider == "aws":  # ACM and CloudFront aliases come in a later part
        assert (answer.status_code, answer.json()["error"]["code"]) == (501, "not_offered"), answer.text
        assert "AWS provider" in answer.json()["error"]["message"]
        assert listed == []
    else:
        assert answer.status_code == 201, answer.text
        assert [d["name"] for d in listed] == ["www.example.com"]


def test_deleting_a_project_stops_serving_it(platform: PlatformUnderTest, tmp_path: Path) -> None:
    project = "doomed"
    d = _deploy(platform, _site(tmp_path, "d1", "here"), project, "--prod", "--create")
    prod = _project(platform, project)
    assert platform.production(prod).text == "here"
    with platform.api() as api:
        project_id = api.get(f"/v1/projects/{project}").json()["id"]
        assert api.delete(f"/v1/projects/{project}").status_code == 200
        assert api.get(f"/v1/projects/{project}").status_code == 404
    for served in (platform.production(prod), platform.deployment(d)):
        assert served.status == 404 and b"here" not in served.body
    platform.check_project_gone(project_id, [d["id"]])
