"""Moving one slot (a distribution and its names) a step towards what its item asks for.

Each step reads the distribution (GetDistribution: its aliases, its viewer certificate, Deployed or not),
then does at most one thing, in this order, so every moment's configuration has a certificate covering
every alias:

1. names that must go (leaving, or failed) still aliased: an update without them, certificate unchanged;
2. no name left: an update to no alias and CloudFront's default certificate;
3. the serving certificate does not cover the names to serve, or lists a leaving one: a certificate for
   exactly those names is requested (its idempotency token from the slot, its generation and the names),
   and once ACM has issued it, aliases and viewer certificate are swapped in one update;
4. names covered but not aliased yet: an update adding them;
5. nothing to change and the distribution Deployed: the certificates it replaced are deleted (ACM refuses
   while CloudFront still holds one: kept for the next step).

Updates run under the lease ``cdn:<distribution id>`` (one update per distribution at a time across
control-plane processes), with IfMatch from GetDistributionConfig; PreconditionFailed (another writer came
first) re-reads everything and plans again. A name CloudFront refuses (CNAMEAlreadyExists…) is recorded as
failed and left out; when several names were being added, each is tried alone so one refusal keeps no
other name off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.acm_certificates import AcmCertificates, idempotency_token
from anchor_deploy.adapters.aws.cdn_placements import PlacementBook, Slot
from anchor_deploy.adapters.aws.client_errors import error_code, is_error
from anchor_deploy.adapters.aws.cloudfront import CloudFrontDistributions, origin_of
from anchor_deploy.adapters.aws.lambda_functions import ClientSource
from anchor_deploy.ports.leases import LeaseRepository

NO_PRODUCTION = "attached once the project has a production deployment"
BUSY = "another control-plane process is updating the distribution"
DEPLOYING = "CloudFront is deploying the distribution"
GONE = "the distribution is gone: the names go on the one made in its place"
DEAD_CERTIFICATE = ("FAILED", "VALIDATION_TIMED_OUT", "REVOKED", "EXPIRED", "INACTIVE")
PRECONDITION_ROUNDS = 4


class _Stale(Exception):
    """Another writer changed the distribution between our read and our update."""


@dataclass(frozen=True)
class Outcome:
    """What a step found: ``deployed`` when the distribution was Deployed and this step changed nothing on
    it; ``waiting`` what the slot waits for ("" : nothing); ``error`` an AWS refusal that names no name."""

    deployed: bool = False
    waiting: str = ""
    error: str = ""


def refusal(code: str, message: str, name: str = "") -> str:
    """AWS's refusal in words a user can act on."""
    if code == "CNAMEAlreadyExists" and name:
        return (
            f"{name} is already an alternate name of another CloudFront distribution (maybe in another AWS "
            f"account); remove it there, then retry (CloudFront: {code}: {message})"
        )
    if code == "TooManyDistributionCNAMEs":
        quota = "the distribution holds as many alternate names as its quota allows"
        return f"{quota} (CloudFront: {code}: {message})"
    return f"CloudFront refused the update: {code}: {message}"


def viewer_certificate(arn: str) -> dict[str, Any]:
    if not arn:
        return {"CloudFrontDefaultCertificate": True, "MinimumProtocolVersion": "TLSv1"}
    return {
        "CloudFrontDefaultCertificate": False,
        "ACMCertificateArn": arn,
        "SSLSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
        "CertificateSource": "acm",
    }


