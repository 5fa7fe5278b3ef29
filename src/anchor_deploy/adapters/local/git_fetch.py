"""The SourceFetcher port with git run in the build sandbox (adapters/local/process_run.py run_step): the
project's uid, the build's deadline and memory, the machine's network, and as its disk only a scratch folder
of its own plus, read-only, the repositories on this machine it fetches from.

One fetch: ``git init`` a scratch repository, fetch exactly the commit (``--depth 1``, by its sha; a server
that refuses a fetch by sha gets a fetch of the branch, 50 commits deep, which must hold the commit), check
it out detached, read its author and message, fetch its submodules (``--depth 1``, recursively), then plan
the checkout as ``anchor deploy`` plans a folder and put its files into the blob store (git_tree.py). The
scratch folder is removed whatever happens; every failure is one BuildFailed line.

Submodules on this machine (a path or file:// URL, relative ones resolved against the repository's URL) are
mounted read-only too, but only when the repository itself is on this machine and the submodule sits in the
same folder as it (a sibling repository), and never inside ``private_roots`` (the platform's data dir):
anything else is refused before git runs. Nested submodules on this machine are not mounted (their URLs are
known only once the first level is checked out): git reports them missing.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from anchor_deploy.adapters.local.git_access import GitAccess, RepoUrl, access_for, parse_url
from anchor_deploy.adapters.local.git_tree import store_checkout
from anchor_deploy.adapters.local.process_run import BuildSandbox, run_step
from anchor_deploy.adapters.local.sandbox import Mount, SandboxMode
from anchor_deploy.model.errors import BuildFailed, InvalidInput
from anchor_deploy.model.git import MAX_AUTHOR, first_line, is_sha, validate_branch
from anchor_deploy.ports.blobs import BlobStore
from anchor_deploy.ports.git import FetchRequest, SourceTree
from anchor_deploy.ports.runtime import BuildLimits

FALLBACK_DEPTH = 50
_REFUSED_SHA = re.compile(r"not our ref|unadvertised object|couldn't find remote ref|no such remote ref")
_AUTH = re.compile(
    r"Authentication failed|could not read (Username|Password)|terminal prompts disabled|"
    r"Permission denied \(publickey|HTTP Basic: Access denied|returned error: 40[13]|Invalid username"
)
_UNREACHABLE = re.compile(
    r"Could not resolve host|Connection refused|Failed to connect|timed out|does not appear to be a git "
    r"repository|does not exist|[Rr]epository not found|not found|Could not read from remote|"
    r"No route to host|returned error: 404"
)
_NOBODY = 65534
_SAFE = ("safe", "directory")


class SandboxGitFetcher:
    """``work_root``: where scratch folders are made (one per fetch, removed after it); ``max_file_size``:
    the platform's limit on one file (a larger one fails the fetch, named); ``memory_bytes`` and ``timeout``:
    a build's (a request's own deadline wins); ``private_roots``: folders no submodule may point into (the
    data dir); ``git``: the git program, which must live in the system folders the sandbox shows (/usr)."""

    def __init__(
        self,
        box: BuildSandbox,
        blobs: BlobStore,
        work_root: Path,
        *,
        max_file_size: int,
        memory_bytes: int = 1024**3,
        timeout: float = 600.0,
        private_roots: Sequence[Path] = (),
        git: str = "git",
    ) -> None:
        self._box = box
        self._blobs = blobs
        self._work_root = work_root
        self._max_file_size = max_file_size
        self._memory = memory_bytes
        self._timeout = timeout
        self._private = tuple(p.resolve() for p in private_roots)
        self._git = git

    def fetch(self, request: FetchRequest, log: Callable[[str], None]) -> SourceTree:
        repo = _check_request(request)
        deadline = request.deadline or time.monotonic() + self._timeout
        limits = BuildLimits(deadline, self._memory, request.tenant, request.canceled)
        self._work_root.mkdir(parents=True, exist_ok=True)
        scratch = self._work_root / f"fetch-{secrets.token_hex(8)}"
        try:
            return self._fetch(repo, request, limits, scratch, log)
        except OSError as exc:
            raise BuildFailed(f"could not fetch {repo.shown}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _fetch(
        self,
        repo: RepoUrl,
        request: FetchRequest,
        limits: BuildLimits,
        scratch: Path,
        log: Callable[[str], None],
    ) -> SourceTree:
        local = self._local_repository(repo)
        session = _Session(self._box, scratch, limits, self._git, log)
        credentials = request.credentials or repo.userinfo
        session.prepare(access_for(repo, credentials, scratch, [local] if local else []))
        url = str(local) if local else repo.url
        log(f"fetching {repo.shown} at {request.sha[:12]} ({request.branch})")
        session.git(["init", "-q", str(session.tree)], what="git init", cwd=scratch)
        session.git(["remote", "add", "origin", url], what="git remote add")
        self._fetch_commit(session, repo, request)
        session.git(["checkout", "-q", "--detach", request.sha, "--"], what="git checkout")
        author, message = _commit_words(session, request.sha)
        if _is_file(session.tree / ".gitmodules"):
            self._submodules(session, repo, credentials, local)
        planned = store_checkout(session.tree, self._blobs, self._max_file_size, log)
        return SourceTree(planned.files, planned.app, message, author, planned.skipped)

    def _fetch_commit(self, session: _Session, repo: RepoUrl, request: FetchRequest) -> None:
        try:
            session.git(["fetch", "--depth", "1", "--no-tags", "origin", request.sha], what="git fetch")
            return
        except BuildFailed as exc:
            if not _REFUSED_SHA.search(session.said):
                raise _explain(exc, session, repo) from None
        session.log(f"fetching {request.branch} ({FALLBACK_DEPTH} commits deep) to find {request.sha[:12]}")
        ref = f"refs/heads/{request.branch}"
        try:
            session.git(
                ["fetch", "--depth", str(FALLBACK_DEPTH), "--no-tags", "origin", ref], what="git fetch"
            )
        except BuildFailed as exc:
            if "couldn't find remote ref" in session.said:
                raise BuildFailed(
                    f"commit {request.sha} is not in {repo.shown}, which has no branch {request.branch}"
                ) from None
            raise _explain(exc, session, repo) from None
        try:
            session.git(["cat-file", "-e", f"{request.sha}^{{commit}}"], what="finding the commit")
        except BuildFailed:
            raise BuildFailed(
                f"commit {request.sha} is not in {repo.shown} (not by its sha, nor among the last "
                f"{FALLBACK_DEPTH} commits of {request.branch})"
            ) from None

    def _submodules(
        self, session: _Session, repo: RepoUrl, credentials: str | None, local: Path | None
    ) -> None:
        session.git(["submodule", "init"], what="git submodule init")
        try:
            urls = session.git(["config", "--get-regexp", r"^submodule\..*\.url$"], what="reading submodules")
        except BuildFailed:
            if session.said.strip():
                raise
            urls = []  # git config answers 1 and nothing when no submodule is named
        mounted = [local] if local else []
        for line in urls:
            name, _, url = line.partition(" ")
            sub = parse_url(url.strip())
            if sub.local is not None:
                mounted.append(self._local_submodule(name.removeprefix("submodule.")[:-4], sub.local, local))
        if len(mounted) > (1 if local else 0):
            session.configure(access_for(repo, credentials, session.scratch, mounted))
        session.log("fetching submodules")
        try:
            session.git(
                ["submodule", "update", "--init", "--recursive", "--depth", "1"], what="git submodule update"
            )
        except BuildFailed as exc:
            raise _explain(exc, session, repo, "a submodule") from None

    def _local_repository(self, repo: RepoUrl) -> Path | None:
        if repo.local is None:
            return None
        path = repo.local.resolve()
        if not path.is_dir():
            raise BuildFailed(f"repository {repo.shown} is unreachable: no such folder on this machine")
        return path

    def _local_submodule(self, name: str, path: Path, parent: Path | None) -> Path:
        real = path.resolve()
        where = f"submodule {name!r} points at {path}"
        if parent is None:
            raise BuildFailed(f"{where}, a path on this machine: only a repository on this machine may")
        if any(real.is_relative_to(p) for p in self._private):
            raise BuildFailed(f"{where}: inside the platform's own data, which no repository may reach")
        if not real.is_relative_to(parent.parent):
            raise BuildFailed(f"{where}: a submodule on this machine must sit beside its repository")
        if not real.is_dir():
            raise BuildFailed(f"{where}, which does not exist")
        return real


class _Session:
    """One fetch's scratch folder and the git commands run in the sandbox against it."""

    def __init__(
        self, box: BuildSandbox, scratch: Path, limits: BuildLimits, git: str, log: Callable[[str], None]
    ) -> None:
        self.box = box
        self.scratch = scratch
        self.tree = scratch / "tree"
        self.limits = limits
        self.git_exe = git
        self.access = GitAccess(home=scratch)
        self.mounts: tuple[Mount, ...] = ()
        self.said = ""  # the last command's output (scrubbed), for explaining a failure
        self._log = log
        # The uid the sandbox runs git as when it switches uids (as root): the project's, or nobody's.
        tenant = limits.tenant
        uid = _NOBODY if tenant is None else box.uid_base + tenant
        self.uid: int | None = uid if _switches_uid(box) else None

    def log(self, line: str) -> None:
        self._log(self.access.scrub(line))

    def prepare(self, access: GitAccess) -> None:
        """Make the scratch folder (owned by the sandbox's uid) with the key and passwd the fetch needs."""
        sandbox = self.box.sandbox
        sandbox.prepare_owned(self.scratch, self.uid)
        sandbox.prepare_owned(self.scratch / ".ssh", self.uid)
        if access.key is not None:
            self._write(access.key_file, access.key, 0o600)
        if self.uid is not None:  # ssh refuses to run as a uid without a passwd entry
            self._write(self.scratch / "passwd", _passwd(self.uid, self.scratch), 0o644, owned=False)
        self.configure(access)

    def configure(self, access: GitAccess) -> None:
        """Write the sandbox's git configuration; mount the scratch folder and the repositories it names.
        The files are opened without following links: git in the sandbox owns the folder they are in."""
        self.access = access
        self._write(self.scratch / ".gitconfig", access.config_text(), 0o600)
        mounts = [Mount(self.scratch, writable=True)]
        mounts += [Mount(Path(path)) for section, key, path in access.config if (section, key) == _SAFE]
        if self.uid is not None:
            mounts.append(Mount(self.scratch / "passwd", Path("/etc/passwd")))
        self.mounts = tuple(mounts)

    def _write(self, path: Path, text: str, mode: int, owned: bool = True) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), mode)
            if owned and self.uid is not None:
                os.fchown(out.fileno(), self.uid, self.uid)
            out.write(text)

    def git(self, args: list[str], *, what: str, cwd: Path | None = None) -> list[str]:
        """Run ``git args`` in the sandbox; its output lines (scrubbed). Lines are logged unless captured:
        the commands that only read (config, log, cat-file) are not logged."""
        output: list[str] = []
        quiet = args[0] in ("config", "log", "cat-file")

        def take(line: str) -> None:
            clean = self.access.scrub(line)
            output.append(clean)
            del output[:-200]
            if not quiet:
                self._log(clean)

        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp", **self.access.env}
        argv = [self.git_exe, *(["-C", str(self.tree)] if cwd is None else []), *args]
        step = functools.partial(run_step, box=self.box, limits=self.limits, log=take, mounts=self.mounts)
        try:
            step(argv, cwd=cwd or self.scratch, env=env, what=what)
        except BuildFailed as exc:
            self.said = "\n".join(output)
            raise BuildFailed(self.access.scrub(exc.message)) from None
        self.said = ""
        return output


