"""The URLs the API shows for projects and deployments."""

from __future__ import annotations

import logging
from collections.abc import Callable

from anchor_deploy.model.entities import Deployment, DeploymentStatus, Project
from anchor_deploy.model.names import deployment_host, production_host
from anchor_deploy.ports.operations import PublicUrls

log = logging.getLogger(__name__)


class UrlService:
    """The provider's own URLs where it has them (on AWS: the CloudFront domain in front of production, a
    deployment's function URL), else the platform's host names under its base domain (what the local edge
    routes). A provider that cannot be asked right now costs the answer its URL, never the answer itself."""

    def __init__(
        self, public_url: Callable[[str], str], base_domain: str, provider: PublicUrls | None
    ) -> None:
        self._public_url = public_url
        self._base = base_domain
        self._provider = provider

    def production(self, project: Project) -> str:
        own = self._ask(lambda p: p.production_url(project.id))
        return own or self._public_url(production_host(project.name, self._base))

    def deployment(self, project: Project, deployment: Deployment) -> str:
        """A deployment's URL; the provider is asked only once it is built (before, it has none)."""
        own = (
            self._ask(lambda p: p.deployment_url(project.id, deployment.id))
            if deployment.status is DeploymentStatus.READY
            else None
        )
        return own or self._public_url(deployment_host(project.name, deployment.id, self._base))

    def host_url(self, host: str) -> str:
        """The URL of one of the platform's host names (a branch's alias)."""
        return self._public_url(host)

    def _ask(self, question: Callable[[PublicUrls], str | None]) -> str | None:
        if self._provider is None:
            return None
        try:
            return question(self._provider)
        except Exception as exc:  # the platform's host name stands in; the reason goes to the log
            log.warning("the provider's URL could not be read: %s", exc)
            return None
