"""The control plane as a Lambda function (the stack's `<stack>-control`, behind its function URL).

- A function URL request is the API: the same FastAPI app as `anchor up`, through Mangum.
- The EventBridge schedule's event (``source: aws.events``) is one round of background work, each part under
  its lease in DynamoDB, so a round never does what another round or an `anchor up --provider aws` process
  is doing: a reconcile pass, the queued static builds that fit in the invocation's time, and collection.
  App builds need the build sandbox (bubblewrap), which Lambda does not offer: they are left to a control
  plane on a machine (`anchor up --provider aws`), and the round's answer lists them (leftForBuildSandbox);
  CodeBuild is not used.

The platform is built once per execution environment (cold start) and reused by later invocations.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from anchor_deploy.model.entities import DeploymentStatus
from anchor_deploy.providers import build_platform
from anchor_deploy.providers.platform import Platform
from anchor_deploy.settings import Settings

log = logging.getLogger(__name__)
ROUND_MARGIN = 10.0  # seconds left in the invocation when a round stops taking new builds
_state: dict[str, Any] = {}
_rounds: dict[str, threading.Lock] = {}  # lease holder -> its rounds take turns
_rounds_guard = threading.Lock()


def platform() -> Platform:
    if "platform" not in _state:
        os.environ.setdefault("ANCHOR_PROVIDER", "aws")
        os.environ.setdefault("ANCHOR_DATA_DIR", "/tmp/anchor")  # Lambda's only writable place
        settings = Settings.from_env()
        built = build_platform(settings)
        built.services.tokens.ensure_admin(settings.admin_token)
        _state["platform"] = built
    return _state["platform"]  # type: ignore[no-any-return]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("source") == "aws.events":
        return background_round(platform(), _deadline(context))
    if "api" not in _state:
        from mangum import Mangum

        from anchor_deploy.api.app import create_app

        _state["api"] = Mangum(create_app(platform()), lifespan="off")
    answer: dict[str, Any] = _state["api"](event, context)
    return answer


def background_round(p: Platform, deadline: float) -> dict[str, Any]:
    """One round of the background loops, each part only if its lease is free. Leases keep rounds of
    different processes apart; rounds of one process (one lease holder, which may take a lease it holds
    again) take turns."""
    with _rounds_guard:
        turn = _rounds.setdefault(p.services.runner.keeper.holder, threading.Lock())
    with turn:
        return _round(p, deadline)


def _round(p: Platform, deadline: float) -> dict[str, Any]:
    s = p.services
    keeper = s.runner.keeper
    done: dict[str, Any] = {"reconciled": False, "built": [], "leftForBuildSandbox": [], "collected": None}
    if keeper.take("loop:reconcile"):
        try:
            s.reconciler.run_once()
            done["reconciled"] = True
        finally:
            keeper.release("loop:reconcile")
    for deployment in s.deployments.with_status(DeploymentStatus.QUEUED):
        if time.monotonic() > deadline - ROUND_MARGIN:
            break
        if deployment.app is not None:  # needs the build sandbox: a machine's control plane builds it
            done["leftForBuildSandbox"].append(deployment.id)
            continue
        lease = f"build:{deployment.id}"
        if not keeper.take(lease):
            continue
        try:
            if s.deployments.build(deployment.id) is not None:  # None: another round built it meanwhile
                done["built"].append(deployment.id)
        finally:
            keeper.release(lease)
    if keeper.take("loop:gc"):
        try:
            done["collected"] = s.retention.collect(time.time())
        finally:
            keeper.release("loop:gc")
    return done


def _deadline(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    millis = remaining() if callable(remaining) else 60_000
    return time.monotonic() + millis / 1000.0
