"""An app's dependencies built for Lambda's platform: manylinux x86_64 wheels for its Python, plus mangum.

    pip install --platform manylinux2014_x86_64 --only-binary=:all: --python-version 3.12 \\
        --implementation cp --target <dir> mangum==<version> -r requirements.txt

pip is user code's door (a requirement names what gets installed), so it runs only in the build sandbox,
as app builds do (BuildSandbox.run_step: the project's uid, the build's deadline and memory, the operator's
ANCHOR_PIP_ARGS index options). ``--only-binary`` means no package's build code runs at all, and wheels for
another platform are what Lambda needs anyway. The requirements are checked first with the same rules as
local builds. A folder is made once per (requirements, Python, platform, pip options) and reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

from anchor_deploy.adapters.aws.lambda_package import lambda_python
from anchor_deploy.adapters.local.process_run import BuildSandbox, Interpreter, probe_interpreter, run_step
from anchor_deploy.adapters.local.sandbox import Mount
from anchor_deploy.model.apps import AppConfig, validate_requirements
from anchor_deploy.model.errors import BuildFailed, InvalidInput
from anchor_deploy.ports.runtime import BuildLimits

PLATFORM = "manylinux2014_x86_64"
COMPLETE = ".anchor-complete"
TARGET = "python"  # <cache>/<key>/python: what goes into the zip under anchor_deps/
TOOL = ".pip-tool"  # a virtual environment of the operator's Python that only runs pip


def runtime_requirements() -> list[str]:
    """What every Lambda app gets besides its own requirements: the ASGI adapter."""
    return [f"mangum=={version('mangum')}"]


class LambdaDependencies:
    """Dependency folders for Lambda packages, one per dependency set, built in the sandbox and reused."""

    def __init__(
        self,
        root: Path,
        box: BuildSandbox,
        pip_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.root = root
        self._box = box
        self._pip_args = list(pip_args)
        self._python = python
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._found: Interpreter | None = None
        root.mkdir(parents=True, exist_ok=True)

    def key(self, requirements: bytes, python_version: str) -> str:
        material = "\0".join([python_version, PLATFORM, *runtime_requirements(), *self._pip_args]).encode()
        return hashlib.sha256(material + b"\0" + requirements).hexdigest()[:24]

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def locate(self, requirements: bytes, app: AppConfig) -> Path | None:
        folder = self.root / self.key(requirements, lambda_python(app))
        return folder / TARGET if (folder / COMPLETE).exists() else None

    def ensure(
        self, requirements: bytes, app: AppConfig, limits: BuildLimits, log: Callable[[str], None]
    ) -> Path:
        """The folder of the app's dependencies for its Lambda Python (``anchor_deps/`` of the zip).
        Raises InvalidInput for requirements the rules refuse, BuildFailed when pip fails."""
        try:
            validate_requirements(requirements.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInput("requirements must be UTF-8 text") from exc
        python_version = lambda_python(app)
        key = self.key(requirements, python_version)
        folder = self.root / key
        with self._lock(key):
            if (folder / COMPLETE).exists():
                log(
                    f"reusing Lambda dependencies {key} (Python {python_version}, {PLATFORM}): "
                    "nothing to install"
                )
                return folder / TARGET
            shutil.rmtree(folder, ignore_errors=True)  # half-made by a crash or a failed build
            log(f"installing Lambda dependencies {key} for Python {python_version} on {PLATFORM}")
            try:
                self._install(folder, requirements, python_version, limits, log)
            except BuildFailed:
                shutil.rmtree(folder, ignore_errors=True)
                log(
                    f"Lambda builds install wheels only ({PLATFORM}, CPython {python_version}): a package "
                    "published only as source, or without a wheel for that platform, cannot be installed"
                )
                raise
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            (folder / COMPLETE).write_text(key)
            return folder / TARGET

    def _base_env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PIP_NO_INPUT": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def _install(
        self,
        folder: Path,
        requirements: bytes,
        python_version: str,
        limits: BuildLimits,
        log: Callable[[str], None],
    ) -> None:
        tool = self._tool(log)
        python = self._interpreter()
        uid = None if limits.tenant is None else self._box.uid_base + limits.tenant
        self._box.sandbox.prepare_owned(folder, uid)
        mounts = (Mount(python.prefix), Mount(tool), Mount(folder, writable=True))
        req_file = folder / "anchor-requirements.txt"
        req_file.write_bytes(requirements)
        os.chmod(req_file, 0o644)
        pip = [
            str(tool / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "--no-compile",
            "--platform",
            PLATFORM,
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--target",
            str(folder / TARGET),
            *self._pip_args,
            *runtime_requirements(),
            "-r",
            str(req_file),
        ]
        log(
            f"$ pip install --platform {PLATFORM} --python-version {python_version} --only-binary=:all: "
            + " ".join([*runtime_requirements(), "-r", "requirements.txt"])
        )
        run_step(
            pip,
            cwd=folder,
            env=self._base_env(),
            limits=limits,
            log=log,
            what="pip install",
            box=self._box,
            mounts=mounts,
        )

    def _interpreter(self) -> Interpreter:
        """The operator's interpreter and its installation (mounted read-only into the sandbox)."""
        if self._found is None:
            self._found = probe_interpreter(self._python)
        return self._found

    def _tool(self, log: Callable[[str], None]) -> Path:
        """A virtual environment of the operator's Python with its bundled pip, made once by the platform
        (no user code runs: ``venv`` installs pip from the interpreter's own wheel); read-only to builds."""
        tool = self.root / TOOL
        with self._lock(TOOL):
            if (tool / COMPLETE).exists():
                return tool
            shutil.rmtree(tool, ignore_errors=True)
            log("creating the pip environment for Lambda builds")
            try:
                subprocess.run(
                    [self._interpreter().executable, "-m", "venv", str(tool)],
                    capture_output=True,
                    timeout=300,
                    check=True,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                shutil.rmtree(tool, ignore_errors=True)
                raise BuildFailed(f"cannot create the pip environment for Lambda builds: {exc}") from exc
            os.chmod(tool, 0o755)  # noqa: S103 (every project's build runs its pip)
            (tool / COMPLETE).write_text("pip")
            return tool

    def collect(self, keep: set[Path]) -> int:
        """Delete the dependency folders not in ``keep`` (paths as ``ensure`` returned them)."""
        kept = {path.parent for path in keep}
        removed = 0
        for folder in list(self.root.iterdir()):
            if folder.is_dir() and folder.name != TOOL and folder not in kept:
                with self._lock(folder.name):
                    shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed
