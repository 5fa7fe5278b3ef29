"""Dashboard sessions in the DynamoDB store.

Items: ``SESSION#<id>`` / ``SESSION`` (the session, with the hash of its secret) and ``SESSIONHASH#<hash>`` /
``CLAIM`` (the claim on that hash, naming the session), written together in one transaction with a check
that the token still exists. Every session is in ``ListIndex`` under ``SESSIONS``, sorted by expiry
(``list_sk`` is the expiry, fixed width, then the id), so the sweep of expired sessions reads only those.

A deleted token's sessions are found in that same partition (every unexpired session is read, and those of
the token kept): cheap while the sessions alive at once number in the hundreds. The index is eventually
consistent, so a session made in the instant before its token is deleted may be missed; it is then left to
expire, harmless meanwhile: the service refuses a session whose token is gone (token_by_id on every request).
"""

from __future__ import annotations

from collections.abc import Iterable

from anchor_deploy.adapters.aws.dynamo_base import DynamoBase
from anchor_deploy.adapters.aws.dynamo_codec import Item, number
from anchor_deploy.adapters.aws.dynamo_schema import LIST_INDEX
from anchor_deploy.adapters.aws.dynamo_table import DynamoTable, TransactionCanceled
from anchor_deploy.model.entities import Session
from anchor_deploy.model.errors import Conflict, TokenNotFound

SESSIONS = "SESSIONS"  # the sessions' partition of ListIndex
_NEW = "attribute_not_exists(pk)"


def _expiry_key(at: float) -> str:
    """A sort key that orders as the time does (fixed width, microseconds; never negative)."""
    return f"{max(at, 0.0):020.6f}"


def _claim(secret_hash: str) -> tuple[str, str]:
    return f"SESSIONHASH#{secret_hash}", "CLAIM"


def _session_item(session: Session, secret_hash: str) -> Item:
    return {
        "pk": f"SESSION#{session.id}",
        "sk": "SESSION",
        "id": session.id,
        "token_id": session.token_id,
        "csrf": session.csrf,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "secret_hash": secret_hash,
        "list_pk": SESSIONS,
        "list_sk": f"{_expiry_key(session.expires_at)}#{session.id}",
    }


def _session_of(item: Item) -> Session:
    return Session(
        item["id"], item["token_id"], item["csrf"], number(item["created_at"]), number(item["expires_at"])
    )


def drop_sessions_of(table: DynamoTable, token_ids: Iterable[str]) -> int:
    """Delete the sessions of these (deleted) tokens with their hash claims; how many were found."""
    gone = set(token_ids)
    listed = table.query(
        "list_pk = :l", {":l": SESSIONS}, index=LIST_INDEX, projection="pk, token_id, secret_hash"
    )
    doomed = [i for i in listed if i.get("token_id") in gone]
    keys = [(str(i["pk"]), "SESSION") for i in doomed]
    keys += [_claim(str(i["secret_hash"])) for i in doomed]
    table.batch_delete(keys)
    return len(doomed)


class SessionItems(DynamoBase):
    def add_session(self, session: Session, secret_hash: str) -> None:
        t = self._table
        try:
            t.transact(
                [
                    t.put({"pk": _claim(secret_hash)[0], "sk": "CLAIM", "session_id": session.id}, _NEW),
                    t.put(_session_item(session, secret_hash), _NEW),
                    t.check(f"TOKEN#{session.token_id}", "TOKEN", "attribute_exists(pk)"),
                ]
            )
        except TransactionCanceled as refused:
            if refused.failed(0) or refused.failed(1):
                raise Conflict("a session with this secret or id already exists") from None
            if refused.failed(2):
                raise TokenNotFound(f"token {session.token_id} not found") from None
            raise

    def session_by_hash(self, secret_hash: str) -> Session | None:
        claim = self._table.get(*_claim(secret_hash))
        if claim is None:
            return None
        item = self._table.get(f"SESSION#{claim['session_id']}", "SESSION")
        return None if item is None or item["secret_hash"] != secret_hash else _session_of(item)

    def delete_session(self, session_id: str) -> bool:
        item = self._table.get(f"SESSION#{session_id}", "SESSION")
        return item is not None and self._delete(item, None)

    def delete_expired_sessions(self, now: float) -> int:
        """Reads only the expired entries of the index (each one checked again on its item) and deletes
        each in a transaction of two items, so two sweeps at once count each session once."""
        expired = self._table.query(
            "list_pk = :l AND list_sk < :upto",
            {":l": SESSIONS, ":upto": _expiry_key(now) + "$"},  # '$' sorts after the '#' of every id
            index=LIST_INDEX,
            projection="pk, secret_hash",
        )
        return sum(self._delete(item, now) for item in list(expired))

    def _delete(self, item: Item, expired_by: float | None) -> bool:
        """Delete the session with its claim; False if it was gone (or, with ``expired_by``, not expired by
        then)."""
        t = self._table
        condition, values = "attribute_exists(pk)", {}
        if expired_by is not None:
            condition, values = f"{condition} AND expires_at <= :now", {":now": expired_by}
        session = t.delete(str(item["pk"]), "SESSION", condition, values=values)
        try:
            t.transact([session, t.delete(*_claim(str(item["secret_hash"])))])
        except TransactionCanceled as refused:
            if refused.failed(0):
                return False
            raise
        return True
