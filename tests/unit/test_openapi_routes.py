"""Every route is described: its answer has a model (or a declared media type), its body a documented model
read through JsonBody, and every error it documents has the error body's shape. A route added without
them fails here. Also: a request model refuses a body exactly as the services did before it existed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anchor_deploy.api import schemas, serialize
from anchor_deploy.api.app import create_app
from anchor_deploy.api.bodies import body_model, reads_raw_json
from anchor_deploy.api.openapi import DocumentedAPI
from anchor_deploy.api.schemas_areas import EnvVarInfo
from anchor_deploy.api.schemas_requests import (
    ENV_KEY_PATTERN,
    PROJECT_NAME_PATTERN,
    SHA256_PATTERN,
    DeploymentRequest,
    DomainRequest,
    EnvRequest,
    FsckRequest,
    ProjectRequest,
    PromoteRequest,
    RequestBody,
    RollbackRequest,
    TokenRequest,
)
from anchor_deploy.model import apps, manifest, names
from anchor_deploy.model.apps import AppConfig, EnvVar
from anchor_deploy.model.domains import parse_domain_name
from anchor_deploy.model.entities import (
    AliasMove,
    Deployment,
    DeploymentStatus,
    MoveReason,
    Project,
    Target,
    Token,
)
from anchor_deploy.model.errors import AnchorError, InvalidInput
from anchor_deploy.services.urls import UrlService
from anchor_deploy.settings import Settings
from tests.unit.conftest import ADMIN, App, make_app

# POST routes that take no body: the action is in the path.
BODILESS = {("POST", "/v1/projects/{project}/unpin"), ("POST", "/v1/projects/{project}/domains/{name}/retry")}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def api() -> DocumentedAPI:
    app = create_app(SimpleNamespace(settings=Settings(data_dir=Path("/nonexistent"))))  # type: ignore[arg-type]
    assert isinstance(app, DocumentedAPI)
    return app


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_route_is_in_the_document_and_every_operation_is_a_route(api: DocumentedAPI) -> None:
    routes = {(m, r.path_format) for r in api.api_routes() for m in r.methods or () if m != "HEAD"}
    documented = {(m, p) for m, p, _ in operations(api.openapi())}
    assert routes == documented
    assert len(routes) >= 29
    assert all(route.include_in_schema for route in api.api_routes())


def test_every_route_declares_its_answer(api: DocumentedAPI) -> None:
    document = api.openapi()
    for route in api.api_routes():
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            success = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
            assert success, (method, route.path)
            if route.response_model is None:  # raw bytes or a stream: each success says what it is
                for answer in success.values():
                    assert all(c.get("schema") for c in answer.get("content", {}).values()), route.path
            for answer in success.values():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None:  # a named model (or a choice of them), not an untyped object
                    named = [schema] if "$ref" in schema else schema.get("oneOf", [])
                    assert named and all("$ref" in each for each in named), (method, route.path, schema)


def test_every_documented_error_is_the_error_body(api: DocumentedAPI) -> None:
    document = api.openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in operations(document):
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        for status, answer in errors.items():
            assert answer["content"] == {"application/json": {"schema": ERROR_REF}}, (method, path, status)
        if path == "/v1/git/webhooks/{project}":  # signed by the forge instead of a bearer token
            assert operation["security"] == [] and "401" in errors, (method, path)
        elif path != "/v1/health":
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
            assert "401" in errors and "503" in errors, (method, path)
        if "requestBody" in operation and "application/json" in operation["requestBody"]["content"]:
            assert {"413", "422"} <= set(errors), (method, path)


def test_every_body_is_typed_and_documented(api: DocumentedAPI) -> None:
    document = api.openapi()
    schemas = document["components"]["schemas"]
    for route in api.api_routes():
        assert not reads_raw_json(route.dependant), f"{route.path} reads an untyped body: use JsonBody"
        model = body_model(route.dependant)
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            if model is not None:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref == f"#/components/schemas/{model.__name__}"
                assert set(schemas[model.__name__]["properties"]) == {
                    field.alias or name for name, field in model.model_fields.items()
                }
            elif method in ("POST", "PUT", "PATCH") and (method, route.path_format) not in BODILESS:
                assert "requestBody" in operation, f"{method} {route.path} documents no body"


def test_blob_upload_is_documented_as_raw_bytes(api: DocumentedAPI) -> None:
    operation = api.openapi()["paths"]["/v1/blobs/{digest}"]["put"]
    assert set(operation["requestBody"]["content"]) == {"application/octet-stream"}
    assert "content" not in operation["responses"]["201"]


def test_documented_patterns_are_the_services_rules() -> None:
    assert names._PROJECT_NAME.pattern == PROJECT_NAME_PATTERN
    assert apps._ENV_KEY.pattern == ENV_KEY_PATTERN
    assert re.fullmatch(SHA256_PATTERN, "ab" * 32) and manifest.is_sha256("ab" * 32)
    assert not re.fullmatch(SHA256_PATTERN, "AB" * 32) and not manifest.is_sha256("AB" * 32)


# -- a model refuses a body as the service did ---------------------------------------------------------------
def outcome(call: Callable[[], object]) -> tuple[str, str, str] | None:
    try:
        call()
    except AnchorError as exc:
        return type(exc).__name__, exc.code, exc.message
    return None


def entry(**overrides: Any) -> dict[str, Any]:
    return {"path": "index.html", "sha256": "ab" * 32, "size": 3, "mode": 0o644, **overrides}


DEPLOYMENT_BODIES: list[dict[str, Any]] = [
    {},
    {"files": None},
    {"files": "index.html"},
    {"files": {"index.html": "x"}},
    {"files": ["index.html"]},
    {"files": [entry(path=7)]},
    {"files": [entry(path="../x")]},
    {"files": [entry(path="../x"), entry(path="b", size="3")]},
    {"files": [entry(sha256=None)]},
    {"files": [entry(sha256="AB" * 32)]},
    {"files": [entry(size=True)]},
    {"files": [entry(size=3.0)]},
    {"files": [entry(size=-1)]},
    {"files": [entry(mode="644")]},
    {"files": [entry(mode=True)]},
    {"files": [entry(mode=2**70)]},
    {"files": [entry(mode=None)], "target": 5},  # a null mode is 0o644, as it always was
    {"files": [entry(path="x")], "app": {"env": ""}},  # an empty or false env is none, as it always was
    {"files": [entry()], "target": "prod"},
    {"files": [entry()], "target": None},
    {"files": [entry()], "target": ["production"]},
    {"files": [entry(path="a/../b")], "target": None},
    {"files": [entry()], "meta": "x"},
    {"files": [entry()], "meta": {"k": "v" * 20000}},
    {"files": [entry()], "target": 5, "meta": "x"},
    {"files": [entry()], "app": "app:app"},
    {"files": [entry()], "app": {"entry": 5}},
    {"files": [entry()], "app": {"entry": "app:app", "python": 3.12}},
    {"files": [entry()], "app": {"healthPath": 5}},
    {"files": [entry()], "app": {"env": {"A": 1}}},
    {"files": [entry()], "app": {"env": ["A"]}},
]


@pytest.mark.parametrize("body", DEPLOYMENT_BODIES, ids=range(len(DEPLOYMENT_BODIES)))
def test_deployment_bodies_are_refused_as_before(app: App, body: dict[str, Any]) -> None:
    """The route reads the body into its model, then the service reads what the model kept."""
    # As on a real platform, which always runs apps (a platform without them would say so before looking
    # at `app`; the model now names what is wrong with it first).
    app.deployments._apps = object()  # type: ignore[assignment]
    project = app.project()
    before = outcome(lambda: app.deployments.create(project, body, ADMIN))
    after = outcome(
        lambda: app.deployments.create(project, DeploymentRequest.from_json(body).for_service(), ADMIN)
    )
    assert after == before, body
    assert before is not None


BODIES: list[tuple[type[RequestBody], dict[str, Any]]] = [
    (ProjectRequest, {}),
    (ProjectRequest, {"name": None}),
    (ProjectRequest, {"name": 5}),
    (ProjectRequest, {"name": ["a"]}),
    (ProjectRequest, {"name": "Upper"}),
    (TokenRequest, {}),
    (TokenRequest, {"name": ""}),
    (TokenRequest, {"name": "   "}),
    (TokenRequest, {"name": "n" * 65}),
    (TokenRequest, {"name": 5}),
    (TokenRequest, {"name": None}),
    (TokenRequest, {"name": "ok", "project": 5}),
    (TokenRequest, {"name": 5, "project": ["a"]}),
    (PromoteRequest, {}),
    (PromoteRequest, {"deploymentId": None}),
    (PromoteRequest, {"deploymentId": 5}),
    (RollbackRequest, {"deploymentId": 5}),
    (RollbackRequest, {"deploymentId": {"id": "x"}}),
    (EnvRequest, {}),
    (EnvRequest, {"key": "1A", "value": "x"}),
    (EnvRequest, {"key": "A", "value": 5}),
    (EnvRequest, {"key": "A", "value": "x", "secret": "yes"}),
    (DomainRequest, {}),
    (DomainRequest, {"name": 5}),
    (DomainRequest, {"name": ""}),
    (FsckRequest, {"repair": "yes"}),
    (FsckRequest, {"repair": True, "deep": True}),
]


def checked_as_before(model: type[RequestBody], body: dict[str, Any]) -> None:
    """The checks the routes and services made on these bodies before the models, in their order."""
    if model is ProjectRequest:
        names.validate_project_name(body.get("name"))
    elif model is TokenRequest:
        if body.get("project") is not None and not isinstance(body["project"], str):
            raise InvalidInput("project must be a project name")
        name = body.get("name", "")
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise InvalidInput("token name must be 1-64 characters")
    elif model is PromoteRequest and not isinstance(body.get("deploymentId"), str):
        raise InvalidInput("deploymentId is required")
    elif model is RollbackRequest and not isinstance(body.get("deploymentId"), str | None):
        raise InvalidInput("deploymentId must be a string")
    elif model is EnvRequest:
        apps.validate_env_var(body.get("key"), body.get("value"))
        if not isinstance(body.get("secret", False), bool):
            raise InvalidInput("secret must be true or false")
    elif model is DomainRequest:
        if "name" not in body:
            raise InvalidInput('body must have a \'name\', e.g. {"name": "www.example.com"}')
        parse_domain_name(body["name"], str, str)
    elif model is FsckRequest:
        unknown = set(body) - {"repair"}
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}; fsck takes only repair")
        if not isinstance(body.get("repair", False), bool):
            raise InvalidInput("repair must be true or false")


@pytest.mark.parametrize(
    ("model", "body"), BODIES, ids=[f"{m.__name__}-{i}" for i, (m, _) in enumerate(BODIES)]
)
def test_bodies_are_refused_as_before(model: type[RequestBody], body: dict[str, Any]) -> None:
    """Before: the checks on the raw body. Now: the model, then the same checks on what it kept."""
    before = outcome(lambda: checked_as_before(model, body))
    assert before is not None
    after = outcome(
        lambda: checked_as_before(model, model.from_json(body).model_dump(by_alias=True, exclude_unset=True))
    )
    assert after == before, body


def test_a_good_body_is_read_with_its_defaults() -> None:
    body = DeploymentRequest.from_json({"files": [entry()], "app": {"health_path": "/up"}, "extra": 1})
    assert body.target == "preview" and body.meta is None
    assert body.for_service() == {"files": [entry()], "app": {"healthPath": "/up"}}
    assert RollbackRequest.from_json({}).deployment_id is None
    assert FsckRequest.from_json({}).repair is False
    assert TokenRequest.from_json({"name": "ci", "project": "site"}).project == "site"


# -- the same, on generated bodies ---------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
)


def mutated(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``good`` with one or two keys given an arbitrary JSON value, dropped, or kept."""

    def change(body: dict[str, Any], key: str, value: Any, drop: bool) -> dict[str, Any]:
        rest = {k: v for k, v in body.items() if k != key}
        return rest if drop else {**rest, key: value}

    one = st.builds(change, st.just(good), st.sampled_from(sorted(good)), JSON, st.booleans())
    return st.one_of(
        st.just(good),
        one,
        one.flatmap(
            lambda b: st.builds(change, st.just(b), st.sampled_from(sorted(good)), JSON, st.booleans())
        ),
    )


