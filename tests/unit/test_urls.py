"""The URLs the API shows: the provider's own where it has them, the platform's host names otherwise."""

from __future__ import annotations

import pytest

from anchor_deploy.adapters.aws.public_urls import RETRY_MISSING, AwsPublicUrls
from anchor_deploy.model.entities import Deployment, DeploymentStatus, Project, Target
from anchor_deploy.services.urls import UrlService
from anchor_deploy.settings import Settings

PROJECT = Project("prj_1", "shop", 1.0)


def deployment(status: DeploymentStatus) -> Deployment:
    return Deployment("dpl_aaaaaaaaaaaa", "prj_1", status, Target.PRODUCTION, 1.0, 1, 1)


class Provider:
    def __init__(self, fail: bool = False) -> None:
        self.asked: list[str] = []
        self.fail = fail

    def production_url(self, project_id: str) -> str | None:
        self.asked.append(f"production {project_id}")
        if self.fail:
            raise RuntimeError("CloudFront is unreachable")
        return "https://d111.cloudfront.net"

    def deployment_url(self, project_id: str, deployment_id: str) -> str | None:
        self.asked.append(f"deployment {deployment_id}")
        return None if self.fail else f"https://{deployment_id}.lambda-url.us-east-1.on.aws/"


def service(provider: Provider | None) -> UrlService:
    settings = Settings(base_domain="apps.test")
    return UrlService(settings.public_url, settings.base_domain, provider)


def test_without_a_provider_the_urls_are_the_platforms_host_names() -> None:
    urls = service(None)
    assert urls.production(PROJECT) == "http://shop.apps.test:8000"
    assert (
        urls.deployment(PROJECT, deployment(DeploymentStatus.READY))
        == "http://shop-aaaaaaaaaaaa.apps.test:8000"
    )


def test_the_providers_own_urls_win_and_a_deployment_is_asked_about_only_once_built() -> None:
    provider = Provider()
    urls = service(provider)
    assert urls.production(PROJECT) == "https://d111.cloudfront.net"
    ready = deployment(DeploymentStatus.READY)
    assert urls.deployment(PROJECT, ready) == "https://dpl_aaaaaaaaaaaa.lambda-url.us-east-1.on.aws/"
    queued = deployment(DeploymentStatus.QUEUED)
    assert urls.deployment(PROJECT, queued) == "http://shop-aaaaaaaaaaaa.apps.test:8000"
    assert provider.asked == ["production prj_1", "deployment dpl_aaaaaaaaaaaa"]


def test_a_provider_that_cannot_answer_costs_the_url_not_the_answer() -> None:
    urls = service(Provider(fail=True))
    assert urls.production(PROJECT) == "http://shop.apps.test:8000"
    assert urls.deployment(PROJECT, deployment(DeploymentStatus.READY)).startswith("http://shop-")


class Functions:
    def __init__(self) -> None:
        self.asked = 0
        self.url: str | None = None

    def deployment_url(self, project_id: str, deployment_id: str) -> str | None:
        self.asked += 1
        return self.url


class Cdn:
    def __init__(self) -> None:
        self.asked = 0

    def find(self, project_id: str) -> dict[str, str] | None:
        self.asked += 1
        return {"Id": "E1", "DomainName": "d222.cloudfront.net"}


def test_aws_urls_are_asked_once_and_a_missing_one_again_after_a_while() -> None:
    now = [100.0]
    functions, cdn = Functions(), Cdn()
    urls = AwsPublicUrls(functions, cdn, monotonic=lambda: now[0])  # type: ignore[arg-type]
    assert [urls.production_url("prj_1") for _ in range(3)] == ["https://d222.cloudfront.net"] * 3
    assert cdn.asked == 1
    assert urls.deployment_url("prj_1", "dpl_x") is None
    assert urls.deployment_url("prj_1", "dpl_x") is None and functions.asked == 1  # not yet: remembered
    functions.url = "https://x.lambda-url.us-east-1.on.aws/"
    now[0] += RETRY_MISSING + 1
    assert urls.deployment_url("prj_1", "dpl_x") == functions.url
    assert urls.deployment_url("prj_1", "dpl_x") == functions.url and functions.asked == 2
    urls.learned("prj_2", "d333.cloudfront.net")  # a distribution this process made: never asked
    assert urls.production_url("prj_2") == "https://d333.cloudfront.net" and cdn.asked == 1


@pytest.mark.parametrize("status", [DeploymentStatus.BUILDING, DeploymentStatus.ERROR])
def test_unbuilt_deployments_never_ask_the_provider(status: DeploymentStatus) -> None:
    provider = Provider()
    service(provider).deployment(PROJECT, deployment(status))
    assert provider.asked == []
