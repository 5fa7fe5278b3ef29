"""Dashboard sessions (services/sessions.py) on the fake store: what is stored, expiry, revocation, sign-out
and the CSRF comparison."""

from __future__ import annotations

import hmac

import pytest

from anchor_deploy.model.errors import CsrfRefused, Unauthorized
from anchor_deploy.services import sessions as sessions_module
from anchor_deploy.services.auth import hash_secret
from anchor_deploy.services.sessions import SessionService
from tests.unit.conftest import ADMIN, App


@pytest.fixture
def signed(app: App) -> tuple[SessionService, str, str]:
    """The session service, a token's secret and its id."""
    token, secret = app.tokens.create("ci")
    return app.services.sessions, secret, token.id


def test_signing_in_stores_a_hash_and_resumes_with_the_secret(
    app: App, signed: tuple[SessionService, str, str]
) -> None:
    sessions, secret, token_id = signed
    session, cookie = sessions.sign_in(f"  {secret}\n")  # pasted with spaces around
    assert cookie.startswith("ses_") and secret not in cookie
    stored = app.store.session_by_hash(hash_secret(cookie))
    assert stored == session and stored.token_id == token_id
    assert app.store.session_by_hash(cookie) is None  # never the secret itself
    assert session.expires_at == pytest.approx(session.created_at + sessions.lifetime)
    resumed, token = sessions.resume(cookie)
    assert resumed.id == session.id and token.id == token_id


def test_each_session_has_its_own_secrets(signed: tuple[SessionService, str, str]) -> None:
    sessions, secret, _ = signed
    one, first = sessions.sign_in(secret)
    two, second = sessions.sign_in(secret)
    assert first != second and one.csrf != two.csrf and one.id != two.id
    assert sessions.resume(first)[0].id == one.id and sessions.resume(second)[0].id == two.id


@pytest.mark.parametrize("typed", ["", "   ", "tok_wrong", "Bearer tok_wrong"])
def test_an_unknown_token_opens_no_session(
    app: App, signed: tuple[SessionService, str, str], typed: str
) -> None:
    sessions, _, _ = signed
    with pytest.raises(Unauthorized):
        sessions.sign_in(typed)
    assert app.store.delete_expired_sessions(float("inf")) == 0  # nothing was stored


@pytest.mark.parametrize("cookie", [None, "", "garbage", "ses_unknown", "tok_admin"])
def test_a_missing_or_unknown_cookie_is_not_a_session(
    signed: tuple[SessionService, str, str], cookie: str | None
) -> None:
    sessions, secret, _ = signed
    sessions.sign_in(secret)
    with pytest.raises(Unauthorized, match="not signed in"):
        sessions.resume(cookie)


def test_a_session_expires_and_is_forgotten(app: App, signed: tuple[SessionService, str, str]) -> None:
    sessions, secret, _ = signed
    session, cookie = sessions.sign_in(secret)
    app.clock.last = session.expires_at - 2  # the next reading is still before the end
    assert sessions.resume(cookie)[0].id == session.id
    app.clock.last = session.expires_at - 1  # the next reading is the end itself
    with pytest.raises(Unauthorized, match="expired"):
        sessions.resume(cookie)
    assert app.store.session_by_hash(hash_secret(cookie)) is None
    app.clock.last = session.created_at  # even if the clock went back, it is gone
    with pytest.raises(Unauthorized, match="not signed in"):
        sessions.resume(cookie)


def test_expired_sessions_are_swept_when_one_is_opened(
    app: App, signed: tuple[SessionService, str, str]
) -> None:
    sessions, secret, _ = signed
    _old, old_cookie = sessions.sign_in(secret)
    app.clock.last += sessions.lifetime + 3600
    _new, new_cookie = sessions.sign_in(secret)
    assert app.store.session_by_hash(hash_secret(old_cookie)) is None  # swept without being asked for
    assert app.store.session_by_hash(hash_secret(new_cookie)) is not None


def test_revoking_the_token_ends_its_sessions(app: App, signed: tuple[SessionService, str, str]) -> None:
    sessions, secret, token_id = signed
    _session, cookie = sessions.sign_in(secret)
    _admin_session, admin_cookie = sessions.sign_in(app.tokens.create("admin-2")[1])
    app.tokens.revoke(ADMIN, token_id)
    with pytest.raises(Unauthorized):
        sessions.resume(cookie)
    assert app.store.session_by_hash(hash_secret(cookie)) is None
    assert sessions.resume(admin_cookie)[1].name == "admin-2"  # other tokens' sessions go on


def test_sign_out_ends_only_that_session(signed: tuple[SessionService, str, str]) -> None:
    sessions, secret, _ = signed
    _one, first = sessions.sign_in(secret)
    _two, second = sessions.sign_in(secret)
    assert sessions.sign_out(first) is True
    with pytest.raises(Unauthorized):
        sessions.resume(first)
    assert sessions.sign_out(first) is False and sessions.sign_out(None) is False
    assert sessions.sign_out("garbage") is False
    assert sessions.resume(second)[0] is not None


def test_csrf_is_the_sessions_own_secret(signed: tuple[SessionService, str, str]) -> None:
    sessions, secret, _ = signed
    session, _ = sessions.sign_in(secret)
    other, _ = sessions.sign_in(secret)
    sessions.check_csrf(session, session.csrf)
    for sent in (None, "", other.csrf, session.csrf[:-1], session.csrf + "x", session.csrf.upper()):
        with pytest.raises(CsrfRefused):
            sessions.check_csrf(session, sent)


def test_csrf_is_compared_by_hmac_compare_digest(
    signed: tuple[SessionService, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The constant-time comparison decides: patched to answer the opposite, its answer is the one used."""
    sessions, secret, _ = signed
    session, _ = sessions.sign_in(secret)
    asked: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def opposite(a: bytes, b: bytes) -> bool:
        asked.append((a, b))
        return not real(a, b)

    monkeypatch.setattr(sessions_module.hmac, "compare_digest", opposite)
    with pytest.raises(CsrfRefused):
        sessions.check_csrf(session, session.csrf)
    sessions.check_csrf(session, "forged")  # accepted: the patched comparison said so
    assert asked == [(session.csrf.encode(), session.csrf.encode()), (b"forged", session.csrf.encode())]
