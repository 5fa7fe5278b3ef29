"""Linked DNS zones: link one (a Route 53 hosted zone, or a server taking RFC 2136 updates with a TSIG key),
list them (never their secrets), unlink one. While a zone is linked, the records of the project's custom
domains under it are written there by the platform."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from anchor_deploy.api.bodies import JsonBody
from anchor_deploy.api.deps import PlatformDep, ProjectDep, TokenDep
from anchor_deploy.api.openapi import answers
from anchor_deploy.api.schemas_areas import DnsLinkInfo, DnsLinkList, DnsLinkRemoved
from anchor_deploy.api.schemas_requests import DnsLinkRequest
from anchor_deploy.api.serialize import dns_link_json
from anchor_deploy.services.dns_automation import LinkRequest

router = APIRouter(prefix="/v1/projects/{project}/dns-links")


def _request(body: DnsLinkRequest) -> LinkRequest:
    if body.route53 is not None:
        return LinkRequest(body.zone, "route53", body.route53.zone_id)
    assert body.rfc2136 is not None  # the body's check: exactly one of the two
    r = body.rfc2136
    return LinkRequest(body.zone, "rfc2136", r.server, r.key_name, r.key_algorithm, r.key_secret)


@router.post("", status_code=201, **answers(DnsLinkInfo, 401, 403, 404, 409, 413, 422, 503, tag="domains"))
def link_zone(
    p: PlatformDep,
    project: ProjectDep,
    token: TokenDep,
    body: Annotated[DnsLinkRequest, Depends(JsonBody(DnsLinkRequest))],
) -> dict[str, Any]:
    """Records of the project's domains under ``zone`` are written there from now on. A Route 53 zone is
    written with the platform's own AWS credentials: linking one needs an admin token."""
    return dns_link_json(p.dns_links.link(project, _request(body), token))


@router.get("", **answers(DnsLinkList, 401, 404, 503, tag="domains"))
def list_links(p: PlatformDep, project: ProjectDep) -> dict[str, Any]:
    return {"links": [dns_link_json(link) for link in p.dns_links.list_links(project)]}


@router.delete("/{zone}", **answers(DnsLinkRemoved, 401, 404, 422, 503, tag="domains"))
def unlink_zone(p: PlatformDep, project: ProjectDep, zone: str) -> dict[str, Any]:
    link = p.dns_links.unlink(project, zone)
    return {
        "unlinked": link.zone,
        "message": f"{link.zone} is no longer written by the platform; the records it wrote stay",
    }
