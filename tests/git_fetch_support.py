"""Real git repositories for the fetcher's tests: bare repositories on disk with real commits, and a
smart-HTTP git server on 127.0.0.1 (git's own ``git http-backend`` as CGI) behind HTTP Basic auth."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

AUTHOR = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


class Repos:
    """Bare repositories and their working copies under one folder, made with the machine's git."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def git(self, where: Path, *args: str) -> str:
        env = {**os.environ, **AUTHOR, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
        done = subprocess.run(
            ["git", "-C", str(where), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout.strip()

    def bare(self, name: str) -> Path:
        path = self.root / f"{name}.git"
        self.git(self.root, "init", "-q", "--bare", "-b", "main", str(path))
        return path

    def clone(self, origin: Path) -> Path:
        work = self.root / f"work-{origin.stem}"
        self.git(self.root, "init", "-q", "-b", "main", str(work))
        self.git(work, "remote", "add", "origin", str(origin))
        return work

    def commit(
        self, work: Path, files: dict[str, str], message: str, executable: frozenset[str] = frozenset()
    ) -> str:
        for rel, text in files.items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            os.chmod(path, 0o755 if rel in executable else 0o644)
        self.git(work, "add", "-A")
        self.git(work, "commit", "-q", "-m", message)
        return self.head(work)

    def head(self, work: Path) -> str:
        return self.git(work, "rev-parse", "HEAD")

    def push(self, work: Path, branch: str, force: bool = False) -> None:
        self.git(work, "push", "-q", *(["--force"] if force else []), "origin", f"HEAD:refs/heads/{branch}")

    def add_submodule_entry(self, work: Path, path: str, url: str, sha: str) -> str:
        """A submodule recorded by hand (its URL as given, even one git would not clone here)."""
        (work / ".gitmodules").write_text(f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n')
        self.git(work, "update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
        self.git(work, "add", ".gitmodules")
        self.git(work, "commit", "-q", "-m", f"submodule {path}")
        return self.head(work)


class GitHttpServer:
    """Serves the bare repositories under ``root`` over smart HTTP, protocol v0 (the Git-Protocol header
    is not passed on, so a fetch by an unadvertised sha is refused), to one user and password."""

    def __init__(self, root: Path, user: str, password: str) -> None:
        self.root = root
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.authorized = 0
        self.refused = 0
        self.stall = 0.0
        self.on_request: Callable[[], None] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> GitHttpServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != server.expected:
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                server.authorized += 1
                if server.on_request is not None:
                    server.on_request()
                time.sleep(server.stall)
                self._cgi(body)

            def _cgi(self, body: bytes) -> None:
                path, _, query = self.path.partition("?")
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "REMOTE_USER": "git",
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_CONFIG_GLOBAL": "/dev/null",
                }
                done = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60, check=False
                )
                head, _, payload = done.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
