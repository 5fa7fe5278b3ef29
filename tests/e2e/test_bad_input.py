"""Bad input against a real `anchor up`: every case is a 4xx JSON error and changes nothing.

"Nothing" is checked, not assumed: a snapshot of the API's view (projects, each project's deployments and
alias history) and of the files under data_dir/blobs, data_dir/deployments and data_dir/edge is taken before
and after each case and compared.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from anchor_deploy.api.routes import router
from tests.e2e.harness import AnchorProcess, ensure_project, sha, upload_and_deploy

TIMEOUT = 10
INDEX = b"<h1>alpha</h1>"


# -- helpers ----------------------------------------------------------------------------------------------
_CLIENTS: dict[str, httpx.Client] = {}


def call(
    anchor: AnchorProcess, method: str, path: str, auth: str | None = "admin", **kwargs: Any
) -> httpx.Response:
    """One request, on a connection of its own ("Connection: close"): uvicorn drops a keep-alive connection
    after a 500, so reusing it would turn one server bug into a confusing ReadError on the next case."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    if auth == "admin":
        headers["Authorization"] = f"Bearer {anchor.token}"
    elif auth is not None:
        headers["Authorization"] = auth
    client = _CLIENTS.get(anchor.api_url)
    if client is None:
        client = _CLIENTS[anchor.api_url] = httpx.Client(base_url=anchor.api_url, timeout=TIMEOUT)
    return client.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    for client in _CLIENTS.values():
        client.close()
    _CLIENTS.clear()


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    if code is not None:
        assert error["code"] == code, body
    return error


def snapshot(anchor: AnchorProcess) -> dict[str, Any]:
    state: dict[str, Any] = {}
    projects = call(anchor, "GET", "/v1/projects")
    assert projects.status_code == 200, projects.text
    state["projects"] = projects.json()["projects"]
    for project in state["projects"]:
        name = project["name"]
        for what in ("deployments", "alias-history"):
            response = call(anchor, "GET", f"/v1/projects/{name}/{what}")
            assert response.status_code == 200, response.text
            state[f"{name}/{what}"] = response.json()
    files: dict[str, tuple[Any, ...]] = {}
    for sub in ("blobs", "deployments", "edge"):
        top = anchor.data_dir / sub
        for folder, dirs, names in os.walk(top):  # never follows the edge's symlinks
            for entry in [*dirs, *names]:
                path = Path(folder) / entry
                rel = path.relative_to(anchor.data_dir).as_posix()
                if path.is_symlink():
                    files[rel] = ("link", os.readlink(path))
                elif path.is_dir():
                    files[rel] = ("dir",)
                else:
                    files[rel] = ("file", path.stat().st_size)
    state["files"] = files
    return state


@contextmanager
def unchanged(anchor: AnchorProcess) -> Iterator[None]:
    before = snapshot(anchor)
    yield
    after = snapshot(anchor)
    assert after["files"] == before["files"]
    assert after == before


@dataclass
class World:
    anchor: AnchorProcess
    alpha: list[dict[str, Any]]  # two production deployments; production on the second
    beta: dict[str, Any]  # one production deployment: nothing to roll back to
    limited: str  # a token limited to project alpha


@pytest.fixture(scope="module")
def world(shared_anchor: AnchorProcess) -> World:
    anchor = shared_anchor
    with anchor.api() as api:
        for name in ("alpha", "beta", "gamma"):  # gamma has no deployment at all
            ensure_project(api, name)
        alpha = [
            upload_and_deploy(api, "alpha", {"index.html": INDEX}),
            upload_and_deploy(api, "alpha", {"index.html": INDEX + b"v2"}),
        ]
        beta = upload_and_deploy(api, "beta", {"index.html": b"beta"})
        assert [d["status"] for d in [*alpha, beta]] == ["READY"] * 3
        created = api.post("/v1/tokens", json={"name": "alpha-ci", "project": "alpha"})
        assert created.status_code == 201, created.text
    return World(anchor, alpha, beta, created.json()["token"])


def entry(**overrides: Any) -> dict[str, Any]:
    """A manifest entry that would be valid (its blob exists) but for the overrides."""
    return {"path": "index.html", "sha256": sha(INDEX), "size": len(INDEX), "mode": 0o644, **overrides}


