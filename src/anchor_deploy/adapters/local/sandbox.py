"""Running user code (app workers and builds) in a bubblewrap sandbox.

A job sees read-only system directories, the mounts it names (its app copy, its environment, its socket
folder), a private ``/tmp``, its own ``/proc`` and ``/dev``, and nothing else of the disk: not the data dir,
the database, the keys, the admin token or Caddy's admin socket. It runs in its own PID namespace (every
descendant dies with it, ``setsid`` children and double forks included), in a new session, with an
environment that holds only what the job passes. When the platform runs as root, the job switches to an
unprivileged uid of its own (one per project) with no capabilities; otherwise it keeps the platform's uid
inside a user namespace, where the unmounted data dir is out of reach all the same.

Limits: memory and process count through cgroups where the machine offers them
(``adapters/local/cgroups.py``), with ``RLIMIT_AS`` and ``RLIMIT_NPROC`` as the fallback, and
``RLIMIT_NOFILE`` always.
"""

from __future__ import annotations

import ctypes
import enum
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anchor_deploy.adapters.local.cgroups import CgroupLimits, join
from anchor_deploy.model.errors import SandboxUnavailable

_PR_SET_PDEATHSIG = 1
# What of /etc a Python program and pip need: name resolution, TLS roots, users, time zone, linker cache.
_ETC = (
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "protocols",
    "services",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "passwd",
    "group",
    "localtime",
    "timezone",
    "mime.types",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "debian_version",
    "os-release",
    "lsb-release",
    "pip.conf",
    "xdg/pip",
)
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


class SandboxMode(enum.StrEnum):
    BWRAP = "bwrap"
    OFF = "off"


class Network(enum.StrEnum):
    NONE = "none"  # its own network namespace with only loopback: no way in, no way out
    HOST = "host"  # the machine's network: outbound calls work, and so would listening on a port


@dataclass(frozen=True)
class Mount:
    source: Path
    target: Path | None = None  # default: the same path inside
    writable: bool = False

    @property
    def inside(self) -> Path:
        return self.target or self.source


@dataclass(frozen=True)
class JobLimits:
    memory_bytes: int
    max_processes: int
    open_files: int


@dataclass(frozen=True)
class SandboxJob:
    """One command to run sandboxed, described whole (a frozen plan; ``Sandbox.popen`` carries it out)."""

    name: str  # unique among running jobs: names its cgroup
    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    limits: JobLimits
    uid: int | None = None  # the unprivileged uid to run as (when the platform is root)
    mounts: tuple[Mount, ...] = ()
    network: Network = Network.NONE
    tmp_bytes: int = 256 * 1024 * 1024  # its private /tmp (a tmpfs, counted in its memory)


