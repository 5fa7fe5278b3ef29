"""The token lifecycle: listing by scope, last use written at most once a minute, revocation (refused at
once, scoped like any resource, never the last admin token), and an ANCHOR_ADMIN_TOKEN that changes."""

from __future__ import annotations

import pytest

from anchor_deploy.model.entities import Project, Token, TokenSource
from anchor_deploy.model.errors import Conflict, InvalidInput, TokenNotFound, Unauthorized
from anchor_deploy.ports.fakes import FakeStore
from anchor_deploy.services.auth import LAST_USED_RESOLUTION, AdminSetup, TokenService, hash_secret


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(FakeStore):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.touches = 0

    def touch_token(self, token_id: str, at: float, interval: float) -> bool:
        self.touches += 1
        return super().touch_token(token_id, at, interval)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> CountingStore:
    return CountingStore(clock)


@pytest.fixture
def tokens(store: CountingStore, clock: Clock) -> TokenService:
    return TokenService(store, clock)


def add_project(store: FakeStore, name: str) -> Project:
    project = Project(f"prj_{name}", name, 1.0)
    store.add_project(project, [])
    return project


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


def test_admins_list_every_token_and_a_project_token_its_project_s(
    store: FakeStore, tokens: TokenService, clock: Clock
) -> None:
    shop, blog = add_project(store, "shop"), add_project(store, "blog")
    made = []
    for name, project in (("ops", None), ("shop-ci", shop), ("shop-dev", shop), ("blog-ci", blog)):
        clock.now += 1
        made.append(tokens.create(name, project))
    (admin, _), (shop_ci, shop_secret), (shop_dev, _), (blog_ci, blog_secret) = made
    assert [t.id for t in tokens.list(admin)] == [admin.id, shop_ci.id, shop_dev.id, blog_ci.id]
    assert [t.id for t in tokens.list(tokens.authenticate(bearer(shop_secret)))] == [shop_ci.id, shop_dev.id]
    assert [t.id for t in tokens.list(tokens.authenticate(bearer(blog_secret)))] == [blog_ci.id]


def test_last_use_is_written_at_most_once_a_minute(
    store: CountingStore, tokens: TokenService, clock: Clock
) -> None:
    token, secret = tokens.create("ci")
    assert token.last_used_at is None
    tokens.authenticate(bearer(secret))
    assert store.touches == 1 and store.token_by_id(token.id).last_used_at == 1_000.0  # type: ignore[union-attr]
    for step in range(59):
        clock.now = 1_000.0 + step + 0.5
        tokens.authenticate(bearer(secret))
    assert store.touches == 1 and store.token_by_id(token.id).last_used_at == 1_000.0  # type: ignore[union-attr]
    clock.now = 1_000.0 + LAST_USED_RESOLUTION
    tokens.authenticate(bearer(secret))
    assert store.touches == 2 and store.token_by_id(token.id).last_used_at == 1_060.0  # type: ignore[union-attr]


def test_a_revoked_token_is_refused_at_once(store: FakeStore, tokens: TokenService) -> None:
    shop = add_project(store, "shop")
    admin, _ = tokens.create("ops")
    ci, secret = tokens.create("shop-ci", shop)
    assert tokens.authenticate(bearer(secret)).id == ci.id
    assert tokens.revoke(admin, ci.id).id == ci.id
    with pytest.raises(Unauthorized):
        tokens.authenticate(bearer(secret))
    with pytest.raises(TokenNotFound) as again:
        tokens.revoke(admin, ci.id)
    assert again.value.status == 404 and again.value.code == "token_not_found"


def test_a_project_token_revokes_its_project_s_tokens_only(store: FakeStore, tokens: TokenService) -> None:
    shop, blog = add_project(store, "shop"), add_project(store, "blog")
    admin, admin_secret = tokens.create("ops")
    ci, ci_secret = tokens.create("shop-ci", shop)
    dev, _ = tokens.create("shop-dev", shop)
    blog_ci, _ = tokens.create("blog-ci", blog)
    caller = tokens.authenticate(bearer(ci_secret))
    answers = []
    for hidden in (admin.id, blog_ci.id, "tok_absent"):
        with pytest.raises(TokenNotFound) as refused:
            tokens.revoke(caller, hidden)
        answers.append(refused.value.to_dict()["code"])
    assert answers == ["token_not_found"] * 3  # the same answer as for an id that does not exist
    assert {t.id for t in store.list_tokens()} == {admin.id, ci.id, dev.id, blog_ci.id}
    assert tokens.revoke(caller, dev.id) == dev
    assert tokens.revoke(caller, ci.id).id == ci.id  # itself, too
    with pytest.raises(Unauthorized):
        tokens.authenticate(bearer(ci_secret))
    assert tokens.authenticate(bearer(admin_secret)).id == admin.id


