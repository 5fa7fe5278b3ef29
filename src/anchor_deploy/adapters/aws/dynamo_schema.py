"""The DynamoDB table of the AWS provider: one table (single-table design), string keys ``pk``/``sk``.

``table_spec`` is plain data: the keyword arguments of boto3's ``create_table`` and, property for property,
what a CloudFormation ``AWS::DynamoDB::Table`` needs (TableName, AttributeDefinitions, KeySchema,
GlobalSecondaryIndexes, BillingMode).

Items (``pk`` / ``sk``):

* ``PROJECT#<id>`` / ``PROJECT``: a project (its production target, pin, counters, live or deleting);
  ``PROJECT#<id>`` / ``ENV#<key>``: its environment variables; ``PROJECT#<id>`` / ``MOVE#<n>``: its alias
  history. ``NAME#<name>`` / ``CLAIM``: the claim on a project name.
* ``DEPLOY#<id>`` / ``DEPLOY``: a deployment; ``DEPLOY#<id>`` / ``MANIFEST#<n>``: its manifest (zlib JSON,
  in chunks under the item size limit); ``DEPLOY#<id>`` / ``SEALED_ENV``; ``DEPLOY#<id>`` / ``LOGHEAD``
  and ``LOG#<seq>``: its build log.
* ``HOST#<host>`` / ``HOST``: a host route; the item is the host's claim.
* ``TOKEN#<id>`` / ``TOKEN``: a token; ``TOKENHASH#<hash>`` / ``CLAIM``: the claim on its secret's hash.
* ``SESSION#<id>`` / ``SESSION``: a dashboard session; ``SESSIONHASH#<hash>`` / ``CLAIM``: its hash claim.
* ``DOMAIN#<name>`` / ``DOMAIN``: a custom domain (with its certificate); ``LABEL#<label>`` / ``CLAIM``.
* ``DNSLINK#<zone>`` / ``DNSLINK``: a DNS zone linked to a project (its sealed TSIG secret with it).
* ``LEASE#<name>`` / ``LEASE``: a lease (holder, expiry); ``COUNTER#projects`` / ``COUNTER``.

Indexes (every one sparse: an item is in an index only when it has the index's key attributes):

* ``ProjectIdIndex`` (``project_id``, ``project_sk``): a project's deployments, hosts, domains, tokens and
  linked DNS zones.
* ``ListIndex`` (``list_pk``, ``list_sk``): every live project by name, every host (the reconciler), every
  token, every domain by name, every session by expiry, and the projects being deleted
  (``resume_deletions``).
* ``StatusIndex`` (``status``, ``created_at``): deployments by status, oldest first (the build queue).
* ``DueIndex`` (``due_pk``, ``next_check_at``): domains with a next check, the most overdue first.
"""

from __future__ import annotations

from typing import Any

PROJECT_ID_INDEX = "ProjectIdIndex"
LIST_INDEX = "ListIndex"
STATUS_INDEX = "StatusIndex"
DUE_INDEX = "DueIndex"

_ATTRIBUTES = {
    "pk": "S",
    "sk": "S",
    "project_id": "S",
    "project_sk": "S",
    "list_pk": "S",
    "list_sk": "S",
    "status": "S",
    "created_at": "N",
    "due_pk": "S",
    "next_check_at": "N",
}
_INDEXES = {
    PROJECT_ID_INDEX: ("project_id", "project_sk"),
    LIST_INDEX: ("list_pk", "list_sk"),
    STATUS_INDEX: ("status", "created_at"),
    DUE_INDEX: ("due_pk", "next_check_at"),
}


def _key(partition: str, sort: str) -> list[dict[str, str]]:
    return [{"AttributeName": partition, "KeyType": "HASH"}, {"AttributeName": sort, "KeyType": "RANGE"}]


def table_spec(table_name: str) -> dict[str, Any]:
    """The table as ``create_table`` keyword arguments (also a CloudFormation table's properties)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in _ATTRIBUTES.items()],
        "KeySchema": _key("pk", "sk"),
        "GlobalSecondaryIndexes": [
            {"IndexName": name, "KeySchema": _key(*keys), "Projection": {"ProjectionType": "ALL"}}
            for name, keys in _INDEXES.items()
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_table(clients: Any, name: str) -> None:
    """Create the table and wait until it is ACTIVE. ``clients`` is an ``AwsClients``."""
    dynamodb = clients.client("dynamodb")
    dynamodb.create_table(**table_spec(name))
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
