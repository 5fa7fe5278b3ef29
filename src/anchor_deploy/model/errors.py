"""The error tree. Every error has a stable ``code`` that the API returns and an HTTP status.

AnchorError
├── InvalidInput (422)            bad names, bad manifests, bad bodies
│   ├── InvalidName
│   └── InvalidManifest
├── Unauthorized (401)            missing or wrong token
├── Forbidden (403)               token limited to another project
├── NotFound (404)
│   ├── ProjectNotFound
│   ├── DeploymentNotFound
│   ├── DomainNotFound
│   ├── DnsLinkNotFound
│   └── TokenNotFound
├── Conflict (409)
│   ├── MissingFiles              manifest references blobs the server lacks
│   ├── NameTaken
│   ├── NoRollbackTarget
│   ├── DeploymentNotReady
│   ├── DomainTaken              another project holds the custom domain
│   ├── DomainNotRetryable       retry is only for FAILED or VALIDATION_TIMED_OUT
│   ├── ZoneLinked               a project has linked the DNS zone already
│   └── FsckRunning              one fsck at a time
├── BlobRejected (400/413)        digest mismatch, too large
│   └── BlobUnavailable (503)     a stored blob is missing or damaged on disk
├── BlobStoreUnavailable (503)    the blob store (S3) refused or could not be reached; nothing changed
├── BodyTooLarge (413)            a request body over its route's limit (ANCHOR_MAX_JSON_BODY)
├── BadRequest (400)              a request HTTP cannot take (a Content-Length that is no number)
├── EdgeError (503)               the data plane could not be changed (the reconciler retries)
├── SchemaTooNew (503)            the database was migrated by a newer anchor-deploy (refused at start)
├── BackupFailed (503)            a backup could not be taken (the database or a blob is unreadable)
├── BackupInvalid (422)           an archive that is not a whole anchor backup, or a restore refused
├── StoreBusy (503)               the database's write lock is held elsewhere (with Retry-After)
├── BuildFailed / WorkerFailed    an app's build or worker failed (recorded on the deployment)
├── IssuanceFailed                a certificate authority refused or failed (recorded on the domain)
├── StackMissing (503)            the AWS provider's CloudFormation stack is missing: `anchor aws bootstrap`
└── StackFailed (502)             `anchor aws bootstrap`/`destroy`: CloudFormation or AWS refused
"""

from __future__ import annotations

from typing import Any, ClassVar


class AnchorError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    retry_after: ClassVar[int | None] = None  # seconds, sent as Retry-After (a 503 that will pass)

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class InvalidInput(AnchorError):
    code = "invalid_input"
    status = 422


class InvalidName(InvalidInput):
    code = "invalid_name"


class InvalidManifest(InvalidInput):
    code = "invalid_manifest"


class QuotaExceeded(InvalidInput):
    """No placement exists within a quota (422, the message names the quota); nothing was stored."""

    code = "quota_exceeded"


class DomainQuotaExceeded(QuotaExceeded):
    """The project holds as many custom domains as its quota allows (422); nothing was stored."""


class DnsUpdateFailed(AnchorError):
    """A linked DNS zone refused or could not take an update (502, with the server's or AWS's words)."""

    code = "dns_update_failed"
    status = 502


class Unauthorized(AnchorError):
    code = "unauthorized"
    status = 401


class Forbidden(AnchorError):
    code = "forbidden"
    status = 403


class CsrfRefused(Forbidden):
    """A dashboard form posted without its session's CSRF secret."""

    code = "csrf_refused"


class NotFound(AnchorError):
    code = "not_found"
    status = 404


class ProjectNotFound(NotFound):
    code = "project_not_found"


class DeploymentNotFound(NotFound):
    code = "deployment_not_found"


class DomainNotFound(NotFound):
    code = "domain_not_found"


class CopyGone(NotFound):
    """A stored copy of a blob listed a moment ago is gone (collected, replaced or quarantined since)."""

    code = "copy_gone"


