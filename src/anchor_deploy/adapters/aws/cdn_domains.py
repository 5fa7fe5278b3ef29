"""CloudFrontDomains: the AWS DomainPlane. Custom domains served by CloudFront with ACM certificates.

Layout: a project's names are placed on slots (adapters/aws/cdn_placements.py): slot 0 is the project's
production distribution, slot k > 0 an extra distribution with the same origin, made when the slots before
it are full. A slot takes min(names per ACM certificate, aliases per distribution) names (10 by AWS's
defaults), because its one viewer certificate must cover every alias on it: each slot has one serving
certificate for exactly its names, replaced (requested anew, swapped in once issued, the old one deleted)
when they change (adapters/aws/cdn_slots.py). The domain's own certificate (requested by the ACM issuer)
only proves the name validates; its validation CNAME stays in DNS, so the serving certificate with one more
name validates within minutes.

A name is placed when its routing record is first shown (``routing_records``), so its CNAME target is
stable; ``detach`` frees the place once the name is off the distribution and no certificate of the slot
lists it any more. A project's distributions go with the project: ``forget_project`` takes them down
without waiting (disable, then delete once Deployed), as the runtime's ``stop_project`` does with
waiting (CloudFrontDistributions.delete); whichever comes first, the other finds nothing left.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.acm_certificates import AcmCertificates
from anchor_deploy.adapters.aws.aws_quotas import (
    CERTIFICATES,
    DISTRIBUTIONS,
    REQUESTS_PER_YEAR,
    AwsQuotas,
    how_to_raise,
)
from anchor_deploy.adapters.aws.cdn_placements import PlacementBook, Slot, SlotGone
from anchor_deploy.adapters.aws.cdn_quota_use import quota_uses
from anchor_deploy.adapters.aws.cdn_slots import Outcome, SlotDriver
from anchor_deploy.adapters.aws.client_errors import error_code
from anchor_deploy.adapters.aws.cloudfront import CloudFrontDistributions, origin_of
from anchor_deploy.adapters.aws.dynamo_table import DynamoTable
from anchor_deploy.adapters.aws.lambda_functions import ClientSource
from anchor_deploy.model.domains import DnsRecord, Domain, IssuedInfo
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import QuotaExceeded
from anchor_deploy.ports.issuance import Attachment, AttachState, IssuedCertificate, QuotaUse
from anchor_deploy.ports.leases import LeaseRepository

log = logging.getLogger(__name__)

LEFTOVER_GRACE = 600.0  # a placement no domain owns is dropped only this long after it was made
APEX_NOTE = (
    "a CNAME is not allowed at an apex: use your DNS provider's ALIAS/ANAME, or a Route 53 alias "
    "(A and AAAA, hosted zone Z2FDTNDATAQYW2)"
)
UNKNOWN_TARGET_NOTE = (
    "the target is the project's CloudFront domain, made with its first production deployment"
)


class _NoRoom(Exception):
    pass


class CloudFrontDomains:
    kind = "cloudfront"

    def __init__(
        self,
        book: PlacementBook,
        driver: SlotDriver,
        distributions: CloudFrontDistributions,
        certificates: AcmCertificates,
        quotas: AwsQuotas,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._book = book
        self._driver = driver
        self._distributions = distributions
        self._certificates = certificates
        self._quotas = quotas
        self._clock = clock

    # -- placement ---------------------------------------------------------------------------------
    def admit(self, domain: Domain, project: Project, held: Sequence[Domain]) -> None:
        slots = self._book.slots(project.id)
        if not any(domain.name in s.names for s in slots):
            size = self._quotas.slot_size()
            if slots and not any(not s.closing and len(s.names) < size for s in slots):
                self._distribution_room(domain.name)
        self._certificate_room(domain.name)

    def _distribution_room(self, name: str) -> int:
        """Distributions the account may still make (QuotaExceeded when none)."""
        limit = self._quotas.limit(DISTRIBUTIONS)
        listed = self._quotas.distributions()
        used = listed + self._book.making()
        if used >= limit.value:
            raise QuotaExceeded(
                f"no room for {name}: every distribution of the project holds {self._quotas.slot_size()} "
                f"names and the account has {used} of {limit.value} CloudFront distributions "
                f'("{DISTRIBUTIONS.name}", {limit.source}); {how_to_raise(DISTRIBUTIONS)}'
            )
        return limit.value - listed

    def _certificate_room(self, name: str) -> None:
        """Room for the domain's own certificate and one serving certificate being replaced."""
        limit = self._quotas.limit(CERTIFICATES)
        used = self._quotas.certificates()
        if used + 2 > limit.value:
            raise QuotaExceeded(
                f"no room for {name}: the account holds {used} of {limit.value} ACM certificates "
                f'("{CERTIFICATES.name}", {limit.source}); {how_to_raise(CERTIFICATES)}'
            )
        year = time.gmtime(self._clock()).tm_year
        requests = self._quotas.limit(REQUESTS_PER_YEAR)
        made = self._book.requests(year)
        if made + 2 > requests.value:
            raise QuotaExceeded(
                f"no room for {name}: {made} of {requests.value} ACM certificate requests this year "
                f'("{REQUESTS_PER_YEAR.name}", {requests.source}); {how_to_raise(REQUESTS_PER_YEAR)}'
            )

    def place(self, name: str, project_id: str) -> Slot:
        """The slot of ``name``: where it is, else the first with room, else a new one."""
        size = self._quotas.slot_size()
        for _ in range(20):
            slots = self._book.slots(project_id)
            held = next((s for s in slots if name in s.names), None)
            if held is not None:
                return held
            for slot in slots:
                if slot.closing or len(slot.names) >= size:
                    continue
                try:
                    return self._book.change(slot, lambda s: self._add_name(s, name, size))
                except (_NoRoom, SlotGone):
                    continue
            index = max((s.index for s in slots), default=-1) + 1
            room = None if index == 0 else self._distribution_room(name)
            self._book.open_slot(project_id, index, room)
        raise QuotaExceeded(f"no room for {name}: other control-plane processes keep taking it; try again")

    def _add_name(self, slot: Slot, name: str, size: int) -> Slot | None:
        if name in slot.names:
            return None
        if slot.closing or len(slot.names) >= size:
            raise _NoRoom()
        return replace(slot, names={**slot.names, name: self._clock()})

    def routing_records(self, domain: Domain, project: Project, apex: bool) -> list[DnsRecord]:
        """Where the name's slot is reached. Asked first of a new domain, this places it; a domain being
        removed is never placed again: its records are the ones of the slot that still holds it, if any."""
        target = ""
        if domain.deleting:
            held = self._book.holding(project.id, domain.name)
            target = held.domain if held is not None else ""
        else:
            target = self._driver.ensure_distribution(self.place(domain.name, project.id)).domain
        routed = domain.name if domain.name.startswith("*.") else domain.base_name
        note = "" if target else UNKNOWN_TARGET_NOTE
        if apex:
            return [DnsRecord("ALIAS", routed, target, "routing", f"{APEX_NOTE}. {note}".strip())]
        return [DnsRecord("CNAME", routed, target, "routing", note)]

    # -- attach and detach ---------------------------------------------------------------------------
    def attach(self, domain: Domain, project: Project) -> Attachment:
        """One step; AWS's refusals answered FAILED with AWS's code and message, AWS out of reach PENDING."""
        try:
            return self._attach(domain, project)
        except QuotaExceeded as exc:
            return Attachment(AttachState.FAILED, str(exc))
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            return Attachment(AttachState.FAILED, f"AWS refused: {error_code(exc)}: {message}")
        except BotoCoreError as exc:
            return Attachment(AttachState.PENDING, f"AWS could not be reached: {exc}")

    def _attach(self, domain: Domain, project: Project) -> Attachment:
        name = domain.name
        slot = self.place(name, project.id)
        if name in slot.failed:
            if name not in slot.reported:
                self._book.change(slot, lambda s: replace(s, reported=s.reported | {name}))
                return Attachment(AttachState.FAILED, slot.failed[name])
            slot = self._book.change(slot, lambda s: _retry(s, name))  # told before: a retry
        if name not in slot.ready or name in slot.leaving:
            slot = self._book.change(
                slot, lambda s: replace(s, ready=s.ready | {name}, leaving=s.leaving - {name})
            )
        slot, outcome = self._driver.advance(slot)
        return self._attachment(slot, name, outcome)

    def _attachment(self, slot: Slot, name: str, outcome: Outcome) -> Attachment:
        if name in slot.failed:
            self._book.change(slot, lambda s: replace(s, reported=s.reported | {name}))
            return Attachment(AttachState.FAILED, slot.failed[name])
        if name in slot.aliases and name in slot.serving_names and outcome.deployed:
            return Attachment(AttachState.ACTIVE, served=self._served(slot.serving_arn))
        if outcome.error:
            return Attachment(AttachState.FAILED, outcome.error)
        if name in slot.aliases and name in slot.serving_names:
            return Attachment(AttachState.PENDING, "CloudFront is deploying the distribution")
        return Attachment(
            AttachState.PENDING, outcome.waiting or "waiting for the distribution's certificate"
        )

    def _served(self, arn: str) -> IssuedCertificate | None:
        found = self._certificates.describe(arn)
        if found is None:
            return None
        info = IssuedInfo(found.serial, found.issuer, found.not_before or 0.0, found.not_after or 0.0)
        return IssuedCertificate(arn, info, renewal=found.renewal_status)

    def detach(self, domain: Domain) -> bool:
        try:
            return self._detach(domain)
        except (ClientError, BotoCoreError) as exc:  # called again with backoff
            log.warning("taking %s off CloudFront: %s", domain.name, exc)
            return False

    def _detach(self, domain: Domain) -> bool:
        name = domain.name
        slot = self._book.holding(domain.project_id, name)
        if slot is None:
            return True
        if name not in slot.leaving:
            slot = self._book.change(slot, lambda s: replace(s, leaving=s.leaving | {name}))
        slot, outcome = self._driver.advance(slot)
        settled = outcome.deployed or not slot.distribution_id  # no distribution: nothing on CloudFront
        if name in slot.aliases or slot.lists(name) or slot.retired or not settled:
            return False
        with contextlib.suppress(SlotGone):
            slot = self._book.change(slot, lambda s: _release(s, name))
            if slot.index > 0 and not slot.names:  # an empty extra slot: its distribution goes
                self._close(slot, {"closed": []})
        return True

    # -- project deletion, converge ------------------------------------------------------------------
    def forget_project(self, project_id: str) -> None:
        slots = self._book.slots(project_id)
        for slot in slots:
            if not slot.closing:
                self._book.change(slot, lambda s: replace(s, closing=True))
        gone = [
            self._distributions.retire(str(d["Id"])) for d in self._distributions.slots(project_id).values()
        ]
        if not all(gone):
            return  # disabled: deleted on a later call, once CloudFront has deployed that
        for slot in self._book.slots(project_id):
            left = tuple(arn for arn in slot.certificates() if not self._certificates.delete(arn))
            if left:
                self._book.change(slot, functools.partial(_only_certificates, left=left))
            else:
                self._book.drop(slot)
        if not self._book.slots(project_id):
            self._book.forget(project_id)

    def converge(self, domains: Sequence[Domain]) -> dict[str, list[str]]:
        done: dict[str, list[str]] = {"advanced": [], "released": [], "closed": [], "origins": []}
        owners = {(d.project_id, d.name): d for d in domains}
        projects = set(self._book.projects()) | {d.project_id for d in domains}
        try:
            self._follow_origins(done)
        except Exception as exc:  # the slots below are converged all the same
            log.warning("CloudFront origins of extra slots: %s", exc)
        for project_id in sorted(projects):
            for slot in self._book.slots(project_id):
                try:
                    self._converge_slot(slot, owners, done)
                except Exception as exc:  # one slot's trouble does not stop the others'
                    log.warning("CloudFront slot %s of %s: %s", slot.index, project_id, exc)
        return done

    def _follow_origins(self, done: dict[str, list[str]]) -> None:
        """Extra slots serve what production serves: their origin follows slot 0's (one listing)."""
        for project_id, listed in self._distributions.all_slots().items():
            production = origin_of(listed[0]) if 0 in listed else None
            for index, summary in sorted(listed.items()):
                if index == 0 or production is None or origin_of(summary) == production:
                    continue
                if self._driver.follow_origin(str(summary["Id"]), production):
                    done["origins"].append(f"{project_id} #{index}")

    def _converge_slot(
        self, slot: Slot, owners: dict[tuple[str, str], Domain], done: dict[str, list[str]]
    ) -> None:
        now = self._clock()
        orphans = {
            n
            for n, placed in slot.names.items()
            if (slot.project_id, n) not in owners and now - placed > LEFTOVER_GRACE
        }
        deleting = {
            n for n in slot.names if (d := owners.get((slot.project_id, n))) is not None and d.deleting
        }
        leaving = (orphans | deleting) - slot.leaving
        if leaving:
            slot = self._book.change(slot, lambda s: replace(s, leaving=s.leaving | leaving))
        if slot.closing:
            self._close(slot, done)
            return
        settled = True
        unsettled = (
            slot.pending_arn or slot.retired or slot.leaving or set(slot.target()) != set(slot.aliases)
        )
        if slot.distribution_id and unsettled:
            slot, outcome = self._driver.advance(slot)
            done["advanced"].append(f"{slot.project_id} #{slot.index}")
            settled = outcome.deployed
        for name in sorted(orphans & set(slot.names)):
            if settled and name not in slot.aliases and not slot.lists(name) and not slot.retired:
                slot = self._book.change(slot, functools.partial(_release, name=name))
                done["released"].append(name)
        if slot.index > 0 and not slot.names:
            self._close(slot, done)

    def _close(self, slot: Slot, done: dict[str, list[str]]) -> None:
        """An extra slot with no name: its distribution taken down, then its item."""
        try:
            slot = self._book.change(slot, _closing)
        except SlotGone:
            return
        if not slot.closing or slot.names:
            return
        if slot.distribution_id and not self._distributions.retire(slot.distribution_id):
            return
        if all(self._certificates.delete(arn) for arn in slot.certificates()):
            self._book.drop(slot)
            done["closed"].append(f"{slot.project_id} #{slot.index}")

    def quotas(self, project: Project | None) -> list[QuotaUse]:
        projects = [project.id] if project else self._book.projects()
        slots = [s for p in projects for s in self._book.slots(p)]
        scope = f"project {project.name}" if project else "account"
        return quota_uses(self._quotas, self._book, slots, scope, self._clock())


