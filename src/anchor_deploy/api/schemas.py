"""The API's JSON shapes as pydantic models: what the OpenAPI document at /v1/openapi.json shows, and what
each route's answer is checked against before it leaves (a field the route emits but its model lacks is an
error, not a silent drop).

Python names are snake_case; the JSON is camelCase (``created_at`` is ``createdAt``). Answers are built as
dicts by api/serialize.py and validated here; a key a route leaves out (``metaOmitted``, a record's ``note``)
stays left out: routes answer with ``response_model_exclude_unset``. Request bodies are in
api/schemas_requests.py; the areas' answers in api/schemas_areas.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from anchor_deploy.model.entities import DeploymentStatus, MoveReason, Target, TokenSource

Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2025-01-31T12:00:00.000Z"])
]


class Answer(BaseModel):
    """A JSON answer: camelCase keys, no key the model does not name."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# -- errors --------------------------------------------------------------------------------------------------
class UploadTargetInfo(Answer):
    """A direct upload of one blob to the blob store (S3: a presigned URL): send its bytes as the body of a
    ``method`` request to ``url`` with exactly ``headers`` (they are signed), before ``expiresAt``. The store
    refuses other bytes, and a blob it already holds (412: upload that one through PUT /v1/blobs/{digest})."""

    sha256: str
    method: Literal["PUT"]
    url: str
    headers: dict[str, str]
    expires_at: Timestamp


class ErrorDetail(BaseModel):
    """``code`` is stable (clients branch on it), ``message`` is for people. Some errors add fields."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["project_not_found"])
    message: str = Field(examples=["project 'blog' not found"])
    missing: list[str] | None = Field(
        None, description="missing_files: the sha256 of each blob to upload before deploying"
    )
    uploads: list[UploadTargetInfo] | None = Field(
        None,
        description="missing_files, when the blob store takes direct uploads: where to send each of the "
        "first 1,000 blobs of `missing`, in its order (ask again for the rest; else, and for a blob the "
        "store refuses with 412, PUT /v1/blobs/{digest})",
    )
    digest: str | None = Field(None, description="blob_unavailable: the blob that is missing or damaged")
    problem: str | None = Field(None, description="blob_unavailable: what is wrong with it")


class ErrorBody(BaseModel):
    """Every error the API answers (4xx and 5xx) has this shape."""

    error: ErrorDetail


# -- health, tokens, projects --------------------------------------------------------------------------------
class SandboxState(Answer):
    description: str | None
    ok: bool


class ScrubState(Answer):
    """The background scrub: only ``enabled`` when it is off."""

    enabled: bool
    interval_seconds: float | None = None
    rate_bytes_per_second: float | None = None
    passes: int | None = None
    last_pass_at: Timestamp | None = None
    last_pass_copies: int | None = None
    last_pass_corrupt: int | None = None


class Health(Answer):
    ok: bool = Field(description="always true: the API answers")
    status: Literal["ok", "degraded"] = Field(
        description="degraded: a deployment cannot be served, a stored blob is damaged, or the edge is down"
    )
    version: str
    edge: bool | None = Field(description="the edge (Caddy) answers; null when this platform runs none")
    sandbox: SandboxState
    damaged_deployments: int
    corrupt_blobs: int
    scrub: ScrubState


class TokenInfo(Answer):
    id: str
    name: str
    project: str | None = Field(description="the one project the token may use; null: unrestricted (admin)")
    created_at: Timestamp
    source: TokenSource
    last_used_at: Timestamp | None


class TokenCreated(TokenInfo):
    token: str = Field(description="the secret: shown this once, never again")


class TokenRevoked(TokenInfo):
    revoked: Literal[True]


class TokenList(Answer):
    tokens: list[TokenInfo]


class ProjectInfo(Answer):
    id: str
    name: str
    created_at: Timestamp
    production_deployment_id: str | None
    production_url: str
    pinned: bool = Field(description="production stays on a rolled-back deployment until promote or unpin")


class ProjectList(Answer):
    projects: list[ProjectInfo]


class Deleted(Answer):
    deleted: str


# -- deployments ---------------------------------------------------------------------------------------------
class AppLimits(Answer):
    sandbox: str
    memory_bytes: int
    max_processes: int
    open_files: int
    startup_cpu_seconds: float
    network: str
    tmp_bytes: int


class AppInfo(Answer):
    entry: str
    python: str | None
    health_path: str
    static: str | None
    limits: AppLimits


class Damage(Answer):
    reason: str


class GitCommit(Answer):
    """The commit a deployment was built from: pushed, or the working tree `anchor deploy` ran in."""

    repository: str = Field(description="the repository's URL, without credentials; empty when not known")
    branch: str = Field(description="empty when not on a branch (a detached HEAD)")
    commit_sha: str
    commit_message: str = Field(description="the first line of the message")
    commit_author: str = Field(examples=["Ada Lovelace <ada@example.com>"])
    dirty: bool = Field(description="the tree deployed had changes the commit does not have")


class DeploymentInfo(Answer):
    id: str
    project_id: str
    project: str
    status: DeploymentStatus
    target: Target
    url: str
    is_production: bool
    go_live_pending: bool = Field(
        description="a production build is READY and production has not been moved to it yet (moments)"
    )
    created_at: Timestamp
    ready_at: Timestamp | None
    created_by: str
    file_count: int
    total_size: int
    error: str | None
    meta: dict[str, Any] | None = Field(description="null when withheld (see metaOmitted)")
    meta_omitted: bool | None = Field(
        None, description="present (true) when the stored meta cannot be sent back as JSON"
    )
    git: GitCommit | None = Field(description="the commit it was built from (meta.git); null: none recorded")
    kind: Literal["app", "static"]
    app: AppInfo | None
    damaged: Damage | None = Field(description="why the deployment cannot be served now, if so")


class DeploymentCreated(DeploymentInfo):
    """A production deployment also says where production is and whether it is pinned."""

    production_url: str | None = None
    production_pinned: bool | None = None
    message: str | None = Field(None, description="present when production is pinned")


class DeploymentList(Answer):
    deployments: list[DeploymentInfo]


class AliasMoveInfo(Answer):
    id: int
    alias: Literal["production"]
    at: Timestamp
    token_name: str
    from_deployment_id: str | None
    to_deployment_id: str
    reason: MoveReason


class RolledBack(AliasMoveInfo):
    rolled_back_at: Timestamp


class Promoted(AliasMoveInfo):
    promoted_at: Timestamp


class AliasHistoryEntry(AliasMoveInfo):
    to_git: GitCommit | None = Field(
        description="the commit of the deployment production moved to; null: none recorded, or it is gone"
    )


class AliasHistory(Answer):
    alias: Literal["production"]
    history: list[AliasHistoryEntry]


class LogLine(Answer):
    seq: int
    at: Timestamp
    text: str


class BuildLog(Answer):
    source: Literal["build"]
    status: DeploymentStatus
    lines: list[LogLine]


class RuntimeLog(Answer):
    source: Literal["runtime"]
    lines: list[str] = Field(description="the app worker's last output lines, oldest first")


DeploymentLog = Annotated[BuildLog | RuntimeLog, Field(discriminator="source")]
