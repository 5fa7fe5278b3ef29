"""JSON shapes of the API (camelCase, ISO 8601 UTC times)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from anchor_deploy.model.apps import EnvVar
from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.domains import DnsRecord
from anchor_deploy.model.entities import AliasMove, Deployment, Project, Token
from anchor_deploy.model.git import commit_from_meta
from anchor_deploy.model.limits import displayable_meta
from anchor_deploy.ports.issuance import QuotaUse
from anchor_deploy.services.domains import DomainQuota, DomainView
from anchor_deploy.services.scrub import Scrubber
from anchor_deploy.services.urls import UrlService
from anchor_deploy.settings import Settings


def dns_link_json(link: DnsLink) -> dict[str, Any]:
    """A linked zone, without its secret."""
    found: dict[str, Any] = {"zone": link.zone, "kind": link.kind, "target": link.target}
    if link.kind == "rfc2136":
        found.update(keyName=link.key_name, keyAlgorithm=link.key_algorithm)
    return {**found, "createdAt": iso(link.created_at)}


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def project_json(project: Project, urls: UrlService) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "createdAt": iso(project.created_at),
        "productionDeploymentId": project.production_deployment_id,
        "productionUrl": urls.production(project),
        "pinned": project.pinned,
    }


def deployment_json(
    deployment: Deployment,
    project: Project,
    settings: Settings,
    urls: UrlService,
    damage: str | None = None,
) -> dict[str, Any]:
    """``damage``: why the deployment cannot be served now (a blob missing or damaged on disk), if so."""
    meta = displayable_meta(deployment.meta)
    found = {
        "id": deployment.id,
        "projectId": project.id,
        "project": project.name,
        "status": deployment.status.value,
        "target": deployment.target.value,
        "url": urls.deployment(project, deployment),
        "isProduction": project.production_deployment_id == deployment.id,
        "goLivePending": deployment.go_live_pending,
        "createdAt": iso(deployment.created_at),
        "readyAt": iso(deployment.ready_at),
        "createdBy": deployment.created_by,
        "fileCount": deployment.file_count,
        "totalSize": deployment.total_size,
        "error": deployment.error,
        "meta": meta,
        "git": git_json(meta),
        "kind": "app" if deployment.app else "static",
        "app": _app_json(deployment, settings),
        "damaged": {"reason": damage} if damage else None,
    }
    if meta is None:
        # Stored by an older version (nested hundreds of levels deep, NaN, a lone surrogate): withheld.
        found["metaOmitted"] = True
    return found


def git_json(meta: object) -> dict[str, Any] | None:
    """The commit a deployment was built from (its meta's ``git``), or None. Read from the displayable
    meta: a withheld one shows no commit either."""
    commit = commit_from_meta(meta)
    return None if commit is None else commit.as_meta()


def _app_json(deployment: Deployment, settings: Settings) -> dict[str, Any] | None:
    app = deployment.app
    if app is None:
        return None
    return {
        "entry": app.entry,
        "python": app.python,
        "healthPath": app.health_path,
        "static": app.static_dir,
        "limits": limits_json(settings),
    }


def limits_json(settings: Settings) -> dict[str, Any]:
    """How the platform confines this app's worker (the settings in force)."""
    return {
        "sandbox": settings.app_sandbox,
        "memoryBytes": settings.app_memory,
        "maxProcesses": settings.app_max_processes,
        "openFiles": settings.app_open_files,
        "startupCpuSeconds": settings.app_startup_cpu,
        "network": settings.app_network,
        "tmpBytes": settings.app_tmp_bytes,
    }


def env_json(var: EnvVar) -> dict[str, Any]:
    return {
        "key": var.key,
        "value": None if var.secret else var.value,
        "secret": var.secret,
        "updatedAt": iso(var.updated_at),
    }


def move_json(move: AliasMove) -> dict[str, Any]:
    return {
        "id": move.id,
        "alias": "production",
        "at": iso(move.at),
        "tokenName": move.token_name,
        "fromDeploymentId": move.from_deployment_id,
        "toDeploymentId": move.to_deployment_id,
        "reason": move.reason.value,
    }


def history_json(
    moves: Sequence[AliasMove], find: Callable[[str], Deployment | None]
) -> list[dict[str, Any]]:
    """The production alias's moves, each with ``toGit``: the commit of the deployment it moved to (None:
    none recorded, or the deployment is gone). ``find`` is asked once per distinct deployment."""
    commits: dict[str, dict[str, Any] | None] = {}
    for deployment_id in dict.fromkeys(m.to_deployment_id for m in moves):
        deployment = find(deployment_id)
        commits[deployment_id] = git_json(displayable_meta(deployment.meta)) if deployment else None
    return [{**move_json(m), "toGit": commits[m.to_deployment_id]} for m in moves]


def token_json(token: Token, project: Project | None) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "project": project.name if project else None,
        "createdAt": iso(token.created_at),
        "source": token.source.value,
        "lastUsedAt": iso(token.last_used_at),
    }


def record_json(record: DnsRecord) -> dict[str, Any]:
    found: dict[str, Any] = {
        "type": record.type,
        "name": record.name,
        "value": record.value,
        "purpose": record.purpose,
    }
    if record.note:
        found["note"] = record.note
    return found


def domain_json(view: DomainView, project: Project, settings: Settings) -> dict[str, Any]:
    d = view.domain
    cert = d.certificate
    return {
        "name": d.name,
        "unicodeName": view.unicode_name,
        "projectId": project.id,
        "project": project.name,
        "certificateStatus": d.certificate_status.value,
        "cdnStatus": d.cdn_status.value,
        "dnsStatus": d.dns_status.value,
        "statusReason": d.status_reason,
        "checking": view.checking,
        "dnsRecords": [record_json(r) for r in view.records],
        "certificate": None
        if cert is None
        else {
            "issuer": cert.issuer,
            "serial": cert.serial,
            "notBefore": iso(cert.not_before),
            "notAfter": iso(cert.not_after),
            "renewsAt": iso(cert.renew_after()),
            "reference": d.certificate_ref or None,
            "renewal": d.renewal_status or None,
        },
        "url": settings.https_url(d.name.replace("*.", "www.", 1)),
        "createdAt": iso(d.created_at),
        "validationDeadline": iso(d.validation_deadline),
        "lastCheckedAt": iso(d.last_checked_at),
        "nextCheckAt": iso(d.next_check_at),
    }


def quota_json(quota: DomainQuota) -> dict[str, Any]:
    return {"limit": quota.limit, "used": quota.used}


def quota_use_json(use: QuotaUse) -> dict[str, Any]:
    return {
        "code": use.code,
        "name": use.name,
        "limit": use.limit,
        "used": use.used,
        "scope": use.scope,
        "source": use.source,
    }


def scrub_json(scrubber: Scrubber) -> dict[str, Any]:
    """The background scrub in /v1/health: its settings and its last whole pass."""
    if not scrubber.enabled:
        return {"enabled": False}
    status = scrubber.status
    return {
        "enabled": True,
        "intervalSeconds": scrubber.interval,
        "rateBytesPerSecond": scrubber.rate,
        "passes": status.passes,
        "lastPassAt": iso(status.last_pass_at),
        "lastPassCopies": status.last_pass_copies,
        "lastPassCorrupt": status.last_pass_corrupt,
    }
