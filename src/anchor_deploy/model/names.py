"""Name rules: project names, deployment ids and the hostnames derived from them."""

from __future__ import annotations

import re
import secrets

from anchor_deploy.model.errors import InvalidName

PROJECT_NAME_MAX = 40
_PROJECT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_DEPLOYMENT_ID = re.compile(r"^dpl_[a-z0-9]{12}$")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# One DNS label: lowercase letters, digits and inner hyphens, 1-63 characters.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# RE2-compatible (Caddy uses it too), so the 253-character bound is checked apart.
HOSTNAME_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*$"
_HOSTNAME = re.compile(HOSTNAME_PATTERN)
HOSTNAME_MAX = 253


def validate_project_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidName("project name must be a string")
    if not _PROJECT_NAME.fullmatch(name):
        raise InvalidName(
            f"invalid project name {name!r}: use 1-{PROJECT_NAME_MAX} characters of lowercase a-z, 0-9 "
            "and '-', not starting or ending with '-'"
        )
    return name


def new_deployment_id() -> str:
    return "dpl_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def is_deployment_id(value: str) -> bool:
    return bool(_DEPLOYMENT_ID.fullmatch(value))


def is_valid_hostname(host: str) -> bool:
    """A strict, lowercase, dot-separated hostname with no empty label (so never '.' or '..')."""
    return len(host) <= HOSTNAME_MAX and bool(_HOSTNAME.fullmatch(host))


def production_host(project: str, base_domain: str) -> str:
    return f"{project}.{base_domain}"


def deployment_host(project: str, deployment_id: str, base_domain: str) -> str:
    return f"{project}-{deployment_id.removeprefix('dpl_')}.{base_domain}"
