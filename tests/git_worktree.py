"""A git working tree as a user has one, for the tests and benchmarks of git deploys: real git, never at a
terminal, never through a proxy, without the machine's or the user's git config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

AUTHOR_NAME, AUTHOR_EMAIL = "Ada", "ada@example.test"


def git_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("GIT_")
    }
    env.update(
        HOME=str(home),
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=AUTHOR_NAME,
        GIT_AUTHOR_EMAIL=AUTHOR_EMAIL,
        GIT_COMMITTER_NAME=AUTHOR_NAME,
        GIT_COMMITTER_EMAIL=AUTHOR_EMAIL,
    )
    return env


class WorkTree:
    """A working repository with files, committed, pushed where a test says."""

    def __init__(self, path: Path, home: Path, timeout: float = 120) -> None:
        self.path = path
        self.env = git_env(home)
        self.timeout = timeout
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, capture_output=True, text=True, timeout=self.timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return done

    def commit(self, files: dict[str, bytes] | dict[str, str], message: str = "change") -> str:
        for name, data in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_bytes(data.encode() if isinstance(data, str) else data)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.strip()
