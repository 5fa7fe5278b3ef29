"""A canceled build stops its running step at once (run_step asks BuildLimits.canceled while the step runs),
in the real bubblewrap sandbox: the whole process group goes, and the failure says it was canceled."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.process_run import BuildSandbox, run_step
from anchor_deploy.adapters.local.sandbox import Mount, Sandbox, SandboxMode
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.ports.runtime import BuildLimits


def _box() -> BuildSandbox:
    sandbox = Sandbox(SandboxMode.BWRAP)
    assert sandbox.probe() is None, sandbox.problem
    return BuildSandbox(sandbox)


def test_a_canceled_build_stops_its_running_step_and_its_children(tmp_path: Path) -> None:
    flag = threading.Event()
    lines: list[str] = []
    limits = BuildLimits(time.monotonic() + 60, 512 * 1024**2, None, canceled=flag.is_set)
    # The step starts a child that would print after 3 s: it must never get there.
    script = "(sleep 3; echo late) & echo started; sleep 30"
    threading.Timer(0.8, flag.set).start()
    began = time.monotonic()
    with pytest.raises(BuildFailed, match="build canceled during the step; stopped"):
        run_step(
            ["/bin/sh", "-c", script],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            limits=limits,
            log=lines.append,
            what="the step",
            box=_box(),
            mounts=(Mount(tmp_path),),
        )
    took = time.monotonic() - began
    assert 0.8 <= took < 10, took  # stopped within a poll of the cancel, not after the 30 s sleep
    assert lines == ["started"]
    time.sleep(3.5)
    assert lines == ["started"]  # the child went with the step


def test_a_step_that_is_not_canceled_runs_to_its_end(tmp_path: Path) -> None:
    asked = []

    def canceled() -> bool:
        asked.append(1)
        return False

    limits = BuildLimits(time.monotonic() + 60, 512 * 1024**2, None, canceled=canceled)
    lines: list[str] = []
    run_step(
        ["/bin/sh", "-c", "sleep 1.2; echo done"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        limits=limits,
        log=lines.append,
        what="the step",
        box=_box(),
        mounts=(Mount(tmp_path),),
    )
    assert lines == ["done"] and len(asked) >= 2  # asked while it ran, and it finished


def test_the_deadline_still_stops_a_step(tmp_path: Path) -> None:
    limits = BuildLimits(time.monotonic() + 1.0, 512 * 1024**2, None)
    with pytest.raises(BuildFailed, match="build timed out during the step; stopped"):
        run_step(
            ["/bin/sh", "-c", "sleep 30"],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            limits=limits,
            log=lambda _line: None,
            what="the step",
            box=_box(),
            mounts=(Mount(tmp_path),),
        )
