"""A CloudFront distribution per project, in front of its production alias's function URL.

The distribution's domain is the project's production URL on AWS. It is created with the project and found
again by its Comment (``anchor <project id>``); its CallerReference is the project id, so a create retried
after a crash cannot make a second one (CloudFront answers DistributionAlreadyExists, and we find it).

Caching follows the origin: one shared cache policy with MinTTL 0 and DefaultTTL 0 honours Cache-Control, so
HTML sent with ``s-maxage=0`` is revalidated on every request and hashed assets sent ``immutable`` are kept
(up to MaxTTL, a year). Gzip and Brotli are on (Compress). The cache key holds the path and every query
string (an app may answer differently per query), no cookie and no header: a response that depends on a
cookie must say ``private`` or ``no-store``, which CloudFront never caches. Every viewer header except Host,
every cookie and query string still reach the origin (the managed AllViewerExceptHostHeader origin request
policy: a function URL refuses a foreign Host).

Deleting is disable, wait until deployed, delete: each step looks at the distribution's state first, so a
delete interrupted anywhere is finished by calling it again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.client_errors import is_error
from anchor_deploy.adapters.aws.lambda_functions import ClientSource

ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"  # AWS managed origin request policy
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
ORIGIN_ID = "production"


@dataclass(frozen=True)
class DistributionSettings:
    cache_policy_id: str | None = None  # None: the shared policy below, made on first use
    cache_policy_name: str = "anchor-origin-cache-control"
    origin_request_policy_id: str = ALL_VIEWER_EXCEPT_HOST_HEADER
    price_class: str = "PriceClass_100"
    tags: Mapping[str, str] = field(default_factory=dict)  # e.g. the stack's tag, which scopes the rights
    poll_seconds: float = 20.0  # how often a delete checks that a disable has deployed
    max_polls: int = 90


def origin_domain(function_url: str) -> str:
    """The host of a function URL (``https://<id>.lambda-url.<region>.on.aws/`` -> its host)."""
    host = urlsplit(function_url).hostname
    if not host:
        raise ValueError(f"{function_url!r} is not a URL")
    return host


def cache_policy_config(name: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Comment": "anchor: follow the origin's Cache-Control; query strings in the key, no cookies",
        "MinTTL": 0,
        "DefaultTTL": 0,
        "MaxTTL": 31536000,
        "ParametersInCacheKeyAndForwardedToOrigin": {
            "EnableAcceptEncodingGzip": True,
            "EnableAcceptEncodingBrotli": True,
            "HeadersConfig": {"HeaderBehavior": "none"},
            "CookiesConfig": {"CookieBehavior": "none"},
            "QueryStringsConfig": {"QueryStringBehavior": "all"},
        },
    }


class CloudFrontDistributions:
    def __init__(self, clients: ClientSource, settings: DistributionSettings | None = None) -> None:
        self._cloudfront = clients.client("cloudfront")
        self.settings = settings or DistributionSettings()
        self._cache_policy_id = self.settings.cache_policy_id

    @staticmethod
    def comment(project_id: str, slot: int = 0) -> str:
        """Slot 0 is the project's production distribution; slot k > 0 an extra one for custom domains
        (adapters/aws/cdn_domains.py), ``anchor <project id> #<k>``."""
        return f"anchor {project_id}" if slot == 0 else f"anchor {project_id} #{slot}"

    def ensure(
        self, project_id: str, origin: str, listing: Mapping[str, dict[str, Any]] | None = None
    ) -> tuple[str, str]:
        """The project's distribution (made if missing, its origin corrected if it differs): (id, domain).
        ``listing``: ``by_project()`` read once for many projects (else this one lists them all)."""
        found = self.find(project_id) if listing is None else listing.get(project_id)
        if found is None:
            try:
                made = self._create(project_id, origin)
                return str(made["Distribution"]["Id"]), str(made["Distribution"]["DomainName"])
            except ClientError as error:
                if not is_error(error, "DistributionAlreadyExists"):
                    raise
            found = self.find(project_id)
            if found is None:
                raise RuntimeError(f"CloudFront holds a distribution for {project_id} that it does not list")
        if origin_of(found) != origin:
            self._set_origin(str(found["Id"]), origin)
        return str(found["Id"]), str(found["DomainName"])

    def ensure_slot(self, project_id: str, slot: int, origin: str, nonce: str = "") -> tuple[str, str]:
        """Slot ``slot`` of the project (0: ``ensure``; k > 0: an extra distribution with the same origin, its
        CallerReference ``<project id>#<k>#<nonce>``, the nonce telling apart a slot made again after its
        distribution was deleted): (id, domain)."""
        if slot == 0:
            return self.ensure(project_id, origin)
        found = self.slots(project_id).get(slot)
        if found is None:
            try:
                made = self._create(project_id, origin, slot, nonce)
                return str(made["Distribution"]["Id"]), str(made["Distribution"]["DomainName"])
            except ClientError as error:
                if not is_error(error, "DistributionAlreadyExists"):
                    raise
            found = self.slots(project_id).get(slot)
            if found is None:
                raise RuntimeError(f"CloudFront holds slot {slot} of {project_id} but does not list it")
        return str(found["Id"]), str(found["DomainName"])

    def slots(self, project_id: str) -> dict[int, dict[str, Any]]:
        """Every distribution of the project from one listing: slot -> its summary."""
        return self.all_slots().get(project_id, {})

    def all_slots(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Every project's distributions from one listing: project id -> slot -> summary."""
        found: dict[str, dict[int, dict[str, Any]]] = {}
        prefix = self.comment("")
        for item in self._summaries():
            comment = str(item.get("Comment", ""))
            if not comment.startswith(prefix):
                continue
            project_id, _, number = comment[len(prefix) :].partition(" #")
            if number == "" or number.isdigit():
                found.setdefault(project_id, {})[int(number or 0)] = item
        return found

    def _create(self, project_id: str, origin: str, slot: int = 0, nonce: str = "") -> dict[str, Any]:
        config = self._config(project_id, origin, slot, nonce)
        if not self.settings.tags:
            made: dict[str, Any] = self._cloudfront.create_distribution(DistributionConfig=config)
            return made
        tags = [{"Key": key, "Value": value} for key, value in sorted(self.settings.tags.items())]
        made = self._cloudfront.create_distribution_with_tags(
            DistributionConfigWithTags={"DistributionConfig": config, "Tags": {"Items": tags}}
        )
        return made

    def find(self, project_id: str) -> dict[str, Any] | None:
        comment = self.comment(project_id)
        return next((item for item in self._summaries() if item.get("Comment") == comment), None)

    def by_project(self) -> dict[str, dict[str, Any]]:
        """Every project's distribution from one paginated listing: project id -> its summary."""
        prefix = self.comment("")
        listed = (item for item in self._summaries() if str(item.get("Comment", "")).startswith(prefix))
        slot_zero = (item for item in listed if " #" not in str(item["Comment"]))  # not extra slots
        return {str(item["Comment"])[len(prefix) :]: item for item in slot_zero}

    def _summaries(self) -> Iterator[dict[str, Any]]:
        marker: dict[str, str] = {}
        while True:
            listing = self._cloudfront.list_distributions(**marker)["DistributionList"]
            yield from listing.get("Items", [])
            if not listing.get("IsTruncated"):
                return
            marker = {"Marker": listing["NextMarker"]}

    def _config(self, project_id: str, origin: str, slot: int = 0, nonce: str = "") -> dict[str, Any]:
        reference = project_id if slot == 0 else f"{project_id}#{slot}" + (f"#{nonce}" if nonce else "")
        return {
            "CallerReference": reference,
            "Comment": self.comment(project_id, slot),
            "Enabled": True,
            "PriceClass": self.settings.price_class,
            "HttpVersion": "http2and3",
            "IsIPV6Enabled": True,
            "Origins": {"Quantity": 1, "Items": [_origin(origin)]},
            "DefaultCacheBehavior": {
                "TargetOriginId": ORIGIN_ID,
                "ViewerProtocolPolicy": "redirect-to-https",
                "AllowedMethods": {
                    "Quantity": len(ALL_METHODS),
                    "Items": ALL_METHODS,
                    "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]},
                },
                "Compress": True,
                "CachePolicyId": self.cache_policy_id(),
                "OriginRequestPolicyId": self.settings.origin_request_policy_id,
            },
        }

    def cache_policy_id(self) -> str:
        """The shared cache policy's id: given in the settings, or found by name, or made."""
        if self._cache_policy_id:
            return self._cache_policy_id
        name = self.settings.cache_policy_name
        found = self._cache_policy_named(name)
        if found is None:
            try:
                made = self._cloudfront.create_cache_policy(CachePolicyConfig=cache_policy_config(name))
                found = str(made["CachePolicy"]["Id"])
            except ClientError as error:
                if not is_error(error, "CachePolicyAlreadyExists"):
                    raise
                found = self._cache_policy_named(name)
                if found is None:
                    raise
        self._cache_policy_id = found
        return found

    def _cache_policy_named(self, name: str) -> str | None:
        marker: dict[str, str] = {}
        while True:
            listing = self._cloudfront.list_cache_policies(Type="custom", **marker)["CachePolicyList"]
            for item in listing.get("Items", []):
                policy = item["CachePolicy"]
                if policy["CachePolicyConfig"]["Name"] == name:
                    return str(policy["Id"])
            if not listing.get("NextMarker"):
                return None
            marker = {"Marker": listing["NextMarker"]}

    def set_origin(self, distribution_id: str, origin: str) -> None:
        """Point the distribution at ``origin`` (IfMatch from GetDistributionConfig)."""
        self._set_origin(distribution_id, origin)

    def _set_origin(self, distribution_id: str, origin: str) -> None:
        answer = self._cloudfront.get_distribution_config(Id=distribution_id)
        config = answer["DistributionConfig"]
        config["Origins"] = {"Quantity": 1, "Items": [_origin(origin)]}
        self._cloudfront.update_distribution(
            Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=config
        )

    def delete(self, project_id: str) -> None:
        """Every distribution of the project (slot 0 and any extra slot of custom domains): disable, wait
        until that is deployed, delete; resumable, and nothing to do when they are gone."""
        for _slot, found in sorted(self.slots(project_id).items()):
            self._delete(str(found["Id"]))

    def retire(self, distribution_id: str) -> bool:
        """One step of deleting a distribution without waiting: disable it, or (once that is deployed)
        delete it. True once it is gone."""
        try:
            answer = self._cloudfront.get_distribution_config(Id=distribution_id)
            if answer["DistributionConfig"]["Enabled"]:
                answer["DistributionConfig"]["Enabled"] = False
                self._cloudfront.update_distribution(
                    Id=distribution_id,
                    IfMatch=answer["ETag"],
                    DistributionConfig=answer["DistributionConfig"],
                )
                return False
            status = self._cloudfront.get_distribution(Id=distribution_id)["Distribution"]["Status"]
            if status != "Deployed":
                return False
            self._cloudfront.delete_distribution(Id=distribution_id, IfMatch=answer["ETag"])
        except ClientError as error:
            if is_error(error, "NoSuchDistribution"):
                return True
            if is_error(error, "DistributionNotDisabled", "PreconditionFailed"):
                return False  # disabled meanwhile by another process, or still deploying: next call
            raise
        return True

    def _delete(self, distribution_id: str) -> None:
        """``retire`` until it is gone, waiting for the disabling to deploy in between."""
        if self.retire(distribution_id):
            return
        try:
            self._cloudfront.get_waiter("distribution_deployed").wait(
                Id=distribution_id,
                WaiterConfig={"Delay": self.settings.poll_seconds, "MaxAttempts": self.settings.max_polls},
            )
        except ClientError as error:
            if not is_error(error, "NoSuchDistribution"):
                raise
        if not self.retire(distribution_id):
            raise RuntimeError(f"CloudFront distribution {distribution_id} could not be deleted yet")


def _origin(domain: str) -> dict[str, Any]:
    return {
        "Id": ORIGIN_ID,
        "DomainName": domain,
        "OriginPath": "",
        "CustomHeaders": {"Quantity": 0},
        "CustomOriginConfig": {
            "HTTPPort": 80,
            "HTTPSPort": 443,
            "OriginProtocolPolicy": "https-only",
            "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]},
            "OriginReadTimeout": 30,
            "OriginKeepaliveTimeout": 5,
        },
    }


def origin_of(summary: dict[str, Any]) -> str | None:
    items = summary.get("Origins", {}).get("Items", [])
    return str(items[0]["DomainName"]) if items else None
