"""The token lifecycle on a real platform: list (by scope, never a secret), last use, revoke (refused at once,
404 outside the caller's scope), `anchor tokens ls|revoke`, and a restart with a new ANCHOR_ADMIN_TOKEN."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anchor_deploy.services.auth import hash_secret
from tests.e2e.harness import AnchorProcess, ensure_project

FIRST_ADMIN = "anc_e2e-first-admin-secret-0123456789"
TOKEN_KEYS = {"id", "name", "project", "createdAt", "source", "lastUsedAt"}


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    platform = AnchorProcess(
        tmp_path_factory.mktemp("tokens") / "data", extra_env={"ANCHOR_ADMIN_TOKEN": FIRST_ADMIN}
    ).start()
    try:
        yield platform
    finally:
        platform.stop()


def create(api: httpx.Client, name: str, project: str | None = None) -> dict[str, Any]:
    made = api.post("/v1/tokens", json={"name": name, "project": project})
    assert made.status_code == 201, made.text
    return dict(made.json())


def listed(api: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = api.get("/v1/tokens")
    assert answer.status_code == 200, answer.text
    return {t["id"]: t for t in answer.json()["tokens"]}


def test_admins_list_every_token_without_secrets_and_last_use_is_recorded(anchor: AnchorProcess) -> None:
    with anchor.api() as admin:
        ensure_project(admin, "alpha")
        ci = create(admin, "alpha-ci", "alpha")
        raw = admin.get("/v1/tokens").text
        tokens = listed(admin)
    assert ci["token"] not in raw and hash_secret(ci["token"]) not in raw
    assert FIRST_ADMIN not in raw and hash_secret(FIRST_ADMIN) not in raw
    assert all(set(t) == TOKEN_KEYS for t in tokens.values())
    env_admin = next(t for t in tokens.values() if t["source"] == "env")
    assert (env_admin["name"], env_admin["project"]) == ("admin", None)
    assert env_admin["lastUsedAt"] is not None  # this very request authenticated with it
    assert tokens[ci["id"]] == {k: ci[k] for k in TOKEN_KEYS} and ci["lastUsedAt"] is None
    assert (ci["source"], ci["project"]) == ("api", "alpha")
    with anchor.api(ci["token"]) as as_ci:
        assert as_ci.get("/v1/projects/alpha").status_code == 200
        first_use = listed(as_ci)[ci["id"]]["lastUsedAt"]
        assert first_use is not None
        assert as_ci.get("/v1/projects/alpha").status_code == 200
        assert listed(as_ci)[ci["id"]]["lastUsedAt"] == first_use  # within the minute: not rewritten


def test_a_revoked_token_is_refused_at_once(anchor: AnchorProcess) -> None:
    with anchor.api() as admin:
        ensure_project(admin, "beta")
        doomed = create(admin, "beta-ci", "beta")
        with anchor.api(doomed["token"]) as as_doomed:
            assert as_doomed.get("/v1/projects/beta").status_code == 200
            revoked = admin.delete(f"/v1/tokens/{doomed['id']}")
            assert revoked.status_code == 200, revoked.text
            body = revoked.json()
            assert body["revoked"] is True and body["lastUsedAt"] is not None
            assert {k: body[k] for k in TOKEN_KEYS - {"lastUsedAt"}} == {
                k: doomed[k] for k in TOKEN_KEYS - {"lastUsedAt"}
            }
            refused = as_doomed.get("/v1/projects/beta")  # the same keep-alive connection
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert doomed["id"] not in listed(admin)
        again = admin.delete(f"/v1/tokens/{doomed['id']}")
        assert again.status_code == 404 and again.json()["error"]["code"] == "token_not_found"


def test_a_project_token_sees_and_revokes_its_project_s_tokens_only(anchor: AnchorProcess) -> None:
    with anchor.api() as admin:
        for name in ("gamma", "delta"):
            ensure_project(admin, name)
        ci, dev = create(admin, "gamma-ci", "gamma"), create(admin, "gamma-dev", "gamma")
        other = create(admin, "delta-ci", "delta")
        ops = create(admin, "ops")
        with anchor.api(ci["token"]) as as_ci:
            assert set(listed(as_ci)) == {ci["id"], dev["id"]}
            answers = [as_ci.delete(f"/v1/tokens/{t}") for t in (other["id"], ops["id"], "tok_absent")]
            assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
                (404, "token_not_found")
            ] * 3
            assert as_ci.post("/v1/tokens", json={"name": "more"}).status_code == 403
            assert as_ci.delete(f"/v1/tokens/{dev['id']}").status_code == 200
        still = listed(admin)
        assert {other["id"], ops["id"], ci["id"]} <= set(still) and dev["id"] not in still
        with anchor.api(ops["token"]) as as_ops:
            assert as_ops.get("/v1/projects/delta").status_code == 200


def test_the_cli_lists_and_revokes(anchor: AnchorProcess) -> None:
    with anchor.api() as admin:
        ensure_project(admin, "epsilon")
        made = create(admin, "epsilon-ci", "epsilon")
    shown = anchor.cli("tokens", "ls", "--json")
    by_id = {t["id"]: t for t in json.loads(shown.stdout)["tokens"]}
    assert by_id[made["id"]]["name"] == "epsilon-ci" and made["token"] not in shown.stdout
    table = anchor.cli("tokens", "ls").stdout
    assert made["id"] in table and "epsilon-ci" in table and "env" in table
    revoked = anchor.cli("tokens", "revoke", made["id"], "--json")
    assert json.loads(revoked.stdout)["revoked"] is True and json.loads(revoked.stdout)["id"] == made["id"]
    assert made["id"] not in {
        t["id"] for t in json.loads(anchor.cli("tokens", "ls", "--json").stdout)["tokens"]
    }
    missing = anchor.cli("tokens", "revoke", made["id"], check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [f"error: token {made['id']!r} not found"]
    refused = anchor.cli("tokens", "ls", token=made["token"], check=False)
    assert refused.returncode == 1 and "refused" in refused.stderr and "Traceback" not in refused.stderr


def test_a_new_admin_token_variable_revokes_the_previous_one_at_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = AnchorProcess(data, extra_env={"ANCHOR_ADMIN_TOKEN": FIRST_ADMIN}).start()
    try:
        with first.api() as admin:
            ops = create(admin, "ops")
            old_id = next(t["id"] for t in listed(admin).values() if t["source"] == "env")
    finally:
        first.stop()
    second = AnchorProcess(
        data, extra_env={"ANCHOR_ADMIN_TOKEN": "anc_e2e-second-admin-secret-98765"}
    ).start()
    try:
        assert (
            f"ANCHOR_ADMIN_TOKEN changed: the previous env admin token ({old_id}) is revoked"
            in second.log_tail()
        )
        with second.api(FIRST_ADMIN) as old:
            assert old.get("/v1/projects").status_code == 401
        with second.api() as new:
            tokens = listed(new)
            assert new.get("/v1/projects").status_code == 200
        assert old_id not in tokens and ops["id"] in tokens  # an API-made admin token is not the env one
        assert [t["source"] for t in tokens.values() if t["name"] == "admin"] == ["env"]
        with second.api(ops["token"]) as as_ops:
            assert as_ops.get("/v1/projects").status_code == 200
    finally:
        second.stop()
    third = AnchorProcess(data, extra_env={"ANCHOR_ADMIN_TOKEN": "anc_e2e-second-admin-secret-98765"}).start()
    try:
        assert "ANCHOR_ADMIN_TOKEN changed" not in third.log_tail().split("anchor-deploy stopped")[-1]
        with third.api() as same:
            assert same.get("/v1/projects").status_code == 200
    finally:
        third.stop()