class SlotDriver:
    def __init__(
        self,
        clients: ClientSource,
        book: PlacementBook,
        distributions: CloudFrontDistributions,
        certificates: AcmCertificates,
        leases: LeaseRepository,
        holder: str,
        lease_ttl: float = 120.0,
    ) -> None:
        self._cloudfront = clients.client("cloudfront")
        self._book = book
        self._distributions = distributions
        self._certificates = certificates
        self._leases = leases
        self._holder = holder
        self._ttl = lease_ttl

    # -- the distribution ------------------------------------------------------------------------
    def ensure_distribution(self, slot: Slot) -> Slot:
        """The slot with its distribution known (made for k > 0 with slot 0's origin); unchanged when the
        project has no production distribution yet."""
        if slot.distribution_id:
            return slot
        listed = self._distributions.slots(slot.project_id)
        zero = listed.get(0)
        if zero is None:
            return slot
        if slot.index == 0:
            return self._book.made(slot, str(zero["Id"]), str(zero["DomainName"]))
        origin = origin_of(zero)
        if origin is None:
            return slot
        found = listed.get(slot.index)
        if found is not None:
            made = (str(found["Id"]), str(found["DomainName"]))
        else:
            made = self._distributions.ensure_slot(slot.project_id, slot.index, origin, str(slot.opened))
        return self._book.made(slot, *made)

    def follow_origin(self, distribution_id: str, origin: str) -> bool:
        """Point an extra slot's distribution at production's origin (under the distribution's lease);
        False when another process holds the lease or wrote first: the next converge tries again."""
        lease = f"cdn:{distribution_id}"
        if not self._leases.acquire_lease(lease, self._holder, self._ttl):
            return False
        try:
            self._distributions.set_origin(distribution_id, origin)
        except ClientError as error:
            if is_error(error, "PreconditionFailed"):
                return False
            raise
        finally:
            self._leases.release_lease(lease, self._holder)
        return True

    # -- one step ----------------------------------------------------------------------------------
    def advance(self, slot: Slot) -> tuple[Slot, Outcome]:
        slot = self.ensure_distribution(slot)
        if not slot.distribution_id:
            return slot, Outcome(waiting=NO_PRODUCTION)
        lease = f"cdn:{slot.distribution_id}"
        if not self._leases.acquire_lease(lease, self._holder, self._ttl):
            return slot, Outcome(waiting=BUSY)
        try:
            for _ in range(PRECONDITION_ROUNDS):
                fresh = self._book.slot(slot.project_id, slot.index)
                if fresh is None:
                    return slot, Outcome()
                try:
                    return self._step(fresh)
                except _Stale:
                    continue
                except ClientError as error:
                    if not is_error(error, "NoSuchDistribution"):
                        raise
                    return self._book.change(fresh, _lost), Outcome(waiting=GONE)
            return slot, Outcome(waiting="CloudFront kept answering PreconditionFailed; trying again")
        finally:
            self._leases.release_lease(lease, self._holder)

    def _step(self, slot: Slot) -> tuple[Slot, Outcome]:
        live = self._cloudfront.get_distribution(Id=slot.distribution_id)["Distribution"]
        config = live["DistributionConfig"]
        aliases = tuple(config.get("Aliases", {}).get("Items") or ())
        serving = str(config.get("ViewerCertificate", {}).get("ACMCertificateArn") or "")
        slot = self._learn(slot, aliases, serving)
        target = set(slot.target())
        if set(aliases) - target:
            kept = tuple(sorted(set(aliases) & target))
            return self._update(slot, kept, slot.serving_arn if kept else "")
        if not target:
            if serving:
                return self._update(slot, (), "")
            if slot.pending_arn:  # asked for names that have all gone meanwhile
                slot = self._book.change(slot, _drop_pending)
        elif not target <= set(slot.serving_names) or set(slot.serving_names) & slot.leaving:
            return self._replace_certificate(slot, tuple(sorted(target)))
        elif target - set(aliases):
            return self._update(slot, tuple(sorted(target)), slot.serving_arn)
        if live.get("Status") != "Deployed":
            return slot, Outcome(waiting=DEPLOYING)
        return self._delete_retired(slot), Outcome(deployed=True)

    def _learn(self, slot: Slot, aliases: tuple[str, ...], serving: str) -> Slot:
        """The slot's item told what CloudFront holds (a crash may have cut an update's bookkeeping short)."""
        if slot.aliases == aliases and slot.serving_arn == serving:
            return slot

        def learn(s: Slot) -> Slot:
            if serving == s.serving_arn:
                return replace(s, aliases=aliases)
            if serving and serving == s.pending_arn:
                return _swapped(s, aliases, serving, s.pending_names)
            retired = s.retired + ((s.serving_arn,) if s.serving_arn else ())
            return replace(s, aliases=aliases, serving_arn=serving, serving_names=(), retired=retired)

        return self._book.change(slot, learn)

    # -- certificates --------------------------------------------------------------------------------
    def _replace_certificate(self, slot: Slot, names: tuple[str, ...]) -> tuple[Slot, Outcome]:
        if slot.pending_arn and not set(slot.pending_names) & slot.leaving:
            pending = self._certificates.describe(slot.pending_arn)
            kept = set(slot.aliases) & set(names)
            wanted = tuple(sorted(set(names) & set(slot.pending_names)))
            if pending is not None and pending.status == "ISSUED" and kept <= set(wanted) and wanted:
                return self._update(slot, wanted, slot.pending_arn)
            if pending is not None and pending.status == "PENDING_VALIDATION":
                return slot, Outcome(
                    waiting=f"ACM is validating the certificate for {len(slot.pending_names)} names"
                )
            if (
                pending is not None
                and pending.status not in DEAD_CERTIFICATE
                and kept <= set(slot.pending_names)
            ):
                return slot, Outcome(waiting=f"the new certificate is {pending.status}")
        slot = self._request(slot, names)
        return slot, Outcome(waiting=f"ACM is validating the certificate for {len(names)} names")

    def _request(self, slot: Slot, names: tuple[str, ...]) -> Slot:
        generation = slot.generation + 1
        token = idempotency_token(slot.project_id, str(slot.index), str(generation), *names)
        arn = self._certificates.request(list(names), token)  # counted by AcmCertificates' on_request

        def pend(s: Slot) -> Slot:
            dropped = (s.pending_arn,) if s.pending_arn and s.pending_arn != arn else ()
            retired = s.retired + dropped
            return replace(s, pending_arn=arn, pending_names=names, generation=generation, retired=retired)

        return self._book.change(slot, pend)

    def _delete_retired(self, slot: Slot) -> Slot:
        if not slot.retired:
            return slot
        gone = {arn for arn in slot.retired if self._certificates.delete(arn)}
        if not gone:
            return slot
        return self._book.change(
            slot, lambda s: replace(s, retired=tuple(a for a in s.retired if a not in gone))
        )

    # -- updates ---------------------------------------------------------------------------------------
    def _update(self, slot: Slot, aliases: tuple[str, ...], arn: str) -> tuple[Slot, Outcome]:
        added = sorted(set(aliases) - set(slot.aliases))
        try:
            self._write(slot.distribution_id, aliases, arn)
        except ClientError as error:
            code, message = error_code(error), str(error.response.get("Error", {}).get("Message", ""))
            if not added:
                return slot, Outcome(error=refusal(code, message))
            if len(added) == 1:
                return self._failed(slot, added[0], refusal(code, message, added[0])), Outcome(
                    waiting=DEPLOYING
                )
            return self._one_by_one(slot, aliases, arn, added)
        return self._written(slot, aliases, arn), Outcome(waiting=DEPLOYING)

    def _one_by_one(
        self, slot: Slot, aliases: tuple[str, ...], arn: str, added: list[str]
    ) -> tuple[Slot, Outcome]:
        """Several new names were refused together: each is tried alone, so one refusal holds no other."""
        on = [name for name in aliases if name not in added]
        for name in added:
            try:
                self._write(slot.distribution_id, tuple(sorted([*on, name])), arn)
            except ClientError as error:
                code, message = error_code(error), str(error.response.get("Error", {}).get("Message", ""))
                slot = self._failed(slot, name, refusal(code, message, name))
                continue
            on.append(name)
            slot = self._written(slot, tuple(sorted(on)), arn)
        return slot, Outcome(waiting=DEPLOYING)

    def _write(self, distribution_id: str, aliases: tuple[str, ...], arn: str) -> None:
        answer = self._cloudfront.get_distribution_config(Id=distribution_id)
        config = answer["DistributionConfig"]
        config["Aliases"] = {"Quantity": len(aliases), **({"Items": list(aliases)} if aliases else {})}
        config["ViewerCertificate"] = viewer_certificate(arn)
        try:
            self._cloudfront.update_distribution(
                Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=config
            )
        except ClientError as error:
            if is_error(error, "PreconditionFailed"):
                raise _Stale() from error
            raise

    def _written(self, slot: Slot, aliases: tuple[str, ...], arn: str) -> Slot:
        def record(s: Slot) -> Slot:
            if arn == s.serving_arn:
                return replace(s, aliases=aliases)
            if arn and arn == s.pending_arn:
                return _swapped(s, aliases, arn, s.pending_names)
            retired = s.retired + ((s.serving_arn,) if s.serving_arn else ())
            return replace(s, aliases=aliases, serving_arn=arn, serving_names=(), retired=retired)

        return self._book.change(slot, record)

    def _failed(self, slot: Slot, name: str, reason: str) -> Slot:
        return self._book.change(slot, lambda s: replace(s, failed={**s.failed, name: reason}))


def _swapped(slot: Slot, aliases: tuple[str, ...], arn: str, names: tuple[str, ...]) -> Slot:
    """The pending certificate is serving now; the one it replaced is to be deleted."""
    retired = slot.retired + ((slot.serving_arn,) if slot.serving_arn and slot.serving_arn != arn else ())
    return replace(
        slot,
        aliases=aliases,
        serving_arn=arn,
        serving_names=names,
        pending_arn="",
        pending_names=(),
        retired=retired,
    )


def _drop_pending(slot: Slot) -> Slot:
    if not slot.pending_arn:
        return slot
    return replace(slot, pending_arn="", pending_names=(), retired=(*slot.retired, slot.pending_arn))


def _lost(slot: Slot) -> Slot:
    """The slot's distribution was deleted behind our back: found or made again on the next step (slot 0:
    by the production deployment's own repair), which then gets the slot's names and a certificate."""
    retired = slot.retired + ((slot.serving_arn,) if slot.serving_arn else ())
    return replace(
        slot, distribution_id="", domain="", aliases=(), serving_arn="", serving_names=(), retired=retired
    )
