"""LambdaFunctions and LambdaEdge on the moto server: versions, per-deployment aliases, the production alias,
retention, idempotent publishing after a crash.

moto does not emulate (read in moto/awslambda/models.py): RevisionId (update_alias ignores it, an alias's
RevisionId never changes, GetFunctionConfiguration reports none), CodeSha256/RevisionId on PublishVersion,
Marker/MaxItems on ListVersionsByFunction and ListAliases (one page always), function URLs per qualifier (one
URL per function). Those are covered by tests/aws_fakes.FakeLambda in test_lambda_edge_races.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator

import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.lambda_code import package_key
from anchor_deploy.adapters.aws.lambda_edge import LambdaEdge
from anchor_deploy.adapters.aws.lambda_functions import FunctionSettings, LambdaFunctions
from anchor_deploy.adapters.aws.lambda_invoke import LambdaInvoker
from anchor_deploy.adapters.aws.lambda_package import LambdaPackage
from anchor_deploy.model.entities import HostKind
from anchor_deploy.model.errors import EdgeError
from tests.aws_fakes import FakeHosts
from tests.aws_support import MotoServer

PROJECT = "prj_0123456789abcdef"
D1, D2, D3 = "dpl_aaaaaaaaaaaa", "dpl_bbbbbbbbbbbb", "dpl_cccccccccccc"
BUCKET = "anchor-test-packages"
PROD_HOST = "site.example.test"
A, D = HostKind.ALIAS, HostKind.DEPLOYMENT


def package(text: str, needs_s3: bool = False) -> LambdaPackage:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        entry = zipfile.ZipInfo("handler.py", date_time=(2026, 1, 1, 0, 0, 0))  # the same bytes every time
        archive.writestr(entry, f"def handle(event, context):\n    return {text!r}\n")
    data = buffer.getvalue()
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return LambdaPackage(
        zip_bytes=data,
        zip_path=None,
        code_sha256=digest,
        zipped_size=len(data),
        unzipped_size=len(text),
        handler="handler.handle",
        runtime="python3.12",
        needs_s3=needs_s3,
    )


@pytest.fixture
def clients(aws: MotoServer) -> AwsClients:
    return AwsClients()


@pytest.fixture
def functions(clients: AwsClients) -> LambdaFunctions:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = clients.client("iam").create_role(
        RoleName="anchor-runtime", AssumeRolePolicyDocument=json.dumps(trust)
    )
    clients.client("s3").create_bucket(Bucket=BUCKET)
    return LambdaFunctions(clients, FunctionSettings(role_arn=role["Role"]["Arn"], bucket=BUCKET))


@pytest.fixture
def published(functions: LambdaFunctions) -> Iterator[LambdaFunctions]:
    assert functions.publish(PROJECT, D1, package("one"), {"A": "1"}) == "1"
    assert functions.publish(PROJECT, D2, package("two"), {"A": "2"}) == "2"
    yield functions


def versions(functions: LambdaFunctions) -> dict[str, str]:
    """version -> Description, without $LATEST."""
    found = functions.versions(functions.function_name(PROJECT))
    return {v["Version"]: v["Description"] for v in found if v["Version"] != "$LATEST"}


def aliases(functions: LambdaFunctions) -> dict[str, str]:
    return {a["Name"]: a["FunctionVersion"] for a in functions.aliases(functions.function_name(PROJECT))}


def test_two_deployments_are_versions_1_and_2_each_with_its_alias_and_url(published: LambdaFunctions) -> None:
    lam = published._lambda
    name = published.function_name(PROJECT)
    assert name == f"anchor-{PROJECT}"
    assert versions(published) == {"1": D1, "2": D2}
    assert aliases(published) == {D1: "1", D2: "2"}
    assert published.version_of(PROJECT, D1) == "1"
    assert published.version_of(PROJECT, D3) is None
    one = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    two = lam.get_function_configuration(FunctionName=name, Qualifier="2")
    assert one["CodeSha256"] == package("one").code_sha256
    assert two["CodeSha256"] == package("two").code_sha256
    assert one["Environment"]["Variables"] == {"A": "1"}
    assert two["Environment"]["Variables"] == {"A": "2"}
    assert two["Handler"] == "handler.handle"
    url = published.deployment_url(PROJECT, D2)
    assert url is not None
    assert url.startswith("https://")
    assert lam.get_function_url_config(FunctionName=name, Qualifier=D2)["AuthType"] == "NONE"
    policy = json.loads(lam.get_policy(FunctionName=name, Qualifier=D2)["Policy"])
    actions = {statement["Action"] for statement in policy["Statement"]}
    assert actions == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}


def test_a_fresh_process_finds_versions_through_the_aliases(published: LambdaFunctions) -> None:
    fresh = LambdaFunctions(AwsClients(), published.settings)
    assert fresh.version_of(PROJECT, D1) == "1"
    assert fresh.version_of(PROJECT, D2) == "2"


def test_a_fresh_process_learns_a_projects_versions_from_one_listing(published: LambdaFunctions) -> None:
    clients = AwsClients()
    fresh = LambdaFunctions(clients, published.settings)
    calls = clients.count_calls()
    fresh.learn_versions(PROJECT)
    assert [fresh.version_of(PROJECT, d) for d in (D1, D2)] == ["1", "2"]
    assert calls == {"lambda:ListAliases": 1}, "no GetAlias for a deployment the listing named"
    assert fresh.version_of(PROJECT, D3) is None and calls["lambda:GetAlias"] == 1  # one it did not: asked


def test_publish_again_after_a_crash_reuses_the_version(published: LambdaFunctions) -> None:
    name = published.function_name(PROJECT)
    published._lambda.delete_alias(FunctionName=name, Name=D2)  # the crash came before the alias was made
    fresh = LambdaFunctions(AwsClients(), published.settings)
    assert fresh.publish(PROJECT, D2, package("two"), {"A": "2"}) == "2"
    assert versions(fresh) == {"1": D1, "2": D2}
    assert aliases(fresh) == {D1: "1", D2: "2"}


def test_a_crash_before_publish_version_publishes_once_on_retry(
    functions: LambdaFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    functions.publish(PROJECT, D1, package("one"), {})
    real = functions._lambda.publish_version

    def crash(**kwargs: object) -> object:
        raise KeyboardInterrupt("the process died")

    monkeypatch.setattr(functions._lambda, "publish_version", crash)
    with pytest.raises(KeyboardInterrupt):
        functions.publish(PROJECT, D2, package("two"), {})
    monkeypatch.setattr(functions._lambda, "publish_version", real)
    assert functions.publish(PROJECT, D2, package("two"), {}) == "2"
    assert functions.publish(PROJECT, D2, package("two"), {}) == "2"
    assert versions(functions) == {"1": D1, "2": D2}


def test_a_version_is_never_cut_from_another_writers_configuration(
    functions: LambdaFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    functions.publish(PROJECT, D1, package("one"), {"A": "1"})
    name = functions.function_name(PROJECT)
    lam = functions._lambda
    real = lam.update_function_code
    interleaved = []

    def then_another_writer(**kwargs: object) -> object:
        answer = real(**kwargs)
        if not interleaved:  # another process publishing D3 changes the configuration in between
            interleaved.append(True)
            lam.update_function_configuration(
                FunctionName=name, Environment={"Variables": {"A": "3"}}, Description=D3
            )
        return answer

    monkeypatch.setattr(lam, "update_function_code", then_another_writer)
    assert functions.publish(PROJECT, D2, package("two"), {"A": "2"}) == "2"
    two = lam.get_function_configuration(FunctionName=name, Qualifier="2")
    assert (two["Description"], two["Environment"]["Variables"]) == (D2, {"A": "2"})
    assert versions(functions) == {"1": D1, "2": D2}


def test_a_large_package_goes_through_s3(functions: LambdaFunctions, clients: AwsClients) -> None:
    big = package("through s3", needs_s3=True)
    functions.publish(PROJECT, D1, big, {})
    key = package_key(PROJECT, big.code_sha256)
    assert key == f"packages/{PROJECT}/{hashlib.sha256(big.read()).hexdigest()}.zip"
    assert clients.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read() == big.read()
    config = functions._lambda.get_function_configuration(
        FunctionName=functions.function_name(PROJECT), Qualifier="1"
    )
    assert config["CodeSha256"] == big.code_sha256
    functions.delete_function(PROJECT)
    assert "Contents" not in clients.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="packages/")
    functions.delete_function(PROJECT)  # idempotent
    assert functions.version_of(PROJECT, D1) is None


def edge_for(functions: LambdaFunctions) -> tuple[LambdaEdge, FakeHosts]:
    hosts = FakeHosts()
    hosts.add(PROD_HOST, A, PROJECT)
    hosts.add("site-aaaaaaaaaaaa.example.test", D, PROJECT, D1)
    hosts.add("site-bbbbbbbbbbbb.example.test", D, PROJECT, D2)
    return LambdaEdge(functions, hosts), hosts


def test_production_alias_moves_and_a_rollback_is_one_update_alias(
    published: LambdaFunctions, clients: AwsClients
) -> None:
    edge, hosts = edge_for(published)
    hosts.production[PROJECT] = D1
    edge.point(PROD_HOST, A, D1)
    assert aliases(published)["production"] == "1"
    hosts.production[PROJECT] = D2
    edge.point(PROD_HOST, A, D2)
    assert aliases(published)["production"] == "2"
    calls = clients.count_calls()
    hosts.production[PROJECT] = D1  # the rollback's commit, then its apply
    edge.point(PROD_HOST, A, D1)
    assert dict(calls) == {"lambda:GetAlias": 1, "lambda:UpdateAlias": 1}
    assert aliases(published)["production"] == "1"
    calls.clear()
    edge.point(PROD_HOST, A, D1)  # already there: the read only
    assert dict(calls) == {"lambda:GetAlias": 1}


def test_point_follows_the_database_not_the_argument(published: LambdaFunctions) -> None:
    edge, hosts = edge_for(published)
    hosts.production[PROJECT] = D2
    edge.point(PROD_HOST, A, D1)  # a stale apply: the database has moved on to D2
    assert aliases(published)["production"] == "2"


def test_production_never_serves_latest(published: LambdaFunctions) -> None:
    edge, hosts = edge_for(published)
    hosts.production[PROJECT] = D2
    edge.point(PROD_HOST, A, D2)
    with pytest.raises(ValueError, match="LATEST"):
        published.move_production(PROJECT, "$LATEST", published.production(PROJECT))
    assert "$LATEST" not in aliases(published).values()


def test_current_reports_what_the_aliases_serve(published: LambdaFunctions) -> None:
    edge, hosts = edge_for(published)
    assert dict(edge.current()) == {
        "site-aaaaaaaaaaaa.example.test": (D, D1),
        "site-bbbbbbbbbbbb.example.test": (D, D2),
    }
    hosts.production[PROJECT] = D2
    edge.point(PROD_HOST, A, D2)
    assert edge.current()[PROD_HOST] == (A, D2)
    hosts.production[PROJECT] = None
    edge.remove(PROD_HOST)
    assert PROD_HOST not in edge.current()
    assert "production" not in aliases(published)


def test_point_deployment_remakes_a_missing_alias_and_refuses_unknown_hosts(
    published: LambdaFunctions,
) -> None:
    _, hosts = edge_for(published)
    published._lambda.delete_alias(FunctionName=published.function_name(PROJECT), Name=D1)
    fresh = LambdaEdge(LambdaFunctions(AwsClients(), published.settings), hosts)
    fresh.point("site-aaaaaaaaaaaa.example.test", D, D1)
    assert aliases(published)[D1] == "1"
    with pytest.raises(EdgeError):
        fresh.point("unknown.example.test", D, D1)
    with pytest.raises(EdgeError):
        fresh.point("Bad..host", A, D1)
    hosts.add("site-cccccccccccc.example.test", D, PROJECT, D3)
    with pytest.raises(EdgeError, match="no published"):
        fresh.point("site-cccccccccccc.example.test", D, D3)


def test_prune_deletes_unreferenced_aliases_and_versions(published: LambdaFunctions) -> None:
    published.publish(PROJECT, D3, package("three"), {})
    edge, hosts = edge_for(published)
    hosts.production[PROJECT] = D2
    edge.point(PROD_HOST, A, D2)
    result = published.prune(PROJECT, {D3})
    assert sorted(result.aliases) == [D1, D2]
    assert result.versions == ["1"]  # 2 stays: production names it
    assert aliases(published) == {"production": "2", D3: "3"}
    assert versions(published) == {"2": D2, "3": D3}
    assert published.version_of(PROJECT, D1) is None
    again = published.prune(PROJECT, {D3})
    assert (again.aliases, again.versions) == ([], [])


def test_invoke_with_function_error_is_a_failure(published: LambdaFunctions, clients: AwsClients) -> None:
    # moto cannot run code without docker: it answers HTTP 200 with a FunctionError.
    result = LambdaInvoker(clients).check_deployment(published.function_name(PROJECT), D1)
    assert not result.ok
    assert "function error" in result.reason