# -- manifests ----------------------------------------------------------------------------------------------
BAD_PATHS = {
    "dotdot": "../escape.html",
    "dotdot-inner": "a/../../escape.html",
    "dotdot-only": "..",
    "dot-segment": "./index.html",
    "absolute": "/etc/passwd",
    "nul": "a\x00b.html",
    "backslash": "a\\..\\b.html",
    "control-char": "a\nb.html",
    "empty-segment": "a//b.html",
    "trailing-slash": "docs/",
    "empty": "",
    "not-a-string": 7,
    "too-long-path": "/".join(["d" * 200] * 6),  # 1205 bytes, every segment fine
    "too-long-segment": "a/" + "s" * 256,
    "too-long-utf8-segment": "é" * 128 + ".html",  # 133 characters, 261 bytes
    "reserved-etag-suffix": "index.html.anchor-etag",
}


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_bad_manifest_paths(world: World, path: object) -> None:
    with unchanged(world.anchor):
        response = call(
            world.anchor,
            "POST",
            "/v1/projects/alpha/deployments",
            json={"files": [entry(path=path)], "target": "production"},
        )
        assert_error(response, 422, "invalid_manifest")


BAD_ENTRIES = {
    "mode-symlink": {"mode": stat.S_IFLNK | 0o777},
    "mode-directory": {"mode": stat.S_IFDIR | 0o755},
    "mode-char-device": {"mode": stat.S_IFCHR | 0o644},
    "mode-block-device": {"mode": stat.S_IFBLK | 0o644},
    "mode-fifo": {"mode": stat.S_IFIFO | 0o644},
    "mode-socket": {"mode": stat.S_IFSOCK | 0o644},
    "mode-unknown-bits": {"mode": 0o1000000 | 0o644},
    "mode-negative": {"mode": -1},
    "mode-string": {"mode": "644"},
    "mode-bool": {"mode": True},
    "sha-short": {"sha256": "ab" * 31},
    "sha-uppercase": {"sha256": sha(INDEX).upper()},
    "sha-not-hex": {"sha256": "z" * 64},
    "sha-missing": {"sha256": None},
    "size-negative": {"size": -1},
    "size-string": {"size": "14"},
    "size-float": {"size": 14.0},
    "size-bool": {"size": True},
    "size-missing": {"size": None},
}


