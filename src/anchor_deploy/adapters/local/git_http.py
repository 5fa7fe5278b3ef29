"""Each project's git remote on this machine: a bare repository at ``<root>/<project id>.git``, made on
first use, served by git's own ``git http-backend`` run as a CGI program per request.

The program gets a minimal environment (the CGI variables, a fixed PATH, and what the post-receive hook
needs: the API's URL, the pusher's token, the project's name). The request body is streamed to it and its
answer streamed back, so a large pack is never held in memory. Before the answer goes out, up to
``early_bytes`` of it are kept while the request body is still being sent, so that a body refused part way
(over the size limit, the client gone) is answered with its own error rather than a cut answer. The whole
exchange is bounded by ``timeout`` (a push lasts as long as its hook follows the builds).

Neither program runs user code: http-backend and the hook are the platform's; what is pushed is built
later, in the build sandbox, by the git deploy service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anchor_deploy
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import GitUnavailable, ProjectNotFound
from anchor_deploy.ports.git_remote import CgiRequest, CgiResponse
from anchor_deploy.settings import GitHookSettings, parse_addr

log = logging.getLogger(__name__)

HOOK_MODULE = "anchor_deploy.cli.git_hook"
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024
_STATUS = re.compile(r"^(\d{3})\b")
_DROPPED_HEADERS = {"status", "connection", "transfer-encoding", "keep-alive"}
# Settings of every repository: force pushes and deletions are allowed (a deleted branch loses its URL),
# pushes over HTTP are on, objects are checked as they arrive, and a build may fetch a commit that a
# later force push left unreachable.
_REPOSITORY_CONFIG = (
    ("receive.denyNonFastForwards", "false"),
    ("receive.denyDeletes", "false"),
    ("receive.fsckObjects", "true"),
    ("http.receivepack", "true"),
    ("http.uploadpack", "true"),
    ("uploadpack.allowAnySHA1InWant", "true"),
)


def local_api_url(api_addr: str) -> str:
    """The API's URL as a process on this machine reaches it (a wildcard address is reached on loopback)."""
    host, port = parse_addr(api_addr, "ANCHOR_API_ADDR")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class LocalGitHttp:
    def __init__(
        self,
        root: Path,
        api_url: str,
        hook_timeout: float,
        git: str | None = None,
        timeout: float | None = None,
        early_bytes: int = 1024 * 1024,
    ) -> None:
        self.root = root
        self._api_url = api_url
        self._hook_timeout = hook_timeout
        self._git = git or shutil.which("git") or "/usr/bin/git"
        self._timeout = timeout if timeout is not None else hook_timeout + 120.0
        self._early_bytes = early_bytes
        self._lock = threading.Lock()

    # -- repositories --------------------------------------------------------------------------------

    def repository_path(self, project_id: str) -> Path:
        if not _PROJECT_ID.fullmatch(project_id):
            raise ProjectNotFound("no such project")
        return self.root / f"{project_id}.git"

    def repository_url(self, project: Project) -> str:
        return str(self.repository_path(project.id))

    def remove(self, project_id: str) -> None:
        path = self.repository_path(project_id)
        with self._lock:
            if not path.exists():
                return
            doomed = path.with_name(f".gone-{secrets.token_hex(6)}")
            try:
                path.rename(doomed)  # gone at once for a request that comes next; deleted after
            except OSError as exc:  # the project is gone all the same: its files are the operator's now
                log.warning("could not remove the git repository %s: %s", path, exc)
                return
            shutil.rmtree(doomed, ignore_errors=True)

    def ensure(self, project: Project) -> Path:
        """The project's bare repository, made on first use (whole or not at all), its hook current."""
        path = self.repository_path(project.id)
        with self._lock:
            if not path.exists():
                self._create(path)
            self._install_hook(path)
        return path

    def _create(self, path: Path) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        building = self.root / f".new-{path.name}-{secrets.token_hex(6)}"
        try:
            self._git_run("init", "--bare", "--quiet", "--initial-branch=main", str(building))
            for key, value in _REPOSITORY_CONFIG:
                self._git_run("--git-dir", str(building), "config", key, value)
            building.rename(path)
        except OSError as exc:
            shutil.rmtree(building, ignore_errors=True)
            if path.exists():  # another process made it meanwhile
                return
            raise GitUnavailable(f"cannot create the project's git repository: {exc}") from exc

    def _git_run(self, *args: str) -> None:
        done = subprocess.run(
            [self._git, *args], capture_output=True, text=True, timeout=60, env=self._base_env()
        )
        if done.returncode != 0:
            raise OSError(done.stderr.strip()[:300] or f"git {args[0]} failed")

    def _install_hook(self, path: Path) -> None:
        hook = path / "hooks" / "post-receive"
        script = f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m {HOOK_MODULE}\n"
        if hook.is_file() and hook.read_text() == script:
            return
        hook.parent.mkdir(exist_ok=True)
        staged = hook.with_name(f".post-receive-{secrets.token_hex(6)}")
        staged.write_text(script)
        staged.chmod(0o755)
        os.replace(staged, hook)

    # -- requests -------------------------------------------------------------------------------------

    async def serve(self, project: Project, request: CgiRequest) -> CgiResponse:
        path = await asyncio.to_thread(self.ensure, project)
        env = self._cgi_env(project, path, request)
        proc = await asyncio.create_subprocess_exec(
            self._git,
            "http-backend",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: the hook is ended with it
        )
        run = _CgiRun(proc, asyncio.get_running_loop().time() + self._timeout)
        try:
            return await run.start(request.body, self._early_bytes)
        except _Expired as exc:
            await run.end()
            raise GitUnavailable("git http-backend did not answer in time") from exc
        except BaseException:
            await run.end()
            raise

    def _base_env(self) -> dict[str, str]:
        return {
            "PATH": f"{Path(self._git).parent}:/usr/local/bin:/usr/bin:/bin",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C.UTF-8",
        }

    def _cgi_env(self, project: Project, path: Path, request: CgiRequest) -> dict[str, str]:
        hook = GitHookSettings(self._api_url, request.token, project.name, self._hook_timeout)
        env = {
            **self._base_env(),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{path.name}{request.path}",
            "QUERY_STRING": request.query,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.content_type,
            "REMOTE_USER": request.remote_user,
            "REMOTE_ADDR": request.remote_addr,
            # The hook: the platform's own Python and package, its output as it is printed.
            "PYTHONPATH": str(Path(anchor_deploy.__file__).resolve().parent.parent),
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
            **hook.environment(),
        }
        if request.content_length is not None:
            env["CONTENT_LENGTH"] = str(request.content_length)
        if request.content_encoding:
            env["HTTP_CONTENT_ENCODING"] = request.content_encoding
        if request.git_protocol:
            env["HTTP_GIT_PROTOCOL"] = request.git_protocol
        return env


