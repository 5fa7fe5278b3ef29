"""Upgrading a data dir made by the first release (tests/fixtures/datadir-v1, made by make_datadir_v1.py
from the release's own code): the new `anchor up` migrates its database and every project, deployment,
alias, history row, domain, variable and token is intact; a start killed inside a migration converges."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anchor_deploy.adapters.local.fs_blobs import stamp_for
from anchor_deploy.adapters.local.sqlite_migrations import LATEST
from anchor_deploy.model.manifest import is_sha256
from tests.e2e.apps_support import app_platform, edge_get, host_of
from tests.e2e.harness import AnchorProcess, upload_and_deploy, wait_final
from tests.fixtures.make_datadir_v1 import OUT as FIXTURE
from tests.fixtures.make_datadir_v1 import app_files
from tests.ports import LOOPBACK, free_port

MANIFEST: dict[str, Any] = json.loads((FIXTURE / "manifest.json").read_text())
DEPLOYMENT_FIELDS = (
    "id",
    "projectId",
    "project",
    "status",
    "target",
    "isProduction",
    "createdAt",
    "readyAt",
    "createdBy",
    "fileCount",
    "totalSize",
    "error",
    "meta",
    "kind",
    "app",
)


def restore_fixture(data: Path) -> Path:
    """A data dir as the release left it: its database from the SQL text (user_version 0), its keys, its
    generated admin token and its blobs (read-only, at the epoch, as the release stored them)."""
    data.mkdir(parents=True, mode=0o700)
    db = sqlite3.connect(data / "anchor.db")
    db.executescript((FIXTURE / "anchor.sql").read_text())
    db.close()
    for name in ("secrets.key", "admin-token"):
        shutil.copyfile(FIXTURE / name, data / name)
        os.chmod(data / name, 0o600)
    shutil.copytree(FIXTURE / "ca", data / "ca")
    os.chmod(data / "ca", 0o700)
    for key in (data / "ca").iterdir():
        os.chmod(key, 0o600)
    shutil.copytree(FIXTURE / "blobs", data / "blobs")
    for blob in (data / "blobs").glob("*/*"):
        os.chmod(blob, 0o444)
        os.utime(blob, (0, 0))
    return data


def kept(new: Any, old: Any) -> Any:
    """``new`` cut down to what the release answered: later versions may add keys to an object, never
    change or drop one."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: kept(new[k], v) if k in new else "<missing>" for k, v in old.items()}
    return new


def schema_version(data: Path) -> int:
    db = sqlite3.connect(data / "anchor.db")
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def platform_on(data: Path, **settings: str) -> AnchorProcess:
    """The new code on the data dir; DNS checks of the pending domain go to a loopback port (no answer)."""
    return app_platform(data, ANCHOR_DNS_RESOLVERS=f"{LOOPBACK}:{free_port()}", **settings)


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    data = restore_fixture(tmp_path_factory.mktemp("upgrade") / "data")
    assert schema_version(data) == 0
    platform = platform_on(data).start(timeout=120)
    try:
        yield platform
    finally:
        platform.stop()


def test_the_fixture_is_the_release_s_and_the_database_is_migrated_to_the_latest(
    upgraded: AnchorProcess,
) -> None:
    assert MANIFEST["release"].startswith("b5a8dd6")
    assert schema_version(upgraded.data_dir) == LATEST >= 2
    assert upgraded.token == MANIFEST["tokens"]["admin"]["secret"]  # the release's generated admin token


def test_every_project_keeps_its_production_and_pin(upgraded: AnchorProcess) -> None:
    with upgraded.api() as api:
        projects = {p["name"]: p for p in api.get("/v1/projects").json()["projects"]}
    assert sorted(projects) == sorted(MANIFEST["projects"])
    for name, old in MANIFEST["projects"].items():
        keys = ("id", "name", "createdAt", "productionDeploymentId", "pinned")
        assert {k: projects[name][k] for k in keys} == {k: old["project"][k] for k in keys}
    assert projects["site"]["pinned"] and projects["api"]["pinned"]


