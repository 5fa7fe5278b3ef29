"""A linked zone in Route 53, written with the platform's own AWS credentials (adapters/aws/clients.py).

Each ``upsert`` is one ChangeResourceRecordSets whose change batch UPSERTs every record set (records that
share a name and a type are one set, TTL 300). An ``ALIAS`` record (the value a CloudFront domain) is an
alias A and AAAA record set to it, through CloudFront's hosted zone Z2FDTNDATAQYW2: Route 53 answers it at
a zone's apex, where a CNAME is not allowed. ``delete`` reads each set first (ListResourceRecordSets at
its name and type) and DELETEs, in one change batch, the sets that still hold exactly what was written,
as Route 53 has them: a set that is gone, or that the user changed since, is left alone. Changes are not
waited for (Route 53 makes them INSYNC within about a minute by itself)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.model.domains import DnsRecord
from anchor_deploy.model.errors import DnsUpdateFailed

CLOUDFRONT_HOSTED_ZONE = "Z2FDTNDATAQYW2"  # every CloudFront distribution's, for alias records
TTL = 300
WRITABLE = ("CNAME", "A", "AAAA", "TXT", "ALIAS")

RecordSet = dict[str, Any]


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _value(record: DnsRecord) -> str:
    if record.type == "CNAME":
        return _fqdn(record.value)
    if record.type == "TXT" and not record.value.startswith('"'):
        return '"' + record.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return record.value


def record_sets(records: Sequence[DnsRecord], ttl: int = TTL) -> list[RecordSet]:
    """The ResourceRecordSets that hold ``records``: one per name and type, an ALIAS as an A and an AAAA."""
    grouped: dict[tuple[str, str], list[DnsRecord]] = {}
    for record in records:
        if record.type not in WRITABLE:
            raise DnsUpdateFailed(f"a {record.type} record ({record.name}) is not one this platform writes")
        grouped.setdefault((_fqdn(record.name), record.type), []).append(record)
    sets: list[RecordSet] = []
    for (name, kind), members in grouped.items():
        if kind == "ALIAS":
            target = {
                "HostedZoneId": CLOUDFRONT_HOSTED_ZONE,
                "DNSName": _fqdn(members[0].value),
                "EvaluateTargetHealth": False,
            }
            sets += [{"Name": name, "Type": t, "AliasTarget": target} for t in ("A", "AAAA")]
        else:
            values = list(dict.fromkeys(_value(r) for r in members))
            sets.append(
                {"Name": name, "Type": kind, "TTL": ttl, "ResourceRecords": [{"Value": v} for v in values]}
            )
    return sets


def _name(raw: str) -> str:
    """A name as Route 53 lists it (``\\052`` for a leading ``*``), as written."""
    return raw.replace("\\052", "*").lower()


def _content(record_set: RecordSet) -> tuple[str, frozenset[str]]:
    alias = record_set.get("AliasTarget")
    if alias is not None:
        return "alias", frozenset({_fqdn(str(alias["DNSName"]))})
    values = {str(r["Value"]) for r in record_set.get("ResourceRecords", [])}
    if record_set["Type"] == "CNAME":
        values = {_fqdn(v) for v in values}
    return "records", frozenset(values)


class Route53ZoneWriter:
    def __init__(self, clients: AwsClients, zone_id: str, zone: str, ttl: int = TTL) -> None:
        self._clients = clients
        self._zone_id = zone_id
        self._zone = zone
        self._ttl = ttl

    def upsert(self, records: Sequence[DnsRecord]) -> None:
        sets = record_sets(records, self._ttl)
        self._change([{"Action": "UPSERT", "ResourceRecordSet": s} for s in sets], "write")

    def delete(self, records: Sequence[DnsRecord]) -> None:
        changes = []
        for wanted in record_sets(records, self._ttl):
            current = self._current(wanted["Name"], wanted["Type"])
            if current is not None and _content(current) == _content(wanted):
                changes.append({"Action": "DELETE", "ResourceRecordSet": current})
        self._change(changes, "delete")

    def _where(self) -> str:
        return f"Route 53 hosted zone {self._zone_id} ({self._zone})"

    def _current(self, name: str, kind: str) -> RecordSet | None:
        try:
            answer = self._clients.client("route53").list_resource_record_sets(
                HostedZoneId=self._zone_id, StartRecordName=name, StartRecordType=kind, MaxItems="1"
            )
        except (ClientError, BotoCoreError) as exc:
            raise DnsUpdateFailed(f"{self._where()} could not be read: {_words(exc)}") from None
        for found in answer.get("ResourceRecordSets", []):
            if _name(str(found["Name"])) == name and found["Type"] == kind:
                return dict(found)
        return None

    def _change(self, changes: list[dict[str, Any]], what: str) -> None:
        if not changes:
            return
        try:
            self._clients.client("route53").change_resource_record_sets(
                HostedZoneId=self._zone_id,
                ChangeBatch={"Comment": f"anchor: {what} domain records", "Changes": changes},
            )
        except (ClientError, BotoCoreError) as exc:
            raise DnsUpdateFailed(f"{self._where()} refused to {what} the records: {_words(exc)}") from None


def _words(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)
