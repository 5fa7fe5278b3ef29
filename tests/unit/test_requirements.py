"""validate_requirements: requirements.txt lines are read as pip reads them and parsed by the reference
parser (packaging); anything that could make pip read the server's disk or another index is refused with the
line number and a reason that never repeats the line (nor any path in it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anchor_deploy.model.apps import requirements_from_pyproject, validate_requirements
from anchor_deploy.model.entities import DeploymentStatus
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.ports.runtime import WorkerSpec
from anchor_deploy.services.apps import AppBuilds, BuildSettings
from tests.unit.conftest import ADMIN, App

SHA256 = "a" * 64

# (line, a word the reason must contain)
REFUSED: dict[str, tuple[str, str]] = {
    "hash-comment-bypass": ("x#/../../x.whl", "not a valid requirement"),
    "hash-comment-bypass-long": ("x#/../../..../some.whl", "not a valid requirement"),
    "nested-requirements": ("-r other.txt", "pip options are not allowed (-r)"),
    "requirement-long": ("--requirement=/etc/passwd", "pip options are not allowed (--requirement)"),
    "indented-option": ("   -r /etc/passwd", "pip options are not allowed (-r)"),
    "editable": ("-e .", "pip options are not allowed (-e)"),
    "constraints": ("-c /etc/passwd", "pip options are not allowed (-c)"),
    "index-url": ("--index-url https://x", "pip options are not allowed (--index-url)"),
    "index-url-short": ("-i https://x", "pip options are not allowed (-i)"),
    "extra-index-url": ("--extra-index-url https://x.example.com", "(--extra-index-url)"),
    "find-links": ("--find-links /srv", "pip options are not allowed (--find-links)"),
    "trusted-host": ("--trusted-host example.com", "(--trusted-host)"),
    "option-glued-to-a-path": ("-/srv/secret", "pip options are not allowed"),
    "option-after-requirement": ("flask -r /etc/passwd", "--hash"),
    "index-after-requirement": ("flask --index-url=https://x.example.com", "--hash"),
    "hash-of-the-wrong-length": (f"flask==3.0.3 --hash=sha256:{SHA256[:-1]}", "--hash"),
    "hash-weak-algorithm": (f"flask==3.0.3 --hash=md5:{SHA256[:32]}", "--hash"),
    "hash-with-a-path-glued": (f"flask==3.0.3 --hash=sha256:{SHA256}/../../srv", "--hash"),
    "hash-as-two-words": (f"flask==3.0.3 --hash sha256:{SHA256}", "--hash"),
    "file-url": ("file:///etc/passwd", "not a valid requirement"),
    "named-file-url": ("pkg @ file:///srv/x.whl", "must be an https URL"),
    "dot-path": ("./local", "not a valid requirement"),
    "absolute-path": ("/abs/path", "not a valid requirement"),
    "parent-path": ("../up", "not a valid requirement"),
    "home-path": ("~/x", "not a valid requirement"),
    "relative-path-without-a-dot": ("bin/../../srv/x", "not a valid requirement"),
    "archive-in-the-working-directory": ("x.whl", "local paths and file names"),
    "archive-with-extras": ("some-thing.tar.gz[extra]", "local paths and file names"),
    "arbitrary-equality-path": ("pkg===/../../../../srv/x-1.0-py3-none-any.whl", "local paths"),
    "arbitrary-equality-archive": ("pkg===x.zip", "local paths and file names"),
    "git-file": ("git+file:///repo", "not a valid requirement"),
    "named-git-file": ("pkg @ git+file:///repo", "must be an https URL"),
    "git-ssh": ("git+ssh://git@example.com/x.git", "not a valid requirement"),
    "named-git-ssh": ("pkg @ git+ssh://git@example.com/x.git", "must be an https URL"),
    "named-git-https": ("pkg @ git+https://example.com/x.git", "must be an https URL"),
    "http": ("http://example.com/x.whl", "not a valid requirement"),
    "named-http": ("pkg @ http://example.com/x.whl", "must be an https URL"),
    "named-ftp": ("pkg @ ftp://example.com/x.whl", "must be an https URL"),
    "ip-literal": ("pkg @ https://127.0.0.1/x.whl", "not an IP address"),
    "ipv6-literal": ("pkg @ https://[::1]/x.whl", "not an IP address"),
    "numeric-host": ("pkg @ https://2130706433/x.whl", "not an IP address"),
    "hex-ipv4": ("pkg @ https://1.0x7f/x.whl", "not an IP address"),
    "localhost": ("pkg @ https://localhost/x.whl", "DNS name"),
    "under-localhost": ("pkg @ https://files.localhost/x.whl", "not localhost"),
    "single-label-host": ("pkg @ https://intranet/x.whl", "DNS name"),
    "credentials": ("pkg @ https://user:secret@files.example.com/x.whl", "credentials"),
    "credentials-hiding-the-host": ("pkg @ https://files.example.com@127.0.0.1/x.whl", "credentials"),
    "dot-dot-in-url-path": ("pkg @ https://files.example.com/../../../../srv/x.whl", "'..'"),
    "dot-dot-in-url-query": ("pkg @ https://files.example.com/x?a=/../../../srv/x.whl", "'..'"),
    "bad-port": ("pkg @ https://files.example.com:99999/x.whl", "not a valid URL"),
    "unparseable-version": ("foo ==", "not a valid requirement"),
    "only-extras": ("[x]", "not a valid requirement"),
    "punctuation": ("!!", "not a valid requirement"),
    "environment-variable": ("${HOME}/x", "environment variables"),
    "environment-variable-in-url": ("pkg @ https://files.example.com/${TOKEN}.whl", "environment variables"),
    "trailing-backslash": ("flask \\", "line continuations"),
    "trailing-backslash-after-comment": ("flask # joined with the next line \\", "line continuations"),
    "backslash": ("pkg @ https://files.example.com\\@127.0.0.1/x.whl", "backslashes"),
    "nul": ("flask\x00", "not a valid requirement"),
}

ACCEPTED = [
    "flask",
    "Flask==3.0.3",
    "requests[socks]>=2,<3",
    'uvicorn ; python_version >= "3.8"',
    "pkg @ https://files.example.com/pkg-1.0-py3-none-any.whl",
    "pkg @ https://files.example.com:8443/pkg-1.0.tar.gz#sha256=" + SHA256,
    "pkg @ HTTPS://Files.Example.COM./pkg-1.0-py3-none-any.whl",
    f"flask==3.0.3 --hash=sha256:{SHA256}",
    f"flask==3.0.3 --hash=sha256:{SHA256}  --hash=sha512:{'b' * 128}",
    "# a comment line",
    "   # an indented comment with a path /etc/passwd and an option -r x",
    "#-r /etc/passwd",
    "flask # trailing comment",
    "flask\t# trailing comment after a tab",
    "# a comment ending with a backslash \\",
    "",
    "   ",
]


def _refusal(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_requirements(text)
    return caught.value


def _paths_in(line: str) -> list[str]:
    return [part for part in re.split(r"[\s@#=]+", line) if "/" in part]


@pytest.mark.parametrize(("line", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_refused_lines_name_their_line_and_a_reason_but_not_the_line(line: str, reason: str) -> None:
    text = f"flask\n# a comment\n\n{line}\nrequests\n"
    error = _refusal(text)
    assert error.message.startswith("requirements line 4: "), error.message
    assert reason in error.message, error.message
    assert error.code == "invalid_input" and error.status == 422
    assert "/" not in error.message
    for path in _paths_in(line):
        assert path not in error.message
    if len(line.strip()) > 3:
        assert line.strip() not in error.message
    # Alone, on the first line, the same line is refused too.
    assert _refusal(line + "\n").message.startswith("requirements line 1: ")


@pytest.mark.parametrize("line", ACCEPTED)
def test_accepted_lines_come_back_unchanged(line: str) -> None:
    text = f"# requirements\n{line}\nflask>=3\n"
    assert validate_requirements(text) == text


def test_a_whole_accepted_file_and_an_empty_one() -> None:
    text = "\n".join(ACCEPTED) + "\n"
    assert validate_requirements(text) == text
    assert validate_requirements("") == ""
    assert validate_requirements("\ufeffflask\n") == "\ufeffflask\n"  # pip drops the byte order mark


def test_line_numbers_count_every_line_break_pip_counts() -> None:
    # pip splits with str.splitlines(): \r, \r\n, form feeds and unicode separators all end a line.
    assert _refusal("flask\r\nrequests\r-r x\n").message.startswith("requirements line 3: ")
    assert _refusal("flask\x0c-e .\n").message.startswith("requirements line 2: ")
    assert _refusal("flask\u2028--index-url https://x.example.com\n").message.startswith(
        "requirements line 2: "
    )


def test_only_whitespace_before_a_hash_makes_a_comment() -> None:
    # For pip, '#' after whitespace starts a comment; glued to text it is part of the requirement.
    assert validate_requirements("flask #/../../srv/x.whl\n")
    assert validate_requirements("flask\u00a0#/../../srv/x.whl\n")  # any whitespace, as pip's \s
    assert "line 1" in _refusal("flask#/../../srv/x.whl\n").message


@pytest.mark.parametrize("declaration", ["# -*- coding: utf-7 -*-", "# vim: set fileencoding=latin-1 :"])
def test_an_encoding_declaration_other_than_utf8_is_refused(declaration: str) -> None:
    # pip decodes the whole file with the encoding a comment on line 1 or 2 declares.
    for text in (f"{declaration}\nflask\n", f"flask\n{declaration}\n"):
        error = _refusal(text)
        assert "encoding declarations" in error.message
    assert validate_requirements("# -*- coding: utf-8 -*-\nflask\n")
    assert validate_requirements(f"flask\nrequests\n{declaration}\n")  # pip looks at two lines only


# -- pyproject.toml ---------------------------------------------------------------------------------------
def _pyproject(*deps: str) -> str:
    escaped = (d.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for d in deps)
    items = ", ".join(f'"{d}"' for d in escaped)
    return f'[project]\nname = "app"\nversion = "1"\ndependencies = [{items}]\n'


def test_pyproject_dependencies_become_requirements() -> None:
    deps = ("flask>=3", 'uvicorn ; python_version >= "3.8"', "pkg @ https://files.example.com/p.whl")
    assert requirements_from_pyproject(_pyproject(*deps)) == "\n".join(deps) + "\n"
    assert requirements_from_pyproject('[project]\nname = "app"\n') == ""


@pytest.mark.parametrize(
    ("dep", "reason"),
    [
        ("-r /etc/passwd", "pip options"),
        ("pkg @ file:///srv/x.whl", "https URL"),
        ("x#/../../x.whl", "not a valid requirement"),
        ("flask\n-r /etc/passwd", "not a valid requirement"),
        ("# only a comment", "not a valid requirement"),
        ("", "not a valid requirement"),
        ("pkg===/../../srv/x.whl", "local paths"),
    ],
)
def test_pyproject_dependencies_are_checked_like_lines(dep: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        requirements_from_pyproject(_pyproject("flask", dep))
    assert caught.value.message.startswith("pyproject.toml dependency 2: "), caught.value.message
    assert reason in caught.value.message and "/" not in caught.value.message


def test_pip_itself_would_read_the_refused_paths_from_disk(tmp_path: Path) -> None:
    """Why the checks beyond the parser exist: pip's own requirement parser turns these lines, which the
    reference parser accepts, into file:// links to a wheel on the server's disk. No accepted line does."""
    constructors = pytest.importorskip("pip._internal.req.constructors")
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    target = "/.." * 40 + str(wheel)
    for line in (
        f"pkg==={target}",
        f"pkg @ https://files.example.com{target}",
        f"pkg @ https://files.example.com/x?a={target}",
    ):
        link = constructors.parse_req_from_line(line, None).link
        assert link is not None and link.url.startswith("file:"), (line, link)
        assert "line 1" in _refusal(line).message
    for line in ACCEPTED:
        stripped = re.sub(r"(^|\s+)#.*$", "", line).strip().split(" --hash")[0]
        if stripped:
            link = constructors.parse_req_from_line(stripped, None).link
            assert link is None or link.url.startswith("https://"), (line, link)


