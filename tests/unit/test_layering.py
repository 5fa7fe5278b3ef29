"""The layers keep to themselves: model/ and services/ import no SDK, no HTTP, no sqlite3, no subprocess,
and none of the outer layers; model/ imports nothing of anchor_deploy outside model/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anchor_deploy

PACKAGE_ROOT = Path(anchor_deploy.__file__).parent
FORBIDDEN_LIBRARIES = {
    "boto3",
    "botocore",
    "httpx",
    "sqlite3",
    "subprocess",
    "fastapi",
    "starlette",
    "uvicorn",
}
OUTER_LAYERS = (
    "anchor_deploy.adapters",
    "anchor_deploy.api",
    "anchor_deploy.cli",
    "anchor_deploy.providers",
    "anchor_deploy.web",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[str]:
    """Every module a source imports, relative imports resolved, including imports inside functions
    and ``importlib.import_module('x')`` / ``__import__('x')`` calls with a literal name."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(node.args[0].value)
    return found


def in_model(name: str) -> bool:
    return name == "anchor_deploy.model" or name.startswith("anchor_deploy.model.")


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    is_model = in_model(module)
    problems = []
    for name in imported_modules(source, module, is_package):
        top = name.split(".")[0]
        if top in FORBIDDEN_LIBRARIES:
            problems.append(f"{module} imports {name}")
        elif any(name == layer or name.startswith(layer + ".") for layer in OUTER_LAYERS):
            problems.append(f"{module} imports {name} (an outer layer)")
        elif is_model and name.startswith("anchor_deploy.") and not in_model(name):
            problems.append(f"{module} imports {name} (model/ must import only model/)")
    return problems


def inner_modules() -> list[Path]:
    return sorted((PACKAGE_ROOT / "model").rglob("*.py")) + sorted((PACKAGE_ROOT / "services").rglob("*.py"))


def test_the_walk_sees_the_inner_layers() -> None:
    names = {module_name(p) for p in inner_modules()}
    assert {"anchor_deploy.model.entities", "anchor_deploy.services.aliases"} <= names
    assert "anchor_deploy.services.reconcile" in names and len(names) >= 10


@pytest.mark.parametrize("path", inner_modules(), ids=lambda p: module_name(p))
def test_inner_layer_imports(path: Path) -> None:
    assert violations(path.read_text(), module_name(path), path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("source", "module", "bad"),
    [
        ("import sqlite3", "anchor_deploy.services.x", True),
        ("import botocore.exceptions", "anchor_deploy.services.x", True),
        ("from subprocess import run", "anchor_deploy.services.x", True),
        ("def f():\n    import httpx\n", "anchor_deploy.services.x", True),
        ("import importlib\nimportlib.import_module('boto3')", "anchor_deploy.services.x", True),
        ("__import__('uvicorn')", "anchor_deploy.services.x", True),
        ("from starlette.requests import Request", "anchor_deploy.services.x", True),
        ("from anchor_deploy.adapters.local.sqlite_store import X", "anchor_deploy.services.x", True),
        ("from anchor_deploy import providers", "anchor_deploy.services.x", True),
        ("import anchor_deploy.api.app", "anchor_deploy.services.x", True),
        ("from ..adapters import fs_blobs", "anchor_deploy.services.x", True),
        ("from ..cli.main import main", "anchor_deploy.services.x", True),
        ("from anchor_deploy.ports import Store", "anchor_deploy.model.x", True),
        ("from ..services import aliases", "anchor_deploy.model.x", True),
        ("import anchor_deploy.modelling", "anchor_deploy.model.x", True),
        ("from anchor_deploy import settings", "anchor_deploy.model.x", True),
        ("from anchor_deploy import model", "anchor_deploy.model.x", False),
        ("from anchor_deploy.ports import Store", "anchor_deploy.services.x", False),
        ("from .errors import InvalidName", "anchor_deploy.model.x", False),
        ("from anchor_deploy.model.errors import Conflict", "anchor_deploy.model.x", False),
        ("import threading, hashlib", "anchor_deploy.model.x", False),
        ("from anchor_deploy.providersless import x", "anchor_deploy.services.x", False),
    ],
)
def test_the_checker_catches_what_it_should(source: str, module: str, bad: bool) -> None:
    assert bool(violations(source, module)) is bad


def test_relative_imports_resolve_from_a_package_init() -> None:
    assert violations("from .adapters import x", "anchor_deploy", is_package=True)
    assert not violations("from .errors import x", "anchor_deploy.model", is_package=True)


# Offline tools that act on one provider's storage themselves, with no platform running: `anchor restore`
# and `anchor backup`'s check (a local data dir), `anchor aws bootstrap|destroy` (the AWS stack).
PROVIDER_TOOLS = {"anchor_deploy.cli.backup", "anchor_deploy.cli.aws"}


def edge_modules() -> list[Path]:
    paths = [p for layer in ("api", "cli", "web") for p in sorted((PACKAGE_ROOT / layer).rglob("*.py"))]
    assert any(module_name(p).startswith("anchor_deploy.web.") for p in paths)
    return [p for p in paths if module_name(p) not in PROVIDER_TOOLS]


@pytest.mark.parametrize("path", edge_modules(), ids=lambda p: module_name(p))
def test_api_cli_and_dashboard_reach_no_adapter(path: Path) -> None:
    """The API, the dashboard and the CLI talk to services (through providers.platform.Platform) and never to
    an adapter or to one provider's assembly; only `anchor up` picks the provider, through
    providers.build_platform."""
    names = imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")
    reached = [n for n in names if n.startswith(("anchor_deploy.adapters", "anchor_deploy.providers."))]
    allowed = ("anchor_deploy.providers.platform", "anchor_deploy.providers.build_platform")
    assert [n for n in reached if not n.startswith(allowed)] == []
