"""Tokens: stored as a hash, authenticated by header, limited to a project when asked; and the project
service's use of them."""

from __future__ import annotations

import pytest

from anchor_deploy.model.entities import Token, TokenSource
from anchor_deploy.model.errors import Forbidden, InvalidInput, NameTaken, ProjectNotFound, Unauthorized
from anchor_deploy.model.names import production_host
from anchor_deploy.services.auth import (
    TOKEN_PREFIX,
    AdminSetup,
    authorize,
    can_access,
    hash_secret,
    require_admin,
)
from tests.support import sha
from tests.unit.conftest import ADMIN, BASE, App


def test_create_stores_the_hash_never_the_secret(app: App) -> None:
    token, secret = app.tokens.create("  deployer  ")
    assert secret.startswith(TOKEN_PREFIX) and len(secret) > 40
    assert token.name == "deployer" and token.is_admin and token.id.startswith("tok_")
    assert app.store.secret_hashes() == [sha(secret.encode())]
    assert hash_secret(secret) == sha(secret.encode())
    assert secret not in app.store.secret_hashes()
    assert app.store.token_by_hash(secret) is None
    assert app.store.token_by_hash(hash_secret(secret)) == token


def test_secrets_are_unique(app: App) -> None:
    secrets = {app.tokens.create(f"t{i}")[1] for i in range(20)}
    assert len(secrets) == 20


@pytest.mark.parametrize("name", ["", "   ", "x" * 65])
def test_token_names_are_checked(app: App, name: str) -> None:
    with pytest.raises(InvalidInput):
        app.tokens.create(name)
    assert app.store.secret_hashes() == []


def test_authenticate_accepts_a_bearer_header(app: App) -> None:
    token, secret = app.tokens.create("ci")
    assert app.tokens.authenticate(f"Bearer {secret}") == token  # never used before: last_used_at None
    assert app.tokens.authenticate(f"bearer {secret}").id == token.id
    assert app.tokens.authenticate(f"BEARER  {secret} ").id == token.id


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic {secret}",
        "{secret}",
        "Token {secret}",
        "Bearer nope",
    ],
)
def test_authenticate_refuses(app: App, header: str | None) -> None:
    _, secret = app.tokens.create("ci")
    with pytest.raises(Unauthorized) as caught:
        app.tokens.authenticate(None if header is None else header.format(secret=secret))
    assert caught.value.status == 401


def test_authenticate_refuses_the_hash_itself(app: App) -> None:
    _, secret = app.tokens.create("ci")
    with pytest.raises(Unauthorized):
        app.tokens.authenticate(f"Bearer {hash_secret(secret)}")


def test_ensure_admin_makes_one_admin_token_once(app: App) -> None:
    secret = app.tokens.ensure_admin(None).secret
    assert secret is not None
    token = app.tokens.authenticate(f"Bearer {secret}")
    assert token.is_admin and token.source is TokenSource.GENERATED
    assert app.tokens.ensure_admin(None) == AdminSetup()
    assert len(app.store.secret_hashes()) == 1


def test_ensure_admin_with_an_explicit_secret_is_idempotent(app: App) -> None:
    assert app.tokens.ensure_admin("anc_explicit-secret") == AdminSetup()
    assert app.tokens.ensure_admin("anc_explicit-secret") == AdminSetup()
    assert app.store.secret_hashes() == [hash_secret("anc_explicit-secret")]
    token = app.tokens.authenticate("Bearer anc_explicit-secret")
    assert token.is_admin and token.name == "admin" and token.source is TokenSource.ENV
    assert app.tokens.ensure_admin(None) == AdminSetup()  # an admin exists: no second one


def test_another_project_is_not_found_for_a_project_token(app: App) -> None:
    """To a token limited to one project, the other projects do not exist: the same error, code and message
    as for a name no project has, so it cannot enumerate them (admin-only calls stay Forbidden)."""
    site, other = app.project("site"), app.project("other")
    token, secret = app.tokens.create("site-ci", project=site)
    assert app.tokens.authenticate(f"Bearer {secret}") == token and not token.is_admin
    assert can_access(token, site) and can_access(ADMIN, other) and not can_access(token, other)
    authorize(token, site)
    authorize(ADMIN, other)
    assert app.projects.get("site", token) == site
    answers = []
    for name in ("other", "absent"):
        with pytest.raises(ProjectNotFound) as caught:
            app.projects.get(name, token)
        answers.append((type(caught.value), caught.value.status, caught.value.to_dict()))
    assert answers[0][:2] == answers[1][:2] == (ProjectNotFound, 404)
    assert answers[0][2] == {"code": "project_not_found", "message": "project 'other' not found"}
    assert answers[1][2] == {"code": "project_not_found", "message": "project 'absent' not found"}
    with pytest.raises(ProjectNotFound) as denied:
        authorize(token, other)
    assert denied.value.to_dict() == answers[0][2]
    # Deleting another project: not found as well (before the admin check), and the project stays.
    with pytest.raises(ProjectNotFound):
        app.projects.delete("other", token)
    assert app.store.project_by_name("other") == other
    with pytest.raises(Forbidden):
        require_admin(token)
    require_admin(ADMIN)
    assert app.projects.list(token) == [site]
    assert app.projects.list(ADMIN) == [other, site]


def test_only_admins_create_and_delete_projects(app: App) -> None:
    site = app.project("site")
    limited = Token("tok_l", "site-ci", site.id, 0.0)
    with pytest.raises(Forbidden):
        app.projects.create("new", limited)
    with pytest.raises(Forbidden):
        app.projects.delete("site", limited)
    assert app.store.project_by_name("new") is None and app.store.project_by_name("site") == site


def test_project_names_and_hosts_are_claimed_once(app: App) -> None:
    site = app.project("site")
    assert [h.host for h in app.store.project_hosts(site.id)] == [production_host("site", BASE)]
    with pytest.raises(NameTaken):
        app.projects.create("site", ADMIN)
    with pytest.raises(ProjectNotFound):
        app.projects.get("nope", ADMIN)


def test_deleting_a_project_stops_serving_it_and_revokes_its_tokens(app: App) -> None:
    site = app.project("site")
    keep = app.project("keep")
    dpl = app.deploy(site, b"a")
    kept = app.deploy(keep, b"k")
    _, secret = app.tokens.create("site-ci", project=site)
    app.projects.delete("site", ADMIN)
    assert all(not host.startswith("site") for host in app.edge.current())
    assert not app.files.exists(dpl.id) and app.files.exists(kept.id)
    with pytest.raises(Unauthorized):
        app.tokens.authenticate(f"Bearer {secret}")
    assert app.projects.create("site", ADMIN).name == "site"  # name and host free again