ENTRY = {"path": "index.html", "sha256": "ab" * 32, "size": 3, "mode": 0o644}
APP = {"entry": "app:app", "python": "3.12", "healthPath": "/up", "static": "public", "env": {"A": "x"}}
DEPLOYMENTS = st.fixed_dictionaries(
    {
        "files": st.lists(mutated(ENTRY), max_size=2) | JSON,
        "target": st.sampled_from(["production", "preview"]) | JSON,
    },
    optional={
        "meta": st.dictionaries(st.text(max_size=3), JSON, max_size=2) | JSON,
        "app": mutated(APP) | mutated({"health_path": "/up"}) | JSON,
    },
).flatmap(lambda body: mutated(body) if body else st.just(body))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(body=DEPLOYMENTS)
def test_generated_deployment_bodies_have_the_same_outcome(body: dict[str, Any]) -> None:
    app = make_app()
    app.deployments._apps = object()  # type: ignore[assignment]
    project = app.project()
    before = outcome(lambda: app.deployments.create(project, body, ADMIN))
    after = outcome(
        lambda: app.deployments.create(project, DeploymentRequest.from_json(body).for_service(), ADMIN)
    )
    assert after == before, body


GOOD_BODIES: dict[type[RequestBody], dict[str, Any]] = {
    ProjectRequest: {"name": "site"},
    TokenRequest: {"name": "ci", "project": "site"},
    PromoteRequest: {"deploymentId": "dpl_000000000000"},
    RollbackRequest: {"deploymentId": "dpl_000000000000"},
    EnvRequest: {"key": "A", "value": "x", "secret": True},
    FsckRequest: {"repair": True},
    DomainRequest: {"name": "www.example.com"},
}


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_generated_bodies_have_the_same_outcome(data: st.DataObject) -> None:
    model = data.draw(st.sampled_from(sorted(GOOD_BODIES, key=lambda m: m.__name__)))
    body = data.draw(mutated(GOOD_BODIES[model]))
    before = outcome(lambda: checked_as_before(model, body))
    after = outcome(
        lambda: checked_as_before(model, model.from_json(body).model_dump(by_alias=True, exclude_unset=True))
    )
    assert after == before, body