class _CgiRun:
    """One run of the CGI program: the request body fed in, the answer's head parsed, its body streamed."""

    def __init__(self, proc: asyncio.subprocess.Process, deadline: float) -> None:
        self.proc = proc
        self.deadline = deadline
        self.feeder: asyncio.Task[None] | None = None
        self.errors: asyncio.Task[None] = asyncio.create_task(self._log_errors())
        self.pending: asyncio.Future[bytes] | None = None

    def remaining(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def start(self, body: AsyncIterator[bytes], early_bytes: int) -> CgiResponse:
        self.feeder = asyncio.create_task(self._feed(body))
        status, headers, first = await self._head()
        kept = [first] if first else []
        size = len(first)
        while not self.feeder.done() and size < early_bytes:
            chunk = await self._read(wait_for_feeder=True)
            if chunk is None:
                continue  # the body is all sent (or refused): answer now
            if not chunk:
                break
            kept.append(chunk)
            size += len(chunk)
        if self.feeder.done() and (failure := self.feeder.exception()) is not None:
            raise failure
        return CgiResponse(status, self._stream(kept), headers)

    async def _raise_feeder_failure(self) -> None:
        if self.feeder is not None:
            await asyncio.wait({self.feeder}, timeout=min(1.0, self.remaining()))
            if self.feeder.done() and not self.feeder.cancelled() and (failure := self.feeder.exception()):
                raise failure

    async def _feed(self, body: AsyncIterator[bytes]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            async for chunk in body:
                if chunk:
                    stdin.write(chunk)
                    await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return  # the program stopped reading (it refused the request): its answer says why
        except BaseException:
            self._kill()  # a refused body (too large) or a client gone: the program must not go on
            raise
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()
            await stdin.wait_closed()

    async def _read(self, wait_for_feeder: bool = False) -> bytes | None:
        """The next chunk of the program's output (b"" at its end); None if the feeder finished first."""
        stdout = self.proc.stdout
        assert stdout is not None
        if self.pending is None:
            self.pending = asyncio.ensure_future(stdout.read(_CHUNK))
        waiting: set[asyncio.Future[Any]] = {self.pending}
        if wait_for_feeder and self.feeder is not None:
            waiting.add(self.feeder)
        done, _ = await asyncio.wait(waiting, timeout=self.remaining(), return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise _Expired
        if self.pending not in done:
            return None
        chunk = self.pending.result()
        self.pending = None
        return chunk

    async def _next(self) -> bytes:
        return await self._read() or b""

    async def _head(self) -> tuple[int, list[tuple[str, str]], bytes]:
        raw = b""
        while True:
            end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=-1)
            if end >= 0:
                break
            chunk = await self._next()
            if not chunk or len(raw) > _MAX_HEAD:
                await self._raise_feeder_failure()  # the body's own error ended it: that is the answer
                raise GitUnavailable("git http-backend ended without an answer")
            raw += chunk
        gap = 4 if raw[end : end + 4] == b"\r\n\r\n" else 2
        status = 200
        headers: list[tuple[str, str]] = []
        for line in raw[:end].decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            name, value = name.strip(), value.strip()
            if name.lower() == "status" and (found := _STATUS.match(value)):
                status = int(found.group(1))
            elif name and name.lower() not in _DROPPED_HEADERS:
                headers.append((name, value))
        return status, headers, raw[end + gap :]

    async def _stream(self, kept: list[bytes]) -> AsyncIterator[bytes]:
        try:
            for chunk in kept:
                yield chunk
            while more := await self._next():
                yield more
            code = await asyncio.wait_for(self.proc.wait(), self.remaining())
            if code != 0:
                log.warning("git http-backend exited with %s", code)
        except _Expired:
            log.warning("a git request passed its time limit and was stopped")
        finally:
            await self.end()

    async def _log_errors(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        told = 0
        while line := await stderr.readline():
            if told < 20:  # a program that writes without end does not fill the log
                log.warning("git http-backend: %s", line.decode(errors="replace").rstrip()[:300])
                told += 1

    def _kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    async def end(self) -> None:
        """Stop what still runs: the program and its hook, the feeder, the reads."""
        self._kill()
        for task in (self.feeder, self.pending):
            if task is not None and not task.done():
                task.cancel()
            elif task is not None and not task.cancelled():
                task.exception()  # seen: a body refused after the answer began has nobody else to tell
        with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
            await asyncio.wait_for(self.proc.wait(), 10)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self.errors, 1)


class _Expired(Exception):
    """The exchange passed its time limit."""
