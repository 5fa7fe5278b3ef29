"""Calling the control-plane Lambda's handler in this process as Lambda would: function URL events for the
API, EventBridge's "Scheduled Event" for a background round, on a stack bootstrapped on the moto server."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from anchor_deploy.runtime import lambda_control
from tests.aws_support import MotoServer
from tests.e2e.aws_platform import CACHE_POLICY, bootstrap
from tests.lambda_emulator import function_url_event

ADMIN = "lc-admin-" + "x" * 24
RULE = "arn:aws:events:us-east-1:123456789012:rule/anchor-control-schedule"


class Context:
    """What the Lambda runtime passes as the context (the part the handler reads)."""

    function_name = "anchor-control"
    aws_request_id = "test-request"

    def __init__(self, millis: int = 120_000) -> None:
        self._until = time.monotonic() + millis / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._until - time.monotonic()) * 1000)


def scheduled_event() -> dict[str, Any]:
    """EventBridge's event for a schedule rule's target."""
    return {
        "version": "0",
        "id": secrets.token_hex(8),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-30T03:00:00Z",
        "region": "us-east-1",
        "resources": [RULE],
        "detail": {},
    }


@contextmanager
def control_plane_env(aws: MotoServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bootstrapped stack and the control plane's environment for it; the stack's name."""
    name = "lc-" + secrets.token_hex(3)
    bootstrap(aws, name)
    for key in ("ANCHOR_AWS_INVOKE", "ANCHOR_PIP_ARGS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ANCHOR_PROVIDER", "aws")
    monkeypatch.setenv("ANCHOR_AWS_STACK", name)
    monkeypatch.setenv("ANCHOR_ADMIN_TOKEN", ADMIN)
    monkeypatch.setenv("ANCHOR_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ANCHOR_AWS_CACHE_POLICY", CACHE_POLICY)
    monkeypatch.setattr(lambda_control, "_state", {})  # a cold start for each test
    yield name


def call(method: str, path: str, body: Any = None, token: str | None = ADMIN) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"} if body is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    raw = json.dumps(body).encode() if body is not None else None
    event = function_url_event(method=method, path=path, headers=headers, body=raw)
    answer = lambda_control.handler(event, Context())
    text = answer.get("body") or ""
    data = base64.b64decode(text) if answer.get("isBase64Encoded") else text.encode()
    assert answer["headers"].get("content-type", "").startswith("application/json"), answer
    return int(answer["statusCode"]), json.loads(data) if data else {}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [{"path": p, "sha256": sha(b), "size": len(b), "mode": 0o644} for p, b in files.items()]


def queue_deployment(project: str, files: dict[str, bytes], target: str = "production") -> dict[str, Any]:
    """The deploy protocol through function URL events, blobs PUT straight to S3's presigned URLs."""
    body = {"files": manifest(files), "target": target}
    status, answer = call("POST", f"/v1/projects/{project}/deployments", body)
    assert status == 409 and answer["error"]["code"] == "missing_files", answer
    by_digest = {sha(b): b for b in files.values()}
    uploads = answer["error"]["uploads"]
    missing = answer["error"]["missing"]
    assert set(missing) <= set(by_digest) and sorted(u["sha256"] for u in uploads) == sorted(missing)
    for upload in uploads:
        assert upload["method"] == "PUT" and upload["url"].startswith("http://127.0.0.1:")
        sent = httpx.put(
            upload["url"], content=by_digest[upload["sha256"]], headers=upload["headers"], timeout=10
        )
        assert sent.status_code == 200, sent.text
    status, created = call("POST", f"/v1/projects/{project}/deployments", body)
    assert status == 201, created
    assert created["status"] == "QUEUED"
    return created


def make_project(name: str) -> dict[str, Any]:
    status, project = call("POST", "/v1/projects", {"name": name})
    assert status == 201, project
    return project


def deployment(deployment_id: str) -> dict[str, Any]:
    status, found = call("GET", f"/v1/deployments/{deployment_id}")
    assert status == 200, found
    return found


def function_of(project_id: str) -> str:
    names = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
    return str(next(n for n in names if n.endswith(project_id)))


def versions_of(project_id: str) -> dict[str, str]:
    """Deployment id -> published version of the project's function (moto's listing)."""
    lam = boto3.client("lambda")
    listed = lam.list_versions_by_function(FunctionName=function_of(project_id))["Versions"]
    return {str(v["Description"]): str(v["Version"]) for v in listed if v["Version"] != "$LATEST"}


def build_lines(deployment_id: str) -> list[str]:
    status, answer = call("GET", f"/v1/deployments/{deployment_id}/logs")
    assert status == 200, answer
    return [line["text"] for line in answer["lines"]]


def aliases_of(project_id: str) -> dict[str, str]:
    listed = boto3.client("lambda").list_aliases(FunctionName=function_of(project_id))["Aliases"]
    return {str(a["Name"]): str(a["FunctionVersion"]) for a in listed}