def test_every_deployment_keeps_its_status_and_record(upgraded: AnchorProcess) -> None:
    with upgraded.api() as api:
        for name, old in MANIFEST["projects"].items():
            now = {d["id"]: d for d in api.get(f"/v1/projects/{name}/deployments").json()["deployments"]}
            assert sorted(now) == sorted(d["id"] for d in old["deployments"])
            for before in old["deployments"]:
                after = now[before["id"]]
                assert {k: kept(after[k], before[k]) for k in DEPLOYMENT_FIELDS} == {
                    k: before[k] for k in DEPLOYMENT_FIELDS
                }
                assert host_of(after["url"]) == host_of(before["url"])


def test_every_alias_history_row_is_intact(upgraded: AnchorProcess) -> None:
    with upgraded.api() as api:
        for name, old in MANIFEST["projects"].items():
            history = api.get(f"/v1/projects/{name}/alias-history").json()["history"]
            # Each row now also names the commit it moved to (toGit): none for the first release's deploys.
            assert [row.pop("toGit") for row in history] == [None] * len(old["history"])
            assert history == old["history"]
    reasons = [m["reason"] for m in MANIFEST["projects"]["site"]["history"]]
    assert reasons == ["deploy", "deploy", "rollback", "promote", "rollback"]
    assert [m["tokenName"] for m in MANIFEST["projects"]["api"]["history"]] == ["admin", "api-ci", "admin"]


def test_every_deployment_serves_its_files_and_production_its_deployment(upgraded: AnchorProcess) -> None:
    with upgraded.api() as api:
        urls = {d: api.get(f"/v1/deployments/{d}").json()["url"] for d in MANIFEST["served"]}
    for deployment_id, expected in MANIFEST["served"].items():
        for path, text in expected["files"].items():
            answer = upgraded.edge(host_of(urls[deployment_id]), "/" + path)
            assert (answer.status_code, answer.text) == (200, text), (deployment_id, path)
    for name, old in MANIFEST["projects"].items():
        production = old["project"]["productionDeploymentId"]
        host = host_of(old["project"]["productionUrl"])
        for path, text in MANIFEST["served"][production]["files"].items():
            assert upgraded.edge(host, "/" + path).text == text


def test_the_release_s_blobs_get_their_content_stamps(upgraded: AnchorProcess) -> None:
    """The release left every blob at the epoch; the first start gives each its content stamp, which the
    deployments' hard links share."""
    blobs = [p for p in (upgraded.data_dir / "blobs").glob("??/*") if is_sha256(p.name.partition(".")[0])]
    assert blobs
    assert all(int(p.stat().st_mtime) == stamp_for(p.name.partition(".")[0]) for p in blobs)
    assert len({int(p.stat().st_mtime) for p in blobs}) > 1
    assert (upgraded.data_dir / "blobs" / ".stamped-v1").is_file()


def test_variables_and_the_domain_are_intact(upgraded: AnchorProcess) -> None:
    with upgraded.api() as api:
        for name, old in MANIFEST["projects"].items():
            assert api.get(f"/v1/projects/{name}/env").json()["env"] == old["env"]
            domains = api.get(f"/v1/projects/{name}/domains?check=false").json()["domains"]
            assert [{k: d[k] for k in ("name", "certificateStatus", "createdAt")} for d in domains] == [
                {k: d[k] for k in ("name", "certificateStatus", "createdAt")} for d in old["domains"]
            ]
    assert [d["name"] for d in MANIFEST["projects"]["api"]["domains"]] == ["www.fixture-shop.com"]


def test_the_failed_build_keeps_its_log(upgraded: AnchorProcess) -> None:
    failed = MANIFEST["failedBuild"]
    with upgraded.api() as api:
        lines = [line["text"] for line in api.get(f"/v1/deployments/{failed['id']}/logs").json()["lines"]]
    assert lines == [line["text"] for line in json.loads(failed["log"])["lines"]]
    assert lines[-1] == "RuntimeError: this build is broken on purpose"