@pytest.mark.parametrize("overrides", BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_bad_manifest_entries(world: World, overrides: dict[str, Any]) -> None:
    with unchanged(world.anchor):
        response = call(
            world.anchor,
            "POST",
            "/v1/projects/alpha/deployments",
            json={"files": [entry(**overrides)], "target": "production"},
        )
        assert_error(response, 422, "invalid_manifest")


def test_huge_mode_is_rejected_not_a_crash(world: World) -> None:
    """stat.S_IFMT() raises OverflowError above the C mode_t range; that must be a 422, not a 500."""
    with unchanged(world.anchor):
        response = call(
            world.anchor,
            "POST",
            "/v1/projects/alpha/deployments",
            json={"files": [entry(mode=2**70)], "target": "production"},
        )
        assert_error(response, 422, "invalid_manifest")


BAD_BODIES: dict[str, tuple[bytes, int, str]] = {
    "files-object": (json.dumps({"files": {"index.html": sha(INDEX)}}).encode(), 422, "invalid_manifest"),
    "files-string": (json.dumps({"files": "index.html"}).encode(), 422, "invalid_manifest"),
    "files-missing": (json.dumps({"target": "production"}).encode(), 422, "invalid_manifest"),
    "files-null": (json.dumps({"files": None}).encode(), 422, "invalid_manifest"),
    "entry-not-object": (json.dumps({"files": ["index.html"]}).encode(), 422, "invalid_manifest"),
    "duplicate-path": (json.dumps({"files": [entry(), entry()]}).encode(), 422, "invalid_manifest"),
    "file-and-directory": (
        json.dumps({"files": [entry(path="a"), entry(path="a/b")]}).encode(),
        422,
        "invalid_manifest",
    ),
    "not-json": (b"{files: [}", 422, "invalid_input"),
    "not-utf8": (b"\xff\xfe{}", 422, "invalid_input"),
    "json-array": (b"[]", 422, "invalid_input"),
    "json-array-of-manifest": (json.dumps([entry()]).encode(), 422, "invalid_input"),
    "json-string": (b'"files"', 422, "invalid_input"),
    "json-number": (b"42", 422, "invalid_input"),
    "json-null": (b"null", 422, "invalid_input"),
    "target-unknown": (json.dumps({"files": [entry()], "target": "prod"}).encode(), 422, "invalid_input"),
    "target-empty": (json.dumps({"files": [entry()], "target": ""}).encode(), 422, "invalid_input"),
    "target-null": (json.dumps({"files": [entry()], "target": None}).encode(), 422, "invalid_input"),
    "target-list": (
        json.dumps({"files": [entry()], "target": ["production"]}).encode(),
        422,
        "invalid_input",
    ),
    "meta-not-object": (json.dumps({"files": [entry()], "meta": "x"}).encode(), 422, "invalid_input"),
    "meta-too-big": (
        json.dumps({"files": [entry()], "meta": {"k": "v" * 20000}}).encode(),
        422,
        "invalid_input",
    ),
    # Python's json parser raises RecursionError (not ValueError) on deep nesting.
    "deeply-nested": (b"[" * 100_000, 422, "invalid_input"),
}


@pytest.mark.parametrize(("raw", "status", "code"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_deployment_bodies(world: World, raw: bytes, status: int, code: str) -> None:
    with unchanged(world.anchor):
        response = call(
            world.anchor,
            "POST",
            "/v1/projects/alpha/deployments",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, status, code)


# -- blobs ----------------------------------------------------------------------------------------------
def test_blob_whose_bytes_do_not_match_its_digest(world: World) -> None:
    with unchanged(world.anchor):
        response = call(world.anchor, "PUT", f"/v1/blobs/{sha(b'expected')}", content=b"something else")
        assert_error(response, 400, "blob_rejected")
        # Also when the named blob exists already: the body is still checked, and nothing is replaced.
        response = call(world.anchor, "PUT", f"/v1/blobs/{sha(INDEX)}", content=b"forged")
        assert_error(response, 400, "blob_rejected")
    assert world.anchor.edge("alpha.localhost").status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "not-a-digest",
        "A" * 64,
        sha(b"x")[:63],
        sha(b"x") + "0",
        "..",
        "%2e%2e",
        "g" * 64,
    ],
)
def test_blob_name_that_is_not_a_sha256(world: World, name: str) -> None:
    with unchanged(world.anchor):
        response = call(world.anchor, "PUT", f"/v1/blobs/{name}", content=b"x")
        assert 400 <= response.status_code < 500, response.text
        if response.status_code != 404:  # '..' may be resolved away by the client into a missing route
            assert_error(response, 422, "invalid_input")
        else:
            assert_error(response, 404)


def test_blob_and_manifest_size_limits(tmp_path: Path) -> None:
    anchor = AnchorProcess(tmp_path / "data", extra_env={"ANCHOR_MAX_BLOB_SIZE": "1024"}).start()
    try:
        with anchor.api() as api:
            ensure_project(api, "small")
        big = b"b" * 2048
        with unchanged(anchor):
            # A declared Content-Length over the limit ...
            assert_error(call(anchor, "PUT", f"/v1/blobs/{sha(big)}", content=big), 413, "blob_too_large")
            # ... and a chunked upload with no Content-Length, counted while streaming.
            chunks = iter([big[:700], big[700:1400], big[1400:]])
            assert_error(call(anchor, "PUT", f"/v1/blobs/{sha(big)}", content=chunks), 413, "blob_too_large")
            # A manifest entry announcing a file over the limit.
            over = {"path": "big.bin", "sha256": sha(big), "size": 1025, "mode": 0o644}
            response = call(anchor, "POST", "/v1/projects/small/deployments", json={"files": [over]})
            assert_error(response, 422, "invalid_manifest")
        # The limit itself is allowed (not off by one).
        exact = b"e" * 1024
        assert call(anchor, "PUT", f"/v1/blobs/{sha(exact)}", content=exact).status_code == 201
    finally:
        anchor.stop()


# -- projects, deployments, moves -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/projects/nope", None),
        ("DELETE", "/v1/projects/nope", None),
        ("GET", "/v1/projects/nope/deployments", None),
        ("POST", "/v1/projects/nope/deployments", {"files": [entry()], "target": "production"}),
        ("POST", "/v1/projects/nope/rollback", {}),
        ("POST", "/v1/projects/nope/promote", {"deploymentId": "dpl_000000000000"}),
        ("POST", "/v1/projects/nope/unpin", None),
        ("GET", "/v1/projects/nope/alias-history", None),
        ("POST", "/v1/tokens", {"name": "for-nope", "project": "nope"}),
    ],
)
def test_unknown_project(world: World, method: str, path: str, body: Any) -> None:
    with unchanged(world.anchor):
        assert_error(call(world.anchor, method, path, json=body), 404, "project_not_found")


