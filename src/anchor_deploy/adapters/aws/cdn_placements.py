"""Where each custom domain of a project is served on CloudFront: its placement ("slot"), kept in the
store's DynamoDB table.

A project's names are spread over slots: slot 0 is the project's production distribution, slot k > 0 an
extra distribution with the same origin, made when the slots before it are full. One item per slot
(pk ``CDN#<project id>``, sk ``SLOT#<k>``) holds the distribution, the names placed on it and what became
of them, the serving certificate (one per distribution: CloudFront has exactly one viewer certificate, which
must cover every alias), the pending certificate that will replace it, and certificates to delete.

Every change is a compare-and-set on the item's ``version``, so two control-plane processes never both
take the last room of a slot. A new slot k > 0 is counted, in the same transaction, on the account's item
(pk ``CDN#ACCOUNT``): ``making`` is the number of slots whose distribution is not made yet, kept below the
room the distributions quota leaves, so two processes never both take the last distribution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from anchor_deploy.adapters.aws.dynamo_base import ATTEMPTS
from anchor_deploy.adapters.aws.dynamo_table import DynamoTable, StoreContended, TransactionCanceled

ACCOUNT_PK = "CDN#ACCOUNT"
COUNTS_SK = "COUNTS"


def slot_pk(project_id: str) -> str:
    return f"CDN#{project_id}"


def slot_sk(index: int) -> str:
    return f"SLOT#{index:04d}"


@dataclass(frozen=True)
class Slot:
    """One distribution of a project and the names placed on it (see the module's docstring)."""

    project_id: str
    index: int
    distribution_id: str = ""  # "" until known (slot 0: the production distribution, made by part 1)
    domain: str = ""  # d….cloudfront.net
    names: dict[str, float] = field(default_factory=dict)  # placed here: name -> when (routing shown)
    ready: frozenset[str] = frozenset()  # their own certificate issued: to be served
    leaving: frozenset[str] = frozenset()  # being removed
    failed: dict[str, str] = field(default_factory=dict)  # left out of updates: name -> AWS's reason
    reported: frozenset[str] = frozenset()  # failures already told to their domain (a new attach: retry)
    aliases: tuple[str, ...] = ()  # on the distribution, as last written
    serving_arn: str = ""  # the viewer certificate ("" : CloudFront's default)
    serving_names: tuple[str, ...] = ()
    pending_arn: str = ""  # requested to replace it
    pending_names: tuple[str, ...] = ()
    generation: int = 0  # counts certificate requests: part of their idempotency token
    retired: tuple[str, ...] = ()  # certificates to delete once CloudFront lets go
    closing: bool = False  # an empty extra slot being taken down: takes no new name
    opened: int = 0  # when the slot was made (seconds): its distribution's CallerReference holds it
    version: int = 0  # compare-and-set

    def target(self) -> tuple[str, ...]:
        """The names that should be aliases now: placed, ready, not leaving, not failed."""
        wanted = (self.ready & set(self.names)) - self.leaving - set(self.failed)
        return tuple(sorted(wanted))

    def certificates(self) -> tuple[str, ...]:
        """Every certificate this slot still holds."""
        return tuple(a for a in (self.serving_arn, self.pending_arn, *self.retired) if a)

    def lists(self, name: str) -> bool:
        """Whether a certificate of this slot (serving or pending) lists ``name``."""
        return name in self.serving_names or name in self.pending_names


def _item(slot: Slot) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": slot_pk(slot.project_id),
        "sk": slot_sk(slot.index),
        "project_id": slot.project_id,
        "slot": slot.index,
        "distribution_id": slot.distribution_id,
        "domain": slot.domain,
        "names": {name: Decimal(repr(at)) for name, at in slot.names.items()},  # floats nested in a map
        "ready": sorted(slot.ready),
        "leaving": sorted(slot.leaving),
        "failed": dict(slot.failed),
        "reported": sorted(slot.reported),
        "aliases": list(slot.aliases),
        "serving_arn": slot.serving_arn,
        "serving_names": list(slot.serving_names),
        "pending_arn": slot.pending_arn,
        "pending_names": list(slot.pending_names),
        "generation": slot.generation,
        "retired": list(slot.retired),
        "closing": slot.closing,
        "opened": slot.opened,
        "version": slot.version,
    }
    return item


def _slot(item: dict[str, Any]) -> Slot:
    return Slot(
        project_id=str(item["project_id"]),
        index=int(item["slot"]),
        distribution_id=str(item.get("distribution_id", "")),
        domain=str(item.get("domain", "")),
        names={str(k): float(v) for k, v in (item.get("names") or {}).items()},
        ready=frozenset(str(n) for n in item.get("ready") or ()),
        leaving=frozenset(str(n) for n in item.get("leaving") or ()),
        failed={str(k): str(v) for k, v in (item.get("failed") or {}).items()},
        reported=frozenset(str(n) for n in item.get("reported") or ()),
        aliases=tuple(str(n) for n in item.get("aliases") or ()),
        serving_arn=str(item.get("serving_arn", "")),
        serving_names=tuple(str(n) for n in item.get("serving_names") or ()),
        pending_arn=str(item.get("pending_arn", "")),
        pending_names=tuple(str(n) for n in item.get("pending_names") or ()),
        generation=int(item.get("generation", 0)),
        retired=tuple(str(a) for a in item.get("retired") or ()),
        closing=bool(item.get("closing", False)),
        opened=int(item.get("opened", 0)),
        version=int(item.get("version", 0)),
    )


