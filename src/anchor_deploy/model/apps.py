"""Python web apps inside a deployment: their config, and the environment variables they run with."""

from __future__ import annotations

import codecs
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement

from anchor_deploy.model.errors import InvalidInput

_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON = re.compile(r"^3\.\d{1,2}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_ENV_KEYS = frozenset(
    {
        "PATH",
        "HOME",
        "PWD",
        "USER",
        "SHELL",
        "LANG",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "VIRTUAL_ENV",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PORT",
    }
)
RESERVED_ENV_PREFIXES = ("ANCHOR_",)
MAX_ENV_VALUE = 32 * 1024
MAX_ENV_VARS = 200


@dataclass(frozen=True, slots=True)
class AppConfig:
    """How to run the app of a deployment: `module:attribute`, optional Python version, health path, and
    the directory (inside the upload) whose files the edge serves directly."""

    entry: str = "app:app"
    python: str | None = None
    health_path: str = "/"
    static_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "python": self.python,
            "healthPath": self.health_path,
            "static": self.static_dir,
            "env": dict(self.env),
        }


def parse_app_config(raw: object) -> AppConfig:
    if not isinstance(raw, dict):
        raise InvalidInput("app must be an object {entry, python, healthPath, static, env}")
    entry = raw.get("entry", "app:app")
    if not isinstance(entry, str) or not _ENTRY.fullmatch(entry):
        raise InvalidInput(f"app.entry must look like 'module:attribute', got {str(entry)[:80]!r}")
    python = raw.get("python")
    if python is not None and (not isinstance(python, str) or not _PYTHON.fullmatch(python)):
        raise InvalidInput(f"app.python must look like '3.11', got {str(python)[:20]!r}")
    health = raw.get("healthPath", raw.get("health_path", "/"))
    if (
        not isinstance(health, str)
        or not health.startswith("/")
        or len(health) > 512
        or any(ord(c) < 0x21 for c in health)
    ):
        raise InvalidInput("app.healthPath must be a path starting with '/'")
    static = raw.get("static")
    if static is not None:
        if not isinstance(static, str) or not static.strip("/") or ".." in static.split("/"):
            raise InvalidInput("app.static must be a relative directory inside the upload")
        static = static.strip("/")
    env = raw.get("env") or {}
    if not isinstance(env, dict):
        raise InvalidInput("app.env must be an object of strings")
    for key, value in env.items():
        validate_env_var(key, value)
    return AppConfig(entry=entry, python=python, health_path=health, static_dir=static, env=dict(env))


def validate_env_key(key: object) -> str:
    if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
        raise InvalidInput(
            f"{str(key)[:80]!r} is not a valid environment variable name: use letters, digits and '_', "
            "not starting with a digit"
        )
    if key in RESERVED_ENV_KEYS or key.startswith(RESERVED_ENV_PREFIXES):
        raise InvalidInput(f"{key} is reserved by the platform")
    return key


def validate_env_var(key: object, value: object) -> tuple[str, str]:
    key = validate_env_key(key)
    if not isinstance(value, str) or "\x00" in value or len(value) > MAX_ENV_VALUE:
        raise InvalidInput(
            f"the value of {key} must be a string of at most {MAX_ENV_VALUE} characters, no NUL"
        )
    return key, value


@dataclass(frozen=True, slots=True)
class EnvVar:
    key: str
    value: str
    secret: bool
    updated_at: float


@dataclass(frozen=True, slots=True)
class FrozenEnv:
    """The variables a deployment was built with (like a Lambda version's configuration)."""

    values: dict[str, str] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()

    @property
    def secret_values(self) -> list[str]:
        return [self.values[k] for k in self.secret_keys if self.values.get(k)]


