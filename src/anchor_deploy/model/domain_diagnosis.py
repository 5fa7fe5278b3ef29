"""What DNS says about a custom domain, in words a user can act on, and what a domain's next step is.

Pure: the answers come in (a ``Query`` is a DNS lookup the caller makes, never raising), the diagnosis and
the plan come out. The domain lifecycle (services/domain_lifecycle.py) executes the plan."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from anchor_deploy.model.dns_answers import DnsAnswer, DnsOutcome
from anchor_deploy.model.domain_policy import PublicSuffixOf, caa_names
from anchor_deploy.model.domains import CdnStatus, CertificateStatus, DnsRecord, DnsStatus, Domain

Query = Callable[[str, str], DnsAnswer]
"""One lookup: (name, record type) -> the answer."""

SERVED = (CertificateStatus.ISSUED, CertificateStatus.EXPIRED)
RETRYABLE = (CertificateStatus.FAILED, CertificateStatus.VALIDATION_TIMED_OUT)


def waiting_reason(record: DnsRecord, found: DnsAnswer | None) -> str:
    """Why a validation CNAME is not accepted yet: not looked at, pointing elsewhere, or missing."""
    if found is None:
        return f"waiting for the validation record: add CNAME {record.name} -> {record.value}"
    if found.outcome == DnsOutcome.OK:
        shown = found.describe()
        return f"CNAME {record.name} points to {shown} at the resolver; it must point to {record.value}"
    return f"CNAME {record.name} not found at the resolver; found {found.describe()}"


def record_present(record: DnsRecord, found: DnsAnswer) -> bool:
    return found.outcome == DnsOutcome.OK and record.value.lower().rstrip(".") in found.values


def caa_warning(name: str, identity: str, query: Query, public_suffix: PublicSuffixOf) -> str:
    """A warning when a CAA record at the name (or the closest parent with one) forbids the CA whose CAA
    identity is ``identity`` ("" : no CA to check for)."""
    if not identity:
        return ""
    for at in caa_names(name, public_suffix):
        answer = query(at, "CAA")
        if answer.outcome != DnsOutcome.OK:
            continue
        tag = "issuewild" if name.startswith("*.") else "issue"
        allowed = [v.split(" ", 1)[1] for v in answer.values if v.startswith(tag + " ")]
        if not allowed and tag == "issuewild":
            allowed = [v.split(" ", 1)[1] for v in answer.values if v.startswith("issue ")]
        if not allowed or any(a.split(";")[0].strip() == identity for a in allowed):
            return ""
        return (
            f". Warning: the CAA record at {at} allows only {', '.join(allowed)}; "
            f'add CAA 0 {tag} "{identity}" or the certificate cannot be issued'
        )
    return ""


def probe_name(domain: Domain) -> str:
    """The name a check resolves or connects to: a wildcard is looked at through one name under it."""
    return "anchor-probe." + domain.base_name if domain.name.startswith("*.") else domain.name


def routing_diagnosis(
    domain: Domain, records: Sequence[DnsRecord], query: Query, edge_addresses: Sequence[str] = ()
) -> tuple[DnsStatus, str]:
    """Do the routing records point at the edge (a CNAME to its host name, addresses among its own, or an
    ALIAS whose addresses are the target's)? ``edge_addresses`` also count where a CNAME is asked for (the
    edge's own addresses, entered by hand). They do not block issuance; the note says what to fix."""
    routing = [r for r in records if r.purpose == "routing"]
    if not routing:
        return DnsStatus.UNKNOWN, ""
    name = probe_name(domain)
    cname = next((r.value for r in routing if r.type == "CNAME"), None)
    if cname is not None:
        found = query(name, "CNAME")
        if found.outcome == DnsOutcome.OK:
            if cname in found.values:
                return DnsStatus.OK, ""
            return (
                DnsStatus.MISCONFIGURED,
                f"CNAME {domain.name} points to {found.describe()}; point it to {cname}",
            )
        if found.outcome == DnsOutcome.ERROR:
            return DnsStatus.UNKNOWN, f"the routing record could not be checked: {found.detail}"
    addresses, problem = _addresses(name, query)
    if problem:
        return DnsStatus.UNKNOWN, problem
    wanted = {r.value for r in routing if r.type in ("A", "AAAA")} | set(edge_addresses)
    alias = next((r.value for r in routing if r.type == "ALIAS"), None)
    if alias is not None:
        wanted, problem = _addresses(alias, query)
        if problem:
            return DnsStatus.UNKNOWN, problem
    if addresses and wanted and addresses <= wanted:
        return DnsStatus.OK, ""
    if cname is not None:
        expected = f"CNAME {cname}"
    elif alias is not None:
        expected = f"an ALIAS (or ANAME) record to {alias}"
    else:
        expected = "A/AAAA " + ", ".join(sorted(wanted))
    shown = ", ".join(sorted(addresses)) or "nothing"
    return DnsStatus.MISCONFIGURED, f"{domain.name} resolves to {shown}; add {expected} to reach the edge"


def _addresses(name: str, query: Query) -> tuple[set[str], str]:
    found: set[str] = set()
    for rdtype in ("A", "AAAA"):
        answer = query(name, rdtype)
        if answer.outcome == DnsOutcome.ERROR:
            return set(), f"the routing record could not be checked: {answer.detail}"
        found.update(answer.values)
    return found, ""


def missing_validation(records: Sequence[DnsRecord], query: Query) -> list[DnsRecord]:
    """The validation records no longer in DNS (a renewal needs them); records that cannot be looked up
    now are not counted as missing."""
    missing = []
    for record in records:
        if record.purpose != "validation" or record.type != "CNAME":
            continue
        found = query(record.name, "CNAME")
        if found.outcome in (DnsOutcome.NXDOMAIN, DnsOutcome.NODATA) or (
            found.outcome == DnsOutcome.OK and not record_present(record, found)
        ):
            missing.append(record)
    return missing


class Step(enum.StrEnum):
    """What one check of a domain does."""

    NOTHING = "nothing"  # gone, or waiting for the user to retry
    FINISH_REMOVAL = "finish_removal"
    TIME_OUT = "time_out"  # the validation deadline passed
    REQUEST = "request"  # no order with the issuer yet
    POLL = "poll"  # an order is pending: ask the issuer
    ATTACH = "attach"  # issued, not active at the edge yet
    RENEW = "renew"  # issued, due for a new certificate (issuers that do not renew by themselves)
    MAINTAIN = "maintain"  # issued and active: watch routing, renewal, expiry


def plan(domain: Domain | None, now: float, renews_itself: bool, outdated: bool, has_order: bool) -> Step:
    """The next step of a domain, from its row alone (``outdated``: its issuer wants it replaced;
    ``has_order``: the issuer holds an order for it)."""
    if domain is None:
        return Step.NOTHING
    if domain.deleting:
        return Step.FINISH_REMOVAL
    status = domain.certificate_status
    if status == CertificateStatus.PENDING_VALIDATION:
        if now >= domain.validation_deadline:
            return Step.TIME_OUT
        return Step.POLL if has_order else Step.REQUEST
    if status not in SERVED or domain.certificate is None:
        return Step.NOTHING
    if not renews_itself and (now >= domain.certificate.renew_after() or outdated):
        return Step.RENEW
    if domain.cdn_status != CdnStatus.ACTIVE:
        return Step.ATTACH
    return Step.MAINTAIN
