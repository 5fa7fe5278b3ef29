"""Request and answer models of git deploys: connecting a repository, its webhooks, pushes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from anchor_deploy.api.schemas import Answer, DeploymentInfo, Timestamp
from anchor_deploy.api.schemas_requests import RequestBody
from anchor_deploy.model.git import Forge


class GitConnectRequest(RequestBody):
    repo_url: str = Field(
        examples=["https://github.com/acme/site.git"],
        description="the repository: https, ssh, git@host:owner/repo, or a path on this machine",
    )
    production_branch: str = Field("main", description="pushes to this branch deploy to production")
    forge: Forge = Field(  # not strict: the JSON string ("gitlab") is the enum's value
        Forge.GITHUB, strict=False, description="its webhooks' format and where statuses are reported"
    )
    api_url: str = Field(
        "", description="the forge API's root, for self-hosted forges (default: the forge's)"
    )
    credentials: str | None = Field(
        None, description="to fetch a private repository: an access token (https) or a deploy key (ssh)"
    )
    forge_token: str | None = Field(None, description="a token that may set commit statuses on the forge")


class GitRefUpdate(RequestBody):
    ref: str = Field(examples=["refs/heads/main"])
    before: str = Field(description="the sha the ref was at (all zeros: created)")
    after: str = Field(description="the sha the ref is at now (all zeros: deleted)")


class GitPushRequest(RequestBody):
    updates: list[GitRefUpdate] = Field(max_length=1000)


class GitConnectionInfo(Answer):
    repo_url: str
    production_branch: str
    forge: Forge
    api_url: str | None
    has_credentials: bool
    has_forge_token: bool
    created_at: Timestamp


class GitBranchInfo(Answer):
    branch: str
    url: str = Field(description="the branch's stable preview URL")
    deployment_id: str | None
    commit_sha: str
    updated_at: Timestamp


class GitInfo(Answer):
    connection: GitConnectionInfo | None = Field(description="null: no repository connected")
    webhook_url: str = Field(description="where the forge sends push events")
    remote_url: str | None = Field(description="`git push` here deploys (a token is the password)")
    branches: list[GitBranchInfo]


class GitConnected(GitInfo):
    webhook_secret: str = Field(description="the webhook's secret: shown once, give it to the forge")


class GitDisconnected(Answer):
    disconnected: bool
    message: str


class WebhookAnswerInfo(Answer):
    outcome: Literal["queued", "deleted", "duplicate", "ping", "ignored"]
    message: str
    deployment: DeploymentInfo | None = None


class GitPushedDeployment(DeploymentInfo):
    branch_url: str | None = Field(
        description="the branch's stable URL, which follows its newest ready build"
    )


class GitPushAnswer(Answer):
    deployments: list[GitPushedDeployment]