# -- what serialize.py emits is what the answer models name --------------------------------------------------
def test_serialized_answers_fit_their_models() -> None:
    """A key added to api/serialize.py without its model would be refused (500) when the route answers."""
    settings_ = Settings(data_dir=Path("/nonexistent"))
    urls = UrlService(settings_.public_url, settings_.base_domain, None)
    project = Project("prj_1", "site", 1.0, "dpl_aaaaaaaaaaaa", pinned=True)
    static = Deployment("dpl_aaaaaaaaaaaa", "prj_1", DeploymentStatus.READY, Target.PRODUCTION, 1.0, 1, 3)
    app = Deployment(
        "dpl_bbbbbbbbbbbb", "prj_1", DeploymentStatus.ERROR, Target.PREVIEW, 2.0, 2, 9,
        meta={"k": float("nan")}, error="boom", app=AppConfig(python="3.12", static_dir="public"),
    )  # fmt: skip
    for deployment, damage in ((static, None), (app, "blob ab is missing")):
        answer = serialize.deployment_json(deployment, project, settings_, urls, damage)
        assert (
            schemas.DeploymentInfo.model_validate(answer).model_dump(by_alias=True, exclude_unset=True)
            == answer
        )
    assert "metaOmitted" in serialize.deployment_json(app, project, settings_, urls)
    for model, answer in (
        (schemas.ProjectInfo, serialize.project_json(project, urls)),
        (schemas.TokenInfo, serialize.token_json(Token("tok_1", "ci", "prj_1", 1.0), project)),
        (schemas.TokenInfo, serialize.token_json(Token("tok_2", "admin", None, 1.0, last_used_at=2.0), None)),
        (
            schemas.AliasMoveInfo,
            serialize.move_json(AliasMove(1, "prj_1", None, "dpl_a", MoveReason.DEPLOY, "x", 1.0)),
        ),
        (EnvVarInfo, serialize.env_json(EnvVar("A", "x", True, 1.0))),
    ):
        assert model.model_validate(answer).model_dump(by_alias=True, exclude_unset=True) == answer
