"""Tokens: created once, shown once, stored as a sha256 of the secret, compared by hash lookup."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from anchor_deploy.model.entities import Project, Token
from anchor_deploy.model.errors import Forbidden, InvalidInput, ProjectNotFound, Unauthorized
from anchor_deploy.ports import Store

TOKEN_PREFIX = "anc_"  # noqa: S105 - a prefix, not a secret
_MAX_NAME = 64


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def create(
        self, name: str, project: Project | None = None, secret: str | None = None
    ) -> tuple[Token, str]:
        if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
            raise InvalidInput(f"token name must be 1-{_MAX_NAME} characters")
        secret = secret or TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = Token(
            id="tok_" + secrets.token_hex(8),
            name=name.strip(),
            project_id=project.id if project else None,
            created_at=self._clock(),
        )
        self._store.add_token(token, hash_secret(secret))
        return token, secret

    def ensure_admin(self, explicit_secret: str | None) -> str | None:
        """On first start make the admin token (or register ANCHOR_ADMIN_TOKEN); return a new secret."""
        if explicit_secret:
            if self._store.token_by_hash(hash_secret(explicit_secret)) is None:
                self.create("admin", secret=explicit_secret)
            return None
        if self._store.has_admin_token():
            return None
        return self.create("admin")[1]

    def authenticate(self, header: str | None) -> Token:
        scheme, _, secret = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        token = self._store.token_by_hash(hash_secret(secret.strip()))
        if token is None:
            raise Unauthorized("invalid token")
        return token


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
