"""Custom domains: name rules and the statuses a domain moves through (ACM's words for certificates).

The model stays free of libraries: IDNA conversion is passed in (the `idna` package at the edge of the
system), so the rules here are plain string checks on the A-label form.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from anchor_deploy.model.errors import InvalidName

DEFAULT_QUOTA = 100  # custom domains per project (CloudFront allows 100 alternate names per distribution)
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


class FailureKind(enum.StrEnum):
    """What the consecutive failures counted in ``Domain.failures`` are, so no state is read from words."""

    NONE = "none"
    VALIDATION = "validation"  # the validation record is not there (yet)
    REFUSED = "refused"  # the certificate authority refused
    EDGE = "edge"  # the edge or CDN could not serve the name
    RENEWAL = "renewal"  # renewing failed; the current certificate is still served
    REMOVAL = "removal"  # taking the name down is not finished (a certificate still in use)


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


def parse_domain_name(
    raw: object, to_ascii: Callable[[str], str], to_unicode: Callable[[str], str]
) -> DomainName:
    """Normalize (case, trailing dot, IDNA) and check the spelling of a custom domain name; InvalidName says
    why. What may be added (public suffixes, mixed scripts, the platform's own domain) is in domain_policy."""
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
    if len(ascii_name.removeprefix("*.")) + len(VALIDATION_PREFIX) > MAX_NAME:
        raise InvalidName(
            f"{shown!r} is too long: its validation record {VALIDATION_PREFIX}<name> would be longer than "
            f"{MAX_NAME} characters"
        )
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


VALIDATION_PREFIX = "_acme-challenge."
LABEL_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
RENEW_AT = 2 / 3  # of a certificate's lifetime, as Let's Encrypt moves to 45-day certificates


@dataclass(frozen=True)
class DnsRecord:
    type: str
    name: str
    value: str
    purpose: str  # "validation" | "routing"
    note: str = ""


def records_to_text(records: tuple[DnsRecord, ...]) -> str:
    """The validation records as stored in a row (JSON; "" for none)."""
    if not records:
        return ""
    return json.dumps([[r.type, r.name, r.value, r.purpose, r.note] for r in records])


def records_from_text(text: str) -> tuple[DnsRecord, ...]:
    if not text:
        return ()
    return tuple(DnsRecord(*(str(part) for part in row)) for row in json.loads(text))


@dataclass(frozen=True)
class IssuedInfo:
    serial: str
    issuer: str
    not_before: float
    not_after: float

    def renew_after(self) -> float:
        return self.not_before + (self.not_after - self.not_before) * RENEW_AT


@dataclass(frozen=True)
class Domain:
    """A custom domain of one project. The row is the source of truth; the certificate files and the edge
    entries are made to match it."""

    name: str  # A-label form, "*.example.com" for a wildcard
    project_id: str
    validation_label: str  # "<label>.<validation zone>" is where _acme-challenge.<name> must point
    created_at: float
    certificate_status: CertificateStatus = CertificateStatus.PENDING_VALIDATION
    cdn_status: CdnStatus = CdnStatus.PENDING
    dns_status: DnsStatus = DnsStatus.UNKNOWN
    status_reason: str = ""
    certificate: IssuedInfo | None = None
    validation_deadline: float = 0.0
    last_checked_at: float | None = None
    next_check_at: float | None = 0.0  # None: nothing to do until the user retries
    failures: int = 0  # consecutive failed steps (issuance, attach, renewal): drives the backoff
    deleting: bool = False
    failure: FailureKind = FailureKind.NONE  # what ``failures`` counts
    certificate_ref: str = ""  # the issuer's handle of the current order or certificate (an ACM ARN)
    validation_records: tuple[DnsRecord, ...] = ()  # as the issuer asked for them (empty: its default)
    renewal_status: str = ""  # the authority's renewal status, for certificates it renews itself (ACM)

    @property
    def base_name(self) -> str:
        """The name without a leading ``*.``: where the validation and routing records live."""
        return self.name.removeprefix("*.")

    @property
    def challenge_name(self) -> str:
        return VALIDATION_PREFIX + self.base_name

    def validation_target(self, zone: str) -> str:
        return f"{self.validation_label}.{zone}"


def to_unicode_name(name: str, to_unicode: Callable[[str], str]) -> str:
    labels = name.split(".")
    try:
        return ".".join(to_unicode(label) if label.startswith("xn--") else label for label in labels)
    except ValueError:
        return name


def validation_sibling(name: str) -> str:
    """The other name whose validation record has the same name: ``*.x`` for ``x``, ``x`` for ``*.x``."""
    return name.removeprefix("*.") if name.startswith("*.") else f"*.{name}"


def records_after_removal(records: list[DnsRecord], sibling: str | None) -> list[tuple[DnsRecord, bool]]:
    """A removed domain's records, each with a note for now and whether the user may delete it. The
    validation record was kept for renewals, which ended with the removal, unless ``sibling`` (a domain
    still on the platform whose validation record has the same name) needs it."""
    after = []
    for record in records:
        if record.purpose != "validation":
            note = "the edge no longer serves this name"
            after.append((replace(record, note=note), True))
        elif sibling is not None:
            after.append((replace(record, note=f"keep it: {sibling} validates through the same name"), False))
        else:
            note = "no longer used: certificate renewals stopped with the removal"
            after.append((replace(record, note=note), True))
    return after


def backoff(failures: int, fastest: float, slowest: float) -> float:
    """Seconds until the next check: fast at first, doubling, capped."""
    return float(min(slowest, fastest * (2 ** min(failures, 30))))
