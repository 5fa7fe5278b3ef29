"""Lambda dependencies built for real: pip in the bubblewrap build sandbox, offline from the test wheelhouse,
for Lambda's platform (manylinux x86_64 wheels only), with mangum added; then an app packaged with them
runs in the Lambda emulator (which has no mangum of its own)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from anchor_deploy.adapters.aws.lambda_deps import LambdaDependencies
from anchor_deploy.adapters.aws.lambda_package import app_package
from anchor_deploy.adapters.local.process_run import BuildSandbox
from anchor_deploy.adapters.local.sandbox import Mount, Sandbox, SandboxMode
from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.errors import BuildFailed, InvalidInput
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports.runtime import BuildLimits
from tests.e2e.apps_support import wheelhouse
from tests.lambda_emulator import function_url_event, invoke_package

APP = b"""
import markupsafe


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": str(markupsafe.escape("<b>&</b>")).encode()})
"""
TENANT = 41


def _limits() -> BuildLimits:
    return BuildLimits(deadline=time.monotonic() + 240, memory_bytes=2 * 1024**3, tenant=TENANT)


@pytest.fixture
def builder(tmp_path: Path) -> LambdaDependencies:
    sandbox = Sandbox(SandboxMode.BWRAP)
    assert sandbox.probe() is None, sandbox.problem
    houses = wheelhouse()
    if not any(houses.glob("mangum-*.whl")):
        pytest.fail(f"{houses} lacks the mangum wheel; run `make test` to fill it", pytrace=False)
    box = BuildSandbox(sandbox, extra_mounts=(Mount(houses),))
    return LambdaDependencies(tmp_path / "lambda-deps", box, ["--no-index", "--find-links", str(houses)])


@pytest.mark.timeout(300)
def test_dependencies_for_lambda_built_in_the_sandbox(builder: LambdaDependencies) -> None:
    app = AppConfig(entry="app:app", python="3.11")
    log: list[str] = []
    target = builder.ensure(b"markupsafe\n", app, _limits(), log.append)
    assert (target / "mangum" / "__init__.py").is_file(), log
    speedups = sorted(p.name for p in (target / "markupsafe").glob("_speedups*.so"))
    assert speedups and "cpython-311-x86_64-linux-gnu" in speedups[0], (speedups, log)
    assert not list(target.rglob("*.pyc"))
    assert target.stat().st_uid == builder._box.uid_base + TENANT  # built as the project's uid

    again: list[str] = []
    assert builder.ensure(b"markupsafe\n", app, _limits(), again.append) == target
    assert any("nothing to install" in line for line in again), again
    assert builder.locate(b"markupsafe\n", app) == target
    assert builder.locate(b"markupsafe\n", AppConfig(python="3.12")) is None  # another Python, another set

    files = {"app.py": APP, "requirements.txt": b"markupsafe\n"}
    entries = [ManifestFile(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in files.items()]
    by_digest = {hashlib.sha256(d).hexdigest(): d for d in files.values()}
    package = app_package("dpl_deps", entries, by_digest.__getitem__, target, app)
    answer = invoke_package(package.read(), package.handler, {}, function_url_event("GET", "/"))
    assert (answer["statusCode"], answer["body"]) == (200, "&lt;b&gt;&amp;&lt;/b&gt;"), json.dumps(answer)


@pytest.mark.timeout(300)
def test_refused_requirements_and_failed_installs(builder: LambdaDependencies) -> None:
    log: list[str] = []
    with pytest.raises(InvalidInput, match="line 1: pip options are not allowed"):
        builder.ensure(b"--index-url https://evil.example/simple\n", AppConfig(), _limits(), log.append)
    with pytest.raises(InvalidInput, match="local paths"):
        builder.ensure(b"evil-1.0-py3-none-any.whl\n", AppConfig(), _limits(), log.append)
    assert log == [] and sorted(p.name for p in builder.root.iterdir()) == []
    with pytest.raises(BuildFailed):
        builder.ensure(b"no-such-package-anywhere==1.0\n", AppConfig(python="3.11"), _limits(), log.append)
    assert any("no-such-package-anywhere" in line for line in log), log
    assert "Lambda builds install wheels only (manylinux2014_x86_64, CPython 3.11)" in log[-1], log
    # A failed build leaves no folder that a later build could take for complete.
    assert [p.name for p in builder.root.iterdir() if not p.name.startswith(".")] == []
