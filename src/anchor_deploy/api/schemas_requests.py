"""Request bodies as pydantic models, read by api/bodies.py after the raw-bytes checks.

A model checks types strictly (no "5" for 5, no true for 1) and the services then check the values, as
before. When a body fails its model, the error is the one the service would have given: each model lists
``checks``, the services' own validators in the order the service runs them, applied to the raw body; the
first that refuses answers. Only a body none of them refuses gets the model's own message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from anchor_deploy.model.apps import parse_app_config, validate_env_var
from anchor_deploy.model.domains import parse_domain_name
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.model.limits import parse_meta
from anchor_deploy.model.manifest import parse_manifest
from anchor_deploy.model.names import validate_project_name

Check = Callable[[dict[str, Any]], object]
TOKEN_NAME_MAX = 64
# Shown in the document (so generated clients and tests send names that can work); the services enforce
# them with their own messages. tests/unit/test_openapi_routes.py holds them equal to the services' rules.
PROJECT_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
ENV_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def documented(**schema: Any) -> Any:
    """A JSON Schema keyword shown in the document but left to the service to enforce."""
    return Field(json_schema_extra=schema)


class RequestBody(BaseModel):
    model_config = ConfigDict(strict=True, alias_generator=to_camel, extra="ignore")
    checks: ClassVar[tuple[Check, ...]] = ()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Self:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            for check in cls.checks:
                check(raw)
            raise InvalidInput(describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


# -- tokens and projects -------------------------------------------------------------------------------------
def _project_is_a_name(raw: dict[str, Any]) -> None:
    if raw.get("project") is not None and not isinstance(raw["project"], str):
        raise InvalidInput("project must be a project name")


def _token_name(raw: dict[str, Any]) -> None:
    name = raw.get("name", "")
    if not isinstance(name, str) or not name.strip() or len(name) > TOKEN_NAME_MAX:
        raise InvalidInput(f"token name must be 1-{TOKEN_NAME_MAX} characters")


class TokenRequest(RequestBody):
    name: str = Field(min_length=1, max_length=TOKEN_NAME_MAX, examples=["ci"])
    project: str | None = Field(None, description="limit the token to this project; omit for an admin token")
    checks = (_project_is_a_name, _token_name)


class ProjectRequest(RequestBody):
    name: Annotated[str, documented(pattern=PROJECT_NAME_PATTERN)] = Field(
        description="1-40 characters of lowercase a-z, 0-9 and '-', not starting or ending with '-'",
        examples=["blog"],
    )
    checks = (lambda raw: validate_project_name(raw.get("name")),)


# -- deployments ---------------------------------------------------------------------------------------------
def _target(raw: dict[str, Any]) -> None:
    if raw.get("target", "preview") not in ("production", "preview"):
        raise InvalidInput("target must be 'production' or 'preview'")


def _app(raw: dict[str, Any]) -> None:
    if raw.get("app") is not None:
        parse_app_config(raw["app"])


class ManifestEntry(RequestBody):
    path: str = Field(description="relative, '/'-separated, no '.' or '..' segment", examples=["index.html"])
    sha256: Annotated[str, documented(pattern=SHA256_PATTERN)] = Field(
        description="64 lowercase hex characters; the blob must be uploaded first"
    )
    size: int = Field(ge=0)
    mode: int | None = Field(
        0o644, description="the file's mode bits: a regular file (0o100644 or 0o644 = 420); null: 0o644"
    )


class AppRequest(RequestBody):
    entry: str = Field("app:app", description="module:attribute of the ASGI or WSGI app")
    python: str | None = Field(None, examples=["3.12"])
    health_path: str = Field("/", validation_alias=AliasChoices("healthPath", "health_path"))
    static: str | None = Field(None, description="a directory of the upload served by the edge")
    env: dict[str, str] | None = Field(None, description="variables for this deployment only")

    @field_validator("env", mode="before")
    @classmethod
    def _empty_env(cls, value: object) -> object:
        """The deploy protocol has always read an empty or false env ("", 0, false, []) as none."""
        return value or None


class DeploymentRequest(RequestBody):
    files: list[ManifestEntry]
    target: Literal["production", "preview"] = "preview"
    meta: dict[str, Any] | None = Field(None, description="free-form JSON shown with the deployment")
    app: AppRequest | None = Field(None, description="a Python web app; detected from the files if omitted")
    checks = (
        lambda raw: parse_manifest(raw.get("files"), sys.maxsize),
        _target,
        lambda raw: parse_meta(raw.get("meta")),
        _app,
    )

    def for_service(self) -> dict[str, Any]:
        """The body as the deployment service reads it (only the keys the client sent)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


