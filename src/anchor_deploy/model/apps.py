"""Python web apps inside a deployment: their config, and the environment variables they run with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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


_FORBIDDEN_REQUIREMENT_STARTS = ("-", "/", ".", "~", "\\")
# A project name, then extras, a version specifier, a marker, a direct reference or nothing. Not a path:
# pip reads "bin/../../srv/x" (no leading '.' or '/') as a directory of the server to install.
_REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:[\[(<>=!~;@]|$)")
_DIRECT_REFERENCE_SCHEMES = ("https://", "http://", "git+https://")


def validate_requirements(text: str) -> str:
    """Requirement specifiers only: no pip options, no local paths or file: URLs, which would let a build
    read (and print) files of the server outside its own upload."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        _name, at, url = line.partition("@")
        if (
            line.startswith(_FORBIDDEN_REQUIREMENT_STARTS)
            or "file:" in line.lower()
            or not _REQUIREMENT_NAME.match(line)
            or (at and not url.strip().lower().startswith(_DIRECT_REFERENCE_SCHEMES))
        ):
            raise InvalidInput(
                f"requirements line {number} ({line[:60]!r}): only package requirements are allowed here, "
                "no pip options, local paths or file: URLs"
            )
    return text


def requirements_from_pyproject(text: str) -> str:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"pyproject.toml: {exc}") from exc
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InvalidInput("pyproject.toml: [project] dependencies must be a list of strings")
    return "\n".join(deps) + ("\n" if deps else "")
