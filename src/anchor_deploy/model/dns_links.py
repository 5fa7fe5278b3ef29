"""DNS zones a project links so the platform writes its domains' records there for the user.

A link names one zone (in A-label form) and how to write to it: a Route 53 hosted zone (with the
platform's own AWS credentials), or any server taking RFC 2136 dynamic updates signed with a TSIG key the
user gives (BIND, Knot, PowerDNS). A link belongs to one project, and a zone is linked by at most one
project: the platform only ever writes the records of that project's own domains into it.

The model checks spelling only; IDNA conversion is passed in, as for domain names.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from anchor_deploy.model.domains import parse_domain_name
from anchor_deploy.model.errors import InvalidInput, InvalidName

ROUTE53 = "route53"
RFC2136 = "rfc2136"
KINDS = (ROUTE53, RFC2136)
DEFAULT_ALGORITHM = "hmac-sha256"
# RFC 8945's HMACs; hmac-md5 is left out (RFC 8945: it must not be used any more).
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")
DNS_PORT = 53
MIN_SECRET = 16  # bytes of a TSIG secret: tsig-keygen and keymgr make 32 for hmac-sha256
MAX_SECRET = 512
_ZONE_ID = re.compile(r"^[A-Z0-9]{1,32}$")
_KEY_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class DnsLink:
    """A zone linked to a project. ``target`` is a Route 53 hosted zone id, or the RFC 2136 server as
    ``host[:port]`` (``[v6]:port`` for an IPv6 address with a port)."""

    zone: str
    project_id: str
    kind: str
    target: str
    key_name: str = ""  # RFC 2136: the TSIG key's name
    key_algorithm: str = DEFAULT_ALGORITHM
    created_at: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"a DNS link is {' or '.join(KINDS)}, not {self.kind!r}")
        if self.key_algorithm not in TSIG_ALGORITHMS:
            supported = ", ".join(TSIG_ALGORITHMS)
            raise InvalidInput(
                f"TSIG algorithm {self.key_algorithm!r} is not supported; use one of {supported}"
            )

    def holds(self, name: str) -> bool:
        """Whether ``name`` (a record's owner, A-labels) is the zone's apex or a name below it."""
        name = name.lower().rstrip(".")
        return name == self.zone or name.endswith("." + self.zone)

    def describe(self) -> str:
        if self.kind == ROUTE53:
            return f"Route 53 zone {self.zone} ({self.target})"
        return f"zone {self.zone} on {self.target} (RFC 2136)"

    def server(self) -> tuple[str, int]:
        """RFC 2136: the server's host and port."""
        return split_server(self.target)


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: bytes


def parse_zone(raw: object, to_ascii: Callable[[str], str], to_unicode: Callable[[str], str]) -> str:
    """The zone's name in A-label form; InvalidName says why it is no zone name."""
    if isinstance(raw, str) and raw.strip().startswith("*"):
        raise InvalidName(f"{raw.strip()[:80]!r}: a zone is a plain domain name, without '*'")
    return parse_domain_name(raw, to_ascii, to_unicode).ascii


def parse_zone_id(raw: object) -> str:
    """A Route 53 hosted zone id, as ``Z1D633PJN98FT9`` or ``/hostedzone/Z1D633PJN98FT9``."""
    if not isinstance(raw, str):
        raise InvalidInput("the Route 53 hosted zone id must be a string, such as Z1D633PJN98FT9")
    zone_id = raw.strip().removeprefix("/hostedzone/")
    if not _ZONE_ID.match(zone_id):
        raise InvalidInput(
            f"{raw.strip()[:60]!r} is not a Route 53 hosted zone id (up to 32 capital letters and digits, "
            "such as Z1D633PJN98FT9)"
        )
    return zone_id


def split_server(target: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` -> (host, port); an IPv6 address alone has no port."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{rest!r} after the address")
        return host, int(rest[1:]) if rest else DNS_PORT
    if target.count(":") == 1:
        host, _, port = target.partition(":")
        return host, int(port)
    return target, DNS_PORT


def parse_server(raw: object) -> str:
    """An RFC 2136 server as ``host[:port]`` (an IP address or a host name; port 53 by default),
    normalized: ``192.0.2.1:53``, ``[2001:db8::1]:53``, ``ns1.example.com:5353``."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("the RFC 2136 server must be given as HOST[:PORT], such as 192.0.2.1:53")
    text = raw.strip()
    shown = repr(text[:80])
    try:
        host, port = split_server(text)
    except ValueError:
        raise InvalidInput(f"{shown}: the port must be a number from 1 to 65535") from None
    if not 0 < port < 65536:
        raise InvalidInput(f"{shown}: the port must be a number from 1 to 65535")
    host = host.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None and not (
        0 < len(host) <= 253 and all(_HOST_LABEL.match(label) for label in host.split("."))
    ):
        raise InvalidInput(f"{shown} is not HOST[:PORT] with an IP address or a host name as HOST")
    shown_host = f"[{host}]" if address is not None and address.version == 6 else host
    return f"{shown_host}:{port}"


def parse_tsig_key(name: object, algorithm: object, secret: object) -> TsigKey:
    """A TSIG key as the user gives it: its name, its algorithm (one of TSIG_ALGORITHMS) and its base64
    secret."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("the TSIG key needs a name, such as anchor-update")
    key_name = name.strip().lower().rstrip(".")
    labels = key_name.split(".")
    if len(key_name) > 253 or not all(_KEY_LABEL.match(label) for label in labels):
        raise InvalidInput(
            f"{name.strip()[:80]!r} is not a TSIG key name (a DNS name: letters, digits, '-' and '_')"
        )
    if not isinstance(algorithm, str) or algorithm.strip().lower().rstrip(".") not in TSIG_ALGORITHMS:
        shown = algorithm.strip()[:40] if isinstance(algorithm, str) else algorithm
        raise InvalidInput(
            f"TSIG algorithm {shown!r} is not supported; use one of {', '.join(TSIG_ALGORITHMS)}"
        )
    if not isinstance(secret, str) or not secret.strip():
        raise InvalidInput("the TSIG key needs its secret, in base64")
    try:
        raw = base64.b64decode(secret.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("the TSIG secret is not valid base64") from None
    if not MIN_SECRET <= len(raw) <= MAX_SECRET:
        raise InvalidInput(
            f"the TSIG secret is {len(raw)} bytes; a key has {MIN_SECRET} to {MAX_SECRET} "
            "(tsig-keygen and keymgr make 32)"
        )
    return TsigKey(key_name, algorithm.strip().lower().rstrip("."), raw)


_BIND_KEY = re.compile(r'key\s+"?(?P<name>[^"\s{]+)"?\s*\{(?P<body>[^}]*)\}', re.IGNORECASE | re.DOTALL)
_BIND_FIELD = re.compile(r'(?P<field>algorithm|secret)\s+"?(?P<value>[^";\s]+)"?\s*;', re.IGNORECASE)
_YAML_FIELD = re.compile(r"^\s*-?\s*(?P<field>id|algorithm|secret)\s*:\s*(?P<value>\S+)\s*$", re.MULTILINE)


def parse_tsig_key_text(text: str) -> TsigKey:
    """A TSIG key from one line ``NAME:ALGORITHM:BASE64SECRET``, or from a key file as BIND's
    tsig-keygen (``key "name" { algorithm …; secret "…"; };``) or Knot's keymgr (``id:``, ``algorithm:``,
    ``secret:``) writes it."""
    text = text.strip()
    bind = _BIND_KEY.search(text)
    if bind is not None:
        fields = {m["field"].lower(): m["value"] for m in _BIND_FIELD.finditer(bind["body"])}
        return parse_tsig_key(bind["name"], fields.get("algorithm"), fields.get("secret"))
    yaml = {m["field"].lower(): m["value"].strip("'\"") for m in _YAML_FIELD.finditer(text)}
    if "id" in yaml:
        return parse_tsig_key(yaml["id"], yaml.get("algorithm"), yaml.get("secret"))
    parts = text.split(":")
    if len(parts) != 3 or "\n" in text:
        raise InvalidInput(
            "a TSIG key is NAME:ALGORITHM:BASE64SECRET (such as anchor-update:hmac-sha256:c2Vj…), or a key "
            "file as tsig-keygen or keymgr writes it"
        )
    return parse_tsig_key(*parts)