@pytest.mark.parametrize(
    "deployment_id",
    ["dpl_000000000000", "dpl_zzzzzzzzzzzz", "xyz", "DPL_ABC", "dpl_" + "a" * 40, "dpl_%2e%2e"],
)
def test_unknown_or_malformed_deployment_id(world: World, deployment_id: str) -> None:
    with unchanged(world.anchor):
        assert_error(
            call(world.anchor, "GET", f"/v1/deployments/{deployment_id}"), 404, "deployment_not_found"
        )
        for move in ("promote", "rollback"):
            response = call(
                world.anchor, "POST", f"/v1/projects/alpha/{move}", json={"deploymentId": deployment_id}
            )
            assert_error(response, 404, "deployment_not_found")


@pytest.mark.parametrize(
    ("move", "body"),
    [
        ("promote", {}),
        ("promote", {"deploymentId": None}),
        ("promote", {"deploymentId": 5}),
        ("promote", {"deploymentId": ["dpl_000000000000"]}),
        ("rollback", {"deploymentId": 5}),
        ("rollback", {"deploymentId": {"id": "x"}}),
    ],
)
def test_move_with_a_bad_deployment_id_type(world: World, move: str, body: dict[str, Any]) -> None:
    with unchanged(world.anchor):
        response = call(world.anchor, "POST", f"/v1/projects/alpha/{move}", json=body)
        assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("move", ["promote", "rollback"])
def test_move_to_a_deployment_of_another_project(world: World, move: str) -> None:
    anchor = world.anchor
    with unchanged(anchor):
        to_beta = {"deploymentId": world.beta["id"]}
        response = call(anchor, "POST", f"/v1/projects/alpha/{move}", json=to_beta)
        assert_error(response, 404, "deployment_not_found")
        to_alpha = {"deploymentId": world.alpha[0]["id"]}
        response = call(anchor, "POST", f"/v1/projects/beta/{move}", json=to_alpha)
        assert_error(response, 404, "deployment_not_found")
    assert call(anchor, "GET", "/v1/projects/alpha").json()["productionDeploymentId"] == world.alpha[1]["id"]
    assert call(anchor, "GET", "/v1/projects/beta").json()["productionDeploymentId"] == world.beta["id"]
    assert anchor.edge("alpha.localhost").content == INDEX + b"v2"
    assert anchor.edge("beta.localhost").content == b"beta"


@pytest.mark.parametrize("project", ["beta", "gamma"])
def test_rollback_without_an_earlier_production_deployment(world: World, project: str) -> None:
    with unchanged(world.anchor):
        assert_error(
            call(world.anchor, "POST", f"/v1/projects/{project}/rollback", json={}), 409, "no_rollback_target"
        )