class DnsLinkNotFound(NotFound):
    code = "dns_link_not_found"


class TokenNotFound(NotFound):
    code = "token_not_found"


class GitNotConnected(NotFound):
    """The project has no connected repository (or there is no such project: the same answer to a webhook)."""

    code = "git_not_connected"


class WebhookSignatureInvalid(Unauthorized):
    """A webhook's signature (or GitLab's token) is missing or does not match the connection's secret."""

    code = "bad_signature"


class WrongRepository(InvalidInput):
    """A push from a repository other than the project's connected one: nothing is built."""

    code = "wrong_repository"


class GitUnavailable(AnchorError):
    """This provider does not build from git (yet): said plainly instead of pretended."""

    code = "git_unavailable"
    status = 422


class Conflict(AnchorError):
    code = "conflict"
    status = 409


class MissingFiles(Conflict):
    code = "missing_files"


class NameTaken(Conflict):
    code = "name_taken"


class NoRollbackTarget(Conflict):
    code = "no_rollback_target"


class DeploymentNotReady(Conflict):
    code = "deployment_not_ready"


class DomainTaken(Conflict):
    code = "domain_taken"


class DomainNotRetryable(Conflict):
    code = "domain_not_retryable"


class ZoneLinked(Conflict):
    """A project has linked this DNS zone already (a zone is linked by one project at a time)."""

    code = "zone_linked"


class BlobRejected(AnchorError):
    code = "blob_rejected"
    status = 400


class BlobTooLarge(BlobRejected):
    code = "blob_too_large"
    status = 413


class BlobUnavailable(BlobRejected):
    """A blob a deployment needs is not stored, or its bytes on disk no longer hash to its name. ``digest``
    (in ``extra``) names it: the reconciler retries the deployment once that blob is uploaded again."""

    code = "blob_unavailable"
    status = 503


class BlobStoreUnavailable(AnchorError):
    """The blob store service (S3) failed or refused a request after the SDK's retries; nothing changed."""

    code = "blob_store_unavailable"
    status = 503


class FsckRunning(Conflict):
    code = "fsck_running"


class BodyTooLarge(AnchorError):
    code = "body_too_large"
    status = 413


class BadRequest(AnchorError):
    code = "bad_request"
    status = 400


class EdgeError(AnchorError):
    code = "edge_unavailable"
    status = 503


class SchemaTooNew(AnchorError):
    """The data dir's database is at a schema version this code does not know: `anchor up` refuses it."""

    code = "schema_too_new"
    status = 503


class BackupFailed(AnchorError):
    code = "backup_failed"
    status = 503


class BackupInvalid(AnchorError):
    """An archive that is not a whole backup of this format, or a restore that would overwrite data."""

    code = "backup_invalid"
    status = 422


class BuildFailed(AnchorError):
    code = "build_failed"
    status = 422


class WorkerFailed(AnchorError):
    code = "worker_failed"
    status = 503


class StoreBusy(AnchorError):
    """The database's write lock is held elsewhere past the busy timeout; nothing changed, try again."""

    code = "busy"
    status = 503
    retry_after = 1


class SandboxUnavailable(WorkerFailed):
    """User code cannot run: the sandbox is missing or cannot start here (and was not switched off)."""

    code = "sandbox_unavailable"
    status = 503


class IssuanceFailed(AnchorError):
    """A certificate could not be issued (or revoked); the message is shown as the domain's statusReason."""

    code = "issuance_failed"
    status = 502


class StackMissing(AnchorError):
    """The AWS provider's CloudFormation stack does not exist or is not usable: `anchor aws bootstrap`."""

    code = "stack_missing"
    status = 503


class StackFailed(AnchorError):
    """`anchor aws bootstrap` or `anchor aws destroy` could not finish (CloudFormation or AWS said why)."""

    code = "stack_failed"
    status = 502
