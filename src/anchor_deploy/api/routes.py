"""The v1 routes. Every route but /v1/health needs a bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from anchor_deploy import __version__
from anchor_deploy.api.bodies import JsonBody, LaterJsonBody, Unchecked
from anchor_deploy.api.deps import (
    AdminDep,
    BearerScheme,
    PlatformDep,
    ProjectDep,
    TokenDep,
    authorized_project,
)
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas import (
    AliasHistory,
    Deleted,
    DeploymentCreated,
    DeploymentInfo,
    DeploymentList,
    Health,
    ProjectInfo,
    ProjectList,
    Promoted,
    RolledBack,
    TokenCreated,
    TokenList,
    TokenRevoked,
)
from anchor_deploy.api.schemas_requests import (
    SHA256_PATTERN,
    DeploymentRequest,
    ProjectRequest,
    PromoteRequest,
    RollbackRequest,
    TokenRequest,
)
from anchor_deploy.api.serialize import (
    deployment_json,
    history_json,
    move_json,
    project_json,
    scrub_json,
    token_json,
)
from anchor_deploy.api.spool import spooled_body
from anchor_deploy.model.errors import BlobTooLarge

router = APIRouter(prefix="/v1")
_CHUNK = 256 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024
# The pattern is shown in the document only: put_blob answers a bad name with its own message.
BlobName = Annotated[str, Path(json_schema_extra={"pattern": SHA256_PATTERN}, description="their sha256")]
_BLOB_BODY = {
    "requestBody": {
        "required": True,
        "description": "the file's bytes; the path names their sha256",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    "responses": {"200": {"description": "already stored"}, "201": {"description": "stored"}},
}


@router.get("/health", **answers(Health, tag="platform"))
def health(p: PlatformDep) -> dict[str, Any]:
    """``ok``: the API answers. ``status``: "degraded" when a deployment cannot be served, a stored blob
    is known to be damaged, or the edge is down; else "ok"."""
    report = p.health.report()
    return {
        "ok": True,
        "status": "degraded" if report.degraded else "ok",
        "version": __version__,
        "edge": report.edge,
        "sandbox": {"description": report.user_code, "ok": report.apps_can_run},
        "damagedDeployments": report.damaged_deployments,
        "corruptBlobs": report.corrupt_blobs,
        "scrub": scrub_json(report.scrubber),
    }


def _damage(p: PlatformDep, deployment_id: str) -> str | None:
    return p.health.damage_of(deployment_id)


@router.post("/tokens", status_code=201, **answers(TokenCreated, 401, 403, 404, 413, 422, 503, tag="tokens"))
def create_token(
    p: PlatformDep, token: AdminDep, body: Annotated[TokenRequest, Depends(JsonBody(TokenRequest))]
) -> dict[str, Any]:
    project = p.projects.get(body.project, token) if body.project is not None else None
    created, secret = p.tokens.create(body.name, project)
    return {**token_json(created, project), "token": secret}


@router.get("/tokens", **answers(TokenList, 401, 503, tag="tokens"))
def list_tokens(p: PlatformDep, token: TokenDep) -> dict[str, Any]:
    """Admin: every token; a project token: its project's tokens. Never a secret or a hash."""
    projects = {x.id: x for x in p.projects.list(token)}
    return {"tokens": [token_json(t, projects.get(t.project_id or "")) for t in p.tokens.list(token)]}


@router.delete("/tokens/{token_id}", **answers(TokenRevoked, 401, 404, 409, 503, tag="tokens"))
def revoke_token(p: PlatformDep, token: TokenDep, token_id: str) -> dict[str, Any]:
    revoked = p.tokens.revoke(token, token_id)
    projects = {x.id: x for x in p.projects.list(token)}
    return {**token_json(revoked, projects.get(revoked.project_id or "")), "revoked": True}


@router.post(
    "/projects", status_code=201, **answers(ProjectInfo, 401, 403, 409, 413, 422, 503, tag="projects")
)
def create_project(
    p: PlatformDep, token: AdminDep, body: Annotated[ProjectRequest, Depends(JsonBody(ProjectRequest))]
) -> dict[str, Any]:
    return project_json(p.projects.create(body.name, token), p.urls)


@router.get("/projects", **answers(ProjectList, 401, 503, tag="projects"))
def list_projects(p: PlatformDep, token: TokenDep) -> dict[str, Any]:
    return {"projects": [project_json(x, p.urls) for x in p.projects.list(token)]}


