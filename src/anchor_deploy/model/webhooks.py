"""Git webhooks: checking a delivery's signature and reading a push out of it (GitHub, GitLab, Gitea,
Forgejo and the generic signed form). Pure functions of the headers, the body and the secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from anchor_deploy.model.git import Forge


@dataclass(frozen=True, slots=True)
class PushEvent:
    """One push: a branch (or tag) moved from ``before`` to ``after`` (ZERO_SHA: created / deleted)."""

    delivery_id: str
    forge: Forge
    ref: str  # the full ref: refs/heads/main, refs/tags/v1
    branch: str | None  # the branch name for refs/heads/*, None for anything else
    before: str
    after: str
    deleted: bool
    forced: bool
    repository_urls: tuple[str, ...]  # every URL the payload names the repository by (clone, ssh, web)
    message: str = ""  # the head commit's message, first line
    author: str = ""  # the head commit's author, "Name <email>" or the name alone


@dataclass(frozen=True, slots=True)
class PingEvent:
    delivery_id: str
    forge: Forge


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """Any other event (issues, pull requests, …): acknowledged and ignored."""

    delivery_id: str
    forge: Forge
    event: str


WebhookEvent = PushEvent | PingEvent | OtherEvent


def read_webhook(headers: Mapping[str, str], body: bytes, secret: bytes) -> WebhookEvent:
    """Check the signature, then parse. ``headers`` are keyed by lowercase name.
    WebhookSignatureInvalid (401) for a missing or wrong signature (checked before the body is parsed),
    BadRequest (400) for a body that is not the JSON of the event its headers announce."""
    raise NotImplementedError


def same_repository(a: str, b: str) -> bool:
    """Whether two URLs name one repository (scheme, user, ``.git`` suffix, trailing slash and host case
    set aside; ``git@host:owner/repo`` is ``https://host/owner/repo``)."""
    raise NotImplementedError
