"""Running build steps as subprocesses: argument lists, own process group, deadline, memory limit."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.ports.runtime import BuildLimits


def _limit_memory(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_step(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: BuildLimits,
    log: Callable[[str], None],
    what: str,
) -> None:
    """Run one build step, streaming its output lines to ``log``. Raises BuildFailed on a non-zero exit or
    when the build's deadline passes (the whole process group is killed)."""
    remaining = limits.deadline - time.monotonic()
    if remaining <= 0:
        raise BuildFailed(f"build timed out before {what}")
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_limit_memory(limits.memory_bytes),
    )
    assert proc.stdout is not None
    tail: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            del tail[:-20]
            log(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(timeout=5)
        raise BuildFailed(f"build timed out during {what}; stopped") from None
    reader.join(timeout=5)
    if code != 0:
        cause = next((line for line in reversed(tail) if line.strip()), "no output")
        raise BuildFailed(f"{what} failed (exit {code}): {cause}")
