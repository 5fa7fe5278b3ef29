"""Items of the DynamoDB store to and from entities.

DynamoDB numbers are decimals: a float goes in as the Decimal of its shortest repr and comes back as the same
float, bit for bit. Bytes (sealed values, certificates, manifests) are Binary. None is never stored: the
attribute is left out (or removed), which also keeps an item out of a sparse index.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from anchor_deploy.model.apps import parse_app_config
from anchor_deploy.model.domains import (
    CdnStatus,
    CertificateStatus,
    DnsStatus,
    Domain,
    FailureKind,
    IssuedInfo,
    records_from_text,
    records_to_text,
)
from anchor_deploy.model.entities import (
    AliasMove,
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    MoveReason,
    Project,
    Target,
    Token,
    TokenSource,
)
from anchor_deploy.model.manifest import ManifestFile

Item = dict[str, Any]  # decoded: str, Decimal, bool, bytes, lists and maps of them
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

LIVE, DELETING = "live", "deleting"  # a project's state


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, bytes | bytearray):
        return Binary(bytes(value))
    return value


def encode_value(value: Any) -> dict[str, Any]:
    return dict(_SERIALIZER.serialize(_plain(value)))


def encode(values: Mapping[str, Any]) -> dict[str, Any]:
    """An item (or expression values) in DynamoDB's typed JSON; None values are left out."""
    return {name: encode_value(v) for name, v in values.items() if v is not None}


def decode(raw: Mapping[str, Any]) -> Item:
    item: Item = {}
    for name, typed in raw.items():
        value = _DESERIALIZER.deserialize(typed)
        item[name] = value.value if isinstance(value, Binary) else value
    return item


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def number(value: Any) -> float:
    return float(value)


def maybe_number(value: Any) -> float | None:
    return None if value is None else float(value)


# -- keys ------------------------------------------------------------------------------------------
def project_pk(project_id: str) -> str:
    return f"PROJECT#{project_id}"


def deploy_pk(deployment_id: str) -> str:
    return f"DEPLOY#{deployment_id}"


def host_pk(host: str) -> str:
    return f"HOST#{host}"


def move_sk(n: int) -> str:
    return f"MOVE#{n:012d}"


def log_sk(seq: int) -> str:
    return f"LOG#{seq:012d}"


# -- manifests -------------------------------------------------------------------------------------
CHUNK_BYTES = 300 * 1024  # bytes of a manifest or sealed environment per item (an item holds at most 400 KB)


def encode_manifest(files: Sequence[ManifestFile], chunk: int = CHUNK_BYTES) -> list[bytes]:
    rows = [[f.path, f.sha256, f.size, f.mode] for f in files]
    blob = zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 3)
    return [blob[i : i + chunk] for i in range(0, len(blob), chunk)] or [b""]


def decode_manifest(chunks: Sequence[bytes]) -> list[ManifestFile]:
    return [ManifestFile(p, s, n, m) for p, s, n, m in json.loads(zlib.decompress(b"".join(chunks)))]


# -- entities --------------------------------------------------------------------------------------
def project_of(item: Item) -> Project:
    return Project(
        item["id"], item["name"], number(item["created_at"]), item.get("production"), bool(item["pinned"])
    )


def deployment_item(d: Deployment, order: int, host: str) -> Item:
    return {
        "pk": deploy_pk(d.id),
        "sk": "DEPLOY",
        "id": d.id,
        "project_id": d.project_id,
        "project_sk": f"DEPLOY#{d.id}",
        "status": d.status.value,
        "target": d.target.value,
        "created_at": d.created_at,
        "ready_at": d.ready_at,
        "error": d.error,
        "meta": json.dumps(d.meta),
        "file_count": d.file_count,
        "total_size": d.total_size,
        "created_by": d.created_by,
        "go_live_pending": d.go_live_pending,
        "app": json.dumps(d.app.to_dict()) if d.app else None,
        "order": order,
        "host": host,
    }


def deployment_of(item: Item) -> Deployment:
    return Deployment(
        id=item["id"],
        project_id=item["project_id"],
        status=DeploymentStatus(item["status"]),
        target=Target(item["target"]),
        created_at=number(item["created_at"]),
        file_count=int(item["file_count"]),
        total_size=int(item["total_size"]),
        meta=json.loads(item["meta"]),
        ready_at=maybe_number(item.get("ready_at")),
        error=item.get("error"),
        created_by=item["created_by"],
        go_live_pending=bool(item["go_live_pending"]),
        app=parse_app_config(json.loads(item["app"])) if item.get("app") else None,
    )


