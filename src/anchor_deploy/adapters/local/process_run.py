"""Running build steps in the sandbox: argument lists, own process group and PID namespace, deadline,
memory and process limits."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anchor_deploy.adapters.local.sandbox import JobLimits, Mount, Network, Sandbox, SandboxJob
from anchor_deploy.model.errors import BuildFailed, SandboxUnavailable
from anchor_deploy.ports.runtime import BuildLimits


@dataclass(frozen=True)
class BuildSandbox:
    """Where build steps run: the sandbox, what every step may open, and how many processes it may have."""

    sandbox: Sandbox
    max_processes: int = 256
    open_files: int = 1024
    uid_base: int = 1_000_000_000
    extra_mounts: tuple[Mount, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Interpreter:
    """An operator's Python as builds use it."""

    executable: str  # the base interpreter (not a virtual environment's), which builds run directly
    version: str  # major.minor.micro
    prefix: Path  # its installation, mounted read-only into the sandbox


def probe_interpreter(exe: str) -> Interpreter:
    """Ask ``exe`` (the platform's own Python, run outside the sandbox) what it is and where it lives."""
    script = (
        "import os, sys; print('%d.%d.%d' % sys.version_info[:3]); "
        "print(os.path.realpath(getattr(sys, '_base_executable', '') or sys.executable)); "
        "print(sys.base_prefix)"
    )
    try:
        lines = subprocess.run(
            [exe, "-c", script], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split("\n")
        return Interpreter(lines[1].strip(), lines[0].strip(), Path(lines[2].strip()))
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        raise BuildFailed(f"cannot run Python {exe}: {exc}") from exc


def run_step(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: BuildLimits,
    log: Callable[[str], None],
    what: str,
    box: BuildSandbox,
    mounts: tuple[Mount, ...] = (),
) -> None:
    """Run one build step, streaming its output lines to ``log``. Raises BuildFailed on a non-zero exit or
    when the build's deadline passes (the whole process group is killed)."""
    remaining = limits.deadline - time.monotonic()
    if remaining <= 0:
        raise BuildFailed(f"build timed out before {what}")
    job = SandboxJob(
        name=f"build-{secrets.token_hex(6)}",
        argv=list(argv),
        cwd=cwd,
        env=env,
        limits=JobLimits(limits.memory_bytes, box.max_processes, box.open_files),
        uid=None if limits.tenant is None else box.uid_base + limits.tenant,
        mounts=(*box.extra_mounts, *mounts),
        network=Network.HOST,  # pip needs the package index
        tmp_bytes=2 * 1024**3,
    )
    try:
        proc = box.sandbox.popen(job)
    except SandboxUnavailable as exc:
        raise BuildFailed(f"{exc}; set ANCHOR_APP_SANDBOX=off to build apps unsandboxed") from exc
    try:
        _wait(proc, remaining, log, what, limits.canceled)
    finally:
        box.sandbox.release(job.name)


_CANCEL_POLL = 0.5  # seconds between two looks at whether the build was canceled


def _wait(
    proc: subprocess.Popen[bytes],
    remaining: float,
    log: Callable[[str], None],
    what: str,
    canceled: Callable[[], bool],
) -> None:
    assert proc.stdout is not None
    tail: list[str] = []

    def pump() -> None:
        # In bounded chunks, lines cut at LINE_MAX: a step printing without newlines costs no memory.
        from anchor_deploy.adapters.local.runtime_log import line_text, read_lines

        assert proc.stdout is not None
        for batch in read_lines(proc.stdout):
            for line in map(line_text, batch):
                tail.append(line)
                log(line)
            del tail[:-20]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    end = time.monotonic() + remaining
    while True:
        try:
            code = proc.wait(timeout=max(0.0, min(_CANCEL_POLL, end - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            stop = "build canceled" if canceled() else None
            if stop is None and time.monotonic() >= end:
                stop = "build timed out"
            if stop is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            reader.join(timeout=5)
            raise BuildFailed(f"{stop} during {what}; stopped") from None
    reader.join(timeout=5)
    if code != 0:
        cause = next((line for line in reversed(tail) if line.strip()), "no output")
        raise BuildFailed(f"{what} failed (exit {code}): {cause}")
