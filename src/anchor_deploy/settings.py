"""Typed settings, parsed once. The only module that reads the environment."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from anchor_deploy.model.errors import InvalidInput

DEFAULT_API_ADDR = "127.0.0.1:8400"
DEFAULT_HTTP_ADDR = "127.0.0.1:8000"


def parse_addr(value: str, setting: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"{setting} must look like HOST:PORT, got {value!r}")
    return host, int(port)


def _default_caddy() -> str:
    beside_python = Path(sys.executable).parent / "caddy"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("caddy") or "caddy"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".anchor")
    api_addr: str = DEFAULT_API_ADDR
    http_addr: str = DEFAULT_HTTP_ADDR
    base_domain: str = "localhost"
    admin_token: str | None = None
    max_blob_size: int = 100 * 1024 * 1024
    build_workers: int = 2
    caddy_bin: str = field(default_factory=_default_caddy)
    build_timeout: float = 600.0
    build_memory: int = 4 * 1024**3
    health_timeout: float = 30.0
    idle_timeout: float = 300.0
    # Extra pip arguments for app builds, e.g. "--no-index --find-links /srv/wheels" for offline builds.
    pip_args: str = ""
    # Test-only fault injection, e.g. "rollback:after_commit" makes the process SIGKILL itself there.
    fault: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        names = {
            "data_dir": "ANCHOR_DATA_DIR",
            "api_addr": "ANCHOR_API_ADDR",
            "http_addr": "ANCHOR_HTTP_ADDR",
            "base_domain": "ANCHOR_BASE_DOMAIN",
            "admin_token": "ANCHOR_ADMIN_TOKEN",
            "max_blob_size": "ANCHOR_MAX_BLOB_SIZE",
            "build_workers": "ANCHOR_BUILD_WORKERS",
            "caddy_bin": "ANCHOR_CADDY_BIN",
            "fault": "ANCHOR_FAULT",
            "build_timeout": "ANCHOR_BUILD_TIMEOUT",
            "build_memory": "ANCHOR_BUILD_MEMORY",
            "health_timeout": "ANCHOR_HEALTH_TIMEOUT",
            "idle_timeout": "ANCHOR_IDLE_TIMEOUT",
            "pip_args": "ANCHOR_PIP_ARGS",
        }
        for attr, var in names.items():
            if env.get(var):
                values[attr] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls._coerce(values)

    @classmethod
    def _coerce(cls, values: dict[str, Any]) -> Settings:
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        for attr, kind in (
            ("max_blob_size", int),
            ("build_workers", int),
            ("build_memory", int),
            ("build_timeout", float),
            ("health_timeout", float),
            ("idle_timeout", float),
        ):
            if attr in values:
                try:
                    values[attr] = kind(values[attr])
                except ValueError as exc:
                    raise InvalidInput(f"{attr} must be a number, got {values[attr]!r}") from exc
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        parse_addr(self.api_addr, "ANCHOR_API_ADDR")
        parse_addr(self.http_addr, "ANCHOR_HTTP_ADDR")
        numbers = (
            self.max_blob_size,
            self.build_workers,
            self.build_memory,
            self.build_timeout,
            self.health_timeout,
            self.idle_timeout,
        )
        if min(numbers) <= 0:
            raise InvalidInput("sizes, counts and timeouts in the settings must be positive")
        base = self.base_domain
        if not base or base != base.lower() or base.startswith(".") or base.endswith("."):
            raise InvalidInput(f"ANCHOR_BASE_DOMAIN must be a lowercase domain, got {base!r}")

    @property
    def public_port(self) -> int:
        return parse_addr(self.http_addr, "ANCHOR_HTTP_ADDR")[1]

    def public_url(self, host: str) -> str:
        port = self.public_port
        return f"http://{host}" if port == 80 else f"http://{host}:{port}"


@dataclass(frozen=True)
class ClientSettings:
    """What the CLI needs: where the API is and which token to send."""

    api_url: str
    token: str | None
    config_path: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if env is None else env
        config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        config_path = Path(env.get("ANCHOR_CONFIG") or config_home / "anchor" / "config.json")
        return cls(
            api_url=env.get("ANCHOR_API_URL", "").rstrip("/"),
            token=env.get("ANCHOR_TOKEN") or None,
            config_path=config_path,
        )
