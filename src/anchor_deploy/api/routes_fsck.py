"""`POST /v1/admin/fsck {"repair": bool}`: check every stored blob (an unrestricted token only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from anchor_deploy.api.bodies import JsonBody
from anchor_deploy.api.deps import AdminDep, PlatformDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas_areas import FsckReportInfo
from anchor_deploy.api.schemas_requests import FsckRequest
from anchor_deploy.model.integrity import BlobProblem, FsckReport

router = APIRouter(prefix="/v1/admin")


@router.post("/fsck", **answers(FsckReportInfo, 401, 403, 409, 413, 422, 503, tag="admin"))
async def fsck(
    p: PlatformDep, _admin: AdminDep, body: Annotated[FsckRequest, Depends(JsonBody(FsckRequest))]
) -> dict[str, Any]:
    """Runs on a worker thread at full speed; the edge serves meanwhile (it never waits on the API)."""
    report = await run_in_threadpool(p.integrity.fsck, body.repair)
    return fsck_json(report)


def fsck_json(report: FsckReport) -> dict[str, Any]:
    return {
        "clean": report.clean,
        "repair": report.repair,
        "checked": {"copies": report.copies_checked, "bytes": report.bytes_checked},
        "seconds": round(report.seconds, 3),
        "problems": [_problem_json(problem) for problem in report.problems],
        "relinked": report.relinked,
        "takenDown": report.taken_down,
        "damagedDeployments": [{"id": d, "reason": r} for d, r in sorted(report.damaged.items())],
    }


def _problem_json(problem: BlobProblem) -> dict[str, Any]:
    return {
        "digest": problem.digest,
        "copy": problem.name,
        "kind": problem.kind.value,
        "problem": problem.problem.value,
        "detail": problem.detail,
        "deployments": problem.deployments,
        "action": problem.action or None,
    }
