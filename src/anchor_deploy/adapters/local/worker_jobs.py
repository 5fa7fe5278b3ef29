"""What an app worker runs (worker_runtime.py): its sandbox policy, its command line (runtime/boot.py with the
version's environment's Python), its environment variables and the folders it may see.

A worker sees its app's files and environment read-only, the Python installation that environment runs on,
the boot script, and its own folder ``worker/<deployment id>.d/`` writable (its socket and activity marker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anchor_deploy.adapters.local.sandbox import JobLimits, Mount, Network, Sandbox, SandboxJob
from anchor_deploy.ports.runtime import WorkerSpec

BOOT = Path(__file__).resolve().parent.parent.parent / "runtime" / "boot.py"


@dataclass(frozen=True)
class WorkerPolicy:
    """How every worker is confined: the sandbox, its limits, its network, its start-up CPU budget."""

    sandbox: Sandbox
    limits: JobLimits
    network: Network = Network.NONE
    startup_cpu: float = 60.0
    uid_base: int = 1_000_000_000
    tmp_bytes: int = 256 * 1024 * 1024

    def uid(self, tenant: int | None) -> int | None:
        return None if tenant is None else self.uid_base + tenant


def worker_job(spec: WorkerSpec, own: Path, policy: WorkerPolicy) -> SandboxJob:
    """The sandbox job of ``spec``'s worker, whose own writable folder is ``own``."""
    # The local adapters' references are directories: VenvBuilder's environments, FsDeploymentFiles' apps.
    env_dir, app_dir = Path(spec.environment), Path(spec.app_files)
    environ = {
        "PATH": f"{env_dir / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **spec.environ,
        "VIRTUAL_ENV": str(env_dir),
    }
    argv = [
        str(env_dir / "bin" / "python"),
        str(BOOT),
        "--entry",
        spec.app.entry,
        "--uds",
        str(own / "app.sock"),
        "--activity",
        str(own / "active"),
        "--app-dir",
        str(app_dir),
    ]
    mounts = (
        Mount(app_dir),
        Mount(env_dir),
        *python_home_mounts(env_dir),
        Mount(BOOT),
        Mount(own, writable=True),
    )
    return SandboxJob(
        name=job_name(spec.deployment_id),
        argv=argv,
        cwd=app_dir,
        env=environ,
        limits=policy.limits,
        uid=policy.uid(spec.tenant),
        mounts=mounts,
        network=policy.network,
        tmp_bytes=policy.tmp_bytes,
    )


def job_name(deployment_id: str) -> str:
    """The sandbox job (and cgroup) name of a version's worker."""
    return f"worker-{deployment_id}"


def python_home_mounts(env_dir: Path) -> tuple[Mount, ...]:
    """The base Python installation a virtual environment runs on (its ``home`` in pyvenv.cfg), read-only,
    when it lies outside the system directories every sandbox sees."""
    try:
        config = (env_dir / "pyvenv.cfg").read_text()
    except OSError:
        return ()
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            prefix = Path(value.strip()).resolve().parent
            if prefix.parts[1:2] in (("usr",), ("bin",)) or prefix == Path("/"):
                return ()
            return (Mount(prefix),)
    return ()
