"""Deploys that cost what changed, with the real CLI against a real platform: a first deploy of a few hundred
small files goes up in one batch request; an unchanged redeploy uploads nothing, reads no file (every
digest from the hash cache) and is served from the first one's tree; after one file changes, only it is
read and uploaded, production serves the new bytes and the first deployment still serves the old ones."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.e2e.harness import AnchorProcess

FILES = 300


def make_site(root: Path) -> dict[str, bytes]:
    files = {f"section-{i % 7}/page-{i}.html": f"<p>page {i}</p>".encode() for i in range(FILES - 1)}
    files["index.html"] = b"<h1>home</h1>"
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def deploy(anchor: AnchorProcess, site: Path, cache: Path, *flags: str) -> Any:
    done = anchor.cli(
        "deploy", str(site), "--project", "costs", "--prod", "--create", "--no-git-meta", *flags,
        env={"XDG_CACHE_HOME": str(cache)},
    )  # fmt: skip
    return json.loads(done.stdout) if "--json" in flags else done.stdout


def served(anchor: AnchorProcess, url: str, path: str) -> bytes:
    answer = anchor.edge(urlsplit(url).hostname or "", path)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_deploys_cost_what_changed(shared_anchor: AnchorProcess, tmp_path: Path) -> None:
    anchor = shared_anchor
    site, cache = tmp_path / "site", tmp_path / "cache"
    files = make_site(site)
    time.sleep(1.1)  # older than the hash cache's racy margin once hashed: its entries count next time

    first = deploy(anchor, site, cache, "--json")
    assert first["status"] == "READY"
    assert (first["uploadedFiles"], first["cachedFiles"], first["uploadBatches"]) == (FILES, 0, 1)
    assert first["uploadedBytes"] == sum(len(d) for d in files.values())
    assert list((cache / "anchor-deploy" / "hashes").iterdir())  # the cache is outside the project
    assert sorted(p.name for p in site.iterdir()) == sorted({n.split("/")[0] for n in files})

    again = deploy(anchor, site, cache, "--json")
    assert (again["uploadedFiles"], again["cachedFiles"], again["uploadBatches"]) == (0, FILES, 0)
    public = [anchor.data_dir / "deployments" / d["id"] / "public" for d in (first, again)]
    assert public[0].is_symlink() and public[0].resolve() == public[1].resolve()  # one tree, shared

    (site / "section-3" / "page-3.html").write_bytes(b"<p>page 3, edited</p>")
    os.utime(site / "section-3" / "page-3.html", (time.time() - 5, time.time() - 5))
    human = deploy(anchor, site, cache, "--verbose")
    assert "uploaded 1 file (" in human
    assert f"hash cache: {FILES - 1} files not read; 1 upload batch" in human
    production = first["productionUrl"]
    assert served(anchor, production, "/section-3/page-3.html") == b"<p>page 3, edited</p>"
    assert served(anchor, production, "/section-4/page-4.html") == b"<p>page 4</p>"
    assert served(anchor, first["url"], "/section-3/page-3.html") == b"<p>page 3</p>"  # immutable
    assert served(anchor, again["url"], "/section-3/page-3.html") == b"<p>page 3</p>"
