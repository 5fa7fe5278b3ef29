"""The git remote port (ports/git_remote.py) on this machine: adapters/local/git_http.py LocalGitHttp, with
the real ``git http-backend``. A repository is made whole on first use with its settings and hook; requests
stream through the CGI program; a body refused part way, a stalled exchange and an abandoned answer each
end the program (and its hook) at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.git_http import HOOK_MODULE, LocalGitHttp, local_api_url
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import BodyTooLarge, GitUnavailable, ProjectNotFound
from anchor_deploy.ports.git_remote import CgiRequest, CgiResponse

PROJECT = Project(id="prj_0123456789abcdef", name="site", created_at=0.0)


def backend(tmp_path: Path, **kwargs: float) -> LocalGitHttp:
    return LocalGitHttp(tmp_path / "git", "http://127.0.0.1:9", hook_timeout=30, **kwargs)  # type: ignore[arg-type]


async def empty() -> AsyncIterator[bytes]:
    yield b""


def request(
    path: str, body: AsyncIterator[bytes] | None = None, method: str = "GET", query: str = ""
) -> CgiRequest:
    kind = f"application/x-{path.strip('/')}-request" if method == "POST" else ""
    return CgiRequest(method, path, query, body or empty(), token="anc_t", content_type=kind)


async def read_all(answer: CgiResponse) -> bytes:
    return b"".join([chunk async for chunk in answer.body])


def backend_children() -> list[int]:
    """This process's children that run git http-backend (or a git it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"http-backend" in cmdline and fields[0] != "Z" and int(fields[1]) == os.getpid():
            found.append(int(entry.name))
    return found


def git_config(repository: Path, key: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repository), "config", "--get", key],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_first_use_makes_a_bare_repository_with_its_settings_and_hook(tmp_path: Path) -> None:
    git = backend(tmp_path)
    repository = git.ensure(PROJECT)
    assert repository == tmp_path / "git" / f"{PROJECT.id}.git" and git.repository_url(PROJECT) == str(
        repository
    )
    assert git_config(repository, "core.bare") == "true"
    assert git_config(repository, "receive.denyNonFastForwards") == "false"
    assert git_config(repository, "http.receivepack") == "true"
    hook = repository / "hooks" / "post-receive"
    assert os.access(hook, os.X_OK)
    assert hook.read_text().splitlines()[-1].endswith(f"-m {HOOK_MODULE}")
    assert sys.executable in hook.read_text()
    # Used again: the same repository (its content kept), its hook made current if it was changed.
    (repository / "description").write_text("kept")
    hook.write_text("#!/bin/sh\nexit 0\n")
    assert git.ensure(PROJECT) == repository
    assert (repository / "description").read_text() == "kept"
    assert HOOK_MODULE in hook.read_text()
    assert [p.name for p in (tmp_path / "git").iterdir()] == [repository.name]  # nothing half-made left


def test_a_project_id_that_cannot_be_a_file_name_is_refused(tmp_path: Path) -> None:
    git = backend(tmp_path)
    for bad in ("../x", "a/b", "", "x" * 65, ".git"):
        with pytest.raises(ProjectNotFound):
            git.ensure(Project(id=bad, name="site", created_at=0.0))
    assert not (tmp_path / "git").exists()


def test_remove_deletes_the_repository(tmp_path: Path) -> None:
    git = backend(tmp_path)
    repository = git.ensure(PROJECT)
    git.remove(PROJECT.id)
    git.remove(PROJECT.id)  # again: nothing
    assert not repository.exists() and list((tmp_path / "git").iterdir()) == []


def test_info_refs_is_the_smart_advertisement(tmp_path: Path) -> None:
    async def go() -> tuple[CgiResponse, bytes]:
        answer = await backend(tmp_path).serve(
            PROJECT, request("/info/refs", query="service=git-upload-pack")
        )
        return answer, await read_all(answer)

    answer, body = asyncio.run(go())
    assert answer.status == 200
    assert ("Content-Type", "application/x-git-upload-pack-advertisement") in answer.headers
    assert body.startswith(b"001e# service=git-upload-pack\n0000")


def test_what_http_backend_refuses_keeps_its_status(tmp_path: Path) -> None:
    async def go() -> CgiResponse:
        answer = await backend(tmp_path).serve(PROJECT, request("/info/refs", query="service=git-frobnicate"))
        await read_all(answer)
        return answer

    assert asyncio.run(go()).status in (403, 404)


def test_a_body_refused_part_way_is_raised_before_the_answer_and_ends_the_program(tmp_path: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"0" * 65536
        raise BodyTooLarge("request body is larger than the limit")

    async def go() -> None:
        await backend(tmp_path).serve(PROJECT, request("/git-receive-pack", body(), "POST"))

    with pytest.raises(BodyTooLarge):
        asyncio.run(go())
    assert backend_children() == []


def test_a_stalled_exchange_ends_at_the_time_limit(tmp_path: Path) -> None:
    async def stalled() -> AsyncIterator[bytes]:
        yield b"0032"
        await asyncio.sleep(60)

    async def go() -> None:
        git = backend(tmp_path, timeout=0.5)
        await git.serve(PROJECT, request("/git-receive-pack", stalled(), "POST"))

    started = time.monotonic()
    with pytest.raises(GitUnavailable, match="in time"):
        asyncio.run(go())
    assert time.monotonic() - started < 10
    assert backend_children() == []


def pushed_commit(tmp_path: Path, repository: Path, size: int) -> str:
    """A commit of ``size`` random bytes pushed straight into ``repository``; its sha."""
    work = tmp_path / "work"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.test"]
    for args in (
        ["init", "-q", "-b", "main", str(work)],
        ["-C", str(work), "config", "core.bigFileThreshold", "1k"],
    ):
        subprocess.run(["git", *args], check=True, env=env, capture_output=True, timeout=60)
    (work / "noise.bin").write_bytes(os.urandom(size))
    for args in (
        ["add", "."],
        [*ident, "commit", "-q", "-m", "noise"],
        ["push", "-q", str(repository), "main"],
    ):
        subprocess.run(["git", "-C", str(work), *args], check=True, env=env, capture_output=True, timeout=60)
    return subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], check=True, env=env, capture_output=True, text=True
    ).stdout.strip()


def test_an_abandoned_answer_ends_the_program(tmp_path: Path) -> None:
    """A fetch whose answer (a pack of 4 MB) is left after its first chunk: the program, blocked on
    writing the rest, is ended."""
    git = backend(tmp_path)
    sha = pushed_commit(tmp_path, git.ensure(PROJECT), 4 * 1024 * 1024)

    async def wants() -> AsyncIterator[bytes]:
        yield f"0032want {sha}\n00000009done\n".encode()

    async def go() -> tuple[int, list[int]]:
        answer = await git.serve(PROJECT, request("/git-upload-pack", wants(), "POST"))
        first = await anext(answer.body)
        running = backend_children()
        await answer.body.aclose()  # type: ignore[attr-defined]
        return len(first), running

    size, running = asyncio.run(go())
    assert size > 0 and running  # it was still writing its answer
    assert backend_children() == []


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("127.0.0.1:8400", "http://127.0.0.1:8400"),
        ("0.0.0.0:8400", "http://127.0.0.1:8400"),
        ("[::]:9000", "http://[::1]:9000"),
        ("[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_the_hook_reaches_the_api_on_this_machine(addr: str, url: str) -> None:
    assert local_api_url(addr) == url