def _check_request(request: FetchRequest) -> RepoUrl:
    if not is_sha(request.sha):
        raise BuildFailed(f"not a commit sha: {request.sha[:80]!r}")
    try:
        validate_branch(request.branch)
    except InvalidInput as exc:
        raise BuildFailed(exc.message) from None
    return parse_url(request.url)


def _commit_words(session: _Session, sha: str) -> tuple[str, str]:
    """The commit's author ("Name <email>") and the first line of its message."""
    lines = session.git(["log", "-1", "--no-show-signature", "--format=%an%n%ae%n%B", sha], what="git log")
    name, email = [*lines, "", ""][:2]
    author = f"{name} <{email}>" if email else name
    return author[:MAX_AUTHOR], first_line("\n".join(lines[2:]))


def _explain(exc: BuildFailed, session: _Session, repo: RepoUrl, what: str = "") -> BuildFailed:
    """One line for a failed fetch: authentication, an unreachable repository, or git's own words."""
    lines = [line.strip() for line in session.said.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("fatal:", "error:", "ssh:"))]
    said = [line for line in said if "Could not read from remote repository" not in line] or said
    cause = said[-1] if said else lines[-1] if lines else exc.message
    target = f"{what} of {repo.shown}" if what else repo.shown
    if "build timed out" in exc.message:
        return BuildFailed(f"fetching {target} took too long; stopped")
    if _AUTH.search(session.said):
        return BuildFailed(f"authentication failed for {target}: check the connection's credentials")
    if _UNREACHABLE.search(session.said):
        return BuildFailed(f"repository {target} is unreachable: {cause}")
    return BuildFailed(f"fetching {target} failed: {cause}")


def _switches_uid(box: BuildSandbox) -> bool:
    return box.sandbox.mode is SandboxMode.BWRAP and box.sandbox.as_root


def _passwd(uid: int, home: Path) -> str:
    """The machine's passwd with an entry for the build's uid (ssh looks its user up)."""
    try:
        base = Path("/etc/passwd").read_text()
    except OSError:
        base = ""
    try:
        pwd.getpwuid(uid)
        return base
    except KeyError:
        return base.rstrip("\n") + f"\nanchor-build:x:{uid}:{uid}:anchor build:{home}:/usr/sbin/nologin\n"


def _is_file(path: Path) -> bool:
    try:
        return os.path.isfile(path) and not os.path.islink(path)
    except OSError:
        return False
