"""`git push` straight to the platform: each project is a git remote over smart HTTP (/git/PROJECT.git,
a token as the Basic password) served by git's own http-backend, with real git on both sides.

The transport: pushes (new branches, force pushes, deletions) land in the project's bare repository, a
clone reads them back, the post-receive hook talks to the API with the pusher's token (its words come back
as `remote:` lines), a wrong or missing token is refused (git asks for credentials: 401 with a Basic
challenge), a project token cannot push to or read another project (404, as for a missing one), and a body
over ANCHOR_GIT_PUSH_MAX_BYTES is refused with nothing pushed. The deploys: a push of main goes to
production and a push of feature/x gets its branch URL, each build's log streamed back in git's output.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.harness import LOOPBACK, AnchorProcess, ensure_project
from tests.git_worktree import WorkTree

SITE, OTHER, WEB = "site", "other", "web"
PAGE = b"<h1>pushed with git</h1>\n"


def remote(anchor: AnchorProcess, project: str, token: str | None) -> str:
    credentials = f"x:{token}@" if token is not None else ""
    return f"http://{credentials}{LOOPBACK}:{anchor.api_port}/git/{project}.git"


def bare_ref(anchor: AnchorProcess, project_id: str, ref: str) -> str | None:
    """The sha the project's repository on the platform has for ``ref`` (None: no such ref or repository)."""
    repository = anchor.data_dir / "git" / f"{project_id}.git"
    if not repository.is_dir():
        return None
    done = subprocess.run(
        ["git", "--git-dir", str(repository), "rev-parse", "--verify", "--quiet", ref],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def repositories(anchor: AnchorProcess) -> list[str]:
    root = anchor.data_dir / "git"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def remote_lines(stderr: str) -> list[str]:
    return [
        line.removeprefix("remote: ").rstrip() for line in stderr.splitlines() if line.startswith("remote: ")
    ]


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnchorProcess]:
    platform = AnchorProcess(tmp_path_factory.mktemp("git-remote") / "data").start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def projects(anchor: AnchorProcess) -> dict[str, str]:
    """The two projects, by name: their ids."""
    with anchor.api() as api:
        return {name: ensure_project(api, name)["id"] for name in (SITE, OTHER)}


@pytest.fixture
def work(tmp_path: Path) -> WorkTree:
    return WorkTree(tmp_path / "work", tmp_path)


def project_token(anchor: AnchorProcess, project: str) -> str:
    with anchor.api() as api:
        made = api.post("/v1/tokens", json={"name": f"{project}-pusher", "project": project})
        assert made.status_code == 201, made.text
        return str(made.json()["token"])


# -- the transport ---------------------------------------------------------------------------------


def test_pushes_land_in_the_projects_repository_and_the_hook_reports(
    anchor: AnchorProcess, projects: dict[str, str], work: WorkTree, tmp_path: Path
) -> None:
    first = work.commit({"index.html": PAGE}, "first page")
    pushed = work.git("push", remote(anchor, SITE, anchor.token), "main")
    assert bare_ref(anchor, projects[SITE], "refs/heads/main") == first
    # The hook ran with the pusher's token and its words came back through git.
    assert any(line.startswith("anchor: ") for line in remote_lines(pushed.stderr)), pushed.stderr

    work.git("checkout", "-q", "-b", "feature/x")
    feature = work.commit({"about.html": b"<p>about</p>"}, "about page")
    work.git("push", remote(anchor, SITE, anchor.token), "feature/x")
    assert bare_ref(anchor, projects[SITE], "refs/heads/feature/x") == feature

    # A force push replaces the branch; a deletion removes it.
    work.git("commit", "-q", "--amend", "-m", "about page, reworded")
    rewritten = work.head()
    work.git("push", "--force", remote(anchor, SITE, anchor.token), "feature/x")
    assert bare_ref(anchor, projects[SITE], "refs/heads/feature/x") == rewritten != feature
    work.git("push", remote(anchor, SITE, anchor.token), ":feature/x")
    assert bare_ref(anchor, projects[SITE], "refs/heads/feature/x") is None

    # A clone with a valid token, from a credential helper, reads back what was pushed.
    store = tmp_path / "credentials"
    store.write_text(f"http://x:{anchor.token}@{LOOPBACK}:{anchor.api_port}\n")
    clone = tmp_path / "clone"
    helper = f"credential.helper=store --file={store}"
    work.git("-c", helper, "clone", "-q", remote(anchor, SITE, None), str(clone))
    assert (clone / "index.html").read_bytes() == PAGE
    assert work.git("-C", str(clone), "rev-parse", "HEAD").stdout.strip() == first


