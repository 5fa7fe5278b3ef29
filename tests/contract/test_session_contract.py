"""The SessionRepository port's contract (ports/store.py): every store (SqliteStore on a real file, the
DynamoDB store on moto, the in-memory fake) keeps dashboard sessions by the hash of their secret, refuses a
taken hash or a gone token, sweeps expired ones exactly at their expiry, and drops a token's sessions with
the token and with its project."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor_deploy.model.entities import Session, Token
from anchor_deploy.model.errors import Conflict, TokenNotFound
from anchor_deploy.ports import Store
from tests.contract.dynamo_support import EVERY_STORE, store_for
from tests.contract.test_store_contract import add_project
from tests.support import TickingClock

NOW = 1_700_000_000.0


@pytest.fixture(params=EVERY_STORE)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return store_for(request, tmp_path, TickingClock())


def session(number: int, token_id: str = "tok_admin", expires_at: float = NOW + 3600) -> Session:
    return Session(f"ses_{number}", token_id, f"csrf-{number}", NOW, expires_at)


def with_admin(store: Store) -> Store:
    store.add_token(Token("tok_admin", "admin", None, 1.0), "token-hash-admin")
    return store


def test_a_session_is_found_by_the_hash_of_its_secret_only(store: Store) -> None:
    with_admin(store)
    first = Session("ses_1", "tok_admin", "csrf-1", NOW + 0.25, NOW + 3600.5)
    store.add_session(first, "hash-1")
    assert store.session_by_hash("hash-1") == first
    assert store.session_by_hash("hash-2") is None
    assert store.session_by_hash("ses_1") is None, "the id is no secret"
    assert store.session_by_hash("token-hash-admin") is None, "a token's hash is no session's"


def test_a_taken_hash_or_id_and_a_gone_token_are_refused_and_change_nothing(store: Store) -> None:
    with_admin(store)
    store.add_session(session(1), "hash-1")
    with pytest.raises(Conflict):
        store.add_session(session(2), "hash-1")
    with pytest.raises(Conflict):
        store.add_session(session(1), "hash-other")
    with pytest.raises(TokenNotFound):
        store.add_session(session(3, token_id="tok_gone"), "hash-3")
    assert store.session_by_hash("hash-1") == session(1)
    assert store.session_by_hash("hash-other") is None and store.session_by_hash("hash-3") is None
    assert store.delete_expired_sessions(NOW + 10**6) == 1, "only the first session was ever stored"


def test_delete_session_ends_one_sign_in_only(store: Store) -> None:
    with_admin(store)
    store.add_session(session(1), "hash-1")
    store.add_session(session(2), "hash-2")
    assert store.delete_session("ses_1") is True
    assert store.delete_session("ses_1") is False
    assert store.delete_session("ses_unknown") is False
    assert store.session_by_hash("hash-1") is None
    assert store.session_by_hash("hash-2") == session(2)
    store.add_session(session(3), "hash-1")  # the hash is free again
    assert store.session_by_hash("hash-1") == session(3)


def test_expired_sessions_are_kept_for_the_caller_to_judge_and_swept_at_or_after_expiry(
    store: Store,
) -> None:
    with_admin(store)
    expiries = {1: NOW + 100, 2: NOW + 200, 3: NOW + 200.0000005, 4: NOW + 300}
    for number, expires_at in expiries.items():
        store.add_session(session(number, expires_at=expires_at), f"hash-{number}")
    found = store.session_by_hash("hash-1")
    assert found is not None and found.expires_at == NOW + 100, "an expired session is still read"

    assert store.delete_expired_sessions(NOW + 200) == 2, "at its expiry a session is expired"
    assert store.delete_expired_sessions(NOW + 200) == 0
    assert store.session_by_hash("hash-1") is None and store.session_by_hash("hash-2") is None
    assert store.session_by_hash("hash-3") == session(3, expires_at=NOW + 200.0000005)
    assert store.delete_expired_sessions(NOW + 299.5) == 1
    assert store.session_by_hash("hash-4") == session(4, expires_at=NOW + 300)
    assert store.delete_expired_sessions(NOW + 300) == 1
    assert store.delete_expired_sessions(NOW + 10**6) == 0


def test_deleting_a_token_deletes_its_sessions_and_no_other(store: Store) -> None:
    with_admin(store)
    store.add_token(Token("tok_other", "other admin", None, 2.0), "token-hash-other")
    store.add_session(session(1), "hash-1")
    store.add_session(session(2), "hash-2")
    store.add_session(session(3, token_id="tok_other"), "hash-3")
    assert store.delete_token("tok_admin") is True
    assert store.session_by_hash("hash-1") is None and store.session_by_hash("hash-2") is None
    assert store.session_by_hash("hash-3") == session(3, token_id="tok_other")
    assert store.delete_session("ses_1") is False
    assert store.delete_expired_sessions(NOW + 10**6) == 1, "only the other token's session was left"


def test_deleting_a_project_deletes_its_tokens_sessions(store: Store) -> None:
    with_admin(store)
    site = add_project(store, "site")
    store.add_token(Token("tok_site", "ci", site.id, 2.0), "token-hash-site")
    store.add_session(session(1, token_id="tok_site"), "hash-1")
    store.add_session(session(2), "hash-2")
    store.delete_project(site.id)
    assert store.session_by_hash("hash-1") is None
    assert store.session_by_hash("hash-2") == session(2)
    with pytest.raises(TokenNotFound):
        store.add_session(session(3, token_id="tok_site"), "hash-3")
