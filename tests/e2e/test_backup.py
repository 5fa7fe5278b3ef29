"""Backup and restore with real processes: `anchor backup` from a platform under write load (while its
production URLs keep answering), `anchor restore` into an empty directory, and a second platform on the
restored directory serving the same production deployments with the same secrets; the archives and targets
a restore refuses, and the tokens a backup refuses.

App builds install from the local wheelhouse (tests/e2e/apps_support.py); both platforms use it, as the
restored one rebuilds the app's environment at start.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import sqlite3
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.apps_support import app_files, app_platform, as_bytes, build_log, edge_get, wait_until
from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy, wait_final
from tests.ports import free_port

SECRET = "sk_live_" + "b" * 24
DOMAIN = "www.example.test"
LOAD_ROUNDS = 18  # at most; the load stops when the backup is done (the project keeps its newest 20)


def platform_at(data_dir: Path, dead_resolver: int) -> AnchorProcess:
    # DNS polls go to a loopback port nobody answers on: the custom domain stays pending, nothing leaves.
    return app_platform(data_dir, ANCHOR_DNS_RESOLVERS=f"127.0.0.1:{dead_resolver}")


@dataclass
class Load:
    """Preview deployments and env var writes in a loop, bounded in count and time, on their own project."""

    anchor: AnchorProcess
    stop: threading.Event = field(default_factory=threading.Event)
    contents: dict[str, bytes] = field(default_factory=dict)  # deployment id -> its index.html
    writes: list[float] = field(default_factory=list)  # when each write was answered
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        with self.anchor.api() as api:
            for i in range(LOAD_ROUNDS):
                if self.stop.is_set():
                    return
                page = f"load {i} {secrets.token_hex(8)}".encode()
                files = {"index.html": page, "data.bin": os.urandom(256 * 1024)}
                try:
                    deployment = upload_and_deploy(api, "load", files, target="preview", wait=False)
                    self.contents[deployment["id"]] = page
                    self.writes.append(time.monotonic())
                    answer = api.post("/v1/projects/load/env", json={"key": f"K{i % 4}", "value": str(i)})
                    assert answer.status_code == 201, answer.text
                    self.writes.append(time.monotonic())
                except (AssertionError, httpx.HTTPError) as exc:
                    self.errors.append(str(exc))
                self.stop.wait(0.1)


@dataclass
class Poller:
    """GETs production URLs over and over; every answer must be a 200 with the expected body (None: any)."""

    anchor: AnchorProcess
    expected: dict[str, bytes | None]
    stop: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        with httpx.Client(base_url=self.anchor.edge_url, timeout=10) as edge:
            while not self.stop.is_set():
                for host, body in self.expected.items():
                    try:
                        answer = edge.get("/", headers={"Host": host})
                        if answer.status_code != 200 or body not in (None, answer.content):
                            self.failures.append(f"{host}: {answer.status_code} {answer.text[:80]}")
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{host}: {exc}")
                    self.requests += 1
                time.sleep(0.01)


@dataclass
class Original:
    anchor: AnchorProcess
    archive: Path
    projects: dict[str, dict[str, Any]]
    history: dict[str, list[dict[str, Any]]]
    site: bytes  # what the site's production host serves
    app: dict[str, Any]  # what the app's production host answers, but for the process that answered
    load: Load
    poller: Poller
    backup_took: tuple[float, float]
    dead_resolver: int


def _set_up(anchor: AnchorProcess) -> None:
    """A static site whose production was rolled back (pinned) with a pending custom domain, and a Python
    app with a secret env var."""
    with anchor.api() as api:
        ensure_project(api, "site")
        v1 = upload_and_deploy(
            api, "site", {"index.html": b"<h1>site v1</h1>", "big.bin": os.urandom(1 << 20)}
        )
        v2 = upload_and_deploy(api, "site", {"index.html": b"<h1>site v2</h1>"})
        assert v1["status"] == v2["status"] == "READY"
        moved = api.post("/v1/projects/site/rollback", json={"deploymentId": v1["id"]})
        assert moved.status_code == 200, moved.text
        assert api.post("/v1/projects/site/domains", json={"name": DOMAIN}).status_code == 201
        ensure_project(api, "api")
        answer = api.post("/v1/projects/api/env", json={"key": "TOKEN", "value": SECRET, "secret": True})
        assert answer.status_code == 201, answer.text
        app = upload_and_deploy(api, "api", as_bytes(app_files("v1")), wait=False)
        assert wait_final(api, app["id"], timeout=300)["status"] == "READY", build_log(api, app["id"])
        ensure_project(api, "load")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Original]:
    root = tmp_path_factory.mktemp("backup")
    dead_resolver = free_port()
    anchor = platform_at(root / "original", dead_resolver).start()
    try:
        _set_up(anchor)
        with anchor.api() as api:
            projects = {p["name"]: p for p in api.get("/v1/projects").json()["projects"]}
            history = {n: api.get(f"/v1/projects/{n}/alias-history").json()["history"] for n in projects}
        site, app = anchor.edge("site.localhost").content, _answer(anchor.edge("api.localhost").content)
        load, poller = Load(anchor), Poller(anchor, {"site.localhost": site, "api.localhost": None})
        threads = [threading.Thread(target=load.run), threading.Thread(target=poller.run)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: len(load.writes) >= 4, 60, "the write load starts")
            archive = root / "backup.tar"
            started = time.monotonic()
            done = anchor.cli("backup", str(archive))
            took = (started, time.monotonic())
            assert done.stdout.startswith(f"backup written to {archive}"), done.stdout
        finally:
            load.stop.set()
            poller.stop.set()
            for thread in threads:
                thread.join(60)
        yield Original(anchor, archive, projects, history, site, app, load, poller, took, dead_resolver)
    finally:
        anchor.stop()


def _snapshot_of(archive: Path, workdir: Path) -> dict[str, str]:
    """The deployments (id -> status) in the archive's database, read with sqlite3 from the tar."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("anchor.db")
        assert member is not None
        (workdir / "snapshot.db").write_bytes(member.read())
    with contextlib.closing(sqlite3.connect(workdir / "snapshot.db")) as db:
        return dict(db.execute("SELECT id, status FROM deployments").fetchall())


