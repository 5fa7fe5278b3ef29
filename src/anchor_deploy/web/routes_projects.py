"""Projects, a project's deployments, production's history, and moving production: rollback, promote,
unpin. Every move is asked for on a confirmation page that names where production goes from and to; the
move is refused if production moved meanwhile, so a confirmation never acts on what it did not show."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import AnchorError, DeploymentNotFound, InvalidInput
from anchor_deploy.providers.platform import Platform
from anchor_deploy.web.render import page
from anchor_deploy.web.routes_live import fingerprint, overview_state, project_state
from anchor_deploy.web.session import PlatformDep, PostedDep, UiRoute, Viewer, ViewerDep
from anchor_deploy.web.views import (
    Pages,
    deployment_view,
    move_view,
    offered_move,
    page_number,
    project_view,
)

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

NOTICES = {
    "rolled-back": "Production was rolled back.",
    "promoted": "The deployment was promoted to production.",
    "unpinned": "Production is no longer pinned: the next production deployment goes live.",
}
_MOVES = {"rollback": "Roll back", "promote": "Promote"}


def _summary(p: Platform, project: Project) -> dict[str, Any]:
    production = p.deployments.find(project.production_deployment_id or "")
    latest = p.deployments.page(project, 1)
    return {
        **project_view(p, project),
        "production": deployment_view(p, project, production) if production else None,
        "latest": deployment_view(p, project, latest[0]) if latest else None,
        "domainCount": len(p.domains.list_domains(project)),
    }


@router.get("/")
def projects_page(request: Request, p: PlatformDep, who: ViewerDep) -> Response:
    projects = [_summary(p, x) for x in p.projects.list(who.token)]
    events = f"/ui/events?since={fingerprint(overview_state(p, who.token))}"
    return page(request, "projects.html", projects=projects, events=events)


def project_events(p: Platform, project: Project) -> str:
    """The project's live stream, from the state this page is rendered with."""
    return f"/ui/projects/{quote(project.name)}/events?since={fingerprint(project_state(p, project))}"


def _branches(p: Platform, project: Project) -> list[dict[str, Any]]:
    try:
        found = p.git.branches(project)
    except AnchorError:  # no git on this provider
        return []
    return [
        {"branch": b.branch, "url": p.urls.host_url(b.host), "deploymentId": b.deployment_id, "sha": b.sha}
        for b in found
    ]


@router.get("/projects/{name}")
def project_page(request: Request, name: str, p: PlatformDep, who: ViewerDep) -> Response:
    project = p.projects.get(name, who.token)
    pages = Pages(page_number(request.query_params.get("page")), p.deployments.count(project))
    production = p.deployments.find(project.production_deployment_id or "")
    rows = []
    for deployment in p.deployments.page(project, pages.size, pages.offset):
        view = deployment_view(p, project, deployment)
        rows.append({**view, "offer": offered_move(view, production)})
    return page(
        request,
        "project.html",
        project=project_view(p, project),
        production=deployment_view(p, project, production) if production else None,
        deployments=rows,
        pages=pages,
        branches=_branches(p, project),
        notice=NOTICES.get(request.query_params.get("notice", "")),
        events=project_events(p, project),
    )


@router.get("/projects/{name}/history")
def history_page(request: Request, name: str, p: PlatformDep, who: ViewerDep) -> Response:
    project = p.projects.get(name, who.token)
    pages = Pages(page_number(request.query_params.get("page")), p.aliases.count_moves(project))
    moves = p.aliases.history_page(project, pages.size, pages.offset)
    found = {i: p.deployments.find(i) for i in dict.fromkeys(m.to_deployment_id for m in moves)}
    current = project.production_deployment_id
    rows = [move_view(m, found[m.to_deployment_id], current) for m in moves]
    return page(
        request,
        "history.html",
        project=project_view(p, project),
        moves=rows,
        pages=pages,
        events=project_events(p, project),
    )


def _target(p: Platform, project: Project, move: str, wanted: str | None) -> str:
    if wanted:
        return wanted
    if move == "rollback":
        return p.aliases.rollback_target(project)
    raise InvalidInput("name the deployment to promote")


@router.get("/projects/{name}/rollback")
def confirm_rollback(request: Request, name: str, p: PlatformDep, who: ViewerDep) -> Response:
    return _confirm(request, name, "rollback", p, who)


@router.get("/projects/{name}/promote")
def confirm_promote(request: Request, name: str, p: PlatformDep, who: ViewerDep) -> Response:
    return _confirm(request, name, "promote", p, who)


def _confirm(request: Request, name: str, move: str, p: Platform, who: Viewer) -> Response:
    project = p.projects.get(name, who.token)
    target_id = _target(p, project, move, request.query_params.get("to"))
    _, target = p.deployments.get(target_id, who.token)
    if target.project_id != project.id:
        raise DeploymentNotFound(f"deployment {target_id[:40]!r} not found in project {project.name!r}")
    current = p.deployments.find(project.production_deployment_id or "")
    return page(
        request,
        "confirm_move.html",
        project=project_view(p, project),
        move=move,
        verb=_MOVES[move],
        to=deployment_view(p, project, target),
        current=deployment_view(p, project, current) if current else None,
    )


def _move(p: Platform, who: Viewer, name: str, move: str, form: dict[str, str]) -> str:
    project = p.projects.get(name, who.token)
    target = form.get("to", "")
    if not target:
        raise InvalidInput("the form does not say which deployment production should move to")
    # Checked inside the move's compare-and-set: another process may move production at any moment.
    shown = form.get("from", "")
    if move == "rollback":
        p.aliases.rollback(project, target, who.token, shown=shown)
        return "rolled-back"
    p.aliases.promote(project, target, who.token, shown=shown)
    return "promoted"


@router.post("/projects/{name}/rollback")
def rollback(name: str, p: PlatformDep, form: PostedDep) -> Response:
    return _moved(name, _move(p, form.viewer, name, "rollback", form.fields))


@router.post("/projects/{name}/promote")
def promote(name: str, p: PlatformDep, form: PostedDep) -> Response:
    return _moved(name, _move(p, form.viewer, name, "promote", form.fields))


@router.post("/projects/{name}/unpin")
def unpin(name: str, p: PlatformDep, form: PostedDep) -> Response:
    project = p.projects.get(name, form.viewer.token)
    p.aliases.unpin(project, form.viewer.token)
    return _moved(project.name, "unpinned")


def _moved(name: str, notice: str) -> Response:
    return RedirectResponse(f"/ui/projects/{quote(name)}?notice={notice}", status_code=303)
