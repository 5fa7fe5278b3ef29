"""Deploy, rollback, promote, pinning and history through the real CLI, API, edge (Caddy; nginx too for the
tests marked ``edges``) and SQLite."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest

from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy


def _site(root: Path, name: str, body: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "index.html").write_text(body)
    (folder / "about.html").write_text(f"about {body}")
    return folder


def _cli_json(anchor: AnchorProcess, *args: str) -> dict:
    return json.loads(anchor.cli(*args, "--json").stdout)


@pytest.mark.edges  # on Caddy and on nginx
def test_deploy_rollback_promote_and_history(anchor: AnchorProcess, tmp_path: Path) -> None:
    site_a = _site(tmp_path, "a", "version A")
    a = _cli_json(anchor, "deploy", str(site_a), "--project", "shop", "--prod", "--create")
    b = _cli_json(anchor, "deploy", str(_site(tmp_path, "b", "version B")), "--project", "shop", "--prod")
    assert a["status"] == b["status"] == "READY"
    assert anchor.edge("shop.localhost").text == "version B"

    moved = _cli_json(anchor, "rollback", "shop")
    assert (moved["fromDeploymentId"], moved["toDeploymentId"]) == (b["id"], a["id"])
    assert moved["rolledBackAt"]
    assert anchor.edge("shop.localhost").text == "version A"
    # Both immutable URLs keep serving their own content.
    for deployment, body in ((a, "version A"), (b, "version B")):
        host = deployment["url"].split("//")[1].split(":")[0]
        assert anchor.edge(host).text == body
        assert anchor.edge(host, "/about.html").text == f"about {body}"

    history = _cli_json(anchor, "history", "shop")["history"]
    assert [(m["reason"], m["fromDeploymentId"], m["toDeploymentId"]) for m in history] == [
        ("deploy", None, a["id"]), ("deploy", a["id"], b["id"]), ("rollback", b["id"], a["id"])]
    assert all(m["tokenName"] == "admin" for m in history)

    # Pinned: a new production deploy builds but does not go live.
    c = _cli_json(anchor, "deploy", str(_site(tmp_path, "c", "version C")), "--project", "shop", "--prod")
    assert c["status"] == "READY" and c["productionPinned"] is True and "pinned" in c["message"]
    assert anchor.edge("shop.localhost").text == "version A"
    project = anchor.api().get("/v1/projects/shop").json()
    assert project["productionDeploymentId"] == a["id"] and project["pinned"] is True

    to_b = _cli_json(anchor, "rollback", "shop", "--to", b["id"])
    assert to_b["toDeploymentId"] == b["id"]
    assert anchor.edge("shop.localhost").text == "version B"

    _cli_json(anchor, "promote", c["id"])
    assert anchor.edge("shop.localhost").text == "version C"
    assert anchor.api().get("/v1/projects/shop").json()["pinned"] is False
    listing = _cli_json(anchor, "ls", "shop")["deployments"]
    assert [d["id"] for d in listing if d["isProduction"]] == [c["id"]]
    assert len(_cli_json(anchor, "history", "shop")["history"]) == 5


def test_unpin_lets_the_next_production_deploy_go_live(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "blog")
        a = upload_and_deploy(api, "blog", {"index.html": b"one"})
        upload_and_deploy(api, "blog", {"index.html": b"two"})
        assert api.post("/v1/projects/blog/rollback", json={}).json()["toDeploymentId"] == a["id"]
        upload_and_deploy(api, "blog", {"index.html": b"three"})
        assert anchor.edge("blog.localhost").text == "one"
        assert api.post("/v1/projects/blog/unpin").json()["pinned"] is False
        assert anchor.edge("blog.localhost").text == "one"  # unpinning moves nothing by itself
        upload_and_deploy(api, "blog", {"index.html": b"four"})
        assert anchor.edge("blog.localhost").text == "four"


def test_preview_deploys_never_move_production(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "docs")
        upload_and_deploy(api, "docs", {"index.html": b"prod"})
        preview = upload_and_deploy(api, "docs", {"index.html": b"preview"}, target="preview")
        assert preview["status"] == "READY" and not preview["isProduction"]
        assert anchor.edge("docs.localhost").text == "prod"
        host = preview["url"].split("//")[1].split(":")[0]
        assert anchor.edge(host).text == "preview"


@pytest.mark.edges  # on Caddy and on nginx
def test_concurrent_rollbacks_are_serialized_and_all_recorded(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "race")
        a = upload_and_deploy(api, "race", {"index.html": b"A"})
        b = upload_and_deploy(api, "race", {"index.html": b"B"})
    results: list[dict] = []
    barrier = threading.Barrier(2)

    def roll(target: str) -> None:
        with anchor.api() as client:
            barrier.wait()
            response = client.post("/v1/projects/race/rollback", json={"deploymentId": target})
            assert response.status_code == 200, response.text
            results.append(response.json())

    for _round in range(5):
        threads = [threading.Thread(target=roll, args=(x,)) for x in (a["id"], b["id"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert len(results) == 10
    with anchor.api() as api:
        history = api.get("/v1/projects/race/alias-history").json()["history"]
        project = api.get("/v1/projects/race").json()
    rollbacks = history[2:]
    assert len(rollbacks) == 10
    assert [m["id"] for m in rollbacks] == sorted(m["id"] for m in rollbacks)
    # Each move starts where the previous one ended: no lost update.
    for before, after in itertools.pairwise(history):
        assert after["fromDeploymentId"] == before["toDeploymentId"]
    assert project["productionDeploymentId"] == history[-1]["toDeploymentId"]
    expected = b"A" if history[-1]["toDeploymentId"] == a["id"] else b"B"
    assert anchor.edge("race.localhost").content == expected


def test_unchanged_redeploy_uploads_nothing(anchor: AnchorProcess, tmp_path: Path) -> None:
    site = tmp_path / "many"
    (site / "assets").mkdir(parents=True)
    for i in range(300):
        (site / "assets" / f"f{i}.txt").write_text(f"file {i}\n" * 3)
    (site / "index.html").write_text("many")
    (site / ".git").mkdir()
    (site / ".git" / "HEAD").write_text("ref")
    first = _cli_json(anchor, "deploy", str(site), "--project", "many", "--prod", "--create")
    assert first["uploadedFiles"] == 301 and first["uploadedBytes"] > 0
    again = _cli_json(anchor, "deploy", str(site), "--project", "many", "--prod")
    assert again["uploadedFiles"] == 0 and again["uploadedBytes"] == 0
    assert again["id"] != first["id"] and again["fileCount"] == 301
    assert anchor.edge("many.localhost", "/assets/f7.txt").text == "file 7\n" * 3
    assert anchor.edge("many.localhost", "/.git/HEAD").status_code == 404


def test_anchor_toml_output_and_ignores(anchor: AnchorProcess, tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "dist").mkdir(parents=True)
    (app / "dist" / "index.html").write_text("built")
    (app / "dist" / "notes.md").write_text("secret notes")
    (app / "src.py").write_text("source")
    (app / "anchor.toml").write_text('[build]\noutput = "dist"\nignore = ["*.md"]\n')
    deployed = _cli_json(anchor, "deploy", str(app), "--project", "app", "--prod", "--create")
    assert deployed["fileCount"] == 1
    assert anchor.edge("app.localhost").text == "built"
    assert anchor.edge("app.localhost", "/notes.md").status_code == 404


@pytest.mark.edges  # on Caddy and on nginx
def test_deleting_a_project_stops_serving_it(anchor: AnchorProcess) -> None:
    with anchor.api() as api:
        ensure_project(api, "gone")
        d = upload_and_deploy(api, "gone", {"index.html": b"here"})
        assert anchor.edge("gone.localhost").text == "here"
        assert api.delete("/v1/projects/gone").status_code == 200
        assert api.get("/v1/projects/gone").status_code == 404
    host = d["url"].split("//")[1].split(":")[0]
    for name in ("gone.localhost", host):
        response = anchor.edge(name)
        assert response.status_code == 404 and "here" not in response.text
    assert not (anchor.data_dir / "deployments" / d["id"]).exists()
