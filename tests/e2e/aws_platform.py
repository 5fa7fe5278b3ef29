"""The AWS provider under test: `anchor aws bootstrap --yes` on the moto server, then `anchor up` with
ANCHOR_PROVIDER=aws, reached like every platform through its API and CLI.

What it serves is read the way Lambda would answer: the alias a host names (``production``, or a
deployment's own) gives the version; the version's configuration gives the handler, the environment and
the code's SHA-256; the code is the package the platform staged in S3; the package's handler is run in a
fresh process with a function URL event (tests/lambda_emulator.py), since moto cannot run code. App health
checks run the same way inside the platform (ANCHOR_AWS_INVOKE=sandbox). CloudFront is read from moto.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.exceptions import ClientError

from tests.aws_support import MotoServer, aws_environ
from tests.e2e.apps_support import wheelhouse
from tests.e2e.harness import AnchorProcess
from tests.e2e.platforms import Served
from tests.lambda_emulator import function_url_event, invoke_package

# moto has no cache policy API: the distributions are given an operator's cache policy id instead.
CACHE_POLICY = "anchor-test-cache-policy"


def bootstrap(moto: MotoServer, stack: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "anchor_deploy.cli.main", "aws", "bootstrap", "--yes", "--stack", stack],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANCHOR_", "AWS_"))},
            **moto.environ(),
        },
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def function_of(project_id: str) -> str | None:
    pages = boto3.client("lambda").get_paginator("list_functions").paginate()
    names = [f["FunctionName"] for page in pages for f in page["Functions"]]
    return next((n for n in names if n.endswith(project_id)), None)


def alias_version(function: str, alias: str) -> str | None:
    try:
        return str(boto3.client("lambda").get_alias(FunctionName=function, Name=alias)["FunctionVersion"])
    except ClientError:
        return None


def version_of_deployment(function: str, deployment_id: str) -> str | None:
    """The published version whose description names the deployment."""
    pages = boto3.client("lambda").get_paginator("list_versions_by_function").paginate(FunctionName=function)
    versions = [v for page in pages for v in page["Versions"] if v["Version"] != "$LATEST"]
    return next((str(v["Version"]) for v in versions if v.get("Description") == deployment_id), None)


def served_by_alias(stack: str, function: str, alias: str, path: str) -> Served:
    """What Lambda answers at ``path`` through the function's alias: the alias's version's configuration,
    its package as staged in the stack's bucket, run with a function URL event."""
    version = alias_version(function, alias)
    if version is None:
        return Served(404, {}, b"no version behind this host")
    config = boto3.client("lambda").get_function_configuration(FunctionName=function, Qualifier=version)
    package = staged_package(stack, config)
    env = dict(config.get("Environment", {}).get("Variables", {}))
    answer = invoke_package(package, config["Handler"], env, function_url_event(path=path))
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return Served(int(answer["statusCode"]), dict(answer.get("headers") or {}), raw)


def staged_package(stack: str, config: dict[str, Any]) -> bytes:
    """The package a version's code came from: the one staged under packages/ with the code's SHA-256."""
    key_hex = base64.b64decode(config["CodeSha256"]).hex()
    s3 = boto3.client("s3")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(stack)]
    project_id = config["FunctionName"].rsplit("_", 1)[-1] if "_" in config["FunctionName"] else ""
    for bucket in buckets:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix="packages/")
        for item in listing.get("Contents", []):
            if item["Key"].endswith(f"/{key_hex}.zip") and project_id in item["Key"]:
                return bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    raise AssertionError(f"no staged package for {config['FunctionName']} version {config['Version']}")


