"""What every part of the DynamoDB store shares: the table, the clock, and reading a project's item."""

from __future__ import annotations

from collections.abc import Callable

from anchor_deploy.adapters.aws.dynamo_codec import LIVE, Item, project_pk
from anchor_deploy.adapters.aws.dynamo_table import DynamoTable
from anchor_deploy.model.errors import ProjectNotFound

ATTEMPTS = 50  # compare-and-set rounds before giving up on a write other writers keep winning
LIVE_PROJECT = "attribute_exists(pk) AND #state = :live"  # with LIVE_NAMES / LIVE_VALUES
LIVE_NAMES = {"#state": "state"}
LIVE_VALUES = {":live": LIVE}


class DynamoBase:
    _table: DynamoTable
    _clock: Callable[[], float]

    def _project_item(self, project_id: str) -> Item | None:
        """The project's item if the project is live (not being deleted)."""
        item = self._table.get(project_pk(project_id), "PROJECT")
        return item if item is not None and item.get("state") == LIVE else None

    def _require_project(self, project_id: str) -> Item:
        item = self._project_item(project_id)
        if item is None:
            raise ProjectNotFound(f"project {project_id} not found")
        return item

    def _check_live(self, project_id: str) -> dict[str, object]:
        """A transaction's ConditionCheck that the project exists and is live."""
        return self._table.check(project_pk(project_id), "PROJECT", LIVE_PROJECT, LIVE_NAMES, LIVE_VALUES)
