"""What /v1/health reports: the provider's parts, deployments that cannot be served, damaged blobs, the
scrub."""

from __future__ import annotations

from dataclasses import dataclass

from anchor_deploy.ports import BlobChecker
from anchor_deploy.ports.operations import ProviderStatus
from anchor_deploy.services.reconcile import Reconciler
from anchor_deploy.services.scrub import Scrubber


@dataclass(frozen=True)
class HealthReport:
    edge: bool | None  # None: the provider runs no edge process of its own
    user_code: str | None  # how user code is confined, in words
    apps_can_run: bool
    damaged_deployments: int
    corrupt_blobs: int
    scrubber: Scrubber

    @property
    def degraded(self) -> bool:
        return bool(self.damaged_deployments or self.corrupt_blobs or self.edge is False)


class HealthService:
    def __init__(
        self, status: ProviderStatus, reconciler: Reconciler, blobs: BlobChecker, scrubber: Scrubber
    ) -> None:
        self._status = status
        self._reconciler = reconciler
        self._blobs = blobs
        self._scrubber = scrubber

    def report(self) -> HealthReport:
        description, usable = self._status.user_code()
        return HealthReport(
            edge=self._status.edge_healthy(),
            user_code=description,
            apps_can_run=usable,
            damaged_deployments=len(self._reconciler.damaged()),
            corrupt_blobs=len(self._blobs.corrupt()),
            scrubber=self._scrubber,
        )

    def damage_of(self, deployment_id: str) -> str | None:
        """Why the deployment cannot be served now (its files could not be built), or None."""
        found = self._reconciler.damage_of(deployment_id)
        return found.reason if found else None
