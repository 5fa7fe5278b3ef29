"""What the templates are given: the API's own JSON shapes (api/serialize.py), plus raw times for ages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anchor_deploy.api.serialize import deployment_json, git_json, move_json, project_json
from anchor_deploy.model.entities import AliasMove, Deployment, Project
from anchor_deploy.model.errors import InvalidInput, NotFound
from anchor_deploy.model.limits import displayable_meta
from anchor_deploy.providers.platform import Platform

PAGE_SIZE = 50


@dataclass(frozen=True)
class Pages:
    """One page of a long list: which, of how many, and the neighbours' numbers."""

    number: int
    total_items: int
    size: int = PAGE_SIZE

    def __post_init__(self) -> None:
        # Past the end there is nothing to show: an empty page would read as "no deployments yet".
        if self.number > self.count:
            raise NotFound(f"there is no page {self.number}: the list has {self.count}")

    @property
    def count(self) -> int:
        return max(1, -(-self.total_items // self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.count else None


def page_number(raw: str | None) -> int:
    """The ``page`` query parameter: a whole number from 1 (1 when absent)."""
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        raise InvalidInput(f"page must be a whole number from 1, not {raw[:20]!r}")
    return int(raw)


def project_view(p: Platform, project: Project) -> dict[str, Any]:
    return {**project_json(project, p.urls), "createdTs": project.created_at}


def deployment_view(p: Platform, project: Project, deployment: Deployment) -> dict[str, Any]:
    found = deployment_json(deployment, project, p.settings, p.urls)
    return {**found, "createdTs": deployment.created_at, "readyTs": deployment.ready_at}


def offered_move(view: dict[str, Any], production: Deployment | None) -> str | None:
    """Which move a page offers to a deployment (``view``: deployment_view's): 'rollback' to one older
    than production, 'promote' for a newer one, none unless it is READY and not production already."""
    if view["status"] != "READY" or view["isProduction"]:
        return None
    if production is not None and view["createdTs"] < production.created_at:
        return "rollback"
    return "promote"


def move_view(move: AliasMove, to: Deployment | None, current: str | None) -> dict[str, Any]:
    """One alias move, with the commit it moved to and whether production could go back to it now."""
    commit = git_json(displayable_meta(to.meta)) if to else None
    can_return = to is not None and to.status.value == "READY" and to.id != current
    return {**move_json(move), "atTs": move.at, "toGit": commit, "canReturn": can_return}