@router.get("/projects/{project}", **answers(ProjectInfo, 401, 404, 503, tag="projects"))
def get_project(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    return project_json(project, p.urls)


@router.delete("/projects/{project}", **answers(Deleted, 401, 403, 404, 409, 503, tag="projects"))
def delete_project(p: PlatformDep, project: ProjectDep, token: TokenDep) -> dict[str, Any]:
    p.projects.delete(project.name, token)
    return {"deleted": project.name}


@router.post(
    "/projects/{project}/deployments",
    status_code=201,
    **answers(DeploymentCreated, 401, 404, 409, 413, 422, 503, tag="deployments"),
)
def create_deployment(
    p: PlatformDep,
    project: ProjectDep,
    token: TokenDep,
    body: Annotated[DeploymentRequest, Depends(JsonBody(DeploymentRequest))],
) -> dict[str, Any]:
    deployment = p.deployments.create(project, body.for_service(), token)
    answer = deployment_json(deployment, project, p.settings, p.urls, _damage(p, deployment.id))
    if deployment.target.value == "production":
        answer["productionUrl"] = project_json(project, p.urls)["productionUrl"]
        answer["productionPinned"] = project.pinned
        if project.pinned:
            answer["message"] = (
                f"production is pinned to {project.production_deployment_id} after a rollback; this "
                f"deployment will not go live until you promote it or unpin {project.name}"
            )
    return answer


@router.get("/projects/{project}/deployments", **answers(DeploymentList, 401, 404, 503, tag="deployments"))
def list_deployments(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    found = p.deployments.list(project)
    return {"deployments": [deployment_json(d, project, p.settings, p.urls, _damage(p, d.id)) for d in found]}


@router.get("/deployments/{deployment_id}", **answers(DeploymentInfo, 401, 404, 503, tag="deployments"))
def get_deployment(p: PlatformDep, token: TokenDep, deployment_id: str) -> dict[str, Any]:
    project, deployment = p.deployments.get(deployment_id, token)
    return deployment_json(deployment, project, p.settings, p.urls, _damage(p, deployment.id))


@router.post(
    "/projects/{project}/rollback", **answers(RolledBack, 401, 404, 409, 413, 422, 503, tag="projects")
)
async def rollback(
    p: PlatformDep,
    project: str,
    request: Request,
    _declared: BearerScheme,
    body: Annotated[Unchecked[RollbackRequest], Depends(LaterJsonBody(RollbackRequest))],
) -> dict[str, Any]:
    """The whole move (auth, then project, then the body's checks, the commit, the edge) in one worker-thread
    round trip, not three (ProjectDep's, the route's): the production switch is the latency that counts."""

    def move() -> dict[str, Any]:
        token, found = authorized_project(p, request, project)
        return move_json(p.aliases.rollback(found, body.check().deployment_id, token))

    answer = await run_in_threadpool(move)
    return {**answer, "rolledBackAt": answer["at"]}


@router.post("/projects/{project}/promote", **answers(Promoted, 401, 404, 409, 413, 422, 503, tag="projects"))
async def promote(
    p: PlatformDep,
    project: str,
    request: Request,
    _declared: BearerScheme,
    body: Annotated[Unchecked[PromoteRequest], Depends(LaterJsonBody(PromoteRequest))],
) -> dict[str, Any]:
    """As rollback: one worker-thread round trip."""

    def move() -> dict[str, Any]:
        token, found = authorized_project(p, request, project)
        return move_json(p.aliases.promote(found, body.check().deployment_id, token))

    answer = await run_in_threadpool(move)
    return {**answer, "promotedAt": answer["at"]}


@router.post("/projects/{project}/unpin", **answers(ProjectInfo, 401, 404, 409, 503, tag="projects"))
def unpin(p: PlatformDep, project: ProjectDep, token: TokenDep) -> dict[str, Any]:
    p.aliases.unpin(project, token)
    return project_json(p.projects.reload(project), p.urls)


@router.get("/projects/{project}/alias-history", **answers(AliasHistory, 401, 404, 503, tag="projects"))
def alias_history(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    return {"alias": "production", "history": history_json(p.aliases.history(project), p.deployments.find)}


@router.put(
    "/blobs/{digest}",
    **answers(None, 400, 401, 413, 422, 503, tag="deployments"),
    response_class=Response,  # an empty body
    openapi_extra=_BLOB_BODY,
)
async def put_blob(p: PlatformDep, _token: TokenDep, digest: BlobName, request: Request) -> Response:
    p.uploads.check_name(digest)
    limit = p.uploads.max_size
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BlobTooLarge(f"blob is larger than the {limit}-byte limit")
    too_large = BlobTooLarge(f"blob is larger than the {limit}-byte limit")
    async with spooled_body(request, limit, too_large, p.settings.data_dir, _SPOOL_IN_MEMORY) as spool:
        stored = await run_in_threadpool(p.uploads.put, digest, _chunks(spool))
    return Response(status_code=201 if stored else 200)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk
