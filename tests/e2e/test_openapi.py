"""The published OpenAPI document against a real `anchor up`: schemathesis generates requests from
/v1/openapi.json (valid and invalid ones) for every operation, once with the admin token and once with a
token limited to one project, and every answer must be no 5xx, with a documented status, content type and
body; a request the document rules out is refused with a 4xx.

Path parameters are random (mostly answering 404 or 422) or, in a third of the cases, the project,
deployment and custom domain that exist, so the success answers are checked too. The fixtures stay intact
whatever is generated: a DELETE is never given them (its parameters are random), and the project token's
id (tok_ and 16 random hex digits) is never guessed by DELETE /v1/tokens/{token_id}.

Domain checks talk to a resolver port on loopback where nothing answers: nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st

from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy
from tests.ports import free_port

PROJECT = "openapi-check"  # unlike anything the document suggests, so no generated case names it
DOMAIN = "www.openapi-check.com"
EXAMPLES_PER_OPERATION = 50
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]

# POST /v1/blob-batches takes a tar archive: sent as the bytes generated (rarely an archive: a documented
# 4xx).
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")


@dataclass
class World:
    anchor: AnchorProcess
    project_token: str
    deployment_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    dead_resolver = f"127.0.0.1:{free_port()}"
    data = tmp_path_factory.mktemp("openapi") / "data"
    anchor = AnchorProcess(data, extra_env={"ANCHOR_DNS_RESOLVERS": dead_resolver}).start()
    try:
        with anchor.api() as api:
            ensure_project(api, PROJECT)
            deployment = upload_and_deploy(api, PROJECT, {"index.html": b"<h1>described</h1>"})
            created = api.post("/v1/tokens", json={"name": "openapi-project", "project": PROJECT})
            assert created.status_code == 201, created.text
            added = api.post(f"/v1/projects/{PROJECT}/domains", json={"name": DOMAIN})
            assert added.status_code == 201, added.text
        yield World(anchor, created.json()["token"], deployment["id"])
    finally:
        anchor.stop()


def test_the_document_and_the_docs_page_need_no_token(world: World, tmp_path: Path) -> None:
    api_url = world.anchor.api_url
    document = httpx.get(f"{api_url}/v1/openapi.json", timeout=10)
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "an admin token, or a token limited to one project",
        }
    }
    page = httpx.get(f"{api_url}/v1/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Everything the page loads comes from the API itself: it works with no internet.
    assert "://" not in page.text.replace("http://www.w3.org", "")
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert f"/v1/docs/assets/{asset}" in page.text
        served = httpx.get(f"{api_url}/v1/docs/assets/{asset}", timeout=10)
        assert served.status_code == 200 and len(served.content) > 500, asset
    assert b"SwaggerUIBundle" in httpx.get(f"{api_url}/v1/docs/assets/swagger-ui-bundle.js").content
    missing = httpx.get(f"{api_url}/v1/docs/assets/..%2Fsecret", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_log_position_past_sqlite_integers_is_refused(world: World) -> None:
    """Found by this module's generated cases: a 2^64 `after` reached SQLite and answered 500."""
    with world.anchor.api() as api:
        for after in (2**63, 2**64, 10**40):
            for follow in ("false", "true"):
                url = f"/v1/deployments/{world.deployment_id}/logs?after={after}&follow={follow}"
                response = api.get(url)
                assert response.status_code == 422, response.text
                assert response.json()["error"]["code"] == "invalid_input"
        last = api.get(f"/v1/deployments/{world.deployment_id}/logs?after={2**63 - 1}")
        assert last.status_code == 200 and last.json()["lines"] == []


def cases(operation: Any, world: World) -> st.SearchStrategy[Any]:
    """Valid and invalid cases with random parameters, and valid ones about the real project."""
    strategies = [
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    ]
    names = {p.name for p in operation.path_parameters}
    if operation.method.upper() != "DELETE":  # the fixtures stay
        fixed = {"project": PROJECT, "deployment_id": world.deployment_id, "name": DOMAIN}
        known = {name: fixed[name] for name in names if name in fixed}
        if known:
            positive = schemathesis.GenerationMode.POSITIVE
            strategies.append(operation.as_strategy(positive, path_parameters=known))
    return st.one_of(strategies)


def failures_of(world: World, token: str) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{world.anchor.api_url}/v1/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases on every run: a failure here is reproducible
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=cases(operation, world))
        def run(case: Any) -> None:
            case.call_and_validate(base_url=world.anchor.api_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Exception as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}:\n{exc}")
    return failures


@pytest.mark.parametrize("role", ["admin", "project"])
def test_every_answer_matches_the_document(world: World, role: str) -> None:
    token = world.anchor.token if role == "admin" else world.project_token
    failures = failures_of(world, token)
    assert not failures, "\n\n".join(failures)
    # The fixtures are intact: the project, its deployment and the project token still work.
    with world.anchor.api(world.project_token) as api:
        assert api.get(f"/v1/deployments/{world.deployment_id}").status_code == 200
