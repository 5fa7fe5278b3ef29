"""Providers: one assembly of adapters and services per place the platform runs, chosen by
ANCHOR_PROVIDER (local: this machine; aws: Lambda, DynamoDB, S3, CloudFront)."""

from __future__ import annotations

from anchor_deploy.providers.platform import Platform
from anchor_deploy.settings import Settings


def build_platform(settings: Settings, with_caddy: bool = True) -> Platform:
    """The platform of ``settings.provider``, not started."""
    if settings.provider == "aws":
        from anchor_deploy.providers.aws import build_platform as build_aws

        return build_aws(settings, with_caddy=with_caddy)
    from anchor_deploy.providers.local import build_platform as build_local

    return build_local(settings, with_caddy=with_caddy)