def test_the_secret_still_decrypts_in_old_and_new_app_deployments(upgraded: AnchorProcess) -> None:
    """A new app version freezes the current variables (the secret opened with the release's key); the
    release's own app deployments answer with the environments frozen back then."""
    with upgraded.api() as api:
        made = upload_and_deploy(api, "api", {p: t.encode() for p, t in app_files("new").items()}, "preview")
        assert made["status"] == "READY", made
        fresh = edge_get(upgraded, host_of(made["url"]), timeout=60).json()
    digest = MANIFEST["served"][MANIFEST["projects"]["api"]["project"]["productionDeploymentId"]]["app"][
        "apiKeySha256"
    ]
    assert fresh == {"version": "new", "greeting": "hello again", "apiKeySha256": digest}
    for deployment_id, expected in MANIFEST["served"].items():
        if "app" in expected:
            with upgraded.api() as api:
                url = api.get(f"/v1/deployments/{deployment_id}").json()["url"]
            assert edge_get(upgraded, host_of(url), timeout=60).json() == expected["app"]


def test_the_release_s_tokens_still_work_with_their_scope(upgraded: AnchorProcess) -> None:
    tokens = MANIFEST["tokens"]
    with upgraded.api(tokens["projectToken"]["secret"]) as ci:
        assert ci.get("/v1/projects/api").status_code == 200
        assert ci.get("/v1/projects/site").status_code == 404
        listed = ci.get("/v1/tokens").json()["tokens"]
    assert [(t["id"], t["name"], t["project"], t["source"]) for t in listed] == [
        (tokens["projectToken"]["id"], "api-ci", "api", "api")
    ]
    with upgraded.api(tokens["ops"]["secret"]) as ops:
        every = {t["name"]: t for t in ops.get("/v1/tokens").json()["tokens"]}
    assert {name: t["source"] for name, t in every.items()} == {
        "admin": "generated",
        "ops": "api",
        "api-ci": "api",
    }
    assert every["ops"]["lastUsedAt"] is not None and every["api-ci"]["lastUsedAt"] is not None


# -- a start killed inside migration 2 ----------------------------------------------------------------
def test_a_start_killed_inside_a_migration_applies_it_once_on_the_next_start(tmp_path: Path) -> None:
    """SIGKILL after the first statement of migration 2 (ALTER TABLE tokens ADD COLUMN source), before its
    commit: migration 1 is committed, 2 is not; the next start applies 2 once (a second ADD COLUMN would
    fail) and the data is whole."""
    data = restore_fixture(tmp_path / "data")
    killed = platform_on(data, ANCHOR_FAULT="migration:2:1")
    with pytest.raises(RuntimeError, match="exited"):
        killed.start(timeout=60)
    assert killed.proc is not None and killed.proc.returncode == -signal.SIGKILL
    assert schema_version(data) == 1
    db = sqlite3.connect(data / "anchor.db")
    assert "source" not in [c[1] for c in db.execute("PRAGMA table_info(tokens)")]
    db.close()

    again = platform_on(data).start(timeout=120)
    try:
        assert schema_version(data) == LATEST
        with again.api() as api:
            history = api.get("/v1/projects/site/alias-history").json()["history"]
            assert all(row.pop("toGit") is None for row in history)
            assert history == MANIFEST["projects"]["site"]["history"]
            deployment = next(iter(MANIFEST["served"]))
            assert wait_final(api, deployment)["status"] == "READY"
        with again.api(MANIFEST["tokens"]["projectToken"]["secret"]) as ci:
            assert ci.get("/v1/projects/api").json()["pinned"] is True
        assert "ANCHOR_ADMIN_TOKEN changed" not in again.log_tail()
    finally:
        again.stop()


def test_a_database_newer_than_the_code_is_refused_in_one_line(tmp_path: Path) -> None:
    data = restore_fixture(tmp_path / "data")
    db = sqlite3.connect(data / "anchor.db")
    db.execute(f"PRAGMA user_version = {LATEST + 3}")
    db.close()
    refused = platform_on(data)
    with pytest.raises(RuntimeError, match="exited"):
        refused.start(timeout=60)
    assert refused.proc is not None and refused.proc.returncode == 1
    output = refused.log_tail()
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert lines == [
        f"error: the database {data.resolve() / 'anchor.db'} is at schema version {LATEST + 3}, newer "
        f"than this anchor-deploy (schema version {LATEST}): upgrade anchor-deploy or restore a backup"
    ]
    assert schema_version(data) == LATEST + 3
