"""The EnvironmentBuilder port on venv + pip: one virtual environment per dependency set, reused."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from anchor_deploy.adapters.local.process_run import BuildSandbox, Interpreter, probe_interpreter, run_step
from anchor_deploy.adapters.local.sandbox import Mount
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.ports.runtime import BuildLimits

COMPLETE = ".anchor-complete"


def runtime_requirements() -> list[str]:
    """What every app environment gets besides its own requirements: the worker server."""
    return [f"uvicorn=={version('uvicorn')}"]


SPEED_UPS = ("httptools", "uvloop")  # uvicorn's fast HTTP parser and event loop: optional, see _add_speed_ups


def speed_up_requirements() -> list[str]:
    """The speed-ups at the platform's own versions (those it has: it may run without them itself)."""
    found = []
    for name in SPEED_UPS:
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{name}=={version(name)}")
    return found


class VenvBuilder:
    def __init__(
        self,
        root: Path,
        box: BuildSandbox,
        pip_args: Sequence[str] = (),
        default_python: str = sys.executable,
    ) -> None:
        self.root = root
        self._box = box
        self._pip_args = list(pip_args)
        self._default_python = default_python
        self._locks: dict[str, threading.Lock] = {}
        self._versions: dict[str, Interpreter] = {}
        self._guard = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def _python(self, wanted: str | None) -> Interpreter:
        """The operator's interpreter (run outside the sandbox: it is the platform's, not user code)."""
        exe = self._default_python if wanted is None else shutil.which(f"python{wanted}")
        if exe is None:
            raise BuildFailed(f"Python {wanted} is not installed on this machine")
        if exe in self._versions:
            return self._versions[exe]
        found = self._versions[exe] = probe_interpreter(exe)
        return found

    def key(self, requirements: bytes, python_version: str) -> str:
        material = "\0".join(
            [python_version, *runtime_requirements(), *speed_up_requirements(), *self._pip_args]
        ).encode()
        return hashlib.sha256(material + b"\0" + requirements).hexdigest()[:24]

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def ensure(
        self, requirements: bytes, python: str | None, limits: BuildLimits, log: Callable[[str], None]
    ) -> str:
        """The environment's directory, as the reference the local runtime turns back into a path."""
        found = self._python(python)
        python_version = found.version
        key = self.key(requirements, python_version)
        env_dir = self.root / key
        with self._lock(key):
            if (env_dir / COMPLETE).exists():
                log(
                    f"reusing environment {key} (Python {python_version}, same dependencies): "
                    "nothing to install"
                )
                return str(env_dir)
            shutil.rmtree(env_dir, ignore_errors=True)  # a half-made one from a crash or a failed build
            log(f"creating environment {key} with Python {python_version}")
            try:
                self._create(found, env_dir, requirements, limits, log)
                (env_dir / COMPLETE).write_text(key)
            except OSError as exc:  # the disk, not the dependencies: the port fails with BuildFailed
                shutil.rmtree(env_dir, ignore_errors=True)
                raise BuildFailed(f"could not create environment {key}: {exc.strerror or exc}") from exc
            except BaseException:
                shutil.rmtree(env_dir, ignore_errors=True)
                raise
            return str(env_dir)

    def _create(
        self,
        python: Interpreter,
        env_dir: Path,
        requirements: bytes,
        limits: BuildLimits,
        log: Callable[[str], None],
    ) -> None:
        base_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "PIP_NO_INPUT": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        # The build sees the interpreter, its own environment (writable) and nothing else of the platform.
        uid = None if limits.tenant is None else self._box.uid_base + limits.tenant
        self._box.sandbox.prepare_owned(env_dir, uid)
        os.chmod(env_dir, 0o755)  # noqa: S103 (workers of other uids read a shared environment)
        mounts = (Mount(python.prefix), Mount(env_dir, writable=True))
        step = functools.partial(
            run_step, cwd=env_dir, env=base_env, limits=limits, log=log, box=self._box, mounts=mounts
        )
        step([python.executable, "-m", "venv", str(env_dir)], what="creating the virtual environment")
        req_file = env_dir / "anchor-requirements.txt"
        req_file.write_bytes(requirements)
        pip_base = [
            str(env_dir / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            *self._pip_args,
        ]
        pip = [*pip_base, *runtime_requirements(), "-r", str(req_file)]
        log("$ pip install " + " ".join([*runtime_requirements(), "-r", "requirements.txt"]))
        step(pip, what="pip install")
        _add_speed_ups(env_dir, pip_base, step, limits, log)

    def locate(self, requirements: bytes, python: str | None) -> str | None:
        env_dir = self.root / self.key(requirements, self._python(python).version)
        return str(env_dir) if (env_dir / COMPLETE).exists() else None

    def collect(self, keep: set[str]) -> int:
        removed = 0
        for env_dir in list(self.root.iterdir()):
            if env_dir.is_dir() and str(env_dir) not in keep:
                self.remove(env_dir.name)
                removed += 1
        return removed

    def present(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if (p / COMPLETE).exists()]

    def remove(self, key: str) -> None:
        with self._lock(key):
            shutil.rmtree(self.root / key, ignore_errors=True)


def _add_speed_ups(
    env_dir: Path,
    pip: list[str],
    step: Callable[..., None],
    limits: BuildLimits,
    log: Callable[[str], None],
) -> None:
    """Install httptools and uvloop, in the same sandbox, after the app's own requirements and never over
    them: one the app installed (at any version) is left as it is. Optional: if pip cannot install them (no
    wheel for this Python, no compiler), the build goes on and the worker runs on h11 and asyncio (the
    worker's boot says so in its log, and falls back too if one installed here does not import)."""
    installed = {p.name.split("-")[0].lower() for p in env_dir.glob("lib/python*/site-packages/*.dist-info")}
    wanted = [r for r in speed_up_requirements() if r.split("==")[0] not in installed]
    if not wanted:
        return
    log("$ pip install " + " ".join(wanted) + "  (optional: faster HTTP parsing and event loop)")
    try:
        step([*pip, *wanted], what="pip install (optional speed-ups)")
    except BuildFailed as exc:
        if limits.canceled() or time.monotonic() >= limits.deadline:
            raise  # the build itself is over, not just this step
        log(f"the optional speed-ups did not install ({exc}); the app will run on h11 and asyncio")
