"""A stand-in for the commit status APIs of GitHub, GitLab and Gitea/Forgejo, on 127.0.0.1.

Each forge is served under its own prefix (``/github``, ``/gitlab``, ``/gitea``): point a connection's
``api_url`` at ``stub.api_root(forge)``. Every request is recorded with what the stub found wrong in it
against the forge's documented call (method, path, token header, JSON body); a wrong token is answered
401, a malformed call 422 (GitHub, Gitea) or 400 (GitLab), a good one 201 unless answers were scripted.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SHA = r"[0-9a-f]{40}"
PATHS = {
    "github": re.compile(rf"^/github/repos/(?P<repo>[^/]+/[^/]+)/statuses/(?P<sha>{SHA})$"),
    "gitlab": re.compile(rf"^/gitlab/projects/(?P<repo>[^/]+)/statuses/(?P<sha>{SHA})$"),
    "gitea": re.compile(rf"^/gitea/repos/(?P<repo>[^/]+/[^/]+)/statuses/(?P<sha>{SHA})$"),
}
STATES = {
    "github": {"pending", "success", "failure", "error"},
    "gitlab": {"pending", "running", "success", "failed", "canceled"},
    "gitea": {"pending", "success", "failure", "error", "warning"},
}
LABEL_FIELD = {"github": "context", "gitlab": "name", "gitea": "context"}
HOLD_LIMIT = 5.0  # seconds a held request waits for release at most


@dataclass
class Received:
    forge: str
    method: str
    path: str  # as sent, percent-encoding kept
    repo: str  # as it appears in the path
    sha: str
    headers: dict[str, str]
    body: Any
    problems: list[str]
    answered: int = 0


@dataclass
class Answer:
    code: int
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # wait for release() before answering


class ForgeApiStub:
    def __init__(self, token: str) -> None:
        self.token = token
        self.received: list[Received] = []
        self.answers: deque[Answer] = deque()
        self.echo_token_on_401 = False  # a forge that repeats the credential it was sent in its error
        self.arrived = threading.Event()  # set when a held request has arrived
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def api_root(self, forge: str) -> str:
        return f"http://127.0.0.1:{self.port}/{forge}"

    def script(self, *answers: Answer | int) -> None:
        """Answer the next requests so (then 201 again)."""
        with self._lock:
            self.answers.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)

    def release(self) -> None:
        self._release.set()

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def states(self) -> list[str]:
        return [r.body["state"] for r in self.accepted()]

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def handle(self, forge: str, request: Received) -> tuple[int, dict[str, str], dict[str, Any]]:
        if request.problems:
            if "token" in " ".join(request.problems):
                echoed = request.headers.get("authorization") or request.headers.get("private-token", "")
                message = f"Bad credentials {echoed}" if self.echo_token_on_401 else "Bad credentials"
                return 401, {}, {"message": message}
            return (400 if forge == "gitlab" else 422), {}, {"message": "; ".join(request.problems)}
        with self._lock:
            answer = self.answers.popleft() if self.answers else Answer(201)
        if answer.hold:
            self.arrived.set()
            self._release.wait(HOLD_LIMIT)
        body = request.body
        return answer.code, answer.headers, {"state": body.get("state"), "id": len(self.received)}


def problems_with(
    stub: ForgeApiStub, forge: str, method: str, headers: dict[str, str], raw: bytes
) -> list[str]:
    found = [] if method == "POST" else [f"method {method}, not POST"]
    if forge == "github":
        if headers.get("authorization") != f"Bearer {stub.token}":
            found.append("wrong or missing Bearer token")
        if headers.get("accept") != "application/vnd.github+json":
            found.append("Accept is not application/vnd.github+json")
        if headers.get("x-github-api-version") != "2022-11-28":
            found.append("no X-GitHub-Api-Version")
    elif forge == "gitlab":
        if headers.get("private-token") != stub.token:
            found.append("wrong or missing PRIVATE-TOKEN token")
    elif headers.get("authorization") != f"token {stub.token}":
        found.append("wrong or missing 'token' token")
    if not headers.get("content-type", "").startswith("application/json"):
        found.append("not JSON")
    try:
        body = json.loads(raw)
    except ValueError:
        return [*found, "body is not JSON"]
    allowed = {"state", "target_url", "description", LABEL_FIELD[forge]}
    if not isinstance(body, dict) or set(body) - allowed:
        return [
            *found,
            f"unexpected fields {sorted(set(body) - allowed) if isinstance(body, dict) else body}",
        ]
    if body.get("state") not in STATES[forge]:
        found.append(f"state {body.get('state')!r} is not one of {sorted(STATES[forge])}")
    if not all(isinstance(body.get(k, ""), str) for k in allowed):
        found.append("a field is not a string")
    if forge == "github" and len(body.get("description", "")) > 140:
        found.append("description over 140 characters")
    return found


def _handler_for(stub: ForgeApiStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            forge = self.path.split("/")[1] if self.path.count("/") > 1 else ""
            match = PATHS[forge].match(self.path) if forge in PATHS else None
            if match is None:
                self._answer(404, {}, {"message": "Not Found"})
                return
            problems = problems_with(stub, forge, method, headers, raw)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            request = Received(forge, method, self.path, match["repo"], match["sha"], headers, body, problems)
            with stub._lock:
                stub.received.append(request)
            code, extra, answer = stub.handle(forge, request)
            request.answered = code
            self._answer(code, extra, answer)

        def _answer(self, code: int, extra: dict[str, str], body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            for name, value in {"Content-Type": "application/json", **extra}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
