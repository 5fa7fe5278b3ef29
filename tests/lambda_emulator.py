"""Runs a Lambda package's handler as Lambda's Python runtime would, in a fresh process on this machine.

The zip is extracted to a temporary task root; a new interpreter started with ``-S`` (no site-packages of
this virtualenv) sees the task root first, then only what the Lambda runtime itself provides (boto3 and
its dependencies, linked into a folder of their own), so a package that forgot a dependency (mangum) fails
here as it would on Lambda. The process gets only the given environment, the runtime's variables
(``LAMBDA_TASK_ROOT``, ``_HANDLER``, ``AWS_LAMBDA_FUNCTION_NAME``) and this process's ``AWS_*`` variables
(the moto server's endpoint and dummy credentials). Module-level code runs at import (the init phase);
the handler is then called once with the event and a small context object, and its answer returned.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from anchor_deploy.adapters.aws.sandbox_invoke import RUNTIME_PACKAGES  # what Lambda's Python provides

FUNCTION_NAME = "anchor-emulated"

_RUNNER = """
import importlib, json, sys, types
task_root, event_file, answer_file, handler_name = sys.argv[1:5]
sys.path[:0] = [task_root]
module_name, _, function = handler_name.rpartition(".")
module = importlib.import_module(module_name.replace("/", "."))
context = types.SimpleNamespace(
    function_name="anchor-emulated", function_version="1", aws_request_id="emulated-request",
    memory_limit_in_mb=512, get_remaining_time_in_millis=lambda: 30000,
)
with open(event_file) as source:
    event = json.load(source)
answer = getattr(module, function)(event, context)
with open(answer_file, "w") as out:
    json.dump(answer, out)
"""


class InvokeFailed(AssertionError):
    """The handler raised or the process died: its output says why."""


@functools.cache
def runtime_layer() -> Path:
    """A folder holding links to the packages the Lambda runtime provides (made once per test run)."""
    layer = Path(tempfile.mkdtemp(prefix="anchor-lambda-runtime-"))
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} is not installed: the emulated Lambda runtime provides it")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (layer / source.name).symlink_to(source)
    return layer


def _extract(package: bytes | Path, root: Path) -> None:
    data = package.read_bytes() if isinstance(package, Path) else package
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            target = root / info.filename
            archive.extract(info, root)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(target, mode)


def invoke_package(
    package: bytes | Path,
    handler: str,
    environment: dict[str, str],
    event: dict[str, Any],
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run ``handler`` of the zip (bytes or a path) in a new process; return the function URL answer."""
    with tempfile.TemporaryDirectory(prefix="anchor-lambda-") as scratch:
        work = Path(scratch)
        task_root = work / "task"
        task_root.mkdir()
        _extract(package, task_root)
        (work / "event.json").write_text(json.dumps(event))
        aws = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
        env = {
            **aws,
            **environment,
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": handler,
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "PYTHONPATH": str(runtime_layer()),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
        }
        argv = [sys.executable, "-S", "-c", _RUNNER, str(task_root), str(work / "event.json")]
        argv += [str(work / "answer.json"), handler]
        done = subprocess.run(argv, cwd=task_root, env=env, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode("utf-8", "replace")
            raise InvokeFailed(f"the handler failed (exit {done.returncode}):\n{output[-4000:]}")
        answer: dict[str, Any] = json.loads((work / "answer.json").read_text())
        return answer


def function_url_event(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    cookies: list[str] | None = None,
) -> dict[str, Any]:
    """An event as a Lambda function URL sends it (payload format 2.0): lowercase header names, repeated
    headers comma-joined, cookies in their own list, a body base64-encoded when it is not text."""
    lowered = {"host": "abc123.lambda-url.us-east-1.on.aws", "user-agent": "curl/8.5.0"}
    lowered.update({name.lower(): value for name, value in (headers or {}).items()})
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc123",
            "domainName": lowered["host"],
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": lowered["user-agent"],
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2026:19:03:58 +0000",
            "timeEpoch": 1773342238000,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(p.partition("=")[::2] for p in query.split("&"))
    if cookies:
        event["cookies"] = cookies
    if body is not None:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event
