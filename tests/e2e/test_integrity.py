"""Storage integrity on a real platform: a damaged deployment never stops the others (nor the start-up),
fsck finds and quarantines a damaged blob while every other deployment serves, an upload of the right bytes
heals, and the background scrub finds damage by itself."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import AnchorProcess, ensure_project, sha, upload_and_deploy

SHOP = b"<h1>the shop</h1>\n" * 64
SHOP_ROTTEN = SHOP[:-2] + b"?\n"  # the same size: only a hash tells them apart
BLOG = b"<h1>the blog</h1>\n" * 64
EDGE_404 = b"nothing is deployed at this address"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout:.0f} s: {what}")


def deploy_two(anchor: AnchorProcess) -> tuple[str, str]:
    with anchor.api() as api:
        ensure_project(api, "shop")
        ensure_project(api, "blog")
        shop = upload_and_deploy(api, "shop", {"index.html": SHOP, "logo.txt": b"shop logo\n"})
        blog = upload_and_deploy(api, "blog", {"index.html": BLOG})
    assert shop["status"] == blog["status"] == "READY"
    return shop["id"], blog["id"]


def blob_path(anchor: AnchorProcess, digest: str) -> Path:
    return anchor.data_dir / "blobs" / digest[:2] / digest


def rot(path: Path, data: bytes) -> None:
    """Rewrite a stored blob in place (the inode every deployment's hard link shares)."""
    os.chmod(path, 0o644)
    path.write_bytes(data)
    os.chmod(path, 0o444)


def health(anchor: AnchorProcess) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{anchor.api_url}/v1/health", timeout=5).json()
    return answer


def serves(anchor: AnchorProcess, host: str, body: bytes) -> bool:
    response = anchor.edge(host)
    return response.status_code == 200 and response.content == body


def upload(anchor: AnchorProcess, data: bytes) -> int:
    with anchor.api() as api:
        return api.put(f"/v1/blobs/{sha(data)}", content=data).status_code


class Poller:
    """Requests a URL on the edge without pause on a thread; counts every answer that is not ``body``."""

    def __init__(self, anchor: AnchorProcess, host: str, body: bytes) -> None:
        self._anchor, self._host, self._body = anchor, host, body
        self._stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self._anchor.edge_url, headers={"Host": self._host}, timeout=10) as client:
            deadline = time.monotonic() + 120
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    response = client.get("/")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code == 200 and response.content == self._body:
                    self.ok += 1
                else:
                    self.failures.append(f"{response.status_code} {response.content[:60]!r}")

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_a_damaged_deployment_leaves_start_up_and_others_alone_and_heals_by_upload(tmp_path: Path) -> None:
    anchor = AnchorProcess(tmp_path / "data").start()
    try:
        shop_id, blog_id = deploy_two(anchor)
        anchor.stop()
        shutil.rmtree(anchor.data_dir / "deployments" / shop_id)
        blob_path(anchor, sha(SHOP)).unlink()
        log = anchor.data_dir.parent / "data-up.log"
        log_before = log.stat().st_size
        anchor.start()

        assert b"Traceback" not in log.read_bytes()[log_before:]
        assert serves(anchor, "blog.localhost", BLOG)
        assert serves(anchor, f"blog-{blog_id.removeprefix('dpl_')}.localhost", BLOG)
        state = health(anchor)
        assert (state["ok"], state["status"], state["damagedDeployments"]) == (True, "degraded", 1)
        reason = f"blob {sha(SHOP)} of index.html is missing"
        for host in ("shop.localhost", f"shop-{shop_id.removeprefix('dpl_')}.localhost"):
            response = anchor.edge(host)  # never another deployment's content: the edge's own 404
            assert response.status_code == 404 and EDGE_404 in response.content
        with anchor.api() as api:
            assert api.get(f"/v1/deployments/{shop_id}").json()["damaged"] == {"reason": reason}
            assert api.get(f"/v1/deployments/{blog_id}").json()["damaged"] is None
        listed = json.loads(anchor.cli("ls", "shop", "--json").stdout)
        assert [d["damaged"] for d in listed["deployments"]] == [{"reason": reason}]
        table = anchor.cli("ls", "shop").stdout
        assert "✗ damaged" in table and f"{shop_id} is not served: {reason}" in " ".join(table.split())

        assert upload(anchor, SHOP) == 201  # the blob it waits for: healed without a restart
        wait_for("the shop serves again", lambda: serves(anchor, "shop.localhost", SHOP))
        state = health(anchor)
        assert (state["status"], state["damagedDeployments"], state["corruptBlobs"]) == ("ok", 0, 0)
        assert "✗" not in anchor.cli("ls", "shop").stdout
    finally:
        anchor.stop()