class SlotGone(Exception):
    """The slot's item was deleted meanwhile (its distribution taken down)."""


class PlacementBook:
    """The slots of every project, in the store's table."""

    def __init__(self, table: DynamoTable, clock: Callable[[], float]) -> None:
        self._table = table
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def slots(self, project_id: str) -> list[Slot]:
        """The project's slots, by index."""
        items = self._table.query("pk = :p", {":p": slot_pk(project_id)})
        return sorted((_slot(i) for i in items), key=lambda s: s.index)

    def projects(self) -> list[str]:
        """Every project that has slots (each registered on the account's item when its first slot was
        made)."""
        items = self._table.query("pk = :a AND begins_with(sk, :p)", {":a": ACCOUNT_PK, ":p": "PROJECT#"})
        return [str(i["sk"]).removeprefix("PROJECT#") for i in items]

    def forget(self, project_id: str) -> None:
        """The project holds no slot any more."""
        self._table.write(self._table.delete(ACCOUNT_PK, f"PROJECT#{project_id}"))

    def slot(self, project_id: str, index: int) -> Slot | None:
        item = self._table.get(slot_pk(project_id), slot_sk(index))
        return None if item is None else _slot(item)

    def holding(self, project_id: str, name: str) -> Slot | None:
        """The slot ``name`` is placed on."""
        return next((s for s in self.slots(project_id) if name in s.names), None)

    def change(self, slot: Slot, edit: Callable[[Slot], Slot | None]) -> Slot:
        """Apply ``edit`` (None: nothing to change) to the stored slot, re-reading and applying it again
        when another writer changed the slot meanwhile. SlotGone if it no longer exists."""
        current: Slot | None = slot
        for _ in range(ATTEMPTS):
            if current is None:
                raise SlotGone(f"slot {slot.index} of {slot.project_id}")
            edited = edit(current)
            if edited is None:
                return current
            written = replace(edited, version=current.version + 1)
            operation = self._table.put(_item(written), "version = :v", values={":v": current.version})
            if self._table.write(operation) is not None:
                return written
            current = self.slot(slot.project_id, slot.index)
        raise StoreContended(f"slot {slot.index} of {slot.project_id}: too many concurrent writers")

    def open_slot(self, project_id: str, index: int, room: int | None) -> bool:
        """Make slot ``index`` (empty). ``room``: how many distributions may still be made in the account
        (None: slot 0, which is the production distribution and needs none). False if it exists already or
        the account has no room."""
        t = self._table
        put = t.put(_item(Slot(project_id, index, opened=int(self._clock()))), "attribute_not_exists(pk)")
        operations = [put, t.put({"pk": ACCOUNT_PK, "sk": f"PROJECT#{project_id}"})]
        if room is not None:
            counted = "attribute_not_exists(making) OR making < :room"
            values = {":one": 1, ":room": room}
            operations.append(t.update(ACCOUNT_PK, COUNTS_SK, "ADD making :one", counted, values=values))
        try:
            t.transact(operations)
        except TransactionCanceled as refused:
            if refused.failed(0) or refused.failed(2):
                return False
            raise
        return True

    def made(self, slot: Slot, distribution_id: str, domain: str) -> Slot:
        """The slot's distribution is known: recorded, and (slot k > 0) no longer counted as one to make."""
        first: list[bool] = []  # whether the write that took was the one that recorded it

        def record(s: Slot) -> Slot | None:
            first[:] = [not s.distribution_id]
            return replace(s, distribution_id=distribution_id, domain=domain)

        written = self.change(slot, record)
        if slot.index > 0 and first == [True]:
            self._table.write(self._table.update(ACCOUNT_PK, COUNTS_SK, "ADD making :m", values={":m": -1}))
        return written

    def making(self) -> int:
        """Slots k > 0 counted against the distributions quota whose distribution is not made yet."""
        item = self._table.get(ACCOUNT_PK, COUNTS_SK)
        return max(0, int(item.get("making", 0))) if item else 0

    def count_request(self, year: int) -> None:
        """One more certificate requested by the plane in ``year`` (ACM's yearly request quota)."""
        operation = self._table.update(
            ACCOUNT_PK, f"REQUESTS#{year}", "ADD requests :one", values={":one": 1}
        )
        self._table.write(operation)

    def count_request_now(self) -> None:
        """One more certificate requested now (AcmCertificates' on_request)."""
        self.count_request(time.gmtime(self.now()).tm_year)

    def requests(self, year: int) -> int:
        item = self._table.get(ACCOUNT_PK, f"REQUESTS#{year}")
        return int(item.get("requests", 0)) if item else 0

    def drop(self, slot: Slot) -> bool:
        """Delete the slot's item (its distribution is gone), if nobody changed it since ``slot``."""
        operation = self._table.delete(
            slot_pk(slot.project_id), slot_sk(slot.index), "version = :v", values={":v": slot.version}
        )
        if self._table.write(operation) is None:
            return False
        if slot.index > 0 and not slot.distribution_id:
            self._table.write(self._table.update(ACCOUNT_PK, COUNTS_SK, "ADD making :m", values={":m": -1}))
        return True
