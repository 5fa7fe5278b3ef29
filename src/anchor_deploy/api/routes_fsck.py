"""`POST /v1/admin/fsck {"repair": bool}`: check every stored blob (an unrestricted token only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from anchor_deploy.api.deps import BodyDep, PlatformDep, TokenDep
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.model.integrity import BlobProblem, FsckReport
from anchor_deploy.services.auth import require_admin

router = APIRouter(prefix="/v1/admin")


@router.post("/fsck")
async def fsck(p: PlatformDep, token: TokenDep, body: BodyDep) -> dict[str, Any]:
    """Runs on a worker thread at full speed; the edge serves meanwhile (it never waits on the API)."""
    require_admin(token)
    unknown = set(body) - {"repair"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}; fsck takes only repair")
    repair = body.get("repair", False)
    if not isinstance(repair, bool):
        raise InvalidInput("repair must be true or false")
    report = await run_in_threadpool(p.integrity.fsck, repair)
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
