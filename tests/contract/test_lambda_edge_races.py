"""What moto does not emulate, on tests/aws_fakes.FakeLambda: RevisionId compare-and-set on the production
alias (a stale writer loses, retries are bounded), paginated listings during retention, one URL per alias.

moto's update_alias ignores RevisionId and never changes an alias's RevisionId; its ListAliases and
ListVersionsByFunction ignore MaxItems and Marker; its function URL ignores the qualifier.
"""

from __future__ import annotations

import pytest

from anchor_deploy.adapters.aws.lambda_edge import LambdaEdge
from anchor_deploy.adapters.aws.lambda_functions import FunctionSettings, LambdaFunctions
from anchor_deploy.model.entities import HostKind
from anchor_deploy.model.errors import EdgeError
from tests.aws_fakes import FakeClients, FakeHosts, FakeLambda, client_error

PROJECT = "prj_0123456789abcdef"
HOST = "site.example.test"
A = HostKind.ALIAS


def deployment(n: int) -> str:
    return f"dpl_{n:012d}"


@pytest.fixture
def fake() -> FakeLambda:
    fake = FakeLambda(f"anchor-{PROJECT}")
    for n in (1, 2, 3):
        version = fake.publish(deployment(n))
        fake.create_alias(
            FunctionName=fake.name, Name=deployment(n), FunctionVersion=version, Description=deployment(n)
        )
    fake.calls.clear()
    return fake


def functions_on(fake: FakeLambda, page_size: int = 50) -> LambdaFunctions:
    settings = FunctionSettings(role_arn="arn:aws:iam::123456789012:role/r", bucket="b", page_size=page_size)
    return LambdaFunctions(FakeClients(**{"lambda": fake}), settings)


@pytest.fixture
def hosts() -> FakeHosts:
    hosts = FakeHosts()
    hosts.add(HOST, A, PROJECT)
    return hosts


def production(fake: FakeLambda) -> str:
    return str(fake.aliases["production"]["FunctionVersion"])


def test_a_stale_writer_loses_and_starts_over(fake: FakeLambda, hosts: FakeHosts) -> None:
    # Two control-plane processes: A applies the commit of deployment 2; while A is between its reads and
    # its write, deployment 3 is committed and process B applies it in full.
    hosts.production[PROJECT] = deployment(1)
    writer_a, writer_b = LambdaEdge(functions_on(fake), hosts), LambdaEdge(functions_on(fake), hosts)
    writer_a.point(HOST, A, deployment(1))
    hosts.production[PROJECT] = deployment(2)

    def newer_commit_applied_elsewhere() -> None:
        fake.before_update_alias = lambda: None
        hosts.production[PROJECT] = deployment(3)
        writer_b.point(HOST, A, deployment(3))

    fake.before_update_alias = newer_commit_applied_elsewhere
    writer_a.point(HOST, A, deployment(2))
    assert fake.preconditions_failed == 1  # A's write carried the RevisionId B had made stale
    assert production(fake) == "3"  # the newer commit stands


def test_a_commit_applied_between_the_writers_database_read_and_write_wins(
    fake: FakeLambda, hosts: FakeHosts
) -> None:
    # The window that decides the order of reads: A has read the alias and then the database (deployment
    # 2); deployment 3 is committed and applied in full by B; A's write must fail on the RevisionId. Had A
    # read the database before the alias, its alias read would see B's write and the stale 2 would win.
    hosts.production[PROJECT] = deployment(1)
    writer_a, writer_b = LambdaEdge(functions_on(fake), hosts), LambdaEdge(functions_on(fake), hosts)
    writer_a.point(HOST, A, deployment(1))
    hosts.production[PROJECT] = deployment(2)
    reads = 0

    def newer_commit_applied_elsewhere() -> None:
        nonlocal reads
        reads += 1
        if reads == 2:  # A's first read is the host's project; the second is its target
            hosts.after_read = lambda: None
            hosts.production[PROJECT] = deployment(3)
            writer_b.point(HOST, A, deployment(3))

    hosts.after_read = newer_commit_applied_elsewhere
    writer_a.point(HOST, A, deployment(2))
    assert fake.preconditions_failed == 1
    assert production(fake) == "3"


def test_a_commit_after_the_writers_read_is_applied_by_its_own_writer(
    fake: FakeLambda, hosts: FakeHosts
) -> None:
    hosts.production[PROJECT] = deployment(1)
    writer_a, writer_b = LambdaEdge(functions_on(fake), hosts), LambdaEdge(functions_on(fake), hosts)
    writer_a.point(HOST, A, deployment(1))
    hosts.production[PROJECT] = deployment(2)

    def newer_commit_not_yet_applied() -> None:
        fake.before_update_alias = lambda: None
        hosts.production[PROJECT] = deployment(3)

    fake.before_update_alias = newer_commit_not_yet_applied
    writer_a.point(HOST, A, deployment(2))  # A read the database before the commit: it writes 2
    assert production(fake) == "2"
    writer_b.point(HOST, A, deployment(3))  # the commit's own apply reads the alias after A's write
    assert production(fake) == "3"
    assert fake.preconditions_failed == 0


