"""The SourceFetcher port on the local provider: SandboxGitFetcher runs real git in the real bubblewrap build
sandbox (as the project's uid when the tests run as root) against bare repositories made on disk with real
commits, and puts the checkout's files into a real FsBlobStore."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.fs_blobs import FsBlobStore
from anchor_deploy.adapters.local.git_fetch import SandboxGitFetcher
from anchor_deploy.adapters.local.process_run import BuildSandbox
from anchor_deploy.adapters.local.sandbox import Sandbox, SandboxMode
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.ports.git import FetchRequest, SourceFetcher, SourceTree
from tests.git_fetch_support import GitHttpServer, Repos

TENANT = 23
MAX_FILE = 64 * 1024


@pytest.fixture
def box() -> BuildSandbox:
    sandbox = Sandbox(SandboxMode.BWRAP)
    assert sandbox.probe() is None, sandbox.problem
    return BuildSandbox(sandbox)


@pytest.fixture
def blobs(tmp_path: Path) -> FsBlobStore:
    return FsBlobStore(tmp_path / "data" / "blobs")


@pytest.fixture
def fetcher(box: BuildSandbox, blobs: FsBlobStore, tmp_path: Path) -> SandboxGitFetcher:
    return SandboxGitFetcher(
        box,
        blobs,
        tmp_path / "data" / "git-work",
        max_file_size=MAX_FILE,
        timeout=60,
        private_roots=(tmp_path / "data",),
    )


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    return Repos(tmp_path / "repos")


LOG: list[str] = []  # the last fetch's log lines


def fetch(
    fetcher: SourceFetcher,
    url: str,
    sha: str,
    branch: str = "main",
    credentials: str | None = None,
    deadline: float = 0.0,
) -> SourceTree:
    LOG.clear()
    request = FetchRequest(url, sha, branch, credentials, tenant=TENANT, deadline=deadline)
    return fetcher.fetch(request, LOG.append)


def stored(blobs: FsBlobStore, tree: SourceTree) -> dict[str, bytes]:
    return {f.path: blobs.read(f.sha256) for f in tree.files}


def work_left(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "data" / "git-work").iterdir())


@pytest.mark.timeout(120)
def test_fetches_an_older_commit_by_sha_with_its_app_ignore_rules_and_modes(
    fetcher: SandboxGitFetcher, blobs: FsBlobStore, repos: Repos, tmp_path: Path
) -> None:
    origin = repos.bare("site")
    work = repos.clone(origin)
    toml = '[app]\nentry = "main:app"\nhealth_path = "/up"\n\n[build]\nignore = ["notes/"]\n'
    repos.commit(
        work,
        {
            "main.py": "app = 1\n",
            "requirements.txt": "fastapi\n",
            "anchor.toml": toml,
            "run.sh": "#!/bin/sh\necho hi\n",
            "notes/todo.md": "private\n",
            ".env": "SECRET=1\n",
            "public/index.html": "<h1>v1</h1>\n",
        },
        "First version\n\nwith a body",
        executable=frozenset({"run.sh"}),
    )
    first = repos.head(work)
    repos.commit(work, {"public/index.html": "<h1>v2</h1>\n"}, "Second version")
    repos.push(work, "main")

    tree = fetch(fetcher, str(origin), first)

    assert stored(blobs, tree) == {
        "main.py": b"app = 1\n",
        "requirements.txt": b"fastapi\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
        "public/index.html": b"<h1>v1</h1>\n",  # the older commit's, not the tip's
    }
    assert {f.path: f.mode for f in tree.files} == {
        "main.py": 0o644,
        "requirements.txt": 0o644,
        "run.sh": 0o755,
        "public/index.html": 0o644,
    }
    assert all(f.sha256 == hashlib.sha256(blobs.read(f.sha256)).hexdigest() for f in tree.files)
    assert tree.app == {"entry": "main:app", "healthPath": "/up", "static": "public"}
    assert (tree.message, tree.author) == ("First version", "Ada Lovelace <ada@example.com>")
    assert {".env", "notes/", "anchor.toml", ".git/"} <= set(tree.skipped)
    assert work_left(tmp_path) == []  # the scratch folder is gone


@pytest.mark.timeout(120)
def test_a_local_submodule_beside_the_repository_is_fetched(
    fetcher: SandboxGitFetcher, blobs: FsBlobStore, repos: Repos
) -> None:
    lib_origin = repos.bare("lib")
    lib = repos.clone(lib_origin)
    repos.commit(lib, {"lib.txt": "library v1\n"}, "lib v1")
    repos.push(lib, "main")
    repos.commit(lib, {"lib.txt": "library v2\n"}, "lib v2")
    repos.push(lib, "main")  # the superproject pins v1: fetched by sha, not the branch tip
    origin = repos.bare("app")
    work = repos.clone(origin)
    repos.commit(work, {"index.html": "app\n"}, "app")
    repos.git(work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../lib.git", "vendor/lib")
    repos.git(work / "vendor" / "lib", "checkout", "-q", "HEAD~1")
    repos.git(work, "add", "vendor/lib")
    repos.git(work, "commit", "-qm", "add lib")
    repos.push(work, "main")

    tree = fetch(fetcher, f"file://{origin}", repos.head(work))

    files = stored(blobs, tree)
    assert files == {
        "index.html": b"app\n",
        ".gitmodules": files[".gitmodules"],
        "vendor/lib/lib.txt": b"library v1\n",
    }
    assert "vendor/lib/.git" in tree.skipped


@pytest.mark.timeout(120)
def test_nothing_of_the_data_dir_is_reachable_through_a_submodule_or_a_link(
    fetcher: SandboxGitFetcher, blobs: FsBlobStore, repos: Repos, tmp_path: Path
) -> None:
    # The platform's own repositories (the smart-HTTP remotes) live in its data dir and are fetched from
    # there; a submodule beside one of them would be another project's repository: refused.
    platform = Repos(tmp_path / "data" / "git")
    theirs = platform.bare("other-project")
    theirs_work = platform.clone(theirs)
    platform.commit(theirs_work, {"secret.txt": "another project's code\n"}, "theirs")
    platform.push(theirs_work, "main")
    ours = platform.bare("project")
    ours_work = platform.clone(ours)
    platform.commit(ours_work, {"index.html": "ours\n"}, "ours")
    platform.push(ours_work, "main")
    assert stored(blobs, fetch(fetcher, str(ours), platform.head(ours_work))) == {"index.html": b"ours\n"}
    sha = platform.add_submodule_entry(
        ours_work, "stolen", "../other-project.git", platform.head(theirs_work)
    )
    platform.push(ours_work, "main")
    with pytest.raises(BuildFailed, match=r"^submodule 'stolen' points at .*other-project\.git: inside the "):
        fetch(fetcher, str(ours), sha)

    # Elsewhere on the machine, away from the repository: refused too.
    origin = repos.bare("app")
    work = repos.clone(origin)
    repos.commit(work, {"index.html": "app\n"}, "app")
    sha = repos.add_submodule_entry(work, "etc", "/etc", platform.head(theirs_work))
    repos.push(work, "main")
    with pytest.raises(
        BuildFailed, match=r"^submodule 'etc' points at /etc: a submodule on this machine must sit"
    ):
        fetch(fetcher, str(origin), sha)

    # A link in the commit to a platform file: a linked anchor.toml is refused, any other link is skipped.
    secret = tmp_path / "data" / "admin-token"
    secret.write_text("[app]\nentry = 'the admin token'\n")
    repos.git(work, "rm", "-q", "--cached", "etc")
    (work / ".gitmodules").unlink()
    (work / "leak.txt").symlink_to(secret)
    sha = repos.commit(work, {}, "a link")
    repos.push(work, "main")
    tree = fetch(fetcher, str(origin), sha)
    assert stored(blobs, tree) == {"index.html": b"app\n"} and "leak.txt" in tree.skipped
    (work / "anchor.toml").symlink_to(secret)
    sha = repos.commit(work, {}, "a linked anchor.toml")
    repos.push(work, "main")
    with pytest.raises(BuildFailed, match=r"^anchor\.toml in this commit is not a regular file"):
        fetch(fetcher, str(origin), sha)
    assert work_left(tmp_path) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [SandboxMode.BWRAP, SandboxMode.OFF])
def test_git_in_the_sandbox_cannot_read_the_data_dir(
    mode: SandboxMode, blobs: FsBlobStore, repos: Repos, tmp_path: Path
) -> None:
    """A repository borrowing objects from a repository in the data dir (objects/info/alternates): git
    outside a sandbox reads them (the control), git in the sandbox cannot see that folder at all."""
    platform = Repos(tmp_path / "data" / "git")
    theirs = platform.bare("other-project")
    theirs_work = platform.clone(theirs)
    secret = platform.commit(theirs_work, {"secret.txt": "another project's code\n"}, "theirs")
    platform.push(theirs_work, "main")
    origin = repos.bare("borrower")
    (origin / "objects" / "info" / "alternates").write_text(f"{theirs / 'objects'}\n")
    repos.git(origin, "update-ref", "refs/heads/main", secret)
    sandbox = Sandbox(mode)
    assert sandbox.probe() is None, sandbox.problem
    fetcher = SandboxGitFetcher(
        BuildSandbox(sandbox), blobs, tmp_path / "data" / "git-work", max_file_size=MAX_FILE, timeout=60
    )
    if mode is SandboxMode.OFF:
        assert stored(blobs, fetch(fetcher, str(origin), secret)) == {
            "secret.txt": b"another project's code\n"
        }
        return
    with pytest.raises(BuildFailed, match=f"^fetching {origin} failed: .*not our ref {secret}$"):
        fetch(fetcher, str(origin), secret)
    assert any(line.startswith("error: unable to normalize alternate object path") for line in LOG)
    assert blobs.missing([hashlib.sha256(b"another project's code\n").hexdigest()])


@pytest.mark.timeout(120)
def test_git_lfs_is_refused_with_one_clear_line(fetcher: SandboxGitFetcher, repos: Repos) -> None:
    origin = repos.bare("lfs")
    work = repos.clone(origin)
    repos.commit(
        work, {".gitattributes": "*.psd filter=lfs diff=lfs merge=lfs -text\n", "a.psd": "x\n"}, "lfs"
    )
    with_attributes = repos.head(work)
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 12345\n"
    repos.git(work, "rm", "-q", ".gitattributes")
    repos.commit(work, {"big.bin": pointer}, "a pointer without attributes")
    repos.push(work, "main")
    for sha, named in ((with_attributes, ".gitattributes"), (repos.head(work), "big.bin")):
        with pytest.raises(BuildFailed) as caught:
            fetch(fetcher, str(origin), sha)
        assert caught.value.message.startswith(
            "this commit uses Git LFS, which anchor-deploy does not fetch: "
        )
        assert named in caught.value.message and "\n" not in caught.value.message


@pytest.mark.timeout(120)
def test_an_unknown_or_force_pushed_away_commit_fails_clearly(
    fetcher: SandboxGitFetcher, repos: Repos, tmp_path: Path
) -> None:
    origin = repos.bare("gone")
    work = repos.clone(origin)
    repos.commit(work, {"a.txt": "1\n"}, "one")
    repos.push(work, "main")
    repos.commit(work, {"a.txt": "2\n"}, "two, soon gone")
    repos.push(work, "main")
    gone = repos.head(work)
    repos.git(work, "reset", "-q", "--hard", "HEAD~1")
    repos.commit(work, {"a.txt": "3\n"}, "three")
    repos.push(work, "main", force=True)
    repos.git(origin, "reflog", "expire", "--expire=now", "--all")
    repos.git(origin, "gc", "-q", "--prune=now")

    for sha in (gone, "0123456789abcdef0123456789abcdef01234567"):
        with pytest.raises(BuildFailed) as caught:
            fetch(fetcher, str(origin), sha)
        assert caught.value.message == (
            f"commit {sha} is not in {origin} (not by its sha, nor among the last 50 commits of main)"
        )
    with pytest.raises(BuildFailed, match="has no branch nope"):
        fetch(fetcher, str(origin), gone, branch="nope")
    with pytest.raises(BuildFailed, match=r"^repository .*missing\.git is unreachable: no such folder"):
        fetch(fetcher, str(tmp_path / "missing.git"), gone)
    with pytest.raises(BuildFailed, match=r"^git over 'ext' is not supported"):
        fetch(fetcher, "ext::sh -c touch% /tmp/pwned", gone)
    assert work_left(tmp_path) == []


@pytest.fixture
def http_repo(repos: Repos) -> Iterator[tuple[GitHttpServer, str, str]]:
    origin = repos.bare("private")
    work = repos.clone(origin)
    repos.commit(work, {"index.html": "private site\n"}, "private")
    first = repos.head(work)
    repos.commit(work, {"index.html": "private site, later\n"}, "later")
    repos.push(work, "main")
    with GitHttpServer(repos.root, user="x-access-token", password="tok-S3cr3t-abcdef123456") as server:
        yield server, f"{server.url}/private.git", first


@pytest.mark.timeout(120)
def test_a_token_authenticates_over_https_and_never_reaches_the_log(
    fetcher: SandboxGitFetcher, blobs: FsBlobStore, http_repo: tuple[GitHttpServer, str, str]
) -> None:
    server, url, first = http_repo
    token = "tok-S3cr3t-abcdef123456"
    # The server speaks protocol v0 without allowing unadvertised objects: the fetch by sha is refused and
    # the branch is fetched instead.
    tree = fetch(fetcher, url, first, credentials=token)
    assert stored(blobs, tree) == {"index.html": b"private site\n"}
    log = "\n".join(LOG)
    assert "fetching main (50 commits deep)" in log
    assert server.authorized >= 1
    with pytest.raises(BuildFailed) as caught:
        fetch(fetcher, url, first, credentials="wrong-token-value-0000")
    assert caught.value.message.startswith(f"authentication failed for {url}")
    with pytest.raises(BuildFailed) as caught:
        fetch(fetcher, url.replace("private", "missing"), first, credentials=token)
    assert token not in caught.value.message
    for line in [*LOG, caught.value.message]:
        assert token not in line


@pytest.mark.timeout(120)
def test_a_submodule_on_the_same_host_gets_the_token(
    fetcher: SandboxGitFetcher, blobs: FsBlobStore, repos: Repos
) -> None:
    lib_origin = repos.bare("lib")
    lib = repos.clone(lib_origin)
    lib_sha = repos.commit(lib, {"lib.txt": "private library\n"}, "lib")
    repos.push(lib, "main")
    origin = repos.bare("app")
    work = repos.clone(origin)
    repos.commit(work, {"index.html": "app\n"}, "app")
    sha = repos.add_submodule_entry(work, "vendor/lib", "../lib.git", lib_sha)  # relative to the app's URL
    repos.push(work, "main")
    token = "tok-S3cr3t-abcdef123456"
    with GitHttpServer(repos.root, user="x-access-token", password=token) as server:
        tree = fetch(fetcher, f"{server.url}/app.git", sha, credentials=token)
    assert stored(blobs, tree) == {
        "index.html": b"app\n",
        ".gitmodules": b'[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = ../lib.git\n',
        "vendor/lib/lib.txt": b"private library\n",
    }
    assert server.refused == 0 and not any(token in line for line in LOG)


def test_processes_never_show_the_token(
    fetcher: SandboxGitFetcher, http_repo: tuple[GitHttpServer, str, str]
) -> None:
    """While git runs, no process's command line on the machine holds the token."""
    server, url, first = http_repo
    token = "tok-S3cr3t-abcdef123456"
    server.stall = 1.0  # each request waits: git is running while the command lines are read
    seen: list[str] = []
    server.on_request = lambda: seen.extend(_command_lines())
    fetch(fetcher, url, first, credentials=token)
    assert seen and not any(token in line for line in seen)