# -- AppBuilds: the check guards pip, not the environments earlier builds made ---------------------------
class _Envs:
    """An EnvironmentBuilder that records what it was asked to install and has every environment."""

    def __init__(self) -> None:
        self.installed: list[bytes] = []
        self.located: list[bytes] = []

    def ensure(self, requirements: bytes, python: str | None, limits: object, log: object) -> str:
        self.installed.append(requirements)
        return "/envs/x"

    def locate(self, requirements: bytes, python: str | None) -> str:
        self.located.append(requirements)
        return "/envs/x"

    def collect(self, keep: set[str]) -> int:
        return 0


class _Runtime:
    def __init__(self) -> None:
        self.started: list[str] = []

    def ensure(self, spec: WorkerSpec, timeout: float) -> None:
        self.started.append(spec.deployment_id)


def _app_deployment(app: App, requirements: bytes, status: DeploymentStatus) -> tuple[AppBuilds, _Envs, str]:
    project = app.project()
    files = {"app.py": b"app = None", "requirements.txt": requirements}
    manifest = [{"path": p, "sha256": app.upload(b), "size": len(b)} for p, b in files.items()]
    deployment = app.deployments.create(project, {"files": manifest, "target": "preview"}, ADMIN)
    assert deployment.app is not None
    app.store.set_status(deployment.id, DeploymentStatus.BUILDING)
    if status == DeploymentStatus.READY:
        app.store.set_status(deployment.id, DeploymentStatus.READY)
    envs = _Envs()
    builds = AppBuilds(
        app.store,
        app.blobs,
        app.files,
        envs,  # type: ignore[arg-type]
        _Runtime(),  # type: ignore[arg-type]
        app.services.env,  # the box the deployment's environment was sealed with
        BuildSettings(),
    )
    return builds, envs, deployment.id


def test_a_build_with_a_refused_line_never_reaches_pip(app: App) -> None:
    builds, envs, deployment_id = _app_deployment(
        app, b"flask\nx#/../../srv/x.whl\n", DeploymentStatus.BUILDING
    )
    deployment = app.store.deployment(deployment_id)
    assert deployment is not None
    logged: list[str] = []
    with pytest.raises(InvalidInput) as caught:
        builds.build(deployment, logged.append)
    assert caught.value.message.startswith("requirements line 2: ")
    assert envs.installed == []


def test_an_app_built_before_a_stricter_check_still_finds_its_environment(app: App) -> None:
    """An environment made by an earlier build is found (the worker can start, garbage collection keeps
    it), even if today's check refuses the line; only a new build is refused."""
    requirements = b"flask\npkg @ http://files.example.com/pkg-1.0-py3-none-any.whl\n"
    builds, envs, deployment_id = _app_deployment(app, requirements, DeploymentStatus.READY)
    spec = builds.spec(deployment_id)
    assert spec is not None and spec.environment == "/envs/x"
    assert builds.requirements_of(deployment_id) == (requirements, None)
    assert envs.located == [requirements] and envs.installed == []
    with pytest.raises(InvalidInput):
        builds.requirements(deployment_id)
