"""The API describes itself: the OpenAPI document at /v1/openapi.json and Swagger UI at /v1/docs.

Swagger UI's script and style come from the swagger-ui-bundle-v2 package and are served by the API itself
(/v1/docs/assets/...): the page works on a machine with no internet. Routes declare their answers with
``answers(Model, *error_statuses, tag=...)``; their JSON bodies are found through api/bodies.py.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from anchor_deploy.api.bodies import body_model
from anchor_deploy.api.schemas import ErrorBody
from anchor_deploy.model.errors import NotFound

OPENAPI_URL = "/v1/openapi.json"
DOCS_URL = "/v1/docs"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
DESCRIPTION = """Deploy static sites and Python web apps to your own machine: immutable deployments,
instant rollback, custom domains with certificates, behind a Caddy edge.

Every route but `GET /v1/health` needs `Authorization: Bearer <token>`: the admin token `anchor up`
printed, or a token limited to one project (`POST /v1/tokens`). Every error is
`{"error": {"code", "message"}}`; `code` is stable."""
TAGS = [
    {"name": "platform", "description": "Health and the local certificate authority."},
    {"name": "tokens", "description": "API tokens: admin tokens, and tokens limited to one project."},
    {"name": "projects", "description": "Projects and their production alias (rollback, promote, unpin)."},
    {"name": "deployments", "description": "Upload blobs, deploy a manifest of them, read build logs."},
    {"name": "environment", "description": "A project's environment variables for its apps."},
    {"name": "domains", "description": "Custom domains: DNS records to create, certificate status."},
    {"name": "admin", "description": "Operator routes: an unrestricted token only."},
]
ERRORS = {
    400: "The request cannot be read (a blob whose bytes do not match its name, a bad Content-Length).",
    401: "Missing or invalid bearer token.",
    403: "The token is limited to one project; this call needs an unrestricted token.",
    404: "Not found, or not visible to this token.",
    409: "Conflicts with the current state (a name taken, files to upload first, nothing to roll back to).",
    413: "The request body is over its limit (ANCHOR_MAX_JSON_BODY, or ANCHOR_MAX_BLOB_SIZE for blobs).",
    422: "Invalid input: the message says which field and why.",
    503: "Busy or unavailable for now (the database is busy: see Retry-After); nothing changed.",
}


def answers(model: Any, *errors: int, tag: str) -> dict[str, Any]:
    """A route's documented answers: ``model`` for success (keys it leaves out stay out), the error body
    for each status in ``errors``."""
    return {
        "response_model": model,
        "response_model_exclude_unset": True,
        "responses": {status: {"model": ErrorBody, "description": ERRORS[status]} for status in errors},
        "tags": [tag],
    }


class DocumentedAPI(FastAPI):
    """FastAPI whose document also shows the JSON bodies routes read through api/bodies.py, and whose
    errors are all documented as the error body. It keeps the routers it includes that belong in the
    document: their routes are the API's (``api_routes``); the dashboard's routers (not in the document)
    are included but not kept."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.routers: list[APIRouter] = []

    def include_router(self, router: APIRouter, *args: Any, **kwargs: Any) -> None:
        if router.include_in_schema:
            self.routers.append(router)
        super().include_router(router, *args, **kwargs)

    def api_routes(self) -> list[APIRoute]:
        return [route for router in self.routers for route in router.routes if isinstance(route, APIRoute)]

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            document = super().openapi()
            add_request_bodies(document, self.api_routes())
            document_validation_errors(document)
        assert self.openapi_schema is not None
        return self.openapi_schema


def add_request_bodies(document: dict[str, Any], routes: list[APIRoute]) -> None:
    found = [
        (route, model)
        for route in routes
        if route.include_in_schema and (model := body_model(route.dependant)) is not None
    ]
    refs, definitions = models_json_schema(
        [(model, "validation") for _route, model in found], ref_template="#/components/schemas/{model}"
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in definitions.get("$defs", {}).items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas are named {name}: rename a request model")
    for route, model in found:
        required = any(field.is_required() for field in model.model_fields.values())
        content = {"application/json": {"schema": refs[(model, "validation")]}}
        body = {"required": required, "content": content}
        for method in route.methods or ():
            document["paths"][route.path_format][method.lower()]["requestBody"] = body


def document_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 of its own shape ({"detail": [...]}) on routes with parameters; the API
    answers those as every other error (api/errors.py)."""
    for operation in (op for item in document["paths"].values() for op in item.values()):
        unprocessable = operation.get("responses", {}).get("422")
        if unprocessable is not None and "HTTPValidationError" in str(unprocessable):
            ref = {"$ref": "#/components/schemas/ErrorBody"}
            unprocessable.update(description=ERRORS[422], content={"application/json": {"schema": ref}})
    for name in ("HTTPValidationError", "ValidationError"):
        document.get("components", {}).get("schemas", {}).pop(name, None)


def install_docs(app: FastAPI) -> None:
    """GET /v1/docs: Swagger UI for /v1/openapi.json, its files served from the installed package."""

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_URL}/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_URL}/assets/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_URL}/assets/favicon-32x32.png",
        )

    @app.get(DOCS_URL + "/assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in _ASSETS:
            raise NotFound(f"no docs asset {name[:80]!r}")
        return FileResponse(swagger_ui_dir() / name, media_type=_ASSETS[name])


def swagger_ui_dir() -> Path:
    try:
        vendor = Path(str(importlib.resources.files("swagger_ui_bundle") / "vendor"))
    except ModuleNotFoundError as exc:
        raise NotFound("the docs page needs the swagger-ui-bundle-v2 package (pip install it)") from exc
    found = sorted(vendor.glob("swagger-ui-*"))
    if not found:
        raise NotFound("the swagger-ui-bundle-v2 package has no Swagger UI files")
    return found[-1]