BAD_NAMES: list[object] = [
    "Upper",
    "UPPER",
    "-a",
    "a-",
    "a" * 41,
    "a_b",
    "",
    " ",
    "a b",
    "a.b",
    "é",
    "abc\n",
    "\nabc",
    "a/b",
    "..",
    5,
    None,
    True,
    ["a"],
    {"name": "a"},
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_invalid_project_names(world: World, name: object) -> None:
    with unchanged(world.anchor):
        assert_error(call(world.anchor, "POST", "/v1/projects", json={"name": name}), 422, "invalid_name")


def test_missing_project_name(world: World) -> None:
    with unchanged(world.anchor):
        assert_error(call(world.anchor, "POST", "/v1/projects", json={}), 422, "invalid_name")


def test_duplicate_project(world: World) -> None:
    with unchanged(world.anchor):
        assert_error(call(world.anchor, "POST", "/v1/projects", json={"name": "alpha"}), 409, "name_taken")


def test_project_name_that_is_another_projects_deployment_host(world: World) -> None:
    """'alpha-<suffix>' would be the hostname of one of alpha's deployments."""
    taken = "alpha-" + world.alpha[0]["id"].removeprefix("dpl_")
    with unchanged(world.anchor):
        assert_error(call(world.anchor, "POST", "/v1/projects", json={"name": taken}), 409, "name_taken")


# -- lone surrogates: valid JSON ("\ud800"), but not encodable as UTF-8 ------------------------------------
LONE_SURROGATE = b'"\\ud800"'


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/projects/alpha/promote", b'{"deploymentId": ' + LONE_SURROGATE + b"}"),
        ("/v1/projects/alpha/rollback", b'{"deploymentId": ' + LONE_SURROGATE + b"}"),
        ("/v1/tokens", b'{"name": ' + LONE_SURROGATE + b"}"),
        ("/v1/projects", b'{"name": ' + LONE_SURROGATE + b"}"),
    ],
    ids=["promote", "rollback", "token-name", "project-name"],
)
def test_lone_surrogates_are_rejected(world: World, path: str, raw: bytes) -> None:
    with unchanged(world.anchor):
        response = call(world.anchor, "POST", path, content=raw, headers={"Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert_error(response, response.status_code)


def test_lone_surrogate_in_meta_is_rejected(anchor: AnchorProcess) -> None:
    """Own platform: if accepted, the deployment is stored and every later listing of it fails."""
    with anchor.api() as api:
        ensure_project(api, "meta")
        upload_and_deploy(api, "meta", {"index.html": INDEX})
    raw = (
        json.dumps({"files": [entry()], "target": "preview"}).encode()[:-1]
        + b', "meta": {"k": '
        + LONE_SURROGATE
        + b"}}"
    )
    before = snapshot(anchor)
    response = call(
        anchor,
        "POST",
        "/v1/projects/meta/deployments",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    listing = call(anchor, "GET", "/v1/projects/meta/deployments")
    assert listing.status_code == 200, f"the project's deployment list is broken now: {listing.text}"
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert_error(response, response.status_code)
    assert snapshot(anchor) == before


# -- tokens ----------------------------------------------------------------------------------------------
BAD_TOKEN_BODIES = {
    "no-name": {},
    "empty-name": {"name": ""},
    "blank-name": {"name": "   "},
    "long-name": {"name": "n" * 65},
    "int-name": {"name": 5},
    "null-name": {"name": None},
    "int-project": {"name": "ok", "project": 5},
    "list-project": {"name": "ok", "project": ["alpha"]},
    "empty-project": {"name": "ok", "project": ""},
}


@pytest.mark.parametrize("body", BAD_TOKEN_BODIES.values(), ids=BAD_TOKEN_BODIES.keys())
def test_bad_token_requests(world: World, body: dict[str, Any]) -> None:
    with unchanged(world.anchor):
        response = call(world.anchor, "POST", "/v1/tokens", json=body)
        assert response.status_code in (404, 422), (response.status_code, response.text)
        assert_error(response, response.status_code)


# -- authentication on every route --------------------------------------------------------------------------
ROUTES = sorted(
    (method, route.path)  # type: ignore[attr-defined]
    for route in router.routes
    for method in route.methods  # type: ignore[attr-defined]
    if method != "HEAD"
)
EXPECTED_ROUTES = {
    ("GET", "/v1/health"),
    ("POST", "/v1/tokens"),
    ("POST", "/v1/projects"),
    ("GET", "/v1/projects"),
    ("GET", "/v1/projects/{project}"),
    ("DELETE", "/v1/projects/{project}"),
    ("POST", "/v1/projects/{project}/deployments"),
    ("GET", "/v1/projects/{project}/deployments"),
    ("GET", "/v1/deployments/{deployment_id}"),
    ("POST", "/v1/projects/{project}/rollback"),
    ("POST", "/v1/projects/{project}/promote"),
    ("POST", "/v1/projects/{project}/unpin"),
    ("GET", "/v1/projects/{project}/alias-history"),
    ("PUT", "/v1/blobs/{digest}"),
}
INTRUDER_BLOB = b"uploaded without a valid token"
BAD_AUTH = {
    "missing": None,
    "wrong-token": "Bearer anc_this-is-not-a-real-token",
    "basic-scheme": "Basic x",
    "basic-with-credentials": "Basic YWRtaW46YWRtaW4=",
    "bare-bearer": "Bearer",
    "basic-with-the-real-token": "Basic {admin}",
    "real-token-without-scheme": "{admin}",
    "token-without-scheme": "anc_this-is-not-a-real-token",
}


def test_the_route_table_is_what_these_tests_cover() -> None:
    assert set(ROUTES) >= EXPECTED_ROUTES, set(ROUTES) ^ EXPECTED_ROUTES


def _request_for(world: World, method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The route with its parameters filled in, and a body that would succeed with a good token."""
    filled = (
        path.replace("{project}", "alpha")
        .replace("{deployment_id}", world.alpha[0]["id"])
        .replace("{digest}", sha(INTRUDER_BLOB))
    )
    bodies: dict[str, Any] = {
        "/v1/tokens": {"json": {"name": "intruder"}},
        "/v1/projects": {"json": {"name": "intruder"}},
        "/v1/projects/{project}/deployments": {"json": {"files": [entry()], "target": "production"}},
        "/v1/projects/{project}/rollback": {"json": {}},
        "/v1/projects/{project}/promote": {"json": {"deploymentId": world.alpha[0]["id"]}},
        "/v1/blobs/{digest}": {"content": INTRUDER_BLOB},
    }
    return filled, bodies.get(path, {}) if method in ("POST", "PUT") else {}


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_needs_a_valid_bearer_token(world: World, method: str, path: str) -> None:
    url, kwargs = _request_for(world, method, path)
    with unchanged(world.anchor):
        for label, auth in BAD_AUTH.items():
            auth = auth and auth.replace("{admin}", world.anchor.token)
            response = call(world.anchor, method, url, auth=auth, **kwargs)
            if path == "/v1/health":
                assert response.status_code == 200, (label, response.text)
                assert response.json()["ok"] is True
            else:
                assert response.status_code == 401, (label, response.status_code, response.text)
                assert_error(response, 401, "unauthorized")
    assert not (world.anchor.data_dir / "blobs" / sha(INTRUDER_BLOB)[:2] / sha(INTRUDER_BLOB)).exists()


# -- project-limited tokens ---------------------------------------------------------------------------------
def test_limited_token_cannot_touch_another_project(world: World) -> None:
    anchor, token = world.anchor, f"Bearer {world.limited}"
    # The token is valid: it sees and reads its own project, and only that one.
    own = call(anchor, "GET", "/v1/projects/alpha", auth=token)
    assert own.status_code == 200, own.text
    listed = call(anchor, "GET", "/v1/projects", auth=token).json()["projects"]
    assert [p["name"] for p in listed] == ["alpha"]

    beta = world.beta["id"]
    # Another project's resources do not exist for it: 404, as for a missing project or deployment (the
    # whole comparison is in test_enumeration.py).
    hidden = [
        ("GET", "/v1/projects/beta", None, "project_not_found"),
        ("GET", "/v1/projects/beta/deployments", None, "project_not_found"),
        ("GET", f"/v1/deployments/{beta}", None, "deployment_not_found"),
        (
            "POST",
            "/v1/projects/beta/deployments",
            {"files": [entry()], "target": "production"},
            "project_not_found",
        ),
        ("POST", "/v1/projects/beta/rollback", {}, "project_not_found"),
        ("POST", "/v1/projects/beta/rollback", {"deploymentId": beta}, "project_not_found"),
        ("POST", "/v1/projects/beta/promote", {"deploymentId": beta}, "project_not_found"),
        ("POST", "/v1/projects/beta/unpin", None, "project_not_found"),
        ("GET", "/v1/projects/beta/alias-history", None, "project_not_found"),
        ("DELETE", "/v1/projects/beta", None, "project_not_found"),
    ]
    # Nor may it create projects or tokens (not even tokens for its own project), or delete its project.
    forbidden = [
        ("POST", "/v1/projects", {"name": "sneaky"}),
        ("POST", "/v1/tokens", {"name": "escalate"}),
        ("POST", "/v1/tokens", {"name": "escalate", "project": "alpha"}),
        ("POST", "/v1/tokens", {"name": "escalate", "project": "beta"}),
        ("DELETE", "/v1/projects/alpha", None),
    ]
    with unchanged(anchor):
        for method, path, body, code in hidden:
            response = call(anchor, method, path, auth=token, json=body)
            assert response.status_code == 404, (method, path, response.status_code, response.text)
            assert_error(response, 404, code)
        for method, path, body in forbidden:
            response = call(anchor, method, path, auth=token, json=body)
            assert response.status_code == 403, (method, path, response.status_code, response.text)
            assert_error(response, 403, "forbidden")
        # Moving its own production to another project's deployment is a 404, as for any token.
        response = call(anchor, "POST", "/v1/projects/alpha/promote", auth=token, json={"deploymentId": beta})
        assert_error(response, 404, "deployment_not_found")


# -- the CLI ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("rollback", "nope"),
        ("promote", "dpl_000000000000"),
        ("projects", "add", "Bad_Name"),
    ],
    ids=["rollback-unknown-project", "promote-unknown-deployment", "invalid-project-name"],
)
def test_cli_prints_one_readable_line(world: World, args: tuple[str, ...]) -> None:
    with unchanged(world.anchor):
        done = world.anchor.cli(*args, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:"), done.stderr
