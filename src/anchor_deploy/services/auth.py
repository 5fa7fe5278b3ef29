"""Tokens: created once, shown once, stored as a sha256 of the secret, compared by hash lookup; listed and
revoked (a revoked token is refused at once), each with its last use (written at most once a minute)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from anchor_deploy.model.entities import Project, Token, TokenSource
from anchor_deploy.model.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    ProjectNotFound,
    StoreBusy,
    TokenNotFound,
    Unauthorized,
)
from anchor_deploy.ports.store import TokenRepository

TOKEN_PREFIX = "anc_"  # noqa: S105 - a prefix, not a secret
_MAX_NAME = 64
# A token's last use is recorded at most once per this many seconds, so requests do not each cost a write.
LAST_USED_RESOLUTION = 60.0


@dataclass(frozen=True)
class AdminSetup:
    """What the start-up did about the admin token: a newly generated secret to show once, and the env
    admin tokens revoked because ANCHOR_ADMIN_TOKEN changed."""

    secret: str | None = None
    revoked: list[Token] = field(default_factory=list)


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    def __init__(self, store: TokenRepository, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def create(
        self,
        name: str,
        project: Project | None = None,
        secret: str | None = None,
        source: TokenSource = TokenSource.API,
    ) -> tuple[Token, str]:
        if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
            raise InvalidInput(f"token name must be 1-{_MAX_NAME} characters")
        secret = secret or TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = Token(
            id="tok_" + secrets.token_hex(8),
            name=name.strip(),
            project_id=project.id if project else None,
            created_at=self._clock(),
            source=source,
        )
        self._store.add_token(token, hash_secret(secret))
        return token, secret

    def ensure_admin(self, explicit_secret: str | None) -> AdminSetup:
        """At start: register ANCHOR_ADMIN_TOKEN (revoking the env admin token it replaces), or make the
        admin token on first start. A generated admin token stays valid across restarts."""
        if explicit_secret:
            return AdminSetup(revoked=self._replace_env_admin(explicit_secret))
        if self._store.has_admin_token():
            return AdminSetup()
        return AdminSetup(secret=self.create("admin", source=TokenSource.GENERATED)[1])

    def _replace_env_admin(self, secret: str) -> list[Token]:
        """Make ``secret`` the env admin token and revoke every other env admin token. Safe to repeat: a
        crash between the two steps is finished by the next start."""
        current = self._store.token_by_hash(hash_secret(secret))
        if current is None:
            current = self.create("admin", secret=secret, source=TokenSource.ENV)[0]
        elif not current.is_admin:
            raise InvalidInput("ANCHOR_ADMIN_TOKEN is the secret of a project token; choose another secret")
        elif current.source is not TokenSource.ENV:
            self._store.set_token_source(current.id, TokenSource.ENV)
        replaced = [
            t for t in self._store.list_tokens() if t.source is TokenSource.ENV and t.id != current.id
        ]
        return [t for t in replaced if self._store.delete_token(t.id)]

    def authenticate(self, header: str | None) -> Token:
        scheme, _, secret = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        token = self._store.token_by_hash(hash_secret(secret.strip()))
        if token is None:
            raise Unauthorized("invalid token")
        now = self._clock()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            # Bookkeeping, not the request's purpose: a busy database must not refuse a read for it.
            with contextlib.suppress(StoreBusy):
                self._store.touch_token(token.id, now, LAST_USED_RESOLUTION)
        return token

    def list(self, caller: Token) -> list[Token]:
        """An admin token sees every token; a project token sees its own project's tokens only."""
        return [t for t in self._store.list_tokens() if can_see_token(caller, t)]

    def revoke(self, caller: Token, token_id: str) -> Token:
        """Delete a token the caller may see (TokenNotFound otherwise, as for an unknown id). The last admin
        token is kept (Conflict): without one nobody could manage the platform until a restart."""
        target = self._store.token_by_id(token_id)
        if target is None or not can_see_token(caller, target):
            raise TokenNotFound(f"token {token_id[:40]!r} not found")
        if target.is_admin and not any(t.is_admin and t.id != target.id for t in self._store.list_tokens()):
            raise Conflict(
                "this is the last admin token: create another admin token first (anchor tokens create NAME)"
            )
        if not self._store.delete_token(target.id):
            raise TokenNotFound(f"token {token_id[:40]!r} not found")
        return target


def can_see_token(caller: Token, token: Token) -> bool:
    """Admin tokens see every token; a project token sees the tokens of its own project (never an admin
    token, never another project's)."""
    if caller.is_admin:
        return True
    return token.project_id is not None and hmac.compare_digest(token.project_id, caller.project_id or "")


def can_access(token: Token, project: Project) -> bool:
    """A project-limited token may touch its own project only; the others do not exist for it."""
    return token.project_id is None or hmac.compare_digest(token.project_id, project.id)


def authorize(token: Token, project: Project) -> None:
    """ProjectNotFound, exactly as for a missing project, if the token may not touch ``project``: a
    project-limited token must not learn which other projects exist (no 403 for them)."""
    if not can_access(token, project):
        raise ProjectNotFound(f"project {project.name[:80]!r} not found")


def require_admin(token: Token) -> None:
    if not token.is_admin:
        raise Forbidden("this token is limited to one project; this call needs an unrestricted token")