def test_an_alias_that_keeps_moving_fails_after_bounded_attempts(fake: FakeLambda, hosts: FakeHosts) -> None:
    hosts.production[PROJECT] = deployment(1)
    edge = LambdaEdge(functions_on(fake), hosts, attempts=3)
    edge.point(HOST, A, deployment(1))
    hosts.production[PROJECT] = deployment(2)

    def someone_moves_it() -> None:
        fake.aliases["production"]["RevisionId"] = f"moved-{fake.calls['UpdateAlias']}"

    fake.before_update_alias = someone_moves_it
    fake.calls.clear()
    with pytest.raises(EdgeError, match="kept moving"):
        edge.point(HOST, A, deployment(2))
    assert fake.calls["UpdateAlias"] == 3
    assert fake.preconditions_failed == 3
    assert production(fake) == "1"


def test_the_first_point_makes_production_with_its_url_and_later_moves_keep_it(
    fake: FakeLambda, hosts: FakeHosts
) -> None:
    functions = functions_on(fake)
    edge = LambdaEdge(functions, hosts)
    hosts.production[PROJECT] = deployment(1)
    edge.point(HOST, A, deployment(1))
    url = fake.urls["production"]
    assert functions.production_url(PROJECT) == url
    hosts.production[PROJECT] = deployment(2)
    fake.calls.clear()
    edge.point(HOST, A, deployment(2))
    assert fake.urls["production"] == url  # CloudFront's origin does not change with a move
    assert fake.calls == {"GetAlias": 2, "UpdateAlias": 1}  # deployment 2's version was not known yet
    assert production(fake) == "2"


def test_each_deployment_alias_has_its_own_url(fake: FakeLambda) -> None:
    functions = functions_on(fake)
    for n in (1, 2, 3):
        assert functions.ensure_deployment_alias(PROJECT, deployment(n)) == str(n)
    urls = {functions.deployment_url(PROJECT, deployment(n)) for n in (1, 2, 3)}
    assert len(urls) == 3
    assert None not in urls


def test_prune_pages_through_versions_and_aliases(hosts: FakeHosts) -> None:
    fake = FakeLambda(f"anchor-{PROJECT}")
    for n in range(1, 121):
        version = fake.publish(deployment(n))
        if n % 10:  # every tenth deployment crashed before its alias was made
            fake.create_alias(
                FunctionName=fake.name, Name=deployment(n), FunctionVersion=version, Description=deployment(n)
            )
    functions = functions_on(fake, page_size=50)
    hosts.production[PROJECT] = deployment(60)
    LambdaEdge(functions, hosts).point(HOST, A, deployment(60))
    for n in (1, 2):
        functions.ensure_deployment_alias(PROJECT, deployment(n))  # gives them URLs
    keep = {deployment(n) for n in range(116, 121)}
    fake.calls.clear()
    result = functions.prune(PROJECT, keep)
    # 108 deployment aliases, the one production's move made for deployment 60, and production
    assert fake.calls["ListAliases"] == 3  # 110 aliases in pages of 50
    assert fake.calls["ListVersionsByFunction"] == 3  # 121 versions with $LATEST
    assert sorted(fake.versions, key=int) == ["60", "116", "117", "118", "119", "120"]
    assert sorted(fake.aliases) == sorted(["production", *(keep - {deployment(120)})])
    assert len(result.aliases) == 109 - 4
    assert len(result.versions) == 120 - 6
    assert set(fake.urls) == {"production"}  # the pruned aliases' URLs went with them
    assert functions.version_of(PROJECT, deployment(1)) is None


def test_lambda_failures_are_edge_errors(
    fake: FakeLambda, hosts: FakeHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = LambdaEdge(functions_on(fake), hosts)
    hosts.production[PROJECT] = deployment(1)

    def refused(**_: object) -> None:
        raise client_error("ServiceException", "GetAlias")

    monkeypatch.setattr(fake, "get_alias", refused)
    monkeypatch.setattr(fake, "list_aliases", refused)
    with pytest.raises(EdgeError, match="Lambda could not serve"):
        edge.point(HOST, A, deployment(1))
    with pytest.raises(EdgeError, match="Lambda could not serve"):
        edge.current()
    assert "production" not in fake.aliases
