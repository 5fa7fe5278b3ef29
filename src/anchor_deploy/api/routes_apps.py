"""Build and runtime logs (with a server-sent-events follow mode) and project environment variables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from anchor_deploy.api.bodies import JsonBody
from anchor_deploy.api.deps import PlatformDep, ProjectDep, TokenDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas import Deleted, DeploymentLog
from anchor_deploy.api.schemas_areas import EnvList, EnvVarInfo
from anchor_deploy.api.schemas_requests import EnvRequest
from anchor_deploy.api.serialize import env_json, iso
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.providers.platform import Platform

router = APIRouter(prefix="/v1")
_FINAL = ("READY", "ERROR", "CANCELED")
_FOLLOW_LIMIT = 3600.0
_MAX_SEQ = 2**63 - 1  # SQLite's largest integer: a larger `after` cannot even be compared with a line's seq
_LIMIT = 10_000


def _documented(**schema: Any) -> Any:
    """A query parameter's rule shown in the document; the route checks it with its own message."""
    return Query(json_schema_extra=schema)


# One server-sent event (before OpenAPI 3.2, the schema of an event stream describes each event).
_SSE_EVENT = {
    "oneOf": [
        {
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {
                "event": {"const": "line"},
                "id": {"type": "string", "description": "the line's seq: resume with ?after="},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/LogLine"},
                },
            },
        },
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": "end"},
                "data": {
                    "type": "string",
                    "description": '{"status": the final status, or "DELETED"}',
                    "contentMediaType": "application/json",
                },
            },
        },
    ]
}
_EVENT_STREAM = {
    "200": {
        "description": "The log lines as JSON; with follow=true (build logs), server-sent events: a `line`"
        " event per line, then `end` with the final status",
        "content": {"text/event-stream": {"schema": _SSE_EVENT}},
    }
}


def _line(seq: int, at: float, text: str) -> dict[str, Any]:
    return {"seq": seq, "at": iso(at), "text": text}


@router.get(
    "/deployments/{deployment_id}/logs",
    **answers(DeploymentLog, 401, 404, 422, 503, tag="deployments"),
    openapi_extra={"responses": _EVENT_STREAM},
)
def deployment_logs(
    p: PlatformDep,
    token: TokenDep,
    deployment_id: str,
    after: Annotated[int, _documented(minimum=0, maximum=_MAX_SEQ)] = 0,
    follow: bool = False,
    source: Annotated[str, _documented(enum=["build", "runtime"])] = "build",
    limit: Annotated[int, _documented(minimum=1, maximum=_LIMIT)] = 200,
) -> dict[str, Any] | StreamingResponse:
    _project, deployment = p.deployments.get(deployment_id, token)
    if source not in ("build", "runtime"):
        raise InvalidInput("source must be 'build' or 'runtime'")
    if not 0 <= after <= _MAX_SEQ or not 1 <= limit <= _LIMIT:
        raise InvalidInput(f"after must be from 0 to {_MAX_SEQ} and limit from 1 to {_LIMIT}")
    if source == "runtime":
        return {"source": "runtime", "lines": p.deployments.runtime_log(deployment.id, limit)}
    if follow:
        return StreamingResponse(
            _follow(p, deployment.id, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    lines = [_line(*row) for row in p.deployments.logs(deployment.id, after)]
    return {"source": "build", "status": deployment.status.value, "lines": lines}


async def _follow(p: Platform, deployment_id: str, after: int) -> AsyncIterator[str]:
    """SSE: one `line` event per log line, then an `end` event with the final status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FOLLOW_LIMIT
    while loop.time() < deadline:
        rows = await run_in_threadpool(p.deployments.logs, deployment_id, after)
        for row in rows:
            after = row[0]
            yield f"event: line\nid: {row[0]}\ndata: {json.dumps(_line(*row))}\n\n"
        deployment = await run_in_threadpool(p.deployments.find, deployment_id)
        if deployment is None or deployment.status.value in _FINAL:
            if not rows:  # the last lines were sent before the status was read
                status = deployment.status.value if deployment else "DELETED"
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                return
            continue
        await asyncio.sleep(0.2)


@router.get("/projects/{project}/env", **answers(EnvList, 401, 404, 503, tag="environment"))
def list_env(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    return {"env": [env_json(v) for v in p.env.list(project)]}


@router.post(
    "/projects/{project}/env",
    status_code=201,
    **answers(EnvVarInfo, 401, 404, 413, 422, 503, tag="environment"),
)
def set_env(
    p: PlatformDep, project: ProjectDep, body: Annotated[EnvRequest, Depends(JsonBody(EnvRequest))]
) -> dict[str, Any]:
    return env_json(p.env.set(project, body.key, body.value, body.secret))


@router.delete("/projects/{project}/env/{key}", **answers(Deleted, 401, 404, 422, 503, tag="environment"))
def delete_env(p: PlatformDep, project: ProjectDep, key: str) -> dict[str, Any]:
    p.env.delete(project, key)
    return {"deleted": key}