def distribution_with(name: str) -> dict[str, Any] | None:
    """The distribution (GetDistribution's, with its config flattened in) that serves ``name``: the one
    with that alias, or with the wildcard alias one label up (as CloudFront routes)."""
    cloudfront = boto3.client("cloudfront")
    for item in cloudfront.list_distributions()["DistributionList"].get("Items", []):
        if covers(set(item.get("Aliases", {}).get("Items", [])), name):
            found = cloudfront.get_distribution(Id=item["Id"])["Distribution"]
            return {**found["DistributionConfig"], "Status": found["Status"], "Id": found["Id"]}
    return None


def covers(names: set[str], alias: str) -> bool:
    """Whether a certificate for ``names`` covers ``alias`` (a wildcard covers exactly one label)."""
    return alias in names or ("." in alias and "*." + alias.split(".", 1)[1] in names)


@dataclass
class AwsPlatform:
    anchor: AnchorProcess
    moto: MotoServer
    stack: str
    provider: str = "aws"

    def api(self, token: str | None = None) -> httpx.Client:
        return self.anchor.api(token)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.anchor.cli(*args, check=check)

    # -- what AWS holds ----------------------------------------------------------------------------------
    def _lambda(self) -> Any:
        return boto3.client("lambda")

    def _project_id(self, name: str) -> str | None:
        with self.api() as api:
            found = api.get(f"/v1/projects/{name}")
        return str(found.json()["id"]) if found.status_code == 200 else None

    def function_of(self, project_id: str) -> str | None:
        return function_of(project_id)

    def alias_version(self, function: str, alias: str) -> str | None:
        return alias_version(function, alias)

    def version_of_deployment(self, function: str, deployment_id: str) -> str | None:
        return version_of_deployment(function, deployment_id)

    def fetch(self, host: str, path: str = "/") -> Served:
        """A host's answer, for hosts of the platform's own names (the local edge's); AWS serves none."""
        raise AssertionError(f"the AWS provider serves no host {host!r}: ask production() or deployment()")

    def production(self, project: dict[str, Any], path: str = "/") -> Served:
        """What CloudFront's origin, the function's ``production`` alias, answers."""
        return self._alias_answer(project["id"], "production", path)

    def deployment(self, deployment: dict[str, Any], path: str = "/") -> Served:
        """What the deployment's own alias (behind its function URL) answers."""
        return self._alias_answer(deployment["projectId"], deployment["id"], path)

    def _alias_answer(self, project_id: str, alias: str, path: str) -> Served:
        function = self.function_of(project_id)
        if function is None:
            return Served(404, {}, b"no function: the project is gone")
        return served_by_alias(self.stack, function, alias, path)

    # -- provider checks ---------------------------------------------------------------------------------
    def check_production(self, project: str, deployment_id: str) -> None:
        with self.api() as api:
            answer = api.get(f"/v1/projects/{project}").json()
        assert answer["productionDeploymentId"] == deployment_id
        function = self.function_of(answer["id"])
        assert function is not None
        production = self.alias_version(function, "production")
        assert production is not None and production != "$LATEST"
        assert production == self.version_of_deployment(function, deployment_id)
        # The URLs the API shows are AWS's: the distribution's domain, the deployment's function URL.
        items = boto3.client("cloudfront").list_distributions()["DistributionList"].get("Items", [])
        [distribution] = [d for d in items if d.get("Comment") == f"anchor {answer['id']}"]
        assert answer["productionUrl"] == f"https://{distribution['DomainName']}"
        with self.api() as api:
            url = api.get(f"/v1/deployments/{deployment_id}").json()["url"]
        own = boto3.client("lambda").get_function_url_config(FunctionName=function, Qualifier=deployment_id)
        assert url == own["FunctionUrl"]

    def cdn_marker(self, project: str) -> object:
        project_id = self._project_id(project)
        cloudfront = boto3.client("cloudfront")
        items = cloudfront.list_distributions()["DistributionList"].get("Items", [])
        found = [d for d in items if d.get("Comment") == f"anchor {project_id}"]
        if not found:
            return None
        config = cloudfront.get_distribution_config(Id=found[0]["Id"])
        return (
            found[0]["Id"],
            config["ETag"],
            json.dumps(config["DistributionConfig"], sort_keys=True, default=str),
        )

    def check_project_gone(self, project_id: str, deployment_ids: list[str]) -> None:
        assert self.function_of(project_id) is None
        items = boto3.client("cloudfront").list_distributions()["DistributionList"].get("Items", [])
        assert not [d for d in items if d.get("Comment") == f"anchor {project_id}"]
        for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=f"{self.stack}-store"):
            for item in page["Items"]:
                assert project_id not in json.dumps(item, default=repr), item

    def custom_domain(self, name: str, path: str = "/") -> Served:
        """The distribution holding ``name`` must have one ISSUED certificate covering every alias on it
        (while an update of it deploys, CloudFront serves either configuration: both must hold); its
        origin is the production function URL, so the answer is production's."""
        distribution = distribution_with(name)
        assert distribution is not None, f"no distribution has the alias {name}"
        aliases = distribution["Aliases"].get("Items", [])
        viewer = distribution["ViewerCertificate"]
        assert viewer.get("SSLSupportMethod") == "sni-only"
        assert viewer.get("MinimumProtocolVersion") == "TLSv1.2_2021"
        certificate = boto3.client("acm", region_name="us-east-1").describe_certificate(
            CertificateArn=viewer["ACMCertificateArn"]
        )["Certificate"]
        assert certificate["Status"] == "ISSUED"
        covered = set(certificate["SubjectAlternativeNames"])
        assert all(covers(covered, alias) for alias in aliases), (aliases, covered)
        project_id = str(distribution["Comment"]).split()[1]
        return self._alias_answer(project_id, "production", path)

    def check_domain_gone(self, name: str) -> None:
        assert distribution_with(name) is None, f"a distribution still has the alias {name}"
        acm = boto3.client("acm", region_name="us-east-1")
        for page in acm.get_paginator("list_certificates").paginate():
            for summary in page["CertificateSummaryList"]:
                names = acm.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
                assert name not in names.get("SubjectAlternativeNames", []), summary["CertificateArn"]

    def stored_text(self) -> Iterator[tuple[str, bytes]]:
        for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=f"{self.stack}-store"):
            for item in page["Items"]:
                yield "dynamodb item", json.dumps(item, default=str).encode()
        s3 = boto3.client("s3")
        for bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                yield (
                    f"s3://{bucket}/{item['Key']}",
                    s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read(),
                )
        lam = self._lambda()
        for function in [f["FunctionName"] for f in lam.list_functions()["Functions"]]:
            for version in lam.list_versions_by_function(FunctionName=function)["Versions"]:
                yield f"lambda {function}:{version['Version']}", json.dumps(version, default=str).encode()
        for path in self.anchor.data_dir.rglob("*"):
            if path.is_file() and not path.is_symlink() and "lambda-deps" not in path.parts:
                yield str(path), path.read_bytes()


@contextmanager
def aws_platform(
    root: Path, moto: MotoServer, extra_env: dict[str, str] | None = None
) -> Iterator[AwsPlatform]:
    moto.reset()
    stack = "scn-" + secrets.token_hex(3)
    bootstrap(moto, stack)
    extra = {
        **moto.environ(),
        "ANCHOR_PROVIDER": "aws",
        "ANCHOR_AWS_STACK": stack,
        "ANCHOR_AWS_INVOKE": "sandbox",
        "ANCHOR_AWS_CACHE_POLICY": CACHE_POLICY,
        "ANCHOR_AWS_CDN_POLL": "0.5",
        "ANCHOR_PIP_ARGS": f"--no-index --find-links {wheelhouse()}",
        **(extra_env or {}),
    }
    with aws_environ(moto):
        anchor = AnchorProcess(root / "data", extra_env=extra).start(timeout=60)
        try:
            yield AwsPlatform(anchor, moto, stack)
        finally:
            anchor.stop()
