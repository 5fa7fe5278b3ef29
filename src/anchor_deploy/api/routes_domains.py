"""Custom domains: add (shows the DNS records), list, inspect (runs one check at once), retry, remove."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from anchor_deploy.api.deps import BodyDep, PlatformDep, ProjectDep, TokenDep
from anchor_deploy.api.serialize import domain_json, record_json
from anchor_deploy.model.errors import InvalidInput

router = APIRouter(prefix="/v1/projects/{project}/domains")
lookup_router = APIRouter(prefix="/v1")


@lookup_router.get("/domains/{name}")
async def find_domain(p: PlatformDep, token: TokenDep, name: str, check: bool = True) -> dict[str, Any]:
    """A domain by name alone, in any project the token may see (for `anchor domains inspect NAME`)."""
    project = p.domains.project_of(name, lambda project_name: p.projects.get(project_name, token))
    view = await run_in_threadpool(p.domains.get, project, name, check)
    return domain_json(view, project, p.settings)


@lookup_router.get("/ca")
def certificate_authority(p: PlatformDep, token: TokenDep) -> dict[str, Any]:
    """The local CA's root certificate (the `internal` issuer's), to trust in a browser or curl."""
    root = p.internal_ca.root_path
    return {"path": str(root), "pem": root.read_text(), "issuer": p.settings.issuer}


@router.post("", status_code=201)
def add_domain(p: PlatformDep, project: ProjectDep, body: BodyDep) -> dict[str, Any]:
    if "name" not in body:
        raise InvalidInput('body must have a \'name\', e.g. {"name": "www.example.com"}')
    return domain_json(p.domains.add(project, body["name"]), project, p.settings)


@router.get("")
def list_domains(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    return {"domains": [domain_json(v, project, p.settings) for v in p.domains.list_domains(project)]}


@router.get("/{name}")
async def get_domain(p: PlatformDep, project: ProjectDep, name: str, check: bool = True) -> dict[str, Any]:
    view = await run_in_threadpool(p.domains.get, project, name, check)
    return domain_json(view, project, p.settings)


@router.post("/{name}/retry")
async def retry_domain(p: PlatformDep, project: ProjectDep, name: str) -> dict[str, Any]:
    view = await run_in_threadpool(p.domains.retry, project, name)
    return domain_json(view, project, p.settings)


@router.delete("/{name}")
async def delete_domain(p: PlatformDep, project: ProjectDep, name: str) -> dict[str, Any]:
    view = await run_in_threadpool(p.domains.remove, project, name)
    return {
        "removed": view.domain.name,
        "message": f"{view.domain.name} is no longer served; you may delete these DNS records",
        "dnsRecords": [record_json(r) for r in view.records],
    }