def test_the_platform_kept_serving_and_writing_while_the_backup_ran(original: Original) -> None:
    assert original.poller.requests > 20 and original.poller.failures == []
    assert original.load.errors == []
    start, end = original.backup_took
    assert any(start < at < end for at in original.load.writes), "no write was answered during the backup"
    mode = stat.S_IMODE(original.archive.stat().st_mode)
    assert mode == 0o600, oct(mode)  # it holds the keys
    assert not [p for p in original.archive.parent.iterdir() if p.name.endswith(".partial")]


def test_a_restored_platform_serves_the_same_production_with_the_same_secrets(
    original: Original, tmp_path: Path
) -> None:
    target = tmp_path / "restored"
    done = original.anchor.cli("restore", str(original.archive), "--data-dir", str(target))
    assert done.stdout.startswith(f"restored {original.archive} into {target}"), done.stdout
    assert not {"deployments", "edge", "envs", "run", "logs"} & {p.name for p in target.iterdir()}
    snapshot = _snapshot_of(original.archive, tmp_path)
    restored = platform_at(target, original.dead_resolver).start()
    try:
        assert restored.token == original.anchor.token  # the admin token came along
        with restored.api() as api:
            projects = {p["name"]: p for p in api.get("/v1/projects").json()["projects"]}
            assert projects.keys() == original.projects.keys()
            for name, before in original.projects.items():
                after = projects[name]
                assert (after["productionDeploymentId"], after["pinned"]) == (
                    before["productionDeploymentId"],
                    before["pinned"],
                ), name
                history = api.get(f"/v1/projects/{name}/alias-history").json()["history"]
                assert history == original.history[name]
            assert projects["site"]["pinned"] is True
            domains = api.get("/v1/projects/site/domains").json()["domains"]
            assert [d["name"] for d in domains] == [DOMAIN]
            # Every deployment of the snapshot, and only those, whole and READY (a build the snapshot caught
            # QUEUED or BUILDING is built again at start).
            listed = {
                d["id"]
                for name in projects
                for d in api.get(f"/v1/projects/{name}/deployments").json()["deployments"]
            }
            assert listed == set(snapshot)
            assert set(original.load.contents) & set(snapshot), "the snapshot holds none of the load"
            for deployment_id in snapshot:
                final = wait_final(api, deployment_id, timeout=300)
                assert final["status"] == "READY", (deployment_id, snapshot[deployment_id], final)
                if deployment_id in original.load.contents:
                    host = final["url"].split("//", 1)[1].rsplit(":", 1)[0]
                    assert restored.edge(host).content == original.load.contents[deployment_id]
        assert restored.edge("site.localhost").content == original.site

        def app_answers() -> bytes | None:
            answer = edge_get(restored, "api.localhost")
            return answer.content if answer.status_code == 200 else None

        body = wait_until(app_answers, 300, "the restored app answers (its environment rebuilt)", 0.5)
        assert _answer(body) == original.app
        assert original.app["token_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
        with restored.api() as api:
            app_id = original.projects["api"]["productionDeploymentId"]
            assert any("environment is missing" in line for line in build_log(api, app_id))
    finally:
        restored.stop()


def _answer(body: bytes) -> dict[str, Any]:
    """The app's answer without the id of the process that gave it."""
    answer = dict(json.loads(body))
    answer.pop("pid")
    return answer


def _one_error_line(done: Any) -> str:
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return str(lines[0])


def test_a_restore_into_a_non_empty_directory_is_refused_and_changes_nothing(
    original: Original, tmp_path: Path
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for target in (busy, original.anchor.data_dir):
        before = sorted(p.name for p in target.iterdir())
        done = original.anchor.cli("restore", str(original.archive), "--data-dir", str(target), check=False)
        assert "is not empty" in _one_error_line(done)
        assert sorted(p.name for p in target.iterdir()) == before
    assert (busy / "keep.txt").read_text() == "mine"


def test_a_damaged_or_cut_archive_is_refused_and_leaves_nothing_behind(
    original: Original, tmp_path: Path
) -> None:
    body = original.archive.read_bytes()
    flipped = bytearray(body)
    flipped[len(body) // 2] ^= 0xFF
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        manifest = json.loads(tar.extractfile("anchor-backup.json").read())  # type: ignore[union-attr]
    wrong_version = body.replace(b'"formatVersion": 1', b'"formatVersion": 9', 1)
    cases = {
        "flipped": (bytes(flipped), ""),
        "cut": (body[: len(body) * 2 // 3], ""),
        "version": (wrong_version, "version 9 is not one this anchor-deploy reads"),
        "empty": (b"", "not a complete backup archive"),
    }
    assert manifest["formatVersion"] == 1 and wrong_version != body
    for name, (content, message) in cases.items():
        archive = tmp_path / f"{name}.tar"
        archive.write_bytes(content)
        target = tmp_path / f"target-{name}"
        done = original.anchor.cli("restore", str(archive), "--data-dir", str(target), check=False)
        assert message in _one_error_line(done), name
        assert not target.exists(), name
    missing = original.anchor.cli(
        "restore", str(tmp_path / "nope.tar"), "--data-dir", str(tmp_path / "t"), check=False
    )
    assert "cannot read" in _one_error_line(missing) and not (tmp_path / "t").exists()


def test_only_an_unrestricted_token_takes_a_backup(original: Original, tmp_path: Path) -> None:
    anchor = original.anchor
    with anchor.api() as api:
        created = api.post("/v1/tokens", json={"name": "ci", "project": "site"})
        assert created.status_code == 201, created.text
        limited = created.json()["token"]
        assert api.get("/v1/admin/backup", headers={"Authorization": f"Bearer {limited}"}).status_code == 403
    assert httpx.get(f"{anchor.api_url}/v1/admin/backup", timeout=10).status_code == 401
    archive = tmp_path / "denied.tar"
    done = anchor.cli("backup", str(archive), token=limited, check=False)
    assert "limited to one project" in _one_error_line(done)
    assert list(tmp_path.iterdir()) == []


def test_a_client_that_goes_away_mid_backup_leaves_no_snapshot_behind(
    original: Original, tmp_path: Path
) -> None:
    """The stream is closed when its reader disconnects: collection resumes and the snapshot is removed."""
    anchor = original.anchor
    work = anchor.data_dir / ".backup"
    with anchor.api() as api:
        ensure_project(api, "large")
        big = upload_and_deploy(api, "large", {"big.bin": os.urandom(48 << 20)}, target="preview")
        assert big["status"] == "READY"
        # 48 MiB is more than the loopback socket buffers hold: the server is still sending when we leave.
        with api.stream("GET", "/v1/admin/backup") as answer:
            assert answer.status_code == 200
            assert int(answer.headers["content-length"]) > 48 << 20
            next(answer.iter_raw(64 * 1024))
            assert list(work.iterdir()), "the snapshot exists while the backup streams"
    wait_until(lambda: not list(work.iterdir()), 30, "the snapshot is removed after the client left")
    anchor.cli("backup", str(tmp_path / "after.tar"))  # a later backup works: nothing was left locked
    assert (tmp_path / "after.tar").stat().st_size > 48 << 20
