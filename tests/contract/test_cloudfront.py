"""CloudFrontDistributions on the moto server; the shared cache policy through botocore's Stubber.

moto (5.x) has no cache policy API at all (moto/cloudfront/urls.py lists none), so the policy's creation and
lookup are checked against the requests botocore would send; on moto the distribution is given a policy id.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.cloudfront import (
    ALL_VIEWER_EXCEPT_HOST_HEADER,
    CloudFrontDistributions,
    DistributionSettings,
    cache_policy_config,
    origin_domain,
)
from tests.aws_fakes import FakeClients
from tests.aws_support import MotoServer

PROJECT = "prj_0123456789abcdef"
ORIGIN = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
POLICY = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def clients(aws: MotoServer) -> AwsClients:
    return AwsClients()


def distributions(clients: AwsClients, **extra: Any) -> CloudFrontDistributions:
    settings = DistributionSettings(cache_policy_id=POLICY, poll_seconds=0.05, max_polls=20, **extra)
    return CloudFrontDistributions(clients, settings)


def config_of(clients: AwsClients, distribution_id: str) -> dict[str, Any]:
    config: dict[str, Any] = clients.client("cloudfront").get_distribution_config(Id=distribution_id)
    return config["DistributionConfig"]


def test_origin_domain_is_the_function_url_host() -> None:
    assert origin_domain(f"https://{ORIGIN}/") == ORIGIN
    with pytest.raises(ValueError):
        origin_domain("not a url")


def test_one_listing_serves_the_ensure_of_many_projects(clients: AwsClients) -> None:
    cdn = distributions(clients)
    projects = [f"prj_{n:016x}" for n in range(3)]
    made = {p: cdn.ensure(p, ORIGIN) for p in projects[:2]}
    calls = clients.count_calls()
    listing = cdn.by_project()
    assert sorted(listing) == sorted(projects[:2])
    assert {p: cdn.ensure(p, ORIGIN, listing) for p in projects[:2]} == made
    assert calls == {"cloudfront:ListDistributions": 1}, "one listing, no lookup per project"
    _id, domain = cdn.ensure(projects[2], ORIGIN, listing)  # not listed: made
    assert domain.endswith(".cloudfront.net") and calls["cloudfront:CreateDistribution"] == 1


def test_ensure_makes_one_distribution_per_project(clients: AwsClients) -> None:
    cdn = distributions(clients)
    distribution_id, domain = cdn.ensure(PROJECT, ORIGIN)
    assert domain.endswith(".cloudfront.net")
    assert cdn.ensure(PROJECT, ORIGIN) == (distribution_id, domain)
    assert distributions(clients).ensure(PROJECT, ORIGIN) == (distribution_id, domain)  # another process
    other_id, _ = cdn.ensure("prj_ffffffffffffffff", ORIGIN)
    assert other_id != distribution_id
    listed = clients.client("cloudfront").list_distributions()["DistributionList"]["Items"]
    assert len(listed) == 2
    config = config_of(clients, distribution_id)
    assert config["CallerReference"] == PROJECT
    assert config["Enabled"] is True
    (origin,) = config["Origins"]["Items"]
    assert origin["DomainName"] == ORIGIN
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    behavior = config["DefaultCacheBehavior"]
    assert behavior["Compress"] is True
    assert behavior["CachePolicyId"] == POLICY
    assert behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"


def test_a_retried_create_finds_the_distribution(
    clients: AwsClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    cdn = distributions(clients)
    first = cdn.ensure(PROJECT, ORIGIN)
    # The crash came after CloudFront made it and before we learnt its id: the listing misses it once,
    # the create is refused by the CallerReference, and the second look finds it.
    real_find = cdn.find
    misses = iter([None])
    monkeypatch.setattr(cdn, "find", lambda project_id: next(misses, None) or real_find(project_id))
    assert cdn.ensure(PROJECT, ORIGIN) == first
    assert len(clients.client("cloudfront").list_distributions()["DistributionList"]["Items"]) == 1


def test_ensure_corrects_a_changed_origin(clients: AwsClients) -> None:
    cdn = distributions(clients)
    distribution_id, _ = cdn.ensure(PROJECT, ORIGIN)
    moved = "zyxwvutsrqponmlkjihgfedcba543210.lambda-url.us-east-1.on.aws"
    assert cdn.ensure(PROJECT, moved)[0] == distribution_id
    assert config_of(clients, distribution_id)["Origins"]["Items"][0]["DomainName"] == moved


def test_distributions_are_made_with_the_given_tags(clients: AwsClients) -> None:
    # moto makes the distribution but drops its tags (it misses the bare ?WithTags flag and takes the call
    # for CreateDistribution), so the request botocore validated and sent is what is checked.
    sent: list[tuple[str, dict[str, Any]]] = []
    client = clients.client("cloudfront")

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, params))

    client.meta.events.register("provide-client-params.cloudfront", record)
    cdn = distributions(clients, tags={"anchor-deploy:stack": "anchor"})
    distribution_id, _ = cdn.ensure(PROJECT, ORIGIN)
    assert config_of(clients, distribution_id)["CallerReference"] == PROJECT
    ((operation, params),) = [(op, p) for op, p in sent if op.startswith("CreateDistribution")]
    assert operation.startswith("CreateDistributionWithTags")
    assert params["DistributionConfigWithTags"]["Tags"] == {
        "Items": [{"Key": "anchor-deploy:stack", "Value": "anchor"}]
    }


def test_delete_disables_waits_and_deletes_and_is_resumable(clients: AwsClients) -> None:
    cdn = distributions(clients)
    cdn.ensure(PROJECT, ORIGIN)
    kept_id, _ = cdn.ensure("prj_ffffffffffffffff", ORIGIN)
    calls = clients.count_calls()
    cdn.delete(PROJECT)
    assert calls["cloudfront:UpdateDistribution"] == 1  # the disable
    assert calls["cloudfront:DeleteDistribution"] == 1
    assert cdn.find(PROJECT) is None
    assert cdn.find("prj_ffffffffffffffff") is not None
    cdn.delete(PROJECT)  # nothing left: nothing to do

    # Interrupted after the disable: the next delete does not disable again, and finishes.
    config = clients.client("cloudfront").get_distribution_config(Id=kept_id)
    config["DistributionConfig"]["Enabled"] = False
    clients.client("cloudfront").update_distribution(
        Id=kept_id, IfMatch=config["ETag"], DistributionConfig=config["DistributionConfig"]
    )
    calls.clear()
    cdn.delete("prj_ffffffffffffffff")
    assert calls["cloudfront:UpdateDistribution"] == 0
    assert calls["cloudfront:DeleteDistribution"] == 1
    assert clients.client("cloudfront").list_distributions()["DistributionList"].get("Items", []) == []


def test_the_shared_cache_policy_is_found_or_made(aws: MotoServer) -> None:
    client = AwsClients().client("cloudfront")
    cdn = CloudFrontDistributions(FakeClients(cloudfront=client))
    name = "anchor-origin-cache-control"
    with Stubber(client) as stub:
        stub.add_response(
            "list_cache_policies", {"CachePolicyList": {"MaxItems": 100, "Quantity": 0}}, {"Type": "custom"}
        )
        made = {
            "CachePolicy": {
                "Id": POLICY,
                "LastModifiedTime": "2026-01-01",
                "CachePolicyConfig": cache_policy_config(name),
            }
        }
        stub.add_response("create_cache_policy", made, {"CachePolicyConfig": cache_policy_config(name)})
        assert cdn.cache_policy_id() == POLICY
        assert cdn.cache_policy_id() == POLICY  # remembered: no second request
        stub.assert_no_pending_responses()
    policy = cache_policy_config(name)
    assert (policy["MinTTL"], policy["DefaultTTL"]) == (0, 0)  # the origin's Cache-Control decides
    key = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    assert key["EnableAcceptEncodingGzip"] and key["EnableAcceptEncodingBrotli"]

    found = CloudFrontDistributions(FakeClients(cloudfront=client))
    listing = {"CachePolicyList": {"MaxItems": 100, "Quantity": 1, "Items": [{"Type": "custom", **made}]}}
    with Stubber(client) as stub:
        stub.add_response("list_cache_policies", listing, {"Type": "custom"})
        assert found.cache_policy_id() == POLICY
        stub.assert_no_pending_responses()
