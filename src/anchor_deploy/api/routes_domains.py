"""Custom domains: add (shows the DNS records), list (with the project's quota), inspect (asks for a check at
once), retry, remove.

A check runs on the domain worker's threads; GET and retry wait for it at most ``check_wait`` seconds on
the event loop, holding no thread, then answer the last recorded state (``checking``: one still runs)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from anchor_deploy.api.bodies import JsonBody
from anchor_deploy.api.deps import PlatformDep, ProjectDep, TokenDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas_areas import (
    CertificateAuthority,
    DomainInfo,
    DomainList,
    DomainRemoved,
    QuotaList,
)
from anchor_deploy.api.schemas_requests import DomainRequest
from anchor_deploy.api.serialize import domain_json, quota_json, quota_use_json, record_json
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.domains import DomainView

router = APIRouter(prefix="/v1/projects/{project}/domains")
lookup_router = APIRouter(prefix="/v1")


async def settle_check(started: Future[None], bound: float) -> bool:
    """Wait at most ``bound`` seconds for a check, without holding a thread; True if it finished."""
    if not started.done():
        await asyncio.wait([asyncio.wrap_future(started)], timeout=bound)
    return started.done()


async def _checked(p: Platform, project: Project, name: str, check: bool) -> DomainView:
    if not check:
        return await run_in_threadpool(p.domains.get, project, name, False)
    before, started = await run_in_threadpool(p.domains.start_check, project, name)
    if started is not None and await settle_check(started, p.domains.settings.check_wait):
        return await run_in_threadpool(p.domains.get, project, name, False)
    return before  # not pending, or still checking: the state recorded before the check


@lookup_router.get("/domains/{name}", **answers(DomainInfo, 401, 404, 422, 503, tag="domains"))
async def find_domain(p: PlatformDep, token: TokenDep, name: str, check: bool = True) -> dict[str, Any]:
    """A domain by name alone, in any project the token may see (for `anchor domains inspect NAME`)."""

    def visible(project_name: str) -> Project:
        return p.projects.get(project_name, token)

    project = await run_in_threadpool(p.domains.project_of, name, visible)
    view = await _checked(p, project, name, check)
    return domain_json(view, project, p.settings)


@lookup_router.get("/quotas", **answers(QuotaList, 401, 403, 404, 422, 503, tag="domains"))
def quotas(p: PlatformDep, token: TokenDep, request: Request, project: str | None = None) -> dict[str, Any]:
    """Every quota that places custom domains, with its use: the project's own (``project``: a name the
    token may see; a project token sees its own project by default), then the provider's (on AWS: names
    per ACM certificate, certificates and ACM requests, aliases per distribution, distributions)."""
    unknown = sorted(set(request.query_params) - {"project"})
    if unknown:
        raise InvalidInput(f"unknown query parameter {unknown[0][:40]!r}: only 'project' is taken")
    own = p.projects.list(token)
    if project:
        seen: Project | None = p.projects.get(project, token)
    else:  # a project token's own project; an admin's: none (the account's quotas only)
        seen = own[0] if token.project_id is not None and own else None
    uses = p.domains.quotas(seen)
    return {"provider": p.settings.provider, "quotas": [quota_use_json(u) for u in uses]}


@lookup_router.get("/ca", **answers(CertificateAuthority, 401, 404, 503, tag="platform"))
def certificate_authority(p: PlatformDep, token: TokenDep) -> dict[str, Any]:
    """The local CA's root certificate (the `internal` issuer's), to trust in a browser or curl; 404 when
    the platform has no CA of its own."""
    path, pem = p.authority.root_certificate()
    return {"path": path, "pem": pem, "issuer": p.settings.issuer}


@router.post("", status_code=201, **answers(DomainInfo, 401, 404, 409, 413, 422, 503, tag="domains"))
def add_domain(
    p: PlatformDep, project: ProjectDep, body: Annotated[DomainRequest, Depends(JsonBody(DomainRequest))]
) -> dict[str, Any]:
    return domain_json(p.domains.add(project, body.name), project, p.settings)


@router.get("", **answers(DomainList, 401, 404, 503, tag="domains"))
def list_domains(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    views = p.domains.list_domains(project)
    return {
        "domains": [domain_json(v, project, p.settings) for v in views],
        "quota": quota_json(p.domains.quota(project)),
    }


@router.get("/{name}", **answers(DomainInfo, 401, 404, 422, 503, tag="domains"))
async def get_domain(p: PlatformDep, project: ProjectDep, name: str, check: bool = True) -> dict[str, Any]:
    view = await _checked(p, project, name, check)
    return domain_json(view, project, p.settings)


@router.post("/{name}/retry", **answers(DomainInfo, 401, 404, 409, 422, 503, tag="domains"))
async def retry_domain(p: PlatformDep, project: ProjectDep, name: str) -> dict[str, Any]:
    started = await run_in_threadpool(p.domains.start_retry, project, name)
    await settle_check(started, p.domains.settings.check_wait)
    view = await run_in_threadpool(p.domains.get, project, name, False)
    return domain_json(view, project, p.settings)


@router.delete("/{name}", **answers(DomainRemoved, 401, 404, 422, 503, tag="domains"))
async def delete_domain(p: PlatformDep, project: ProjectDep, name: str) -> dict[str, Any]:
    view = await run_in_threadpool(p.domains.remove, project, name)
    records = await run_in_threadpool(p.domains.deletable_records, view)
    name = view.domain.name
    message = f"{name} is no longer served; you may delete the records marked deletable"
    if view.removing:
        message = (
            f"{name} is being taken off the CDN: it is free to add again once the CDN has let go of it "
            "(minutes on CloudFront); you may delete the records marked deletable"
        )
    return {
        "removed": name,
        "finished": not view.removing,
        "message": message,
        "dnsRecords": [{**record_json(record), "deletable": ok} for record, ok in records],
    }
