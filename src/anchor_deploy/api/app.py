"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from anchor_deploy import __version__
from anchor_deploy.api.errors import UnexpectedErrors, install_error_handlers
from anchor_deploy.api.limits import BodyLimit
from anchor_deploy.api.openapi import DESCRIPTION, OPENAPI_URL, TAGS, DocumentedAPI, install_docs
from anchor_deploy.api.routes import router
from anchor_deploy.api.routes_admin import router as admin_router
from anchor_deploy.api.routes_apps import router as apps_router
from anchor_deploy.api.routes_blobs import router as blobs_router
from anchor_deploy.api.routes_dns import router as dns_router
from anchor_deploy.api.routes_domains import lookup_router as domain_lookup_router
from anchor_deploy.api.routes_domains import router as domains_router
from anchor_deploy.api.routes_fsck import router as fsck_router
from anchor_deploy.api.routes_git import router as git_router
from anchor_deploy.api.routes_git_remote import install_git_remote
from anchor_deploy.providers.platform import Platform
from anchor_deploy.web.app import install_dashboard


def create_app(platform: Platform) -> FastAPI:
    app = DocumentedAPI(
        title="anchor-deploy",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by install_docs, from local files instead of a CDN
        redoc_url=None,
    )
    app.state.platform = platform
    install_error_handlers(app)
    limits = platform.settings
    app.add_middleware(UnexpectedErrors)  # innermost: around the routes and their exception handlers
    app.add_middleware(
        BodyLimit,
        json_limit=limits.max_json_body,
        blob_limit=limits.max_blob_size,
        git_limit=limits.git_push_max_bytes,
    )
    app.include_router(router)
    app.include_router(blobs_router)
    app.include_router(apps_router)
    app.include_router(domains_router)
    app.include_router(domain_lookup_router)
    app.include_router(dns_router)
    app.include_router(git_router)
    app.include_router(fsck_router)
    app.include_router(admin_router)
    install_docs(app)
    install_git_remote(app)  # git's smart HTTP, outside the JSON API and its document
    install_dashboard(app)  # the web pages under /ui, outside the JSON API and its document
    return app
