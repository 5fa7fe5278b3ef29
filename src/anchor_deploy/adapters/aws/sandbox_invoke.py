"""Running a published Lambda package on this machine, in the build sandbox: the health check of an app
when the platform runs against an emulator that cannot run code (moto), ANCHOR_AWS_INVOKE=sandbox.

The package's zip is extracted into a task root owned by the project's uid; a fresh interpreter started with
``-S`` sees the task root, then only what Lambda's Python runtime provides (boto3 and its dependencies,
mounted read-only), and gets the version's own environment plus the AWS endpoint variables. Never the
platform's credentials: the job gets dummy ones, which an emulator accepts and AWS refuses, so this mode
cannot hand the platform's rights to user code (on AWS itself the check is a real Invoke).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from anchor_deploy.adapters.aws.lambda_invoke import InvokeResult, url_event, url_response
from anchor_deploy.adapters.local.process_run import BuildSandbox, run_step
from anchor_deploy.adapters.local.sandbox import Mount
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.ports.runtime import BuildLimits

# What Lambda's Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six")
_PASSED = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
_RUNNER = """
import importlib, json, sys, types
task_root, answer_file, handler_name, event = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[:0] = [task_root]
module_name, _, function = handler_name.rpartition(".")
module = importlib.import_module(module_name)
context = types.SimpleNamespace(function_name="sandboxed", function_version="1", aws_request_id="health",
    memory_limit_in_mb=512, get_remaining_time_in_millis=lambda: 30000)
answer = getattr(module, function)(event, context)
with open(answer_file, "w") as out:
    json.dump(answer, out)
"""


class SandboxInvoker:
    def __init__(self, box: BuildSandbox, scratch: Path) -> None:
        self._box = box
        self._scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)

    def invoke(
        self,
        package: bytes,
        handler: str,
        environment: Mapping[str, str],
        path: str,
        limits: BuildLimits,
        log: Callable[[str], None],
    ) -> InvokeResult:
        work = Path(tempfile.mkdtemp(prefix="invoke-", dir=self._scratch))
        try:
            uid = None if limits.tenant is None else self._box.uid_base + limits.tenant
            task = work / "task"
            self._box.sandbox.prepare_owned(work, uid)
            _extract(package, task)
            if uid is not None and self._box.sandbox.as_root:
                for owned in (work, *work.rglob("*")):
                    os.lchown(owned, uid, uid)  # the job's own files, private to its uid
            layer = Path("/opt/anchor-lambda-runtime")
            mounts = (Mount(Path(sys.base_prefix)), Mount(work, writable=True), *_runtime_mounts(layer))
            env = {
                **{k: v for k, v in os.environ.items() if k in _PASSED or k.startswith("AWS_ENDPOINT_URL_")},
                **environment,
                "AWS_ACCESS_KEY_ID": "sandboxed",
                "AWS_SECRET_ACCESS_KEY": "sandboxed",
                "LAMBDA_TASK_ROOT": str(task),
                "_HANDLER": handler,
                "PYTHONPATH": str(layer),
                "PYTHONDONTWRITEBYTECODE": "1",
                "HOME": "/tmp",
                "LANG": "C.UTF-8",
                "PATH": "/usr/bin:/bin",
            }
            answer = work / "answer.json"
            argv = [_interpreter(), "-S", "-c", _RUNNER, str(task), str(answer), handler]
            argv.append(json.dumps(url_event(path)))
            try:
                run_step(
                    argv,
                    cwd=task,
                    env=env,
                    limits=limits,
                    log=log,
                    what="the health check",
                    box=self._box,
                    mounts=mounts,
                )
            except BuildFailed as exc:
                return InvokeResult(False, None, str(exc))
            return _answer(answer)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _answer(path: Path) -> InvokeResult:
    try:
        return url_response(path.read_text())
    except OSError:
        return InvokeResult(False, None, "the handler gave no function URL answer")


def _interpreter() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable)


def _runtime_mounts(layer: Path) -> list[Mount]:
    """What Lambda's Python runtime provides besides the standard library, each package read-only."""
    mounts = []
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise BuildFailed(
                f"{name} is not installed with the platform: the sandboxed Lambda runtime needs it"
            )
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        mounts.append(Mount(source, layer / source.name))
    return mounts


def _extract(package: bytes, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        for info in archive.infolist():
            target = (root / info.filename).resolve()
            if not target.is_relative_to(root.resolve()):
                raise BuildFailed(f"the package names a path outside its root: {info.filename[:80]!r}")
            archive.extract(info, root)
            os.chmod(target, 0o700 if info.is_dir() or (info.external_attr >> 16) & 0o111 else 0o600)