def _optional_id(raw: dict[str, Any]) -> None:
    if raw.get("deploymentId") is not None and not isinstance(raw["deploymentId"], str):
        raise InvalidInput("deploymentId must be a string")


def _required_id(raw: dict[str, Any]) -> None:
    if not isinstance(raw.get("deploymentId"), str):
        raise InvalidInput("deploymentId is required")


class RollbackRequest(RequestBody):
    deployment_id: str | None = Field(None, description="omit for the production deployment before this one")
    checks = (_optional_id,)


class PromoteRequest(RequestBody):
    deployment_id: str
    checks = (_required_id,)


# -- environment variables and domains -----------------------------------------------------------------------
def _secret(raw: dict[str, Any]) -> None:
    if not isinstance(raw.get("secret", False), bool):
        raise InvalidInput("secret must be true or false")


class EnvRequest(RequestBody):
    key: Annotated[str, documented(pattern=ENV_KEY_PATTERN)] = Field(examples=["DATABASE_URL"])
    value: str
    secret: bool = Field(False, description="a secret value is never shown again")
    checks = (lambda raw: validate_env_var(raw.get("key"), raw.get("value")), _secret)


def _domain_name(raw: dict[str, Any]) -> None:
    if "name" not in raw:
        raise InvalidInput('body must have a \'name\', e.g. {"name": "www.example.com"}')
    # The spelling is checked when the domain is added; this refuses a name that is no string at all.
    parse_domain_name(raw["name"], str, str)


class DomainRequest(RequestBody):
    name: Annotated[str, documented(format="hostname")] = Field(
        examples=["www.example.com"], description="a domain name, or '*.example.com'"
    )
    checks = (_domain_name,)


# -- linked DNS zones ---------------------------------------------------------------------------------------
class Route53Link(RequestBody):
    zone_id: str = Field(examples=["Z0123456789ABCDEFGHIJ"], description="the Route 53 hosted zone's id")


class Rfc2136Link(RequestBody):
    server: str = Field(examples=["192.0.2.53:53"], description="HOST[:PORT] of the server (port 53 if none)")
    key_name: str = Field(examples=["anchor-update"], description="the TSIG key's name")
    key_algorithm: str = Field("hmac-sha256", description="hmac-sha256, -sha384, -sha512, -sha224 or -sha1")
    key_secret: str = Field(description="the TSIG secret in base64; sealed at rest, never shown again")


def _one_link(raw: dict[str, Any]) -> None:
    if not isinstance(raw.get("zone"), str):
        raise InvalidInput('body must have a \'zone\', e.g. {"zone": "example.com", "rfc2136": {…}}')
    kinds = [kind for kind in ("route53", "rfc2136") if raw.get(kind) is not None]
    if len(kinds) != 1:
        raise InvalidInput(
            "give one of route53: {zoneId} or rfc2136: {server, keyName, keyAlgorithm, keySecret}"
        )
    if not isinstance(raw[kinds[0]], dict):
        raise InvalidInput(f"{kinds[0]} must be an object")


class DnsLinkRequest(RequestBody):
    zone: Annotated[str, documented(format="hostname")] = Field(
        examples=["example.com"], description="the zone: your registrable domain or a zone below it"
    )
    route53: Route53Link | None = Field(None, description="a Route 53 hosted zone (needs an admin token)")
    rfc2136: Rfc2136Link | None = Field(None, description="a server taking RFC 2136 updates signed with TSIG")
    checks = (_one_link,)

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.route53 is None) == (self.rfc2136 is None):
            raise ValueError("give one of route53 or rfc2136")  # _one_link says it in full
        return self


# -- operator ------------------------------------------------------------------------------------------------
def _only_repair(raw: dict[str, Any]) -> None:
    unknown = set(raw) - {"repair"}
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}; fsck takes only repair")


def _repair(raw: dict[str, Any]) -> None:
    if not isinstance(raw.get("repair", False), bool):
        raise InvalidInput("repair must be true or false")


class FsckRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")
    repair: bool = Field(False, description="quarantine bad copies, relink from good ones or take down")
    checks = (_only_repair, _repair)
