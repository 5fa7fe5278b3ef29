"""Invoking a deployment's alias with a function URL event: the health check of a Lambda deployment.

Success is narrow on purpose: Lambda's own answer must be 200 with no FunctionError, and the payload must be a
function URL response (a JSON object with an integer ``statusCode``) below 500. A FunctionError (Lambda, or
an emulator that cannot run code, answers HTTP 200 with one) or any other payload is a failure.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.lambda_functions import ClientSource, deployment_alias


@dataclass(frozen=True)
class InvokeResult:
    ok: bool
    status: int | None  # the function URL response's statusCode, when there was one
    reason: str  # why it failed ("" when ok)
    body: str = ""


def url_event(path: str, host: str = "health.invalid", method: str = "GET") -> dict[str, Any]:
    """A function URL (payload 2.0) request event."""
    raw_path, _, query = path.partition("?")
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path or "/",
        "rawQueryString": query,
        "headers": {"host": host, "user-agent": "anchor-health", "accept": "*/*"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "health",
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "anchor-health",
            },
            "requestId": f"health-{int(now * 1000)}",
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


class LambdaInvoker:
    def __init__(self, clients: ClientSource) -> None:
        self._lambda = clients.client("lambda")

    def check_deployment(self, function_name: str, deployment_id: str, path: str = "/") -> InvokeResult:
        return self.invoke(function_name, deployment_alias(deployment_id), path)

    def invoke(self, function_name: str, qualifier: str, path: str = "/") -> InvokeResult:
        try:
            answer = self._lambda.invoke(
                FunctionName=function_name, Qualifier=qualifier, Payload=json.dumps(url_event(path)).encode()
            )
        except (ClientError, BotoCoreError) as error:
            return InvokeResult(False, None, f"invoke failed: {error}")
        payload = answer["Payload"].read().decode("utf-8", "replace")
        if answer.get("FunctionError"):
            return InvokeResult(False, None, f"function error ({answer['FunctionError']}): {payload[:300]}")
        if answer.get("StatusCode") != 200:
            return InvokeResult(False, None, f"invoke answered {answer.get('StatusCode')}")
        return url_response(payload)


def url_response(payload: str) -> InvokeResult:
    """A handler's answer judged as a health check: a function URL response below 500 is healthy."""
    try:
        response = json.loads(payload)
    except ValueError:
        return InvokeResult(False, None, "the payload is not JSON", payload[:300])
    status = response.get("statusCode") if isinstance(response, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        return InvokeResult(False, None, "the payload is not a function URL response", payload[:300])
    body = response.get("body")
    text = body if isinstance(body, str) else ""
    if status >= 500:
        return InvokeResult(False, status, f"the deployment answered {status}", text[:300])
    return InvokeResult(True, status, "", text[:300])
