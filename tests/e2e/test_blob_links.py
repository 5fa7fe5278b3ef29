"""One content in 70,000 files: past the filesystem's hard-link limit (65,000 on ext4) deploys still build.

Project "many" deploys 70,000 files with one content while project "owner" deploys that same content a few
times (before, during and after): every deployment ends READY and the edge serves the file, with its
content-hash ETag, from both projects.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e.harness import AnchorProcess, ensure_project, sha, upload_and_deploy, wait_final

GITKEEP = b"# the same small file in every folder\n"
COUNT = 70_000


def _host(deployment: dict[str, Any]) -> str:
    return str(deployment["url"]).split("//", 1)[1].rsplit(":", 1)[0]


def _serves(anchor: AnchorProcess, host: str, path: str) -> None:
    response = anchor.edge(host, path)
    assert (response.status_code, response.content) == (200, GITKEEP), (host, path, response.text[:200])
    assert response.headers["etag"] == f'"{sha(GITKEEP)}"'


def _owner_deploy(api: httpx.Client, count: int, wait: bool = True) -> dict[str, Any]:
    files = {f"icons/{i}.txt": GITKEEP for i in range(count)} | {"index.html": b"owner"}
    return upload_and_deploy(api, "owner", files, wait=wait)


def test_seventy_thousand_files_of_one_content_and_another_project_sharing_it(anchor: AnchorProcess) -> None:
    digest = sha(GITKEEP)
    manifest = [
        {"path": f"a/{i:05d}.txt", "sha256": digest, "size": len(GITKEEP), "mode": 0o644}
        for i in range(1, COUNT + 1)
    ]
    with anchor.api() as api:
        ensure_project(api, "many")
        ensure_project(api, "owner")
        first = _owner_deploy(api, 3)  # uploads the blob
        assert first["status"] == "READY", first

        started = time.monotonic()
        response = api.post(
            "/v1/projects/many/deployments", json={"files": manifest, "target": "production"}, timeout=60
        )
        posted = time.monotonic() - started
        assert response.status_code == 201, response.text[:500]
        during = _owner_deploy(api, 5, wait=False)  # builds while (or right after) the big one does
        many = wait_final(api, response.json()["id"], timeout=60)
        built = time.monotonic() - started
        assert many["status"] == "READY", many
        assert wait_final(api, during["id"])["status"] == "READY"
        after = _owner_deploy(api, 7)  # the deploy that used to fail with EMLINK
        assert after["status"] == "READY", after

    for path in ("/a/00001.txt", "/a/35000.txt", "/a/65000.txt", f"/a/{COUNT:05d}.txt"):
        _serves(anchor, _host(many), path)
        _serves(anchor, "many.localhost", path)
    for deployment in (first, during, after):
        _serves(anchor, _host(deployment), "/icons/0.txt")
    _serves(anchor, "owner.localhost", "/icons/6.txt")

    # A few inodes hold the content (the blob and a spare on ext4, the blob alone where links are
    # unlimited), never a copy per file.
    shard = anchor.data_dir / "blobs" / digest[:2]
    inodes = sorted(p.name.removeprefix(digest) for p in shard.iterdir() if p.name.startswith(digest))
    assert inodes[0] == "" and len(inodes) <= 3, inodes
    served = anchor.data_dir / "deployments" / many["id"] / "public" / "a"
    assert len({(served / f"{i:05d}.txt").stat().st_ino for i in range(1, COUNT + 1, 97)}) <= 3
    print(
        f"\n{COUNT} files: manifest posted in {posted:.1f}s, READY after {built:.1f}s, blob inodes {inodes}"
    )
