"""A moto server process on loopback, reached only through the standard AWS environment.

The tests never patch boto3: they start moto's server on 127.0.0.1 (``tests.moto_rules``: moto with the
CloudFront and ACM rules moto skips patched in), point ``AWS_ENDPOINT_URL`` at it with dummy credentials,
and the platform's own code (which reads only the standard AWS environment) talks to it as it would to AWS.
``reset()`` empties every moto backend between tests through moto's own reset endpoint (which clears the
rules' state too: it lives on moto's objects).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.ports import LOOPBACK, free_port

REGION = "us-east-1"
REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]

    def environ(self) -> dict[str, str]:
        """The standard AWS variables that send every client to this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def reset(self) -> None:
        httpx.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def moto_server(log_dir: Path, rules: Mapping[str, str] | None = None) -> Iterator[MotoServer]:
    """``rules``: MOTO_RULES_* / MOTO_ACM_VALIDATION_WAIT variables for this server (see tests/moto_rules)."""
    port = free_port()
    log = (log_dir / f"moto-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.moto_rules", "-H", LOOPBACK, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_CALL_RESET_API": "true", **(rules or {})},
        cwd=REPOSITORY,
    )
    server = MotoServer(f"http://{LOOPBACK}:{port}", process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited: see {log.name}")
            try:
                httpx.get(f"{server.url}/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start in 30 s") from None
                time.sleep(0.1)
        yield server
    finally:
        server.stop()
        log.close()


@contextmanager
def aws_environ(server: MotoServer) -> Iterator[None]:
    """Set the standard AWS variables for this process (boto3 sessions made inside read them)."""
    saved = {key: os.environ.get(key) for key in server.environ()}
    os.environ.update(server.environ())
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