def test_a_wrong_or_missing_token_is_refused_and_nothing_is_pushed(
    anchor: AnchorProcess, projects: dict[str, str], work: WorkTree
) -> None:
    before = bare_ref(anchor, projects[SITE], "refs/heads/refused")
    work.commit({"index.html": b"<h1>not allowed</h1>"})
    for token in ("anc_wrong", None):
        refused = work.git("push", remote(anchor, SITE, token), "main:refused", check=False)
        assert refused.returncode != 0
        assert "Authentication failed" in refused.stderr or "could not read Username" in refused.stderr
        assert bare_ref(anchor, projects[SITE], "refs/heads/refused") == before is None
    # git asks for credentials because the answer is a Basic challenge; the body is the API's error.
    answer = httpx.get(f"{anchor.api_url}/git/{SITE}.git/info/refs?service=git-receive-pack", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="anchor-deploy"'
    assert answer.json()["error"]["code"] == "unauthorized"


def test_a_project_token_cannot_reach_another_project(
    anchor: AnchorProcess, projects: dict[str, str], work: WorkTree, tmp_path: Path
) -> None:
    token = project_token(anchor, OTHER)
    mine = work.commit({"index.html": b"<h1>other</h1>"})
    refused = work.git("push", remote(anchor, SITE, token), "main:from-other", check=False)
    assert refused.returncode != 0 and "not found" in refused.stderr.lower()
    assert bare_ref(anchor, projects[SITE], "refs/heads/from-other") is None
    stolen = work.git("clone", "-q", remote(anchor, SITE, token), str(tmp_path / "stolen"), check=False)
    assert stolen.returncode != 0 and not (tmp_path / "stolen" / "index.html").exists()
    # Its own project takes the push.
    work.git("push", remote(anchor, OTHER, token), "main")
    assert bare_ref(anchor, projects[OTHER], "refs/heads/main") == mine
    # Another project's repository answers exactly as a missing project's.
    answers = []
    for project in (SITE, "missing-project"):
        url = f"{anchor.api_url}/git/{project}.git/info/refs?service=git-upload-pack"
        answer = httpx.get(url, auth=("x", token), timeout=10)
        error = answer.json()["error"]
        answers.append((answer.status_code, error["code"], error["message"].replace(project, "P")))
    assert answers[0] == answers[1] == (404, "project_not_found", "project 'P' not found")


def test_unknown_projects_and_paths_make_nothing(anchor: AnchorProcess, projects: dict[str, str]) -> None:
    before = repositories(anchor)
    auth = ("x", anchor.token)
    for path in (
        "/git/no-such-project.git/info/refs?service=git-upload-pack",
        "/git/..%2F..%2Fetc.git/info/refs",
        "/git/Site.git/info/refs",
        f"/git/{SITE}.git/config",  # a file of the repository that git http-backend does not serve
        f"/git/{SITE}.git/hooks/post-receive",
        f"/git/{SITE}.git/objects/../config",
    ):
        answer = httpx.get(anchor.api_url + path, auth=auth, timeout=10)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["code"] in ("project_not_found", "not_found")
    posted = httpx.post(f"{anchor.api_url}/git/{SITE}.git/info/refs", auth=auth, content=b"x", timeout=10)
    assert posted.status_code == 404
    assert repositories(anchor) == before


def test_deleting_a_project_removes_its_repository(anchor: AnchorProcess, work: WorkTree) -> None:
    with anchor.api() as api:
        project_id = ensure_project(api, "doomed")["id"]
        pushed = work.commit({"index.html": b"<h1>soon gone</h1>"})
        work.git("push", remote(anchor, "doomed", anchor.token), "main")
        assert bare_ref(anchor, project_id, "refs/heads/main") == pushed
        assert api.delete("/v1/projects/doomed").status_code == 200
    assert f"{project_id}.git" not in repositories(anchor)
    assert not any(name.startswith(".") for name in repositories(anchor))  # nothing half-removed left


# -- the size limit ------------------------------------------------------------------------------------


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[AnchorProcess]:
    platform = AnchorProcess(tmp_path / "data", extra_env={"ANCHOR_GIT_PUSH_MAX_BYTES": "65536"}).start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_push_over_the_size_limit_is_refused(
    small_limit: AnchorProcess, tmp_path: Path, chunked: bool
) -> None:
    with small_limit.api() as api:
        project_id = ensure_project(api, SITE)["id"]
    work = WorkTree(tmp_path / "big", tmp_path)
    work.commit({"small.txt": b"small\n"})
    work.git("push", remote(small_limit, SITE, small_limit.token), "main")
    kept = bare_ref(small_limit, project_id, "refs/heads/main")
    work.commit({"noise.bin": os.urandom(300_000)})  # random: the pack cannot be smaller than this
    # git sends a pack larger than http.postBuffer in chunks, without a Content-Length
    buffer = "65520" if chunked else str(4 * 1024 * 1024)
    refused = work.git(
        "-c",
        f"http.postBuffer={buffer}",
        "push",
        remote(small_limit, SITE, small_limit.token),
        "main",
        check=False,
    )
    assert refused.returncode != 0
    if not chunked:
        assert "413" in refused.stderr, refused.stderr
    assert bare_ref(small_limit, project_id, "refs/heads/main") == kept
    # The platform is still there for a push within the limit.
    work.git("reset", "-q", "--hard", "HEAD~1")
    small = work.commit({"small.txt": b"still small\n"})
    work.git("push", remote(small_limit, SITE, small_limit.token), "main")
    assert bare_ref(small_limit, project_id, "refs/heads/main") == small


# -- the deploys -------------------------------------------------------------------------------------


def first_index(lines: list[str], prefix: str) -> int:
    found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert found, f"no line starts with {prefix!r}:\n" + "\n".join(lines)
    return found[0]


def served(anchor: AnchorProcess, url: str, path: str = "/") -> httpx.Response:
    return anchor.edge(urlsplit(url).hostname or "", path)


def test_push_main_goes_to_production_and_feature_x_gets_its_branch_url(
    anchor: AnchorProcess, work: WorkTree
) -> None:
    with anchor.api() as api:
        ensure_project(api, WEB)
    work.commit({"index.html": PAGE}, "production page")
    pushed = work.git("push", remote(anchor, WEB, anchor.token), "main")
    lines = remote_lines(pushed.stderr)
    assert str(anchor.data_dir) not in pushed.stderr  # the remote is named by its URL, not its path
    assert any(f"/git/{WEB}.git" in line for line in lines), lines
    building = first_index(lines, "anchor: main: building ")
    ready = first_index(lines, "anchor: main: ready at ")
    assert ready > building + 1, lines  # the build's own log lines came in between
    assert all(line.startswith("  ") for line in lines[building + 1 : ready]), lines
    production = next(line for line in lines if line.startswith("anchor: main: production "))
    production_url = production.rsplit(" ", 1)[1]
    with anchor.api() as api:
        assert api.get(f"/v1/projects/{WEB}").json()["productionUrl"] == production_url
    assert served(anchor, production_url).content == PAGE

    work.git("checkout", "-q", "-b", "feature/x")
    work.commit({"index.html": b"<h1>feature x</h1>"}, "feature page")
    pushed = work.git("push", remote(anchor, WEB, anchor.token), "feature/x")
    lines = remote_lines(pushed.stderr)
    branch = next(line for line in lines if line.startswith("anchor: feature/x: branch "))
    branch_url = branch.rsplit(" ", 1)[1]
    assert urlsplit(branch_url).hostname.startswith(f"{WEB}-git-feature-x.")  # type: ignore[union-attr]
    assert served(anchor, branch_url).content == b"<h1>feature x</h1>"
    assert served(anchor, production_url).content == PAGE  # a preview leaves production alone


def test_a_failed_build_is_told_and_the_push_stands(
    anchor: AnchorProcess, projects: dict[str, str], work: WorkTree
) -> None:
    sha = work.commit({"index.html": PAGE, "anchor.toml": b"\xff\xfe not text"}, "a broken anchor.toml")
    pushed = work.git("push", remote(anchor, SITE, anchor.token), "main:broken")
    lines = remote_lines(pushed.stderr)
    failed = lines[first_index(lines, "anchor: broken: ERROR: ")]
    assert "anchor.toml" in failed, lines
    assert not any(line.startswith("anchor: broken: ready at ") for line in lines)
    assert bare_ref(anchor, projects[SITE], "refs/heads/broken") == sha  # git took the push all the same
