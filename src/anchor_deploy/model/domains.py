"""Custom domains: name rules and the statuses a domain moves through (ACM's words for certificates).

The model stays free of libraries: IDNA conversion is passed in (the `idna` package at the edge of the
system), so the rules here are plain string checks on the A-label form.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from anchor_deploy.model.errors import InvalidName

MAX_NAME = 253
MAX_LABEL = 63
_LDH_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ALL_NUMERIC = re.compile(r"^[0-9]+$")


class CertificateStatus(enum.StrEnum):
    PENDING_VALIDATION = "PENDING_VALIDATION"
    ISSUED = "ISSUED"
    FAILED = "FAILED"
    VALIDATION_TIMED_OUT = "VALIDATION_TIMED_OUT"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    INACTIVE = "INACTIVE"


class CdnStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"


class DnsStatus(enum.StrEnum):
    OK = "ok"
    MISCONFIGURED = "misconfigured"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DomainName:
    """A validated name: ``ascii`` is the A-label form that is stored and matched, ``unicode`` is shown."""

    ascii: str
    unicode: str

    @property
    def is_wildcard(self) -> bool:
        return self.ascii.startswith("*.")

    @property
    def is_apex(self) -> bool:
        """Two labels (example.com): needs A/AAAA or ALIAS records, as a CNAME is not allowed there."""
        return self.ascii.count(".") == 1 and not self.is_wildcard


def parse_domain_name(
    raw: object, base_domain: str, to_ascii: Callable[[str], str], to_unicode: Callable[[str], str]
) -> DomainName:
    """Normalize (case, trailing dot, IDNA) and validate a custom domain name; InvalidName says why."""
    if not isinstance(raw, str):
        raise InvalidName("domain name must be a string")
    name = raw.strip().lower()
    shown = raw.strip()[:80]
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidName("domain name is empty")
    if _is_ip(name):
        raise InvalidName(f"{shown!r} is an IP address; use a domain name")
    wildcard = name.startswith("*.")
    rest = name[2:] if wildcard else name
    if "*" in rest:
        raise InvalidName(f"{shown!r}: '*' is only allowed as the whole leftmost label, as in *.example.com")
    labels = rest.split(".")
    if any(label == "" for label in labels):
        raise InvalidName(f"{shown!r} has an empty label")
    ascii_labels = [label if label.isascii() else _idna(to_ascii, label, shown) for label in labels]
    for label in ascii_labels:
        _check_label(label, shown)
        if label.startswith("xn--"):
            _idna(to_unicode, label, shown)  # a punycode label must decode
    if len(ascii_labels) < 2:
        raise InvalidName(f"{shown!r} is a single label; use a full domain name such as www.example.com")
    if _ALL_NUMERIC.match(ascii_labels[-1]):
        raise InvalidName(f"{shown!r} has an all-numeric top-level label")
    ascii_name = ("*." if wildcard else "") + ".".join(ascii_labels)
    if len(ascii_name) > MAX_NAME:
        raise InvalidName(f"{shown!r} is longer than {MAX_NAME} characters")
    if ascii_name.removeprefix("*.") == base_domain or ascii_name.endswith("." + base_domain):
        raise InvalidName(f"{shown!r} is under the platform's own domain {base_domain}; it is served already")
    unicode_labels = [_idna(to_unicode, label, shown) for label in ascii_labels]
    return DomainName(ascii_name, ("*." if wildcard else "") + ".".join(unicode_labels))


def _idna(convert: Callable[[str], str], label: str, shown: str) -> str:
    try:
        return convert(label)
    except ValueError as exc:
        raise InvalidName(f"{shown!r} is not a valid internationalized domain name: {exc}") from exc


def _check_label(label: str, shown: str) -> None:
    if len(label) > MAX_LABEL:
        raise InvalidName(f"{shown!r} has a label longer than {MAX_LABEL} characters")
    if not _LDH_LABEL.match(label):
        raise InvalidName(
            f"{shown!r}: label {label[:63]!r} may hold only letters, digits and inner hyphens (no '_')"
        )


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