def _command_lines() -> list[str]:
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue
    return lines


def test_fetch_leaves_no_scratch_folder_after_a_timeout(
    fetcher: SandboxGitFetcher, repos: Repos, tmp_path: Path
) -> None:
    origin = repos.bare("slow")
    work = repos.clone(origin)
    repos.commit(work, {"a.txt": "1\n"}, "one")
    repos.push(work, "main")
    with pytest.raises(BuildFailed, match="timed out"):
        fetch(fetcher, str(origin), repos.head(work), deadline=time.monotonic() - 1)
    assert work_left(tmp_path) == []


@pytest.mark.timeout(60)
def test_a_deploy_key_reaches_ssh_in_the_sandbox(fetcher: SandboxGitFetcher) -> None:
    """No ssh server here: the key, known_hosts and the build uid's passwd entry are set up and ssh runs
    in the sandbox, to a closed port (were the uid unknown, ssh would stop at "No user exists")."""
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "c2VjcmV0LWtleS1tYXRlcmlhbC0wMTIzNDU2Nzg5\n"
        "-----END OPENSSH PRIVATE KEY-----"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ssh://git@127.0.0.1:{port}/site.git"
    with pytest.raises(BuildFailed) as caught:
        fetch(fetcher, url, "a" * 40, credentials=key)
    assert caught.value.message == (
        f"repository ssh://127.0.0.1:{port}/site.git is unreachable: "
        f"ssh: connect to host 127.0.0.1 port {port}: Connection refused"
    )
    assert not any("No user exists" in line or "c2VjcmV0LWtleS1" in line for line in LOG)


