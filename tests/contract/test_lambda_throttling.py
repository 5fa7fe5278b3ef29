"""Throttled Lambda calls are retried by botocore's standard mode, for real.

moto never throttles, and botocore's Stubber answers before the retry handler runs, so neither can show a
retry. A small HTTP server on 127.0.0.1 answers the first N Lambda requests with HTTP 429
TooManyRequestsException and passes every later one on to the moto server; AWS_ENDPOINT_URL_LAMBDA sends the
platform's Lambda client to it.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.lambda_edge import LambdaEdge
from anchor_deploy.adapters.aws.lambda_functions import FunctionSettings, LambdaFunctions
from anchor_deploy.model.entities import HostKind
from tests.aws_fakes import FakeHosts
from tests.aws_support import MotoServer
from tests.contract.test_lambda_functions import BUCKET, D1, PROJECT, package
from tests.ports import LOOPBACK

THROTTLED = 2


class ThrottlingProxy(ThreadingHTTPServer):
    def __init__(self, upstream: str, throttle: int) -> None:
        super().__init__((LOOPBACK, 0), ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.throttle = throttle
        self.seen: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"


class ProxyHandler(BaseHTTPRequestHandler):
    server: ThrottlingProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append(f"{self.command} {self.path}")
            throttled = len(self.server.seen) <= self.server.throttle
        if throttled:
            self._answer(
                429, {"x-amzn-ErrorType": "TooManyRequestsException"}, b'{"message":"Rate exceeded"}'
            )
            return
        upstream = http.client.HTTPConnection(
            self.server.upstream.hostname, self.server.upstream.port, timeout=30
        )
        headers = {key: value for key, value in self.headers.items() if key.lower() != "host"}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        relayed = {
            k: v for k, v in answer.getheaders() if k.lower() not in ("content-length", "transfer-encoding")
        }
        upstream.close()
        self._answer(answer.status, relayed, data)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _any


@pytest.fixture
def proxy(aws: MotoServer) -> Iterator[ThrottlingProxy]:
    server = ThrottlingProxy(aws.url, THROTTLED)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_throttled_move_succeeds_after_retries(
    proxy: ThrottlingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = AwsClients()
    trust = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    }
    role = direct.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))
    direct.client("s3").create_bucket(Bucket=BUCKET)
    settings = FunctionSettings(role_arn=role["Role"]["Arn"], bucket=BUCKET)
    LambdaFunctions(direct, settings).publish(PROJECT, D1, package("one"), {})

    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", proxy.url)
    throttled = AwsClients()
    calls = throttled.count_calls()
    hosts = FakeHosts()
    hosts.add("site.example.test", HostKind.ALIAS, PROJECT)
    hosts.production[PROJECT] = D1
    functions = LambdaFunctions(throttled, settings)
    LambdaEdge(functions, hosts).point("site.example.test", HostKind.ALIAS, D1)

    moved = functions.production(PROJECT)
    assert moved is not None
    assert moved.version == "1"
    # The first call (GetAlias production) was answered 429 twice, then passed: three requests for it.
    assert proxy.seen[0] == proxy.seen[1] == proxy.seen[2]
    assert proxy.seen[0].startswith("GET ") and proxy.seen[0].endswith("/aliases/production")
    assert calls["lambda:GetAlias"] >= 2  # production, the deployment's alias: each counted once
    assert len(proxy.seen) == sum(calls.values()) + THROTTLED
