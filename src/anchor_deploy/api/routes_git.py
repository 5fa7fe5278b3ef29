"""Git deploys: connect a project's repository, answer its forge's webhooks, take the pushes to its own
git remote (told by the remote's push hook), and show its branches' preview URLs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from anchor_deploy.api.bodies import JsonBody
from anchor_deploy.api.deps import PlatformDep, ProjectDep, TokenDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas_git import (
    GitConnected,
    GitConnectRequest,
    GitDisconnected,
    GitInfo,
    GitPushAnswer,
    GitPushRequest,
    WebhookAnswerInfo,
)
from anchor_deploy.api.serialize import deployment_json, iso
from anchor_deploy.model.entities import Deployment, Project
from anchor_deploy.model.errors import BodyTooLarge, GitUnavailable
from anchor_deploy.model.git import GitConnection, RefUpdate
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.git_deploys import ConnectRequest

router = APIRouter()
_GIT = "git"


def _webhook_url(request: Request, project: Project) -> str:
    return str(request.base_url).rstrip("/") + f"/v1/git/webhooks/{project.name}"


def _remote_url(p: Platform, request: Request, project: Project) -> str | None:
    if not p.has_git_remote:
        return None
    return str(request.base_url).rstrip("/") + f"/git/{project.name}.git"


def _connection_json(connection: GitConnection) -> dict[str, Any]:
    return {
        "repoUrl": connection.repo_url,
        "productionBranch": connection.production_branch,
        "forge": connection.forge.value,
        "apiUrl": connection.api_url or None,
        "hasCredentials": connection.has_credentials,
        "hasForgeToken": connection.has_forge_token,
        "createdAt": iso(connection.created_at),
    }


def _info(p: Platform, request: Request, project: Project) -> dict[str, Any]:
    connection = p.git.connection(project)
    return {
        "connection": _connection_json(connection) if connection else None,
        "webhookUrl": _webhook_url(request, project),
        "remoteUrl": _remote_url(p, request, project),
        "branches": [
            {
                "branch": alias.branch,
                "url": p.git.builds.branch_url(alias),
                "deploymentId": alias.deployment_id,
                "commitSha": alias.sha,
                "updatedAt": iso(alias.updated_at),
            }
            for alias in p.git.branches(project)
        ],
    }


def _deployment(p: Platform, project: Project, deployment: Deployment) -> dict[str, Any]:
    return deployment_json(deployment, project, p.settings, p.urls)


@router.post(
    "/v1/projects/{project}/git",
    status_code=201,
    **answers(GitConnected, 401, 403, 404, 413, 422, 503, tag=_GIT),
)
def connect(
    p: PlatformDep,
    project: ProjectDep,
    token: TokenDep,
    request: Request,
    body: Annotated[GitConnectRequest, Depends(JsonBody(GitConnectRequest))],
) -> dict[str, Any]:
    """Connect (or reconnect) the project's repository. The answer holds the webhook URL and a new webhook
    secret, shown this once; credentials and the forge token are stored sealed and never shown."""
    connected = p.git.connect(
        project,
        ConnectRequest(
            body.repo_url,
            body.production_branch,
            body.forge,
            body.api_url,
            body.credentials,
            body.forge_token,
        ),
        token,
    )
    return {**_info(p, request, project), "webhookSecret": connected.webhook_secret}


@router.get("/v1/projects/{project}/git", **answers(GitInfo, 401, 404, 422, 503, tag=_GIT))
def show(p: PlatformDep, project: ProjectDep, request: Request) -> dict[str, Any]:
    return _info(p, request, project)


@router.delete("/v1/projects/{project}/git", **answers(GitDisconnected, 401, 404, 422, 503, tag=_GIT))
def disconnect(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    gone = p.git.disconnect(project)
    message = (
        "the repository is disconnected: its webhooks are refused from now on; its deployments and "
        "branch URLs stay"
        if gone
        else "no repository was connected"
    )
    return {"disconnected": gone, "message": message}


@router.post("/v1/projects/{project}/git/pushes", **answers(GitPushAnswer, 401, 404, 413, 422, 503, tag=_GIT))
def pushed(
    p: PlatformDep,
    project: ProjectDep,
    token: TokenDep,
    request: Request,
    body: Annotated[GitPushRequest, Depends(JsonBody(GitPushRequest))],
) -> dict[str, Any]:
    """The project's git remote took a push (its hook tells of it): one deployment per pushed branch."""
    remote = _remote_url(p, request, project)
    if remote is None:
        raise GitUnavailable("this platform has no git remote for projects")
    updates = [RefUpdate(u.ref, u.before, u.after) for u in body.updates]
    made = p.git.pushed(project, token, updates, remote)
    return {
        "deployments": [
            {**_deployment(p, project, d), "branchUrl": p.git.builds.branch_url_of(project, d)} for d in made
        ]
    }


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"a webhook body may be at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"a webhook body may be at most {limit} bytes")
    return bytes(body)


_WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "description": "the forge's event as it sends it; its signature header is checked on these bytes",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "security": [],  # the delivery's signature is its authentication (no bearer token)
}


@router.post(
    "/v1/git/webhooks/{project}",
    openapi_extra=_WEBHOOK_BODY,
    **answers(WebhookAnswerInfo, 400, 401, 404, 413, 422, 503, tag=_GIT),
)
async def webhook(p: PlatformDep, project: str, request: Request, response: Response) -> dict[str, Any]:
    """A forge's delivery (GitHub, GitLab, Gitea, Forgejo, or the generic signed form). No bearer token: the
    delivery's signature, made with the connection's webhook secret, is its authentication."""
    body = await _read_limited(request, p.git.max_webhook_bytes)
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = await _in_thread(lambda: p.git.webhook(project, headers, body))
    found: dict[str, Any] = {"outcome": answer.outcome, "message": answer.message}
    if answer.deployment is not None and answer.project is not None:
        found["deployment"] = _deployment(p, answer.project, answer.deployment)
        response.status_code = 202
    return found


async def _in_thread(work: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(work)
