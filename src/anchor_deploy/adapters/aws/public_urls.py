"""The URLs the AWS provider serves at: a project's production is its CloudFront distribution's domain, a
deployment is its own alias's function URL. Both are made by AWS (random names) and never change once they
exist, so each is asked for once per process and remembered; a missing one is asked again after a while
(a distribution is made with the first production deployment, a deployment's URL when it is built)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from anchor_deploy.adapters.aws.cloudfront import CloudFrontDistributions
from anchor_deploy.adapters.aws.lambda_functions import LambdaFunctions

RETRY_MISSING = 5.0  # seconds before a URL that did not exist yet is asked for again


class AwsPublicUrls:
    def __init__(
        self,
        functions: LambdaFunctions,
        cdn: CloudFrontDistributions,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._functions = functions
        self._cdn = cdn
        self._monotonic = monotonic
        self._known: dict[tuple[str, str], str] = {}
        self._missing: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def production_url(self, project_id: str) -> str | None:
        return self._remembered((project_id, ""), lambda: self._distribution_url(project_id))

    def deployment_url(self, project_id: str, deployment_id: str) -> str | None:
        return self._remembered(
            (project_id, deployment_id), lambda: self._functions.deployment_url(project_id, deployment_id)
        )

    def learned(self, project_id: str, domain: str) -> None:
        """The distribution this process just made (no need to ask CloudFront for it)."""
        with self._lock:
            self._known[(project_id, "")] = f"https://{domain}"
            self._missing.pop((project_id, ""), None)

    def _distribution_url(self, project_id: str) -> str | None:
        found = self._cdn.find(project_id)
        return f"https://{found['DomainName']}" if found and found.get("DomainName") else None

    def _remembered(self, key: tuple[str, str], ask: Callable[[], str | None]) -> str | None:
        with self._lock:
            if key in self._known:
                return self._known[key]
            missed = self._missing.get(key)
            if missed is not None and self._monotonic() - missed < RETRY_MISSING:
                return None
        url = ask()
        with self._lock:
            if url is None:
                self._missing[key] = self._monotonic()
            else:
                self._known[key] = url
                self._missing.pop(key, None)
        return url