def _retry(slot: Slot, name: str) -> Slot:
    failed = {n: r for n, r in slot.failed.items() if n != name}
    return replace(slot, failed=failed, reported=slot.reported - {name})


def _release(slot: Slot, name: str) -> Slot:
    names = {n: t for n, t in slot.names.items() if n != name}
    failed = {n: r for n, r in slot.failed.items() if n != name}
    return replace(
        slot,
        names=names,
        ready=slot.ready - {name},
        leaving=slot.leaving - {name},
        failed=failed,
        reported=slot.reported - {name},
    )


def _only_certificates(slot: Slot, left: tuple[str, ...]) -> Slot:
    """A slot whose distribution is gone, still holding the certificates ACM would not delete yet."""
    return replace(slot, serving_arn="", serving_names=(), pending_arn="", pending_names=(), retired=left)


def _closing(slot: Slot) -> Slot | None:
    return replace(slot, closing=True) if not slot.closing and not slot.names else None


def cloudfront_domains(
    clients: ClientSource,
    table: DynamoTable,
    leases: LeaseRepository,
    distributions: CloudFrontDistributions,
    certificates: AcmCertificates,
    holder: str,
    quota_settings: dict[str, int] | None = None,
    clock: Callable[[], float] = time.time,
    lease_ttl: float = 120.0,
) -> CloudFrontDomains:
    """The plane on the store's table (its placements) and leases; ``holder`` names this process in the
    leases; ``quota_settings``: Settings.aws_quotas (0: ask Service Quotas)."""
    book = PlacementBook(table, clock)
    driver = SlotDriver(clients, book, distributions, certificates, leases, holder, lease_ttl)
    quotas = AwsQuotas(clients, quota_settings)
    return CloudFrontDomains(book, driver, distributions, certificates, quotas, clock)
