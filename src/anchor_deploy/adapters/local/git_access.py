"""How a git fetch in the build sandbox reaches its repository: what kind of URL it is, how credentials are
given (an https token as an Authorization header in the sandbox's own git configuration, an ssh deploy key
in a 0600 file), which protocols git may use, and which strings are scrubbed from every log line.

git in the sandbox reads no system configuration and, as its global one, only the file written here into
its scratch folder (its HOME): nothing of the operator's git setup applies, and the token never appears on
a command line (where ``ps`` would show it) nor in the environment of the platform's own processes.
"""

from __future__ import annotations

import base64
import re
import shlex
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anchor_deploy.model.errors import BuildFailed

MAX_URL = 2048
KEY_START = "-----BEGIN"
TOKEN_USER = "x-access-token"  # noqa: S105 (GitHub's user name for a token; GitLab, Gitea take any)
_SCHEMES = ("https", "http", "ssh", "git", "file")
_TRANSPORT = re.compile(r"^([A-Za-z0-9+.-]+)::")
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._~+-]+@)?[A-Za-z0-9][A-Za-z0-9.-]*:(?!//)")


@dataclass(frozen=True)
class RepoUrl:
    """A repository URL as given, what may be shown of it, and its path when it is on this machine."""

    url: str
    shown: str  # without a user name or password
    local: Path | None  # an absolute path or a file:// URL: the repository's real path
    secrets: tuple[str, ...] = ()  # a password written into the URL itself
    userinfo: str | None = None  # "user:password" taken out of an http(s) URL: credentials git gets apart


def parse_url(url: str) -> RepoUrl:
    """Check a repository URL: https, http, ssh, git, scp-like ``user@host:path``, a file:// URL or an
    absolute path. BuildFailed (one line) for anything else: other transports (``ext::``) run commands."""
    if not url or len(url) > MAX_URL or url.startswith("-") or any(ord(ch) < 0x20 for ch in url):
        raise BuildFailed(f"not a repository URL: {url[:80]!r}")
    if url.startswith("/"):
        return RepoUrl(url, url, Path(url))
    if transport := _TRANSPORT.match(url):  # <transport>::<address> runs a remote helper
        raise BuildFailed(f"git over {transport.group(1)!r} is not supported: use https, ssh, git or a path")
    if "://" not in url:
        if _SCP_LIKE.match(url):
            user, _, rest = url.rpartition("@")
            return RepoUrl(url, rest if user else url, None)
        raise BuildFailed(
            f"not a repository URL: {url[:80]!r} (use https://, ssh://, git@host:path or a path)"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise BuildFailed(f"git over {parts.scheme!r} is not supported: use https, ssh, git or a path")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BuildFailed(f"a file:// URL names a path on this machine, not on {parts.netloc!r}")
        path = urllib.parse.unquote(parts.path)
        return RepoUrl(url, url, Path(path) if path.startswith("/") else None)
    host = parts.hostname or ""
    if not host:
        raise BuildFailed(f"not a repository URL: {url[:80]!r} (no host)")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    if parts.scheme not in ("https", "http") or not (parts.username or parts.password):
        return RepoUrl(url, shown, None)
    # Credentials written into the URL go to git as a header, as given ones do: never on a command line.
    user, password = (urllib.parse.unquote(v or "") for v in (parts.username, parts.password))
    userinfo = f"{user}:{password}" if password else user
    return RepoUrl(shown, shown, None, tuple(v for v in (password, parts.password) if v), userinfo)


@dataclass
class GitAccess:
    """The sandbox's git configuration (its only one), its environment, and the secrets to scrub."""

    home: Path  # the scratch folder: HOME, and where the config, the key and known_hosts live
    config: list[tuple[str, str, str]] = field(default_factory=list)  # (section, key, value)
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    key: str | None = None  # an ssh deploy key's text, written to ``key_file`` (0600)

    @property
    def key_file(self) -> Path:
        return self.home / ".ssh" / "deploy_key"

    @property
    def known_hosts(self) -> Path:
        return self.home / ".ssh" / "known_hosts"

    def scrub(self, text: str) -> str:
        for secret in sorted(set(self.secrets), key=len, reverse=True):  # "user:token" before "token"
            if secret:
                text = text.replace(secret, "[secret]")
        return text

    def config_text(self) -> str:
        """The configuration as git reads it: values quoted and escaped."""
        sections: dict[str, list[str]] = {}
        for section, key, value in self.config:
            sections.setdefault(section, []).append(f"\t{key} = {_quote(value)}\n")
        return "".join(f"[{name}]\n" + "".join(lines) for name, lines in sections.items())


def access_for(repo: RepoUrl, credentials: str | None, home: Path, locals_: Sequence[Path]) -> GitAccess:
    """The configuration for fetching ``repo`` (and its submodules), with ``locals_`` the repositories on
    this machine mounted into the sandbox (git refuses another user's repository unless it is named safe)."""
    access = GitAccess(home=home, secrets=list(repo.secrets))
    access.config += [
        ("core", "hooksPath", "/dev/null"),
        ("advice", "detachedHead", "false"),
        ("credential", "helper", ""),
        ("transfer", "fsckObjects", "true"),  # malformed objects (a tree naming .git) are refused
        ("protocol", "allow", "never"),  # only the transports below: no ext::, no fd::
        *[(f'protocol "{name}"', "allow", "always") for name in ("https", "http", "ssh", "git")],
        ('protocol "file"', "allow", "always" if locals_ else "never"),
        *[("safe", "directory", str(path)) for path in locals_],
    ]
    access.env = {
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": _ssh_command(access),
    }
    if credentials:
        _add_credentials(access, repo, credentials.strip())
    return access


def _add_credentials(access: GitAccess, repo: RepoUrl, credentials: str) -> None:
    if credentials.startswith(KEY_START):
        access.key = credentials.replace("\r\n", "\n").strip() + "\n"
        access.secrets += [line for line in access.key.splitlines()[1:-1] if len(line) >= 16]
        return
    user, sep, password = credentials.partition(":")
    pair = credentials if sep and user and password else f"{TOKEN_USER}:{credentials}"
    header = base64.b64encode(pair.encode()).decode()
    access.secrets += [credentials, pair, header, password if sep else credentials]
    prefix = _http_prefix(repo.url)
    if prefix is not None:  # only the repository's own host gets the token (submodules elsewhere do not)
        access.config.append((f'http "{prefix}"', "extraHeader", f"Authorization: Basic {header}"))


def _http_prefix(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return f"{parts.scheme}://{netloc}/"


def _ssh_command(access: GitAccess) -> str:
    args = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(access.key_file),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={access.known_hosts}",
    ]
    return shlex.join(args)


def _quote(value: str) -> str:
    if any(ch in value for ch in "\n\r\0"):
        raise BuildFailed("a git setting cannot hold a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