def test_fsck_finds_quarantines_and_an_upload_heals_while_the_others_serve(anchor: AnchorProcess) -> None:
    shop_id, _ = deploy_two(anchor)
    etag = anchor.edge("shop.localhost").headers["etag"]
    rot(blob_path(anchor, sha(SHOP)), SHOP_ROTTEN)
    damaged = anchor.edge("shop.localhost")  # what the operator saw: wrong bytes, the old ETag
    assert damaged.content == SHOP_ROTTEN and damaged.headers["etag"] == etag

    with Poller(anchor, "blog.localhost", BLOG) as blog:
        found = anchor.cli("fsck", "--json", check=False)
        assert found.returncode == 1, found.stderr
        report = json.loads(found.stdout)
        assert not report["clean"] and report["checked"]["copies"] >= 3
        [problem] = report["problems"]
        assert (problem["digest"], problem["kind"], problem["problem"]) == (sha(SHOP), "blob", "corrupt")
        assert (
            problem["deployments"] == [shop_id]
            and problem["detail"] == f"content hashes to {sha(SHOP_ROTTEN)}"
        )
        human = anchor.cli("fsck", check=False)
        assert human.returncode == 1 and shop_id in human.stdout and "corrupt blob" in human.stdout
        assert anchor.edge("shop.localhost").content == SHOP_ROTTEN  # fsck alone changes nothing

        repaired = anchor.cli("fsck", "--repair", "--json", check=False)
        assert repaired.returncode == 1, repaired.stderr
        report = json.loads(repaired.stdout)
        assert report["problems"][0]["action"].startswith("quarantined to ")
        assert report["takenDown"] == [shop_id]
        assert report["damagedDeployments"] == [
            {"id": shop_id, "reason": f"blob {sha(SHOP)} of index.html is missing"}
        ]
        time.sleep(0.5)  # the blog is polled a little longer after the repair too
    assert blog.failures == [] and blog.ok > 20

    kept = sorted((anchor.data_dir / "quarantine").iterdir())
    assert [p.read_bytes() for p in kept if not p.name.endswith(".note")] == [SHOP_ROTTEN]
    assert "fsck --repair" in next(p for p in kept if p.name.endswith(".note")).read_text()
    response = anchor.edge("shop.localhost")
    assert response.status_code == 404 and EDGE_404 in response.content
    state = health(anchor)
    assert (state["status"], state["damagedDeployments"], state["corruptBlobs"]) == ("degraded", 1, 0)
    assert anchor.cli("fsck", check=False).returncode == 1  # still missing: waits for the upload

    assert upload(anchor, SHOP) == 201
    wait_for("the shop serves the right bytes", lambda: serves(anchor, "shop.localhost", SHOP))
    assert anchor.edge("shop.localhost").headers["etag"] == etag == f'"{sha(SHOP)}"'
    assert health(anchor)["status"] == "ok"
    clean = anchor.cli("fsck", "--json")
    assert json.loads(clean.stdout)["clean"] is True


def test_an_upload_of_the_right_bytes_replaces_a_damaged_blob_that_still_serves(
    anchor: AnchorProcess,
) -> None:
    shop_id, _ = deploy_two(anchor)
    rot(blob_path(anchor, sha(SHOP)), SHOP_ROTTEN)
    with anchor.api() as api:
        assert upload(anchor, SHOP) == 201  # the held file is checked, found wrong, replaced, relinked
        assert api.get(f"/v1/deployments/{shop_id}").json()["damaged"] is None
    assert serves(anchor, "shop.localhost", SHOP)
    assert upload(anchor, SHOP) == 200  # now held and right


def test_the_background_scrub_finds_a_damaged_blob_by_itself(tmp_path: Path) -> None:
    anchor = AnchorProcess(
        tmp_path / "data", extra_env={"ANCHOR_SCRUB_INTERVAL": "1", "ANCHOR_SCRUB_RATE": "10000000"}
    ).start()
    try:
        deploy_two(anchor)
        assert health(anchor)["scrub"]["enabled"] is True
        wait_for("a whole scrub pass", lambda: health(anchor)["scrub"]["passes"] >= 1)
        assert health(anchor)["corruptBlobs"] == 0
        rot(blob_path(anchor, sha(SHOP)), SHOP_ROTTEN)
        wait_for("the scrub finds it", lambda: health(anchor)["corruptBlobs"] == 1)
        state = health(anchor)
        assert state["status"] == "degraded" and state["scrub"]["lastPassCorrupt"] == 1
        name = f"{sha(SHOP)[:2]}/{sha(SHOP)}"
        log = (anchor.data_dir.parent / "data-up.log").read_text()
        assert f"scrub: {name} (blob {sha(SHOP)}) is damaged" in log
        assert blob_path(anchor, sha(SHOP)).exists()  # reported, never quarantined by the scrub
        assert upload(anchor, SHOP) == 201
        wait_for("healthy again", lambda: health(anchor)["status"] == "ok")
        assert serves(anchor, "shop.localhost", SHOP)
    finally:
        anchor.stop()