def host_item(route: HostRoute) -> Item:
    return {
        "pk": host_pk(route.host),
        "sk": "HOST",
        "host": route.host,
        "kind": route.kind.value,
        "project_id": route.project_id,
        "project_sk": f"HOST#{route.host}",
        "deployment_id": route.deployment_id,
        "list_pk": "HOSTS",
        "list_sk": route.host,
    }


def route_of(item: Item) -> HostRoute:
    return HostRoute(item["host"], HostKind(item["kind"]), item["project_id"], item.get("deployment_id"))


def token_item(token: Token, secret_hash: str) -> Item:
    scoped = token.project_id is not None
    return {
        "pk": f"TOKEN#{token.id}",
        "sk": "TOKEN",
        "id": token.id,
        "name": token.name,
        "project_id": token.project_id,
        "project_sk": f"TOKEN#{token.id}" if scoped else None,
        "created_at": token.created_at,
        "source": token.source.value,
        "last_used_at": token.last_used_at,
        "secret_hash": secret_hash,
        "list_pk": "TOKENS",
        "list_sk": token.id,
    }


def token_of(item: Item) -> Token:
    return Token(
        item["id"],
        item["name"],
        item.get("project_id"),
        number(item["created_at"]),
        TokenSource(item["source"]),
        maybe_number(item.get("last_used_at")),
    )


def move_of(item: Item) -> AliasMove:
    return AliasMove(
        int(item["n"]),
        item["project_id"],
        item.get("from"),
        item["to"],
        MoveReason(item["reason"]),
        item["token_name"],
        number(item["at"]),
    )


def domain_state(d: Domain) -> Item:
    """The attributes save_domain writes (None ones are removed)."""
    cert = d.certificate
    return {
        "certificate_status": d.certificate_status.value,
        "cdn_status": d.cdn_status.value,
        "dns_status": d.dns_status.value,
        "status_reason": d.status_reason,
        "cert_serial": cert.serial if cert else None,
        "cert_issuer": cert.issuer if cert else None,
        "cert_not_before": cert.not_before if cert else None,
        "cert_not_after": cert.not_after if cert else None,
        "validation_deadline": d.validation_deadline,
        "last_checked_at": d.last_checked_at,
        "next_check_at": d.next_check_at,
        "due_pk": None if d.next_check_at is None else "DUE",
        "failures": d.failures,
        "deleting": d.deleting,
        "failure": d.failure.value,
        "certificate_ref": d.certificate_ref or None,
        "validation_records": records_to_text(d.validation_records) or None,
        "renewal_status": d.renewal_status or None,
    }


def domain_item(d: Domain) -> Item:
    return {
        "pk": f"DOMAIN#{d.name}",
        "sk": "DOMAIN",
        "name": d.name,
        "project_id": d.project_id,
        "project_sk": f"DOMAIN#{d.name}",
        "validation_label": d.validation_label,
        "created_at": d.created_at,
        "list_pk": "DOMAINS",
        "list_sk": d.name,
        **domain_state(d),
    }


def domain_of(item: Item) -> Domain:
    certificate = None
    if item.get("cert_serial") is not None:
        certificate = IssuedInfo(
            item["cert_serial"],
            item["cert_issuer"],
            number(item["cert_not_before"]),
            number(item["cert_not_after"]),
        )
    return Domain(
        name=item["name"],
        project_id=item["project_id"],
        validation_label=item["validation_label"],
        created_at=number(item["created_at"]),
        certificate_status=CertificateStatus(item["certificate_status"]),
        cdn_status=CdnStatus(item["cdn_status"]),
        dns_status=DnsStatus(item["dns_status"]),
        status_reason=item["status_reason"],
        certificate=certificate,
        validation_deadline=number(item["validation_deadline"]),
        last_checked_at=maybe_number(item.get("last_checked_at")),
        next_check_at=maybe_number(item.get("next_check_at")),
        failures=int(item["failures"]),
        deleting=bool(item["deleting"]),
        failure=FailureKind(item.get("failure", "none")),
        certificate_ref=str(item.get("certificate_ref", "")),
        validation_records=records_from_text(str(item.get("validation_records", ""))),
        renewal_status=str(item.get("renewal_status", "")),
    )
