"""One scenario suite, every provider: the same user-visible flows run unchanged on `local` and on `aws`.

Deploy, rollback, promote, pin and unpin with the alias history; an app's frozen environment and its secrets
across a rollback; bad input answered the same way; project deletion; custom domains whose records the
platform writes into a linked zone (knot taking TSIG-signed RFC 2136 updates, resolved through BIND), from
add to active, through rollbacks and removal. Each provider also checks its own data plane
(tests/e2e/platforms.py): on AWS the `production` Lambda alias, CloudFront and ACM.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apps_support import app_files, write_tree
from tests.e2e.dns_support import Resolver, UserDns, query
from tests.e2e.platforms import PlatformUnderTest, json_of, open_platform

PROVIDERS = ["local", "aws"]
ZONE = "scenario.test"
TSIG = ("anchor-scenarios.", "hmac-sha256", base64.b64encode(b"k" * 32).decode())


@pytest.fixture(scope="module")
def user_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UserDns, Resolver]]:
    """The user's zone on knot (updates only with the TSIG key) and the resolver the platform asks."""
    with ExitStack() as started:
        zone = started.enter_context(UserDns([ZONE], workdir=tmp_path_factory.mktemp("knot"), tsig=TSIG))
        resolver = Resolver({ZONE: zone.address}, workdir=tmp_path_factory.mktemp("named"))
        yield zone, started.enter_context(resolver)


@pytest.fixture(scope="module", params=PROVIDERS)
def platform(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    user_dns: tuple[UserDns, Resolver],
) -> Iterator[Any]:
    root = tmp_path_factory.mktemp(f"scenarios-{request.param}")
    env = {
        "ANCHOR_DNS_RESOLVERS": user_dns[1].address,  # every lookup stays on loopback
        "ANCHOR_VALIDATION_ZONE": "anchor-validation.test",
        "ANCHOR_EDGE_HOSTNAME": "edge.anchor.test",
        "ANCHOR_DOMAIN_CHECK_MIN": "0.2",
        "ANCHOR_DOMAIN_CHECK_MAX": "1",
    }
    with open_platform(request.param, root, request, env) as platform:
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


def _wait_domain(platform: PlatformUnderTest, project: str, name: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    domain: dict[str, Any] = {}
    with platform.api() as api:
        while time.monotonic() < deadline:
            domain = api.get(f"/v1/projects/{project}/domains/{name}").json()
            if domain.get("certificateStatus") == "ISSUED" and domain.get("cdnStatus") == "active":
                return domain
            time.sleep(0.3)
    raise AssertionError(f"{name} never became active; last: {domain}")


def _in_zone(zone: UserDns, record: dict[str, Any]) -> bool:
    answer = query(zone.address, record["name"], record["type"])
    return record["value"].rstrip(".").lower() in [
        v.rstrip(".").lower() for v in answer.values(record["type"])
    ]


def test_custom_domains_from_a_linked_zone_to_https_through_rollbacks_and_removal(
    platform: PlatformUnderTest, user_dns: tuple[UserDns, Resolver], tmp_path: Path
) -> None:
    zone, _resolver = user_dns
    project = "branded"
    _deploy(platform, _site(tmp_path, "b1", "brand one"), project, "--prod", "--create")
    v2 = _deploy(platform, _site(tmp_path, "b2", "brand two"), project, "--prod")
    key = ":".join(TSIG)
    linked = platform.cli(
        "dns", "link", ZONE, "--project", project, "--rfc2136", zone.address, "--tsig-key", key
    )
    assert ZONE in linked.stdout
    names = [f"www.{ZONE}", f"shop.{ZONE}", f"*.apps.{ZONE}"]
    with platform.api() as api:
        for name in names:
            added = api.post(f"/v1/projects/{project}/domains", json={"name": name})
            assert added.status_code == 201, added.text
    domains = [_wait_domain(platform, project, name) for name in names]  # no record added by hand
    for domain in domains:
        for record in domain["dnsRecords"]:
            assert _in_zone(zone, record), f"{record} was not written into {ZONE}"
    # Every name served at once: on AWS with one certificate covering every alias of the distribution.
    for name in names:
        shown = name.replace("*.", "x.", 1)
        assert platform.custom_domain(shown).text == "brand two"
    cdn = platform.cdn_marker(project)

    json_of(platform.cli("rollback", project, "--json"))
    for name in names:
        assert platform.custom_domain(name.replace("*.", "x.", 1)).text == "brand one"
    assert platform.cdn_marker(project) == cdn  # a rollback leaves the CDN alone, custom domains and all
    json_of(platform.cli("rollback", project, "--to", v2["id"], "--json"))
    assert platform.custom_domain(names[0]).text == "brand two"

    with platform.api() as api:
        quotas = api.get("/v1/quotas", params={"project": project}).json()["quotas"]
        own = next(q for q in quotas if q["code"] == "domains_per_project")
        assert (own["used"], own["scope"]) == (3, f"project {project}")
        gone = api.delete(f"/v1/projects/{project}/domains/{names[0]}")
        assert gone.status_code == 200, gone.text
        assert api.get(f"/v1/projects/{project}/domains/{names[0]}").status_code == 404
        if not gone.json()["finished"]:  # CloudFront lets go of the name and its certificate later
            again = api.post(f"/v1/projects/{project}/domains", json={"name": names[0]})
            assert again.status_code == 409 and "still being removed" in again.text, again.text
    assert gone.json()["finished"] or platform.provider == "aws"
    assert platform.custom_domain(names[1]).text == "brand two"  # the others are untouched
    _eventually(lambda: platform.check_domain_gone(names[0]))
    _eventually(lambda: _records_gone(zone, domains[0]["dnsRecords"]))
    for record in domains[1]["dnsRecords"]:
        if record["purpose"] == "routing":
            assert _in_zone(zone, record), "another domain's records were deleted"
    with platform.api() as api:  # and the name is free again
        assert api.post(f"/v1/projects/{project}/domains", json={"name": names[0]}).status_code == 201


def _records_gone(zone: UserDns, records: list[dict[str, Any]]) -> None:
    for record in records:
        assert not _in_zone(zone, record), f"{record} is still in {ZONE} after the removal"


def _eventually(check: Any, timeout: float = 60) -> None:
    """Until ``check`` stops failing its assertions (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


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
