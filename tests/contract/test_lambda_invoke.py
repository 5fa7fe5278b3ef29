"""LambdaInvoker: only a function URL response below 500 is a success.

moto cannot run code without docker and answers HTTP 200 with a FunctionError (test_lambda_functions.py
checks that this fails); the other answers Lambda can give are played by botocore's Stubber here (no retry
behaviour is involved).
"""

from __future__ import annotations

import io
import json

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.lambda_invoke import LambdaInvoker, url_event
from tests.aws_fakes import FakeClients
from tests.aws_support import MotoServer

NAME = "anchor-prj_0123456789abcdef"
DEPLOYMENT = "dpl_aaaaaaaaaaaa"


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


@pytest.mark.parametrize(
    ("answer", "ok", "status"),
    [
        ({"StatusCode": 200, "Payload": b'{"statusCode": 200, "body": "hello"}'}, True, 200),
        ({"StatusCode": 200, "Payload": b'{"statusCode": 404, "body": "no page"}'}, True, 404),
        ({"StatusCode": 200, "Payload": b'{"statusCode": 502, "body": "bad"}'}, False, 502),
        ({"StatusCode": 200, "FunctionError": "Unhandled", "Payload": b'{"statusCode": 200}'}, False, None),
        ({"StatusCode": 200, "Payload": b'"Simple Lambda happy path OK"'}, False, None),
        ({"StatusCode": 200, "Payload": b'{"body": "no status"}'}, False, None),
        ({"StatusCode": 200, "Payload": b'{"statusCode": true}'}, False, None),
        ({"StatusCode": 200, "Payload": b"not json"}, False, None),
    ],
)
def test_only_a_function_url_response_is_a_success(
    aws: MotoServer, answer: dict[str, object], ok: bool, status: int | None
) -> None:
    client = AwsClients().client("lambda")
    invoker = LambdaInvoker(FakeClients(**{"lambda": client}))
    with Stubber(client) as stub:
        response = {**answer, "Payload": body(answer["Payload"])}  # type: ignore[arg-type]
        stub.add_response("invoke", response, {"FunctionName": NAME, "Qualifier": DEPLOYMENT, "Payload": ANY})
        result = invoker.check_deployment(NAME, DEPLOYMENT, "/health?full=1")
        stub.assert_no_pending_responses()
    assert (result.ok, result.status) == (ok, status)
    assert bool(result.reason) is not ok


def test_the_event_is_a_function_url_request() -> None:
    event = url_event("/health?full=1")
    assert event["version"] == "2.0"
    assert (event["rawPath"], event["rawQueryString"]) == ("/health", "full=1")
    assert event["requestContext"]["http"]["method"] == "GET"
    assert json.loads(json.dumps(event)) == event