@pytest.mark.timeout(60)
def test_a_token_written_into_the_url_is_taken_out_of_it(
    fetcher: SandboxGitFetcher, blobs: FsBlobStore, http_repo: tuple[GitHttpServer, str, str]
) -> None:
    server, url, first = http_repo
    token = "tok-S3cr3t-abcdef123456"
    seen: list[str] = []
    server.on_request = lambda: seen.extend(_command_lines())
    with_token = url.replace("http://", f"http://x-access-token:{token}@")
    tree = fetch(fetcher, with_token, first)
    assert stored(blobs, tree) == {"index.html": b"private site\n"}
    assert LOG[0].startswith(f"fetching {url} at ")
    assert seen and not any(token in line for line in [*seen, *LOG])


@pytest.mark.timeout(60)
def test_a_file_over_the_size_limit_is_named(
    fetcher: SandboxGitFetcher, repos: Repos, tmp_path: Path
) -> None:
    origin = repos.bare("big")
    work = repos.clone(origin)
    sha = repos.commit(work, {"small.txt": "ok\n", "media/big.bin": "x" * (MAX_FILE + 1)}, "big")
    repos.push(work, "main")
    with pytest.raises(BuildFailed) as caught:
        fetch(fetcher, str(origin), sha)
    assert (
        caught.value.message
        == f"media/big.bin is {MAX_FILE + 1} bytes, over the {MAX_FILE}-byte limit on one file"
    )
    assert work_left(tmp_path) == []