@dataclass
class Sandbox:
    mode: SandboxMode
    cgroups: CgroupLimits = field(default_factory=lambda: CgroupLimits.disabled("not asked for"))
    bwrap: str = "bwrap"
    setpriv: str = "setpriv"
    problem: str | None = None  # why the sandbox cannot run, once probed

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def describe(self) -> str:
        if self.mode is SandboxMode.OFF:
            return "off (ANCHOR_APP_SANDBOX=off: user code runs as the platform)"
        if self.problem:
            return f"unavailable: {self.problem}"
        who = "a uid per project" if self.as_root else "the platform's uid in a user namespace"
        return (
            f"bubblewrap, {who}, limits by {self.cgroups.description if self.cgroups.enabled else 'rlimits'}"
        )

    def probe(self) -> str | None:
        """Check that a sandbox can start here; return the reason when it cannot (kept in ``problem``)."""
        if self.mode is SandboxMode.OFF:
            return None
        self.problem = self._probe()
        return self.problem

    def _probe(self) -> str | None:
        # Absolute paths from here on: a job's own PATH must not decide which sandbox runs it.
        bwrap, setpriv = shutil.which(self.bwrap), shutil.which(self.setpriv)
        if bwrap is None:
            return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
        if self.as_root and setpriv is None:
            return "setpriv (util-linux) is not installed"
        self.bwrap, self.setpriv = bwrap, setpriv or self.setpriv
        job = SandboxJob(
            name="anchor-probe",
            argv=["/bin/sh", "-c", "exit 0"],
            cwd=Path("/"),
            env={"PATH": "/usr/bin:/bin"},
            limits=JobLimits(256 * 1024 * 1024, 16, 64),
            uid=65534 if self.as_root else None,
        )
        try:
            done = subprocess.run(
                self.command(job), env=dict(job.env), capture_output=True, timeout=20, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bwrap cannot start: {exc}"
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            return f"bwrap cannot start a sandbox here ({said[-1] if said else f'exit {done.returncode}'})"
        return None

    # -- building the command -------------------------------------------------------------------------
    def command(self, job: SandboxJob) -> list[str]:
        if self.mode is SandboxMode.OFF:
            return list(job.argv)
        args = [
            self.bwrap,
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "sandbox",
        ]
        if job.network is Network.NONE:
            args.append("--unshare-net")
        if not self.as_root:
            args += ["--unshare-user", "--disable-userns"]
        for system in _SYSTEM:
            args += _mirror(Path(system))
        args += ["--perms", "0755", "--dir", "/etc"]
        for name in _ETC:
            args += _mirror(Path("/etc") / name)
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--perms", "1777", "--size", str(job.tmp_bytes), "--tmpfs", "/tmp"]
        made: set[Path] = set()
        for mount in job.mounts:
            # bwrap would copy the modes of the folders above a mount (the data dir's is 0700): make them
            # plain traversable folders instead, so the job reaches its mount and nothing else.
            for parent in reversed(mount.inside.parents):
                if parent not in made and not _is_system(parent):
                    made.add(parent)
                    args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), str(mount.inside)]
        args += ["--chdir", str(job.cwd), "--"]
        if self.as_root:
            uid = job.uid if job.uid is not None else 65534
            args += [
                self.setpriv,
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        return args + list(job.argv)

    def popen(self, job: SandboxJob) -> subprocess.Popen[bytes]:
        """Start the job: stdin closed, stdout and stderr together on a pipe, its own process group, killed
        with the thread that started it (call this from a long-lived thread)."""
        if self.mode is SandboxMode.BWRAP and self.problem:
            raise SandboxUnavailable(self.problem)
        procs = self.cgroups.create(job.name, job.limits.memory_bytes, job.limits.max_processes)
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            self.command(job),
            cwd=job.cwd if self.mode is SandboxMode.OFF else "/",
            env=dict(job.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup(job.limits, procs, self.cgroups),
        )
        return proc

    def release(self, job_name: str) -> None:
        """After the job's process ended: kill whatever is left in its groups and delete them."""
        self.cgroups.remove(job_name)

    def prepare_owned(self, path: Path, uid: int | None) -> None:
        """A folder the job writes to: owned by the job's uid (when we switch uids), private to it."""
        path.mkdir(parents=True, exist_ok=True)
        if self.mode is SandboxMode.BWRAP and self.as_root and uid is not None:
            os.chown(path, uid, uid)
        os.chmod(path, 0o700)


def _is_system(path: Path) -> bool:
    """Folders the sandbox has anyway: the root, /tmp and what the system mounts provide."""
    top = Path(*path.parts[:2]) if len(path.parts) > 1 else path
    return path == Path("/") or path == Path("/tmp") or str(top) in (*_SYSTEM, "/etc", "/proc", "/dev")


def _mirror(path: Path) -> list[str]:
    """Arguments that make ``path`` appear read-only inside as it is outside (a symlink stays a symlink)."""
    if path.is_symlink():
        return ["--symlink", os.readlink(path), str(path)]
    if path.exists():
        return ["--ro-bind", str(path), str(path)]
    return []


def _child_setup(limits: JobLimits, cgroup_procs: list[Path], cgroups: CgroupLimits) -> Callable[[], None]:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    memory_fallback = not cgroups.limits_memory
    pids_fallback = not cgroups.limits_pids

    def setup() -> None:  # in the child, between fork and exec
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        join(cgroup_procs)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        if memory_fallback:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if pids_fallback:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))

    return setup


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and all its descendants, from /proc."""
    total_ticks = 0
    pending, seen = [pid], set[int]()
    while pending and len(seen) < 4096:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total_ticks += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total_ticks / os.sysconf("SC_CLK_TCK")
