"""Caching headers and static-file behaviour of the real Caddy edge.

ETags are content-derived: a deployment's files are hard links to shared blobs, whose mtime is a stamp of
their content (fs_blobs.stamp_for), never a date. Caddy reads a content-hash sidecar; an edge that builds its
ETag from size and mtime gets a content-derived one from the stamp. The date validators (If-Modified-Since,
If-Unmodified-Since) are ignored on static files, since the Last-Modified they would compare is that stamp.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from anchor_deploy.adapters.local.caddy_edge import SymlinkEdge
from anchor_deploy.adapters.local.edge_rules import FILE_404_BODY, HTML_CACHE, IMMUTABLE_CACHE
from anchor_deploy.adapters.local.fs_blobs import stamp_for
from anchor_deploy.model.entities import HostKind
from tests.e2e.harness import AnchorProcess, ensure_project, sha, upload_and_deploy

pytestmark = pytest.mark.edges  # every test here runs on Caddy and on nginx

FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"
PAST = "Thu, 01 Jan 1970 00:00:01 GMT"


def _host(deployment: dict[str, Any]) -> str:
    return str(deployment["url"]).split("//", 1)[1].rsplit(":", 1)[0]


def _edge(anchor: AnchorProcess, host: str, path: str = "/", **headers: str) -> httpx.Response:
    response = httpx.get(
        f"{anchor.edge_url}{path}", headers={"Host": host, **headers}, timeout=10, follow_redirects=False
    )
    assert response.status_code < 500, response.text
    return response


# -- ETags across a production move ----------------------------------------------------------------------
BODY_A = b"<!doctype html><p>version A</p>"
BODY_B = b"<!doctype html><p>version B</p>"


def test_etag_changes_with_content_even_when_size_and_mtime_do_not(shared_anchor: AnchorProcess) -> None:
    anchor = shared_anchor
    assert len(BODY_A) == len(BODY_B) and BODY_A != BODY_B
    with anchor.api() as api:
        ensure_project(api, "etag")
        b = upload_and_deploy(api, "etag", {"index.html": BODY_B})
        a = upload_and_deploy(api, "etag", {"index.html": BODY_A})  # production on A, B before it
        assert a["status"] == b["status"] == "READY"
        # Equal sizes, and each file's mtime is its content stamp, not the time it was written.
        served = [anchor.data_dir / "deployments" / d["id"] / "public" / "index.html" for d in (a, b)]
        assert [(p.stat().st_size, p.stat().st_mtime) for p in served] == [
            (len(BODY_A), stamp_for(sha(BODY_A))),
            (len(BODY_B), stamp_for(sha(BODY_B))),
        ]

        first = _edge(anchor, "etag.localhost")
        assert (first.status_code, first.content) == (200, BODY_A)
        etag_a = first.headers["etag"]
        assert etag_a and _edge(anchor, _host(a)).headers["etag"] == etag_a
        etag_b = _edge(anchor, _host(b)).headers["etag"]
        assert etag_b != etag_a

        # The current validator revalidates: 304, no body.
        same = _edge(anchor, "etag.localhost", **{"If-None-Match": etag_a})
        assert (same.status_code, same.content) == (304, b"")

        moved = api.post("/v1/projects/etag/rollback", json={})
        assert moved.status_code == 200 and moved.json()["toDeploymentId"] == b["id"], moved.text
        stale = _edge(anchor, "etag.localhost", **{"If-None-Match": etag_a})
        assert (stale.status_code, stale.content, stale.headers["etag"]) == (200, BODY_B, etag_b)
        # A client revalidating by date only, with A's Last-Modified (or any date), gets B too: the stamp
        # is not compared as a date.
        for date in {first.headers.get("last-modified") or FUTURE, FUTURE}:
            dated = _edge(anchor, "etag.localhost", **{"If-Modified-Since": date})
            assert (dated.status_code, dated.content) == (200, BODY_B)
        assert _edge(anchor, "etag.localhost", **{"If-None-Match": etag_b}).status_code == 304
        # A list of validators that includes an old one still finds no match.
        listed = _edge(anchor, "etag.localhost", **{"If-None-Match": f'"nope", {etag_a}'})
        assert (listed.status_code, listed.content) == (200, BODY_B)

        promoted = api.post("/v1/projects/etag/promote", json={"deploymentId": a["id"]})
        assert promoted.status_code == 200, promoted.text
        back = _edge(anchor, "etag.localhost", **{"If-None-Match": etag_b})
        assert (back.status_code, back.content, back.headers["etag"]) == (200, BODY_A, etag_a)
        assert _edge(anchor, "etag.localhost", **{"If-None-Match": etag_a}).status_code == 304


def test_date_validators_are_ignored(shared_anchor: AnchorProcess) -> None:
    anchor = shared_anchor
    with anchor.api() as api:
        ensure_project(api, "dates")
        upload_and_deploy(api, "dates", {"index.html": b"dated", "app.css": b"body{}"})
    for path, body in (("/", b"dated"), ("/app.css", b"body{}")):
        # A client that only has If-Modified-Since (far in the future) still gets the body ...
        future = _edge(anchor, "dates.localhost", path, **{"If-Modified-Since": FUTURE})
        assert (future.status_code, future.content) == (200, body)
        # ... and If-Unmodified-Since in the past does not fail the request with 412.
        past = _edge(anchor, "dates.localhost", path, **{"If-Unmodified-Since": PAST})
        assert (past.status_code, past.content) == (200, body)
        assert "etag" in future.headers


# -- Cache-Control, Content-Type, directories, 404 pages ----------------------------------------------------
ASSETS: dict[str, bytes] = {
    "index.html": b"<!doctype html><p>home</p>",
    "about.html": b"<!doctype html><p>about</p>",
    "app.0123abcd.js": b"console.log('hashed')",
    "chunk-0a1b2c3d4e.css": b"p{color:red}",
    "plain.js": b"console.log('plain')",
    "style.css": b"body{margin:0}",
    "data.json": b'{"ok": true}',
    "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
    "pixel.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "docs/index.html": b"<!doctype html><p>docs</p>",
    "docs/guide.html": b"<!doctype html><p>guide</p>",
    "404.html": b"<!doctype html><p>custom not found</p>",
}


@dataclass
class Sites:
    anchor: AnchorProcess
    assets_host: str  # immutable host of the assets deployment
    bare_host: str  # immutable host of a deployment without 404.html


@pytest.fixture(scope="module")
def sites(shared_anchor: AnchorProcess) -> Sites:
    anchor = shared_anchor
    with anchor.api() as api:
        ensure_project(api, "assets")
        ensure_project(api, "bare")
        assets = upload_and_deploy(api, "assets", ASSETS)
        bare = upload_and_deploy(api, "bare", {"index.html": b"bare home", "docs/index.html": b"bare docs"})
    assert assets["status"] == bare["status"] == "READY"
    return Sites(anchor, _host(assets), _host(bare))


@pytest.mark.parametrize(
    ("path", "alias_cache", "immutable_cache"),
    [
        ("/", HTML_CACHE, HTML_CACHE),
        ("/index.html", HTML_CACHE, HTML_CACHE),
        ("/about.html", HTML_CACHE, HTML_CACHE),
        ("/docs/", HTML_CACHE, HTML_CACHE),
        ("/docs/guide.html", HTML_CACHE, HTML_CACHE),
        # Hashed names are immutable everywhere; other assets only on the immutable URL.
        ("/app.0123abcd.js", IMMUTABLE_CACHE, IMMUTABLE_CACHE),
        ("/chunk-0a1b2c3d4e.css", IMMUTABLE_CACHE, IMMUTABLE_CACHE),
        ("/plain.js", HTML_CACHE, IMMUTABLE_CACHE),
        ("/style.css", HTML_CACHE, IMMUTABLE_CACHE),
        ("/data.json", HTML_CACHE, IMMUTABLE_CACHE),
        ("/logo.svg", HTML_CACHE, IMMUTABLE_CACHE),
        ("/pixel.png", HTML_CACHE, IMMUTABLE_CACHE),
    ],
)
def test_cache_control(sites: Sites, path: str, alias_cache: str, immutable_cache: str) -> None:
    for host, expected in (("assets.localhost", alias_cache), (sites.assets_host, immutable_cache)):
        response = _edge(sites.anchor, host, path)
        assert response.status_code == 200, (host, path, response.text)
        assert response.headers.get_list("cache-control") == [expected], (host, path, dict(response.headers))


@pytest.mark.parametrize(
    ("path", "content_types"),
    [
        ("/index.html", {"text/html"}),
        ("/", {"text/html"}),
        ("/style.css", {"text/css"}),
        ("/plain.js", {"text/javascript", "application/javascript"}),
        ("/app.0123abcd.js", {"text/javascript", "application/javascript"}),
        ("/data.json", {"application/json"}),
        ("/logo.svg", {"image/svg+xml"}),
        ("/pixel.png", {"image/png"}),
    ],
)
def test_content_type(sites: Sites, path: str, content_types: set[str]) -> None:
    for host in ("assets.localhost", sites.assets_host):
        response = _edge(sites.anchor, host, path)
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0].strip() in content_types, dict(response.headers)
        assert response.content == ASSETS[path.lstrip("/") or "index.html"]


def test_directory_index_and_redirect(sites: Sites) -> None:
    for host in ("assets.localhost", sites.assets_host):
        index = _edge(sites.anchor, host, "/docs/")
        assert (index.status_code, index.content) == (200, ASSETS["docs/index.html"])
        redirect = _edge(sites.anchor, host, "/docs")
        assert redirect.status_code in (301, 308), (redirect.status_code, redirect.text)
        assert redirect.headers["location"] == "/docs/"
        assert ASSETS["404.html"] not in redirect.content
    bare = _edge(sites.anchor, "bare.localhost", "/docs/")
    assert (bare.status_code, bare.content) == (200, b"bare docs")


@pytest.mark.parametrize("path", ["/missing", "/missing.html", "/docs/missing/deeper.js", "/404", "/docs/x/"])
def test_deployment_404_page(sites: Sites, path: str) -> None:
    for host in ("assets.localhost", sites.assets_host):
        response = _edge(sites.anchor, host, path)
        assert (response.status_code, response.content) == (404, ASSETS["404.html"]), (host, path)
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers.get_list("cache-control") == [HTML_CACHE]


@pytest.mark.parametrize("path", ["/missing", "/404.html", "/docs/missing/deeper.js"])
def test_no_404_page_means_a_plain_404_not_another_deployments(sites: Sites, path: str) -> None:
    for host in ("bare.localhost", sites.bare_host):
        response = _edge(sites.anchor, host, path)
        assert (response.status_code, response.content) == (404, FILE_404_BODY.encode()), (host, path)
        assert ASSETS["404.html"] not in response.content
        assert response.headers.get_list("cache-control") == ["no-store"]


def test_404_page_is_whole_under_conditional_and_range_requests(sites: Sites) -> None:
    """A missing path answered by 404.html is a whole 404 page: never an empty 304-like answer for a
    matching If-None-Match, never a partial body for a Range request."""
    page = _edge(sites.anchor, "assets.localhost", "/404.html")
    assert page.status_code == 200
    etag = page.headers["etag"]
    conditional = _edge(sites.anchor, "assets.localhost", "/missing", **{"If-None-Match": etag})
    assert (conditional.status_code, conditional.content) == (404, ASSETS["404.html"])
    ranged = _edge(sites.anchor, "assets.localhost", "/missing", Range="bytes=0-3")
    assert (ranged.status_code, ranged.content) == (404, ASSETS["404.html"])
    assert "content-range" not in ranged.headers


# -- one deployment per answer while production switches ---------------------------------------------------
def _mixing_sites(only: str) -> dict[str, bytes]:
    """A deployment of equal-size pages and 404 page, differing in one letter, plus one path of its own."""
    letter = only[-1].upper()
    return {
        "page.html": f"<p>page of {letter}</p>".encode(),
        "docs/index.html": f"<p>docs of {letter}</p>".encode(),
        "404.html": f"<p>404 of {letter}</p>".encode(),
        f"only-{only[-1]}.html": f"<p>only in {letter}</p>".encode(),
    }


def test_every_answer_comes_from_one_deployment_while_production_switches(
    shared_anchor: AnchorProcess,
) -> None:
    """Two threads ask one host for a file both deployments have (equal sizes), a directory's index, a
    file only one has and a missing path while production moves back and forth (by rollbacks, and between
    them by the edge's own atomic renames as fast as they go, to widen the race): each answer's body, ETag
    and 404 page belong to one deployment, and a file is never a 404 of a deployment that has it."""
    anchor, sites = shared_anchor, {"a": _mixing_sites("a"), "b": _mixing_sites("b")}
    with anchor.api() as api:
        ensure_project(api, "mixing")
        deployed = {k: upload_and_deploy(api, "mixing", files) for k, files in sites.items()}
    ids = {k: d["id"] for k, d in deployed.items()}
    links = SymlinkEdge(anchor.data_dir / "edge", anchor.data_dir / "deployments")
    # What each deployment answers, from its immutable URL: (status, body, ETag) per path.
    paths = ["/page.html", "/docs/", "/only-a.html", "/only-b.html", "/nowhere.html"]
    answers: set[tuple[str, int, bytes, str | None]] = set()
    for k, d in deployed.items():
        for path in paths:
            got = _edge(anchor, _host(d), path)
            answers.add((path, got.status_code, got.content, got.headers.get("etag")))
    found = [a for a in answers if a[1] == 200]  # a file of each deployment: its own ETag
    assert len(found) == 6 and len({a[3] for a in found if a[3]}) == 6
    seen: list[tuple[str, int, bytes, str | None]] = []
    stop = threading.Event()

    def ask() -> None:
        with httpx.Client(
            base_url=anchor.edge_url, headers={"Host": "mixing.localhost"}, timeout=10
        ) as client:
            for i in range(5000):
                if stop.is_set():
                    return
                path = paths[i % len(paths)]
                got = client.get(path)
                seen.append((path, got.status_code, got.content, got.headers.get("etag")))

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for t in askers:
        t.start()
    try:
        with anchor.api() as api:
            for i in range(20):  # each rollback, then 200 renames as fast as they go, back where it was
                target, other = (ids["b"], ids["a"]) if i % 2 else (ids["a"], ids["b"])
                moved = api.post("/v1/projects/mixing/rollback", json={"deploymentId": target})
                assert moved.status_code == 200, moved.text
                for j in range(200):
                    links.point("mixing.localhost", HostKind.ALIAS, other if j % 2 == 0 else target)
    finally:
        stop.set()
        for t in askers:
            t.join(timeout=30)
    assert len(seen) > 100
    mixed = [s for s in seen if s not in answers]
    assert not mixed, mixed[:3]
    assert {s[2] for s in seen if s[0] == "/page.html"} == {f["page.html"] for f in sites.values()}