def test_the_last_admin_token_is_kept(store: FakeStore, tokens: TokenService) -> None:
    shop = add_project(store, "shop")
    secret = tokens.ensure_admin(None).secret
    assert secret is not None
    first = tokens.authenticate(bearer(secret))
    tokens.create("shop-ci", shop)
    with pytest.raises(Conflict, match="last admin token"):
        tokens.revoke(first, first.id)
    assert tokens.authenticate(bearer(secret)).id == first.id
    second, second_secret = tokens.create("ops")
    assert tokens.revoke(second, first.id).id == first.id
    with pytest.raises(Unauthorized):
        tokens.authenticate(bearer(secret))
    with pytest.raises(Conflict):
        tokens.revoke(second, second.id)
    assert tokens.authenticate(bearer(second_secret)).id == second.id


def test_a_changed_admin_token_variable_revokes_the_previous_env_token(
    store: FakeStore, tokens: TokenService
) -> None:
    assert tokens.ensure_admin("anc_first") == AdminSetup()
    first = tokens.authenticate(bearer("anc_first"))
    assert first.source is TokenSource.ENV
    ops, ops_secret = tokens.create("ops")
    changed = tokens.ensure_admin("anc_second")
    assert changed.secret is None and [t.id for t in changed.revoked] == [first.id]
    with pytest.raises(Unauthorized):
        tokens.authenticate(bearer("anc_first"))
    assert tokens.authenticate(bearer("anc_second")).source is TokenSource.ENV
    assert tokens.authenticate(bearer(ops_secret)).id == ops.id  # API-made admin tokens stay
    assert tokens.ensure_admin("anc_second") == AdminSetup()  # the same value again: nothing changes
    assert tokens.ensure_admin(None) == AdminSetup()  # unset: the last env token stays, none generated
    assert tokens.authenticate(bearer("anc_second")).is_admin


def test_a_generated_admin_token_survives_restarts_and_a_later_env_token(tokens: TokenService) -> None:
    secret = tokens.ensure_admin(None).secret
    assert secret is not None
    assert tokens.ensure_admin(None) == AdminSetup()
    assert tokens.ensure_admin("anc_from_env") == AdminSetup()
    assert tokens.ensure_admin("anc_rotated").revoked[0].source is TokenSource.ENV
    assert tokens.authenticate(bearer(secret)).source is TokenSource.GENERATED


def test_an_env_value_that_names_an_existing_admin_token_adopts_it(
    store: FakeStore, tokens: TokenService
) -> None:
    """After an upgrade the first release's start-up admin token is "generated"; started with the same
    ANCHOR_ADMIN_TOKEN it becomes the env token (no second token), and a later change revokes it."""
    store.add_token(Token("tok_old", "admin", None, 1.0, TokenSource.GENERATED), hash_secret("anc_same"))
    assert tokens.ensure_admin("anc_same") == AdminSetup()
    assert [(t.id, t.source) for t in store.list_tokens()] == [("tok_old", TokenSource.ENV)]
    assert [t.id for t in tokens.ensure_admin("anc_next").revoked] == ["tok_old"]


def test_a_crash_between_storing_and_revoking_is_finished_at_the_next_start(
    store: FakeStore, tokens: TokenService
) -> None:
    store.add_token(Token("tok_old", "admin", None, 1.0, TokenSource.ENV), hash_secret("anc_old"))
    store.add_token(Token("tok_new", "admin", None, 2.0, TokenSource.ENV), hash_secret("anc_new"))
    assert [t.id for t in tokens.ensure_admin("anc_new").revoked] == ["tok_old"]
    assert [t.id for t in store.list_tokens()] == ["tok_new"]


def test_an_env_value_equal_to_a_project_token_is_refused(store: FakeStore, tokens: TokenService) -> None:
    shop = add_project(store, "shop")
    _, secret = tokens.create("shop-ci", shop)
    with pytest.raises(InvalidInput, match="project token"):
        tokens.ensure_admin(secret)
    assert not store.has_admin_token()
