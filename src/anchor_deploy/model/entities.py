"""Entities and statuses. Plain frozen dataclasses; the store hands them out, the services reason on them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from anchor_deploy.model.apps import AppConfig


class DeploymentStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    BUILDING = "BUILDING"
    READY = "READY"
    ERROR = "ERROR"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        return self in (DeploymentStatus.READY, DeploymentStatus.ERROR, DeploymentStatus.CANCELED)


_TRANSITIONS: dict[DeploymentStatus, frozenset[DeploymentStatus]] = {
    DeploymentStatus.QUEUED: frozenset(
        {DeploymentStatus.BUILDING, DeploymentStatus.CANCELED, DeploymentStatus.ERROR}
    ),
    # A running build is canceled when a newer push to its branch supersedes it (services/git_deploys.py).
    DeploymentStatus.BUILDING: frozenset(
        {DeploymentStatus.READY, DeploymentStatus.ERROR, DeploymentStatus.CANCELED}
    ),
    DeploymentStatus.READY: frozenset(),
    DeploymentStatus.ERROR: frozenset(),
    DeploymentStatus.CANCELED: frozenset(),
}


def can_transition(current: DeploymentStatus, new: DeploymentStatus) -> bool:
    return new in _TRANSITIONS[current]


class Target(enum.StrEnum):
    PRODUCTION = "production"
    PREVIEW = "preview"


class MoveReason(enum.StrEnum):
    DEPLOY = "deploy"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    UNPIN = "unpin"  # production stays where it is (from = to); the pin a rollback set is released


class HostKind(enum.StrEnum):
    """How the edge serves a host: a production alias (movable) or one deployment's own URL (immutable)."""

    ALIAS = "alias"
    DEPLOYMENT = "deployment"


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    created_at: float
    production_deployment_id: str | None = None
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    project_id: str
    status: DeploymentStatus
    target: Target
    created_at: float
    file_count: int
    total_size: int
    meta: dict[str, Any] = field(default_factory=dict)
    ready_at: float | None = None
    error: str | None = None
    created_by: str = ""
    # A production build that became READY and whose go-live (move production, or skip it when pinned or
    # superseded) has not been decided yet. Set with READY in one write, so a crash cannot lose it.
    go_live_pending: bool = False
    # A Python web app to run beside the static files (None: a static site).
    app: AppConfig | None = None


@dataclass(frozen=True, slots=True)
class AliasMove:
    """One move of a project's production alias: the alias history's row."""

    id: int
    project_id: str
    from_deployment_id: str | None
    to_deployment_id: str
    reason: MoveReason
    token_name: str
    at: float


def last_switch(history: list[AliasMove]) -> AliasMove | None:
    """The newest row of a history that moved production (an unpin row leaves it where it was)."""
    return next((move for move in reversed(history) if move.reason != MoveReason.UNPIN), None)


class TokenSource(enum.StrEnum):
    """Where a token came from: only an ``env`` admin token is replaced when ANCHOR_ADMIN_TOKEN changes."""

    ENV = "env"  # the admin token given as ANCHOR_ADMIN_TOKEN
    GENERATED = "generated"  # the admin token made at first start (no ANCHOR_ADMIN_TOKEN)
    API = "api"  # made with POST /v1/tokens


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    name: str
    project_id: str | None
    created_at: float
    source: TokenSource = TokenSource.API
    last_used_at: float | None = None  # recorded at most once a minute (services/auth.py)

    @property
    def is_admin(self) -> bool:
        return self.project_id is None


@dataclass(frozen=True, slots=True)
class Session:
    """A dashboard sign-in: a browser's cookie names it (stored as a hash, like a token's secret), it acts
    with its token's rights and dies with it, and it carries the CSRF secret its forms must echo."""

    id: str
    token_id: str
    csrf: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class HostRoute:
    """What the edge must serve for one hostname: the database's word, the symlink tree follows it."""

    host: str
    kind: HostKind
    project_id: str
    deployment_id: str | None
