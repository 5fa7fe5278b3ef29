"""ForgeStatusReporter against a local stand-in for each forge's commit status API (tests/forge_api_stub.py):
the documented call arrives with the token, states arrive in order, failures are retried or given up
as they should be, and report() never waits for the forge."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from anchor_deploy.adapters.forge_status import ForgeStatusReporter
from anchor_deploy.model.git import CommitState, Forge, GitConnection
from anchor_deploy.ports.git import CommitStatus, ForgeStatus
from tests.forge_api_stub import Answer, ForgeApiStub

TOKEN = "ghp_s3cr3tT0kenValue0123456789"
SHA = "4f1c2b9e8d7a6c5b4a3928171605f4e3d2c1b0a9"
OTHER_SHA = "0123456789abcdef0123456789abcdef01234567"
URL = "https://shop-4f1c2b9e.apps.example.test"
SETTLE = 10.0  # seconds at most for the reporter to go idle

REPOS = {
    Forge.GITHUB: ("https://github.com/acme/shop.git", "acme/shop"),
    Forge.GITLAB: ("git@gitlab.example.test:acme/web/shop.git", "acme%2Fweb%2Fshop"),
    Forge.GITEA: ("https://code.example.test/acme/shop", "acme/shop"),
}
SENT_STATE = {  # what each forge is sent for (pending, success, failure)
    Forge.GITHUB: ("pending", "success", "failure"),
    Forge.GITLAB: ("pending", "success", "failed"),
    Forge.GITEA: ("pending", "success", "failure"),
}
LABEL_FIELD = {Forge.GITHUB: "context", Forge.GITLAB: "name", Forge.GITEA: "context"}


@pytest.fixture
def stub() -> Iterator[ForgeApiStub]:
    server = ForgeApiStub(TOKEN)
    yield server
    server.close()


@pytest.fixture
def reporters() -> Iterator[list[ForgeStatusReporter]]:
    made: list[ForgeStatusReporter] = []
    yield made
    for reporter in made:
        reporter.close()


Make = Callable[..., ForgeStatusReporter]


@pytest.fixture
def make(reporters: list[ForgeStatusReporter]) -> Make:
    """A reporter with tiny backoffs (closed after the test); keywords override its options."""

    def build(**options: Any) -> ForgeStatusReporter:
        reporter = ForgeStatusReporter(
            **{"first_backoff": 0.01, "longest_backoff": 0.05, "timeout": 2.0, **options}
        )
        reporters.append(reporter)
        return reporter

    return build


def connection(forge: Forge, api_url: str, repo_url: str = "") -> GitConnection:
    repo = repo_url or REPOS.get(forge, ("https://git.example.test/acme/shop.git", ""))[0]
    return GitConnection("prj_1", repo, "main", forge, 0.0, api_url=api_url, has_forge_token=True)


def status(state: CommitState, sha: str = SHA, description: str = "") -> CommitStatus:
    words = description or {"pending": "Building", "success": "Deployed", "failure": "Build failed"}[state]
    return CommitStatus("https://elsewhere.example.test/not/this", sha, state, URL, words)


def test_the_reporter_is_a_forge_status() -> None:
    port: ForgeStatus = ForgeStatusReporter()
    assert callable(port.report)


@pytest.mark.parametrize("final", [CommitState.SUCCESS, CommitState.FAILURE])
@pytest.mark.parametrize("forge", [Forge.GITHUB, Forge.GITLAB, Forge.GITEA])
def test_pending_then_the_outcome_arrive_in_order_as_documented(
    stub: ForgeApiStub, make: Make, forge: Forge, final: CommitState
) -> None:
    reporter = make()
    link = connection(forge, stub.api_root(forge.value))
    reporter.report(link, TOKEN, status(CommitState.PENDING))
    assert reporter.wait_idle(SETTLE)
    reporter.report(link, TOKEN, status(final))
    assert reporter.wait_idle(SETTLE)

    assert [r.problems for r in stub.received] == [[], []]
    pending, outcome = SENT_STATE[forge][0], SENT_STATE[forge][2 if final is CommitState.FAILURE else 1]
    assert stub.states() == [pending, outcome]
    for arrived in stub.received:
        assert arrived.repo == REPOS[forge][1]
        assert arrived.sha == SHA
        assert arrived.body["target_url"] == URL
        assert arrived.body[LABEL_FIELD[forge]] == "anchor-deploy"
    assert stub.received[0].body["description"] == "Building"
    assert stub.received[1].body["description"] == status(final).description


def test_a_later_state_replaces_an_earlier_one_still_retrying(stub: ForgeApiStub, make: Make) -> None:
    reporter = make(first_backoff=0.2, longest_backoff=1.0)
    link = connection(Forge.GITHUB, stub.api_root("github"))
    stub.script(Answer(500, hold=True))
    reporter.report(link, TOKEN, status(CommitState.PENDING))
    assert stub.arrived.wait(SETTLE)  # pending is at the forge, which will answer 500
    reporter.report(link, TOKEN, status(CommitState.SUCCESS))
    stub.release()
    assert reporter.wait_idle(SETTLE)

    assert [(r.body["state"], r.answered) for r in stub.received] == [("pending", 500), ("success", 201)]
    assert reporter.counts()["superseded"] == 1


def test_statuses_of_other_commits_are_not_merged(stub: ForgeApiStub, make: Make) -> None:
    reporter = make()
    link = connection(Forge.GITEA, stub.api_root("gitea"))
    stub.script(Answer(201, hold=True))
    reporter.report(link, TOKEN, status(CommitState.PENDING, sha=OTHER_SHA))
    assert stub.arrived.wait(SETTLE)
    reporter.report(link, TOKEN, status(CommitState.PENDING))
    reporter.report(link, TOKEN, status(CommitState.SUCCESS))  # replaces its commit's unsent pending
    stub.release()
    assert reporter.wait_idle(SETTLE)

    assert [(r.sha, r.body["state"]) for r in stub.accepted()] == [(OTHER_SHA, "pending"), (SHA, "success")]


def test_server_errors_are_retried_until_the_status_lands(stub: ForgeApiStub, make: Make) -> None:
    reporter = make()
    stub.script(500, 502)
    reporter.report(connection(Forge.GITLAB, stub.api_root("gitlab")), TOKEN, status(CommitState.SUCCESS))
    assert reporter.wait_idle(SETTLE)

    assert [r.answered for r in stub.received] == [500, 502, 201]
    assert all(r.body == stub.received[0].body for r in stub.received)
    assert reporter.counts() == {"attempts": 3, "sent": 1}


def test_rate_limits_wait_as_long_as_the_forge_asks(stub: ForgeApiStub, make: Make) -> None:
    reporter = make(longest_backoff=2.0)
    stub.script(Answer(429, {"Retry-After": "1"}))
    reporter.report(connection(Forge.GITHUB, stub.api_root("github")), TOKEN, status(CommitState.PENDING))
    assert not reporter.wait_idle(0.5)  # a backoff of 0.01 s would long be over
    assert reporter.wait_idle(SETTLE)
    assert [r.answered for r in stub.received] == [429, 201]


def test_a_rate_limit_longer_than_the_longest_backoff_is_given_up(
    stub: ForgeApiStub, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make(longest_backoff=1.0)
    stub.script(Answer(429, {"Retry-After": "3600"}))
    with caplog.at_level(logging.WARNING, "anchor_deploy.adapters.forge_status"):
        reporter.report(connection(Forge.GITEA, stub.api_root("gitea")), TOKEN, status(CommitState.PENDING))
        assert reporter.wait_idle(SETTLE)
    assert [r.answered for r in stub.received] == [429]
    assert reporter.counts()["gave_up"] == 1
    assert "HTTP 429" in caplog.text


@pytest.mark.parametrize("forge", [Forge.GITHUB, Forge.GITLAB, Forge.GITEA])
def test_a_refused_token_is_not_retried(
    stub: ForgeApiStub, make: Make, forge: Forge, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make()
    with caplog.at_level(logging.WARNING, "anchor_deploy.adapters.forge_status"):
        reporter.report(
            connection(forge, stub.api_root(forge.value)), "wrong-token", status(CommitState.SUCCESS)
        )
        assert reporter.wait_idle(SETTLE)
    assert [r.answered for r in stub.received] == [401]
    assert reporter.counts() == {"attempts": 1, "refused": 1}
    assert "HTTP 401: Bad credentials" in caplog.text


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_forge_is_given_up_after_the_attempts(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make(attempts=4)
    link = connection(Forge.GITHUB, f"http://127.0.0.1:{closed_port()}")
    with caplog.at_level(logging.WARNING, "anchor_deploy.adapters.forge_status"):
        reporter.report(link, TOKEN, status(CommitState.PENDING))
        assert reporter.wait_idle(SETTLE)
    assert reporter.counts() == {"attempts": 4, "gave_up": 1}
    assert "not sent after 4 attempt(s): ConnectError" in caplog.text


def test_report_returns_while_the_forge_holds_a_request(stub: ForgeApiStub, make: Make) -> None:
    reporter = make(timeout=0.3, attempts=2)
    link = connection(Forge.GITHUB, stub.api_root("github"))
    stub.script(Answer(201, hold=True))
    reporter.report(link, TOKEN, status(CommitState.PENDING))
    assert stub.arrived.wait(SETTLE)
    done = threading.Event()

    def report_success() -> None:
        reporter.report(link, TOKEN, status(CommitState.SUCCESS))
        done.set()

    caller = threading.Thread(target=report_success)
    caller.start()
    assert done.wait(SETTLE)  # the forge is still holding the first request: report() did not wait for it
    assert reporter.wait_idle(SETTLE)  # the held call timed out; success went after it
    stub.release()
    caller.join(SETTLE)
    assert reporter.counts()["attempts"] == 2
    assert stub.received[-1].body["state"] == "success"


def test_the_token_never_reaches_the_logs(
    stub: ForgeApiStub, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make(attempts=2)
    stub.echo_token_on_401 = True
    with caplog.at_level(logging.DEBUG):
        stub.script(500, 500)
        reporter.report(connection(Forge.GITHUB, stub.api_root("github")), TOKEN, status(CommitState.PENDING))
        assert reporter.wait_idle(SETTLE)
        reporter.report(
            connection(Forge.GITEA, stub.api_root("gitea")), TOKEN + "x", status(CommitState.SUCCESS)
        )
        unreachable = connection(Forge.GITLAB, f"http://127.0.0.1:{closed_port()}")
        reporter.report(unreachable, TOKEN, status(CommitState.FAILURE))
        assert reporter.wait_idle(SETTLE)
    assert stub.received[-1].answered == 401
    assert reporter.counts()["gave_up"] == 2
    assert "Bad credentials" in caplog.text
    assert TOKEN not in caplog.text


def test_a_generic_git_server_is_told_nothing(stub: ForgeApiStub, make: Make) -> None:
    reporter = make()
    reporter.report(connection(Forge.GENERIC, stub.api_root("github")), TOKEN, status(CommitState.SUCCESS))
    assert reporter.wait_idle(SETTLE)
    assert stub.received == []
    assert reporter.counts() == {}


def test_a_full_queue_drops_the_oldest(
    stub: ForgeApiStub, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make(max_queued=2)
    link = connection(Forge.GITHUB, stub.api_root("github"))
    stub.script(Answer(201, hold=True))
    reporter.report(link, TOKEN, status(CommitState.PENDING, sha="a" * 40))
    assert stub.arrived.wait(SETTLE)
    with caplog.at_level(logging.WARNING, "anchor_deploy.adapters.forge_status"):
        for sha in ("b" * 40, "c" * 40, "d" * 40):
            reporter.report(link, TOKEN, status(CommitState.PENDING, sha=sha))
    stub.release()
    assert reporter.wait_idle(SETTLE)
    assert [r.sha for r in stub.accepted()] == ["a" * 40, "c" * 40, "d" * 40]
    assert reporter.counts()["dropped"] == 1
    assert "queue full" in caplog.text


def test_close_ends_the_thread_and_later_reports_are_dropped(stub: ForgeApiStub) -> None:
    reporter = ForgeStatusReporter(first_backoff=0.01)
    link = connection(Forge.GITEA, stub.api_root("gitea"))
    reporter.report(link, TOKEN, status(CommitState.PENDING))
    assert reporter.wait_idle(SETTLE)
    assert reporter.running
    reporter.close()
    assert not reporter.running
    reporter.report(link, TOKEN, status(CommitState.SUCCESS))
    assert reporter.wait_idle(SETTLE)
    assert stub.states() == ["pending"]


def test_a_pasted_token_is_trimmed_and_a_broken_one_is_not_sent(
    stub: ForgeApiStub, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make()
    link = connection(Forge.GITEA, stub.api_root("gitea"))
    with caplog.at_level(logging.WARNING, "anchor_deploy.adapters.forge_status"):
        reporter.report(link, f"  {TOKEN}\n", status(CommitState.PENDING))
        reporter.report(link, f"{TOKEN}\nX-Injected: 1", status(CommitState.SUCCESS, sha=OTHER_SHA))
        assert reporter.wait_idle(SETTLE)
    assert [(r.sha, r.problems, r.answered) for r in stub.received] == [(SHA, [], 201)]
    assert "the forge token is empty or has spaces or control characters" in caplog.text
    assert TOKEN not in caplog.text


def test_an_api_url_no_client_can_call_is_not_retried(make: Make) -> None:
    reporter = make()
    reporter.report(connection(Forge.GITHUB, "ftp://127.0.0.1/api"), TOKEN, status(CommitState.PENDING))
    assert reporter.wait_idle(SETTLE)
    assert reporter.counts() == {"attempts": 1, "refused": 1}
