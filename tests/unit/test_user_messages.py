"""What users read: a failed deployment's error, the records a domain removal frees, the CLI's lines."""

from __future__ import annotations

import io

import pytest

from anchor_deploy.cli import login as login_module
from anchor_deploy.cli.client import ClientError
from anchor_deploy.cli.common import plural
from anchor_deploy.cli.main import production_line
from anchor_deploy.model.domains import DnsRecord, records_after_removal, validation_sibling
from anchor_deploy.model.logs import ERROR_MAX_BYTES, error_summary


def test_error_summary_keeps_the_cause_and_the_end_of_the_output() -> None:
    reason = (
        "the app exited with code 1 before its health check; its output ends with:\n"
        "INFO:     Started server process [2]\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "/app/app.py", line 3, in <module>\n'
        "ModuleNotFoundError: No module named 'flask_sqlalchemy'\n"
    )
    summary = error_summary(reason)
    lines = summary.splitlines()
    assert lines[0] == "the app exited with code 1 before its health check; its output ends with:"
    assert lines[-1] == "ModuleNotFoundError: No module named 'flask_sqlalchemy'"
    assert "" not in lines and "…" not in lines  # blank lines dropped, nothing left out


def test_error_summary_is_bounded_and_says_what_it_left_out() -> None:
    output = [f"line {i}: " + "é" * 200 for i in range(100)]
    summary = error_summary("cause\n" + "\n".join(output))
    assert len(summary.encode()) <= ERROR_MAX_BYTES
    lines = summary.splitlines()
    assert lines[:2] == ["cause", "…"] and lines[-1] == output[-1]
    short = [f"frame {i}" for i in range(40)]
    assert error_summary("cause\n" + "\n".join(short)).splitlines() == ["cause", "…", *short[-12:]]
    long_line = error_summary("x" * 5000 + "\n" + "y" * 5000)
    assert len(long_line.encode()) <= ERROR_MAX_BYTES and long_line.splitlines()[1].endswith("…")
    assert error_summary("") == "" and error_summary("one line") == "one line"


def records() -> list[DnsRecord]:
    return [
        DnsRecord("CNAME", "_acme-challenge.www.example.com", "abc.zone", "validation", "keep it: renewals"),
        DnsRecord("CNAME", "www.example.com", "edge.example.net", "routing"),
    ]


def test_after_removal_every_record_may_go_and_the_notes_say_why() -> None:
    after = records_after_removal(records(), sibling=None)
    assert [ok for _record, ok in after] == [True, True]
    validation, routing = (record for record, _ok in after)
    assert "keep" not in validation.note and "renewals stopped" in validation.note
    assert routing.note == "the edge no longer serves this name"


def test_after_removal_a_sibling_keeps_the_validation_record() -> None:
    after = records_after_removal(records(), sibling="*.www.example.com")
    assert [ok for _record, ok in after] == [False, True]
    assert "*.www.example.com" in after[0][0].note
    assert validation_sibling("www.example.com") == "*.www.example.com"
    assert validation_sibling("*.example.com") == "example.com"


def test_plural() -> None:
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"


def test_production_line_says_when_production_is_pinned() -> None:
    project = {"name": "shop", "productionDeploymentId": "dpl_a", "pinned": True}
    assert production_line(project) == (
        "production: dpl_a (pinned after a rollback; `anchor unpin shop` to release)"
    )
    assert production_line({**project, "pinned": False}) == "production: dpl_a"
    assert "none yet" in production_line({**project, "productionDeploymentId": None})


class Stdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("given", "from_stdin", "env_token", "stdin", "expected"),
    [
        ("anc_given", False, "anc_env", "anc_pipe\n", "anc_given"),
        (None, True, "anc_env", "anc_pipe\n", "anc_pipe"),
        (None, False, "anc_env", "anc_pipe\n", "anc_env"),
        (None, False, None, "  anc_pipe  \nmore\n", "anc_pipe"),
    ],
)
def test_login_token_sources(
    monkeypatch: pytest.MonkeyPatch,
    given: str | None,
    from_stdin: bool,
    env_token: str | None,
    stdin: str,
    expected: str,
) -> None:
    monkeypatch.setattr("sys.stdin", Stdin(stdin, tty=False))
    assert login_module.token_from(given, from_stdin, env_token) == expected


def test_login_without_a_token_anywhere_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Stdin("", tty=False))
    with pytest.raises(ClientError) as refused:
        login_module.token_from(None, False, None)
    assert str(refused.value) == login_module.NOTHING_TO_READ and "\n" not in str(refused.value)
    monkeypatch.setattr("sys.stdin", Stdin("\n", tty=False))
    with pytest.raises(ClientError):
        login_module.token_from(None, True, "anc_env")  # --token-stdin reads stdin, even with ANCHOR_TOKEN


class FakeProjects:
    """Just enough of ApiClient for deciding the project of a deploy."""

    def __init__(self, existing: set[str]) -> None:
        self.existing = existing
        self.created: list[str] = []

    def get(self, path: str) -> dict[str, object]:
        name = path.rsplit("/", 1)[1]
        if name not in self.existing:
            raise ClientError(f"project {name!r} not found", 404, "project_not_found")
        return {"name": name}

    def post(self, path: str, body: dict[str, str]) -> dict[str, object]:
        self.created.append(body["name"])
        self.existing.add(body["name"])
        return {"name": body["name"]}


@pytest.mark.parametrize(
    ("existing", "create", "terminal", "answer", "created", "refused"),
    [
        ({"shop"}, False, False, "", [], None),
        (set(), True, False, "", ["shop"], None),
        (set(), False, False, "", [], "pass --create"),
        (set(), False, True, "y\n", ["shop"], None),
        (set(), False, True, "n\n", [], "nothing was deployed"),
        (set(), False, True, "", [], "nothing was deployed"),  # end of input at the question
    ],
)
def test_the_project_of_a_deploy(
    monkeypatch: pytest.MonkeyPatch,
    existing: set[str],
    create: bool,
    terminal: bool,
    answer: str,
    created: list[str],
    refused: str | None,
) -> None:
    from click.testing import CliRunner

    from anchor_deploy.cli import deploy_command

    monkeypatch.setattr(deploy_command, "has_terminal", lambda: terminal)
    api = FakeProjects(set(existing))
    with CliRunner().isolation(input=answer):
        if refused is None:
            deploy_command._resolve_project(api, "shop", create)  # type: ignore[arg-type]
        else:
            with pytest.raises(ClientError, match=refused):
                deploy_command._resolve_project(api, "shop", create)  # type: ignore[arg-type]
    assert api.created == created
