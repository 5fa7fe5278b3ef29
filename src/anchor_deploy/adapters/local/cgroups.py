"""Per-sandbox control groups: a memory and a process-count limit that hold for every descendant.

Where the machine offers writable cgroups (v2 with the memory and pids controllers delegated to us, or the
v1 ``memory`` and ``pids`` hierarchies), each sandboxed job gets its own group below the platform's:
``<platform's group>/anchor-<tag>/<job name>``. The child joins it before it executes anything, so every
process it ever starts is counted. Where they are not offered, ``CgroupLimits.detect`` returns a disabled
instance and the sandbox falls back to rlimits (``RLIMIT_AS``, ``RLIMIT_NPROC``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class _Controller:
    """One place to create groups in, and the file names of its limits there."""

    base: Path  # the group below which job groups are made
    memory_file: str | None
    pids_file: str | None


class CgroupLimits:
    def __init__(self, controllers: tuple[_Controller, ...], description: str) -> None:
        self._controllers = controllers
        self.description = description

    @property
    def enabled(self) -> bool:
        return bool(self._controllers)

    @property
    def limits_memory(self) -> bool:
        return any(c.memory_file for c in self._controllers)

    @property
    def limits_pids(self) -> bool:
        return any(c.pids_file for c in self._controllers)

    @classmethod
    def disabled(cls, why: str) -> CgroupLimits:
        return cls((), why)

    @classmethod
    def detect(
        cls, tag: str, root: Path = _ROOT, self_cgroup: Path = Path("/proc/self/cgroup")
    ) -> CgroupLimits:
        """Groups under this process's own groups for the controllers we can write to."""
        try:
            lines = self_cgroup.read_text().splitlines()
        except OSError as exc:
            return cls.disabled(f"cannot read {self_cgroup}: {exc.strerror}")
        own: dict[str, str] = {}
        for line in lines:
            _id, _, rest = line.partition(":")
            names, _, path = rest.partition(":")
            for name in names.split(",") if names else [""]:
                own[name] = path
        found: list[_Controller] = []
        v2 = cls._v2(root, own.get(""), tag)
        if v2 is not None:
            found.append(v2)
        else:
            for name, limit in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
                controller = cls._v1(root, name, own.get(name), tag, limit)
                if controller is not None:
                    found.append(controller)
        if not found:
            return cls.disabled("no writable memory or pids cgroup controller")
        kinds = [("memory" if c.memory_file else "") + ("pids" if c.pids_file else "") for c in found]
        return cls(tuple(found), "cgroups (" + ", ".join(k for k in kinds if k) + ")")

    @staticmethod
    def _v1(root: Path, name: str, own: str | None, tag: str, limit: str) -> _Controller | None:
        # The root group has no limit files of its own; its children do.
        if own is None or not (root / name / "cgroup.procs").exists():
            return None
        base = root / name / own.lstrip("/") / f"anchor-{tag}"
        try:
            base.mkdir(exist_ok=True)
        except OSError:
            return None
        is_memory = name == "memory"
        return _Controller(base, limit if is_memory else None, None if is_memory else limit)

    @staticmethod
    def _v2(root: Path, own: str | None, tag: str) -> _Controller | None:
        controllers = root / "cgroup.controllers"
        if own is None or not controllers.exists():
            return None
        # A group with processes in it cannot hand controllers to its children ("no internal processes"),
        # so the platform's groups sit in a sibling of its own group, which the delegation must allow.
        parent = root / own.lstrip("/")
        try:
            available = (parent / "cgroup.controllers").read_text().split()
            if not {"memory", "pids"} <= set(available):
                return None
            base = parent / f"anchor-{tag}"
            base.mkdir(exist_ok=True)
            (base / "cgroup.subtree_control").write_text("+memory +pids")
        except OSError:
            return None
        return _Controller(base, "memory.max", "pids.max")

    # -- groups for one job -------------------------------------------------------------------------
    def create(self, name: str, memory_bytes: int, max_processes: int) -> list[Path]:
        """Make (or reset) the job's groups with their limits; return the cgroup.procs files to join."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"bad cgroup name {name!r}")
        procs: list[Path] = []
        for controller in self._controllers:
            group = controller.base / name
            try:
                group.mkdir(exist_ok=True)
                if controller.memory_file:
                    (group / controller.memory_file).write_text(str(memory_bytes))
                    swap = group / (
                        "memory.swap.max" if controller.pids_file else "memory.memsw.limit_in_bytes"
                    )
                    with contextlib.suppress(OSError):
                        swap.write_text("0" if controller.pids_file else str(memory_bytes))
                if controller.pids_file:
                    (group / controller.pids_file).write_text(str(max_processes))
            except OSError as exc:
                log.warning("cannot set up cgroup %s: %s", group, exc)
                continue
            procs.append(group / "cgroup.procs")
        return procs

    def remove(self, name: str, wait: float = 2.0) -> None:
        """Delete the job's groups once their processes are gone (killing any left behind)."""
        deadline = time.monotonic() + wait
        for controller in self._controllers:
            group = controller.base / name
            while group.exists():
                try:
                    pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, 9)
                try:
                    group.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        log.warning("cgroup %s still has processes", group)
                        break
                    time.sleep(0.02)

    def sweep(self) -> int:
        """Delete the groups a previous run of this platform left (killing what is still in them)."""
        names = {g.name for c in self._controllers if c.base.exists() for g in c.base.iterdir() if g.is_dir()}
        for name in names:
            self.remove(name)
        return len(names)

    def close(self) -> None:
        """At shutdown: delete every group of this platform, its own folder included."""
        self.sweep()
        for controller in self._controllers:
            with contextlib.suppress(OSError):
                controller.base.rmdir()

    def oom_killed(self, name: str) -> bool:
        """Whether the kernel killed a process of the job's group for going past its memory limit."""
        for controller in self._controllers:
            if controller.memory_file:
                for file in ("memory.events", "memory.oom_control"):
                    with contextlib.suppress(OSError, ValueError):
                        for line in (controller.base / name / file).read_text().splitlines():
                            key, _, value = line.partition(" ")
                            if key == "oom_kill" and int(value) > 0:
                                return True
        return False

    def memory_peak(self, name: str) -> int | None:
        for controller in self._controllers:
            if controller.memory_file:
                for file in ("memory.peak", "memory.max_usage_in_bytes"):
                    with contextlib.suppress(OSError, ValueError):
                        return int((controller.base / name / file).read_text())
        return None


def join(procs: list[Path]) -> None:
    """Runs in the child before exec: move this process into the job's groups."""
    pid = str(os.getpid())
    for path in procs:
        with open(path, "w") as out:
            out.write(pid)
