"""DNS zones linked to projects, in the DynamoDB store: ``DNSLINK#<zone>`` / ``DNSLINK``, one item per zone
(so a zone is linked by one project at a time), listed through ``ProjectIdIndex`` under its project and
deleted with it (dynamo_deletion.py). The item is put in one transaction with a check that the project is
live."""

from __future__ import annotations

from anchor_deploy.adapters.aws.dynamo_base import DynamoBase
from anchor_deploy.adapters.aws.dynamo_codec import Item, number
from anchor_deploy.adapters.aws.dynamo_schema import PROJECT_ID_INDEX
from anchor_deploy.adapters.aws.dynamo_table import TransactionCanceled
from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.errors import ProjectNotFound, ZoneLinked

PREFIX = "DNSLINK#"


def _pk(zone: str) -> str:
    return PREFIX + zone


def _item(link: DnsLink, sealed_secret: bytes | None) -> Item:
    return {
        "pk": _pk(link.zone),
        "sk": "DNSLINK",
        "zone": link.zone,
        "project_id": link.project_id,
        "project_sk": _pk(link.zone),
        "kind": link.kind,
        "target": link.target,
        "key_name": link.key_name,
        "key_algorithm": link.key_algorithm,
        "created_at": link.created_at,
        "sealed_secret": sealed_secret,
    }


def _link(item: Item) -> DnsLink:
    return DnsLink(
        str(item["zone"]),
        str(item["project_id"]),
        str(item["kind"]),
        str(item["target"]),
        str(item.get("key_name", "")),
        str(item["key_algorithm"]),
        number(item["created_at"]),
    )


class DnsLinkItems(DynamoBase):
    def add_dns_link(self, link: DnsLink, sealed_secret: bytes | None) -> None:
        t = self._table
        try:
            t.transact(
                [
                    t.put(_item(link, sealed_secret), "attribute_not_exists(pk)"),
                    self._check_live(link.project_id),
                ]
            )
        except TransactionCanceled as refused:
            if refused.failed(0):
                raise ZoneLinked(f"the zone {link.zone} is linked already; unlink it there first") from None
            if refused.failed(1):
                raise ProjectNotFound(f"project {link.project_id} not found") from None
            raise

    def dns_links(self, project_id: str) -> list[DnsLink]:
        items = self._table.query(
            "project_id = :p AND begins_with(project_sk, :k)",
            {":p": project_id, ":k": PREFIX},
            index=PROJECT_ID_INDEX,
        )
        return sorted((_link(i) for i in items), key=lambda link: link.zone)

    def dns_link_secret(self, zone: str) -> bytes | None:
        item = self._table.get(_pk(zone), "DNSLINK", ("sealed_secret",))
        if item is None or item.get("sealed_secret") is None:
            return None
        return bytes(item["sealed_secret"])

    def remove_dns_link(self, project_id: str, zone: str) -> bool:
        operation = self._table.delete(_pk(zone), "DNSLINK", "project_id = :p", values={":p": project_id})
        return self._table.write(operation, returning="ALL_OLD") is not None
