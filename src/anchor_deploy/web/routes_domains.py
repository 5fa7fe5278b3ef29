"""A project's custom domains: add one (the DNS records to create are shown at once), watch its certificate
and edge attachment live, check a pending one now, retry a failed one, remove one behind a confirmation that
names it, after which the records the user may delete at their DNS provider are listed.

A check runs on the domain worker's threads: check and retry wait for it at most ``check_wait`` seconds on
the event loop (as the API does), then the page shows the last recorded state and updates live."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from anchor_deploy.api.routes_domains import settle_check
from anchor_deploy.api.serialize import domain_json, quota_json, record_json
from anchor_deploy.model.domain_diagnosis import RETRYABLE
from anchor_deploy.model.domains import CdnStatus, CertificateStatus
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import AnchorError
from anchor_deploy.providers.platform import Platform
from anchor_deploy.services.domains import DomainView
from anchor_deploy.web.render import page
from anchor_deploy.web.routes_projects import project_events
from anchor_deploy.web.session import PlatformDep, PostedDep, UiRoute, ViewerDep
from anchor_deploy.web.views import project_view

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)

NOTICES = {
    "added": "The domain was added: create its DNS records at your DNS provider, then watch it here.",
    "checked": "The domain was checked; this page shows what the check found.",
    "check-running": "A check is running; this page updates when it has finished.",
    "retried": "The domain is being retried; this page updates as it goes.",
}
NAME_FIELD = "domain"
NAME_LIMIT = 300  # longer than any domain name: what is typed back into the form is cut here


def domain_view(p: Platform, project: Project, view: DomainView) -> dict[str, Any]:
    """The API's shape of a domain, with what the page decides from: may it be retried, or checked now."""
    d = view.domain
    retryable = d.certificate_status in RETRYABLE or d.cdn_status == CdnStatus.FAILED
    pending = d.certificate_status == CertificateStatus.PENDING_VALIDATION or (
        d.certificate_status == CertificateStatus.ISSUED and d.cdn_status == CdnStatus.PENDING
    )
    return {
        **domain_json(view, project, p.settings),
        "canRetry": retryable,
        "canCheck": pending and not view.checking,
        "isActive": d.cdn_status == CdnStatus.ACTIVE,
        "lastCheckedTs": d.last_checked_at,
        "deadlineTs": d.validation_deadline if pending else None,
        "notAfterTs": d.certificate.not_after if d.certificate else None,
        "renewsTs": d.certificate.renew_after() if d.certificate else None,
    }


def _domains_page(
    request: Request, p: Platform, project: Project, status: int = 200, error: str = "", typed: str = ""
) -> Response:
    views = p.domains.list_domains(project)
    return page(
        request,
        "domains.html",
        status=status,
        project=project_view(p, project),
        domains=[domain_view(p, project, v) for v in views],
        quota=quota_json(p.domains.quota(project)),
        notice=NOTICES.get(request.query_params.get("notice", "")),
        error=error,
        typed=typed[:NAME_LIMIT],
        name_field=NAME_FIELD,
        events=project_events(p, project),
    )


def _back(project: Project, notice: str) -> Response:
    return RedirectResponse(f"/ui/projects/{quote(project.name)}/domains?notice={notice}", status_code=303)


@router.get("/projects/{name}/domains")
def domains_page(request: Request, name: str, p: PlatformDep, who: ViewerDep) -> Response:
    return _domains_page(request, p, p.projects.get(name, who.token))


@router.post("/projects/{name}/domains")
def add_domain(request: Request, name: str, p: PlatformDep, form: PostedDep) -> Response:
    """Add a domain; a refused name is shown beside the form (the typed value kept), with the error's
    status."""
    project = p.projects.get(name, form.viewer.token)
    typed = form.get(NAME_FIELD).strip()
    try:
        p.domains.add(project, typed)
    except AnchorError as exc:
        return _domains_page(request, p, project, exc.status, exc.message, typed)
    return _back(project, "added")


@router.post("/projects/{name}/domains/{domain}/check")
async def check_domain(name: str, domain: str, p: PlatformDep, form: PostedDep) -> Response:
    project = await run_in_threadpool(p.projects.get, name, form.viewer.token)
    _, started = await run_in_threadpool(p.domains.start_check, project, domain)
    finished = started is None or await settle_check(started, p.domains.settings.check_wait)
    return _back(project, "checked" if finished else "check-running")


@router.post("/projects/{name}/domains/{domain}/retry")
async def retry_domain(name: str, domain: str, p: PlatformDep, form: PostedDep) -> Response:
    project = await run_in_threadpool(p.projects.get, name, form.viewer.token)
    started = await run_in_threadpool(p.domains.start_retry, project, domain)
    await settle_check(started, p.domains.settings.check_wait)
    return _back(project, "retried")


@router.get("/projects/{name}/domains/{domain}/remove")
def confirm_remove(request: Request, name: str, domain: str, p: PlatformDep, who: ViewerDep) -> Response:
    project = p.projects.get(name, who.token)
    view = p.domains.get(project, domain, check=False)
    return page(
        request,
        "confirm_domain_remove.html",
        project=project_view(p, project),
        domain=domain_view(p, project, view),
    )


@router.post("/projects/{name}/domains/{domain}/remove")
def remove_domain(request: Request, name: str, domain: str, p: PlatformDep, form: PostedDep) -> Response:
    """Remove the domain and show, on this answer (the domain is gone: nothing to redirect to), the
    records the user may now delete and the ones to keep."""
    project = p.projects.get(name, form.viewer.token)
    view = p.domains.remove(project, domain)
    records = [{**record_json(r), "deletable": ok} for r, ok in p.domains.deletable_records(view)]
    return page(
        request,
        "domain_removed.html",
        project=project_view(p, project),
        removed=view.domain.name,
        unicode_name=view.unicode_name,
        finished=not view.removing,
        records=records,
    )
