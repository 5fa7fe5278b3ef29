"""The Store port (and the LeaseRepository port) on one DynamoDB table (dynamo_schema.py).

Every compound write is one TransactWriteItems of at most 100 items with the conditions SQLite's write
transaction checks: a name, host, domain, label or token hash is claimed by a conditional put of its claim
item together with the entity that claims it; a move of the production alias compares and sets the
project's target in the same transaction as its history row. Reads of the table are strongly consistent;
lists come from the indexes (eventually consistent on AWS: a list read just after a write may miss it) and
follow every page. No request reads the whole table (no Scan): what the SQLite store reads whole (every
project, host, token or domain) is one partition of ``ListIndex``. Projects are deleted as a resumable
state machine (dynamo_deletion.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.dynamo_deletion import DeletionItems
from anchor_deploy.adapters.aws.dynamo_deployments import DeploymentItems
from anchor_deploy.adapters.aws.dynamo_dns_links import DnsLinkItems
from anchor_deploy.adapters.aws.dynamo_domains import DomainItems
from anchor_deploy.adapters.aws.dynamo_logs import LogItems
from anchor_deploy.adapters.aws.dynamo_projects import ProjectItems
from anchor_deploy.adapters.aws.dynamo_sessions import SessionItems
from anchor_deploy.adapters.aws.dynamo_table import DynamoTable


class DynamoStore(
    ProjectItems, SessionItems, DeploymentItems, LogItems, DomainItems, DnsLinkItems, DeletionItems
):
    def __init__(
        self,
        clients: AwsClients,
        table: str,
        clock: Callable[[], float] = time.time,
        page_size: int | None = None,
    ) -> None:
        """``page_size`` caps every Query page (None: DynamoDB's own 1 MB pages); the table must exist
        (dynamo_schema.create_table, or the CloudFormation stack)."""
        self._table = DynamoTable(clients.client("dynamodb"), table, page_size)
        self._clock = clock

    @property
    def table(self) -> DynamoTable:
        return self._table
