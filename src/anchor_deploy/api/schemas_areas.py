"""Answers of the custom-domain, environment-variable and operator routes (see api/schemas.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from anchor_deploy.api.schemas import Answer, Timestamp
from anchor_deploy.model.domains import CdnStatus, CertificateStatus, DnsStatus
from anchor_deploy.model.integrity import CopyKind, ProblemKind


# -- custom domains ------------------------------------------------------------------------------------------
class DnsRecordInfo(Answer):
    type: str = Field(examples=["CNAME"])
    name: str
    value: str
    purpose: Literal["validation", "routing"]
    note: str | None = Field(None, description="present when there is something to know about this record")


class RemovedRecord(DnsRecordInfo):
    deletable: bool = Field(description="false: another domain still needs this record")


class CertificateInfo(Answer):
    issuer: str
    serial: str
    not_before: Timestamp
    not_after: Timestamp
    renews_at: Timestamp = Field(
        description="when the platform asks for a new one; an authority that renews by itself (ACM) chooses "
        "its own time: see renewal"
    )
    reference: str | None = Field(None, description="the issuer's name for it: an ACM certificate ARN")
    renewal: str | None = Field(
        None,
        description="the authority's own renewal status (ACM's RenewalSummary), for certificates it renews",
    )


class DomainInfo(Answer):
    name: str = Field(description="the A-label (ASCII) form; '*.example.com' for a wildcard")
    unicode_name: str
    project_id: str
    project: str
    certificate_status: CertificateStatus
    cdn_status: CdnStatus
    dns_status: DnsStatus
    status_reason: str
    checking: bool = Field(description="a check still runs: this is the state recorded before it")
    dns_records: list[DnsRecordInfo]
    certificate: CertificateInfo | None
    url: str
    created_at: Timestamp
    validation_deadline: Timestamp
    last_checked_at: Timestamp | None
    next_check_at: Timestamp | None = Field(description="null: nothing happens until a retry")


class QuotaInfo(Answer):
    code: str = Field(examples=["acm_names_per_certificate"], description="stable: what the quota is")
    name: str
    limit: int
    used: int = Field(description="the use of the fullest one (e.g. the distribution with the most names)")
    scope: str = Field(examples=["account", "project site"])
    source: str = Field(description="where the limit comes from: a setting, Service Quotas or AWS's default")


class QuotaList(Answer):
    provider: str
    quotas: list[QuotaInfo]


class DomainQuotaInfo(Answer):
    limit: int = Field(description="how many custom domains the project may hold (ANCHOR_DOMAIN_QUOTA)")
    used: int


class DomainList(Answer):
    domains: list[DomainInfo]
    quota: DomainQuotaInfo


class DomainRemoved(Answer):
    removed: str
    finished: bool = Field(description="false: the CDN still holds the name; it is freed in the background")
    message: str
    dns_records: list[RemovedRecord]


class CertificateAuthority(Answer):
    path: str = Field(description="where the root certificate is on the platform's machine")
    pem: str
    issuer: str = Field(description="the issuer custom domains get certificates from (ANCHOR_ISSUER)")


class DnsLinkInfo(Answer):
    zone: str = Field(description="the zone, in A-label (ASCII) form")
    kind: Literal["route53", "rfc2136"]
    target: str = Field(description="the Route 53 hosted zone id, or the RFC 2136 server as HOST:PORT")
    key_name: str | None = Field(None, description="RFC 2136: the TSIG key's name (never its secret)")
    key_algorithm: str | None = None
    created_at: Timestamp


class DnsLinkList(Answer):
    links: list[DnsLinkInfo]


class DnsLinkRemoved(Answer):
    unlinked: str
    message: str


# -- environment variables -----------------------------------------------------------------------------------
class EnvVarInfo(Answer):
    key: str
    value: str | None = Field(description="null for a secret: it is never shown again")
    secret: bool
    updated_at: Timestamp


class EnvList(Answer):
    env: list[EnvVarInfo]


# -- operator ------------------------------------------------------------------------------------------------
class FsckChecked(Answer):
    copies: int
    bytes: int


class BlobProblemInfo(Answer):
    digest: str
    copy_name: str | None = Field(alias="copy", description="the stored file that is wrong; null: none left")
    kind: CopyKind
    problem: ProblemKind
    detail: str
    deployments: list[str] = Field(description="the deployments whose manifest uses the blob")
    action: str | None = Field(description="what repair did about it; null without repair")


class DamagedDeployment(Answer):
    id: str
    reason: str


class FsckReportInfo(Answer):
    clean: bool
    repair: bool
    checked: FsckChecked
    seconds: float
    problems: list[BlobProblemInfo]
    relinked: list[str] = Field(description="deployments rebuilt in place from good copies")
    taken_down: list[str] = Field(description="deployments no longer served until their blobs are uploaded")
    damaged_deployments: list[DamagedDeployment]