# -- requirements ------------------------------------------------------------------------------------------
# pip reads requirements.txt with these rules (its req_file module), and so must the check, or a line
# means one thing here and another to pip: a comment is '#' at the start or after whitespace, a line
# ending with a backslash is joined to the next, ${VAR} is expanded, options follow the first token that
# starts with '-' (tokens split on ' '), and the first two lines may declare the file's encoding.
_PIP_COMMENT = re.compile(r"(^|\s+)#.*$")
_PIP_ENCODING = re.compile(r"coding[:=]\s*([-\w.]+)", re.ASCII)
_OPTION_NAME = re.compile(r"^(--[A-Za-z][A-Za-z0-9-]{0,40}|-[A-Za-z])")
_HASH_OPTION = re.compile(r"--hash=(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")
# pip installs a requirement whose text (before ';', extras aside) ends like an archive from the local disk.
_ARCHIVE_SUFFIXES = (
    ".whl",
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
)
_TRAILING_EXTRAS = re.compile(r"\[[^\]]*\]\s*$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A host whose last label is a number is an IPv4 address to the resolver (inet_aton reads "1.0x7f" too).
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PRIVATE_SUFFIXES = ("localhost", "localdomain", "local", "internal", "home.arpa")


def validate_requirements(text: str) -> str:
    """Requirement specifiers only, checked line by line as pip will read them; returns ``text``.

    Refused, with InvalidInput naming the line number and a reason (never the line's text, which could tell
    a caller which paths exist on the server): pip options (``-r``, ``-e``, ``--index-url``, ...), local
    paths and file names, ``file:`` and every URL scheme but ``https``, URLs to an IP address, localhost or
    a private-use name, URLs with credentials or ``..``, line continuations, ``${VAR}`` and any encoding
    declaration but utf-8. The one option allowed after a requirement is ``--hash=<sha256|sha384|sha512>:
    <hex digest>``. Allowed direct references (``pkg @ https://files.example.com/pkg.whl``) are fetched by
    pip over the network; this check cannot know what a public name resolves to.
    """
    body = text.removeprefix("\ufeff")  # pip drops a UTF-8 byte order mark
    for number, first in enumerate(body.split("\n")[:2], start=1):
        declared = _PIP_ENCODING.search(first) if first.startswith("#") else None
        if declared and not _is_utf8(declared.group(1)):
            raise InvalidInput(
                f"requirements line {number}: encoding declarations other than utf-8 are not allowed"
            )
    for number, raw in enumerate(body.splitlines(), start=1):
        problem = _requirement_problem(raw)
        if problem:
            raise InvalidInput(f"requirements line {number}: {problem}")
    return text


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _requirement_problem(raw: str) -> str | None:
    """Why pip must not see this line (a reason without the line's text), or None if it may."""
    if raw.endswith("\\") and not _PIP_COMMENT.match(raw):
        return "line continuations (a trailing backslash) are not allowed"
    line = _PIP_COMMENT.sub("", raw).strip()
    if not line:
        return None
    if "${" in line:
        return "environment variables (${...}) are not allowed"
    if line.startswith("-"):
        option = _OPTION_NAME.match(line)
        return "pip options are not allowed" + (f" ({option.group(1)})" if option else "")
    if "\\" in line:
        return "backslashes are not allowed"
    tokens = line.split(" ")
    cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
    spec, options = " ".join(tokens[:cut]).strip(), [t for t in tokens[cut:] if t]
    if any(not _HASH_OPTION.fullmatch(option) for option in options):
        return (
            "the only option allowed after a requirement is --hash=ALGORITHM:DIGEST "
            "(sha256, sha384 or sha512, lowercase hex)"
        )
    try:
        requirement = Requirement(spec)
    except InvalidRequirement:
        return "not a valid requirement (expected a PEP 508 specifier such as 'flask>=3')"
    if requirement.url is None:
        head = spec.split(";", 1)[0].strip()
        bare = _TRAILING_EXTRAS.sub("", head).strip().lower()
        if "/" in head or head.startswith(".") or bare.endswith(_ARCHIVE_SUFFIXES):
            return "local paths and file names are not allowed, only package requirements"
        return None
    return _direct_reference_problem(requirement.name, requirement.url)


def _direct_reference_problem(name: str, url: str) -> str | None:
    named = f"the URL of {name[:80]!r}"
    try:
        parts = urlsplit(url)
        _port = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        return f"{named} is not a valid URL"
    if parts.scheme != "https" or not parts.netloc:
        return f"{named} must be an https URL (no file:, http:, VCS or other schemes)"
    if "@" in parts.netloc:
        return f"{named} must not contain credentials"
    if ".." in url:
        # pip normalizes the text of a requirement as a local path before it reads it as a URL: '..'
        # would walk it to a file of the server.
        return f"{named} must not contain '..'"
    host = (parts.hostname or "").rstrip(".")
    labels = host.split(".")
    if (
        len(labels) < 2
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        or _NUMERIC_LABEL.fullmatch(labels[-1])
        or _is_ip_address(host)
    ):
        return f"{named} must name its host by a DNS name, not an IP address"
    if any(host == s or host.endswith("." + s) for s in _PRIVATE_SUFFIXES):
        return f"{named} must name a public host, not localhost or a private-use name"
    return None


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def requirements_from_pyproject(text: str, check: bool = True) -> str:
    """The [project] dependencies of a pyproject.toml as requirements.txt text, each one checked as a
    requirements line (the errors name the dependency's position, never its text) unless ``check`` is
    False."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"pyproject.toml: {exc}") from exc
    project = data.get("project", {})
    deps = project.get("dependencies", []) if isinstance(project, dict) else None
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InvalidInput("pyproject.toml: [project] dependencies must be a list of strings")
    joined = "\n".join(deps) + ("\n" if deps else "")
    if not check:
        return joined
    for number, dep in enumerate(deps, start=1):
        lines = dep.splitlines()
        if len(lines) != 1 or not _PIP_COMMENT.sub("", lines[0]).strip():
            raise InvalidInput(f"pyproject.toml dependency {number}: not a valid requirement")
        problem = _requirement_problem(lines[0])
        if problem:
            raise InvalidInput(f"pyproject.toml dependency {number}: {problem}")
    return validate_requirements(joined)
