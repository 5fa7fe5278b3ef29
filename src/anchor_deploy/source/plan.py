"""Planning a folder for a deployment: the files to send, what was skipped and why, and the [app] section
(anchor.toml's, or an app detected as the server would). See source/ignore.py for the ignore rules."""

from __future__ import annotations

import hashlib
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchor_deploy.source.ignore import IGNORE_FILE, VENV_MARKER, IgnoreRules, Skipped, Why, read_ignore_file

_READ = 1024 * 1024


class PlanError(ValueError):
    """A folder that cannot be planned (a bad anchor.toml, an ignore file that cannot be read, a missing
    build output): one line for the user."""


@dataclass
class DeployPlan:
    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    stats: dict[str, os.stat_result] = field(default_factory=dict)  # each file's state when planned
    skipped: list[Skipped] = field(default_factory=list)
    app: dict[str, Any] | None = None


def load_project_config(directory: Path) -> dict[str, Any]:
    path = directory / "anchor.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlanError(f"{path}: {exc}") from exc


def plan_files(directory: Path, include_dotenv: bool = False) -> DeployPlan:
    """The files to upload, and what was skipped and why (see source/ignore.py for the rules)."""
    config = load_project_config(directory)
    build = config.get("build", {}) if isinstance(config.get("build"), dict) else {}
    app = app_section(directory, config)
    root = directory
    if build.get("output") and app is None:
        root = (directory / str(build["output"])).resolve()
        if not root.is_relative_to(directory.resolve()):
            raise PlanError(f"anchor.toml: build.output {build['output']!r} is outside {directory}")
        if not root.is_dir():
            raise PlanError(f"output directory {root} does not exist; build the site first")
    rules = _ignore_rules(directory, build.get("ignore", config.get("ignore", [])), include_dotenv)
    plan = DeployPlan(root=root, app=app)
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        kept_dirs = []
        for name in sorted(dirs):
            rel = _join(rel_folder, name)
            path = Path(folder) / name
            if path.is_symlink():
                plan.skipped.append(Skipped(f"{rel}/", Why.NOT_REGULAR))
                continue
            skip = rules.check(rel, is_dir=True, is_venv=(path / VENV_MARKER).is_file())
            if skip is None:
                kept_dirs.append(name)
            else:
                plan.skipped.append(skip)
        dirs[:] = kept_dirs
        for name in sorted(names):
            rel = _join(rel_folder, name)
            skip = rules.check(rel, is_dir=False)
            where = os.path.join(folder, name)
            info = os.lstat(where) if skip is None else None
            if info is not None and not stat.S_ISREG(info.st_mode):
                skip = Skipped(rel, Why.NOT_REGULAR)  # symlinks, sockets, devices: only regular files deploy
            if skip is not None:
                plan.skipped.append(skip)
            else:
                plan.files[rel] = Path(where)
                if info is not None:
                    plan.stats[rel] = info
    return plan


def _ignore_rules(directory: Path, toml_patterns: object, include_dotenv: bool) -> IgnoreRules:
    if not isinstance(toml_patterns, list):
        raise PlanError("anchor.toml: build.ignore must be a list of patterns")
    lines = [str(x) for x in toml_patterns]
    ignore_file = directory / IGNORE_FILE
    if ignore_file.is_file():
        try:
            lines += read_ignore_file(ignore_file.read_text(errors="replace"))
        except OSError as exc:
            raise PlanError(f"cannot read {ignore_file}: {exc.strerror}") from exc
    try:
        return IgnoreRules(lines, include_dotenv=include_dotenv)
    except ValueError as exc:
        raise PlanError(f"{ignore_file.name} or anchor.toml: {exc}") from exc


def app_section(directory: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """[app] from anchor.toml, or an app detected as the server would (app.py + requirements)."""
    section = config.get("app")
    if isinstance(section, dict):
        app: dict[str, Any] = {"entry": section.get("entry", "app:app")}
        for key, api_key in (
            ("python", "python"),
            ("health_path", "healthPath"),
            ("static", "static"),
            ("env", "env"),
        ):
            if key in section:
                app[api_key] = section[key]
        if "static" not in app and (directory / "public").is_dir():
            app["static"] = "public"
        return app
    if (directory / "app.py").is_file() and any(
        (directory / name).is_file() for name in ("requirements.txt", "pyproject.toml")
    ):
        return {"entry": "app:app", **({"static": "public"} if (directory / "public").is_dir() else {})}
    return None


def _join(folder: str, name: str) -> str:
    return name if folder in ("", ".") else f"{folder}/{name}"


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(_READ):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def file_mode(path: Path) -> int:
    """The mode a deployed file gets: executable (0o755) if any execute bit is set, else 0o644."""
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644
