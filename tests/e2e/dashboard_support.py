"""What the dashboard's browser tests set up through the API: static deployments with a commit in their
meta, project tokens, environment variables."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import httpx

from tests.e2e.harness import LOOPBACK, AnchorProcess, ensure_project, sha, wait_final, wait_until


@contextmanager
def empty_dns() -> Iterator[dict[str, str]]:
    """A DNS resolver on loopback that knows no name (NXDOMAIN to every query), and the platform settings
    that make the domain checks ask it: the tests add domains, and no DNS query may leave the machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(0.2)
        stop = threading.Event()
        thread = threading.Thread(target=_answer_nxdomain, args=(sock, stop), daemon=True)
        thread.start()
        try:
            yield {"ANCHOR_DNS_RESOLVERS": f"{LOOPBACK}:{sock.getsockname()[1]}"}
        finally:
            stop.set()
            thread.join(timeout=5)


def _answer_nxdomain(sock: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        try:
            answer = dns.message.make_response(dns.message.from_wire(data))
        except dns.exception.DNSException:
            continue
        answer.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(answer.to_wire(), peer)


def commit_meta(message: str, branch: str = "main") -> dict[str, Any]:
    """A deployment's meta as `anchor deploy` sends it from a git working tree."""
    commit = hashlib.sha1(message.encode()).hexdigest()  # a made-up commit id
    return {"git": {"commitSha": commit, "branch": branch, "commitMessage": message, "commitAuthor": "Ada"}}


def deploy_site(
    api: httpx.Client,
    project: str,
    body: str,
    *,
    message: str | None = None,
    meta: dict[str, Any] | None = None,
    target: str = "production",
    wait: bool = True,
) -> dict[str, Any]:
    """A deployment of a one-page site whose page is ``body``, with ``meta`` and a commit ``message``."""
    ensure_project(api, project)
    data = body.encode()
    digest = sha(data)
    assert api.put(f"/v1/blobs/{digest}", content=data).status_code in (200, 201)
    request: dict[str, Any] = {
        "files": [{"path": "index.html", "sha256": digest, "size": len(data), "mode": 0o644}],
        "target": target,
    }
    if message is not None or meta is not None:
        request["meta"] = {**(meta or {}), **(commit_meta(message) if message is not None else {})}
    response = api.post(f"/v1/projects/{project}/deployments", json=request)
    assert response.status_code == 201, response.text
    deployment: dict[str, Any] = response.json()
    return wait_final(api, deployment["id"]) if wait else deployment


def wait_for(check: Callable[[], Any], timeout: float = 30) -> Any:
    """``check()``'s first truthy answer, asked every 50 ms for at most ``timeout`` seconds."""
    return wait_until(check, timeout)


def project_token(anchor: AnchorProcess, project: str, name: str) -> str:
    """A new token limited to ``project``; its secret."""
    response = anchor.api().post("/v1/tokens", json={"name": name, "project": project})
    assert response.status_code == 201, response.text
    secret: str = response.json()["token"]
    return secret


def production_host(anchor: AnchorProcess, project: str) -> str:
    url: str = anchor.api().get(f"/v1/projects/{project}").json()["productionUrl"]
    host = httpx.URL(url).host
    return host
