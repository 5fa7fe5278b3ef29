"""Custom domains of the DynamoDB store. A domain's name is claimed by its item, its validation label by a
claim item, and the project's count of live (not deleting) domains is kept on the project's item, changed
in the same transaction as the domain, so a quota holds against concurrent adds."""

from __future__ import annotations

from typing import Any

from anchor_deploy.adapters.aws.dynamo_base import (
    ATTEMPTS,
    LIVE_NAMES,
    LIVE_PROJECT,
    LIVE_VALUES,
    DynamoBase,
)
from anchor_deploy.adapters.aws.dynamo_codec import domain_item, domain_of, domain_state, project_pk
from anchor_deploy.adapters.aws.dynamo_schema import DUE_INDEX, LIST_INDEX, PROJECT_ID_INDEX
from anchor_deploy.adapters.aws.dynamo_table import StoreContended, TransactionCanceled
from anchor_deploy.model.domains import Domain
from anchor_deploy.model.errors import Conflict, DomainTaken

_EXISTS = "attribute_exists(pk)"


def _domain_pk(name: str) -> str:
    return f"DOMAIN#{name}"


def _urgency(domain: Domain) -> tuple[bool, float, str]:
    """Never checked first, then the most overdue (as the SQLite store orders a project's due domains)."""
    return domain.last_checked_at is not None, domain.next_check_at or 0.0, domain.name


class DomainItems(DynamoBase):
    def add_domain(self, domain: Domain) -> None:
        self._insert_domain(domain, None)

    def add_domain_within(self, domain: Domain, quota: int) -> bool:
        return self._insert_domain(domain, quota)

    def _insert_domain(self, domain: Domain, quota: int | None) -> bool:
        t = self._table
        condition = LIVE_PROJECT
        values: dict[str, Any] = {**LIVE_VALUES, ":one": 1}
        if quota is not None:
            condition += " AND domains < :quota"
            values[":quota"] = quota
        operations = [
            t.put(domain_item(domain), "attribute_not_exists(pk)"),
            t.put({"pk": f"LABEL#{domain.validation_label}", "sk": "CLAIM"}, "attribute_not_exists(pk)"),
            t.update(
                project_pk(domain.project_id), "PROJECT", "ADD domains :one", condition, LIVE_NAMES, values
            ),
        ]
        for _ in range(ATTEMPTS):
            try:
                t.transact(operations)
                return True
            except TransactionCanceled as refused:
                if refused.failed(0):
                    raise DomainTaken(
                        f"{domain.name} is already added to a project; remove it there first"
                    ) from None
                if refused.failed(1):
                    raise Conflict(f"validation label {domain.validation_label} is in use") from None
                if refused.failed(2):
                    self._require_project(domain.project_id)
                    return False  # the project is live: its quota is full
                if not refused.conflicted:
                    raise
        raise StoreContended(f"adding {domain.name}: too many concurrent writers")

    def domain(self, name: str) -> Domain | None:
        item = self._table.get(_domain_pk(name), "DOMAIN")
        return None if item is None else domain_of(item)

    def project_domains(self, project_id: str) -> list[Domain]:
        items = self._table.query(
            "project_id = :p AND begins_with(project_sk, :d)",
            {":p": project_id, ":d": "DOMAIN#"},
            index=PROJECT_ID_INDEX,
        )
        return [domain_of(i) for i in items]

    def all_domains(self) -> list[Domain]:
        return [domain_of(i) for i in self._table.query("list_pk = :l", {":l": "DOMAINS"}, index=LIST_INDEX)]

    def _due(self, now: float, limit: int | None) -> list[Domain]:
        items = self._table.query(
            "due_pk = :d AND next_check_at <= :now", {":d": "DUE", ":now": now}, index=DUE_INDEX, limit=limit
        )
        return [domain_of(i) for i in items]

    def domains_due(self, now: float, limit: int = 100) -> list[Domain]:
        return self._due(now, limit) if limit > 0 else []

    def domains_due_fairly(self, now: float, per_project: int, limit: int) -> list[Domain]:
        """Each project's due domains in its own order (never checked first, then the most overdue); then the
        first of every project, the second of every project, and so on. Reads every due domain, as the
        SQLite store's query does."""
        by_project: dict[str, list[Domain]] = {}
        for domain in self._due(now, None):
            by_project.setdefault(domain.project_id, []).append(domain)
        numbered = [
            (turn, d)
            for due in by_project.values()
            for turn, d in enumerate(sorted(due, key=_urgency)[:per_project], start=1)
        ]
        numbered.sort(key=lambda item: (item[0], *_urgency(item[1])))
        return [d for _, d in numbered[:limit]]

    def next_domain_check(self) -> float | None:
        first = next(self._table.query("due_pk = :d", {":d": "DUE"}, index=DUE_INDEX, limit=1), None)
        return None if first is None else float(first["next_check_at"])

    def save_domain(self, domain: Domain, certificate: tuple[bytes, bytes] | None = None) -> bool:
        state = domain_state(domain)
        if certificate is not None:
            state.update(cert_chain=certificate[0], cert_key=certificate[1])
        elif domain.certificate is None:
            state.update(cert_chain=None, cert_key=None)
        names = {f"#a{i}": name for i, name in enumerate(state)}
        values: dict[str, Any] = {":pid": domain.project_id, ":no": False}
        sets, removes = [], []
        for alias, name in names.items():
            if state[name] is None:
                removes.append(alias)
            else:
                values[f":v{alias[2:]}"] = state[name]
                sets.append(f"{alias} = :v{alias[2:]}")
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        names["#pid"] = "project_id"
        names["#del"] = "deleting"
        operation = self._table.update(
            _domain_pk(domain.name),
            "DOMAIN",
            update,
            f"{_EXISTS} AND #pid = :pid AND #del = :no",
            names,
            values,
        )
        return self._table.write(operation) is not None

    def _mark(self, name: str, was_live: bool) -> Any:
        """Mark the domain deleting and due at once; ``was_live``: only if it was not marked yet."""
        values: dict[str, Any] = {":yes": True, ":zero": 0.0, ":due": "DUE"}
        condition = _EXISTS
        if was_live:
            condition += " AND deleting = :no"
            values[":no"] = False
        update = "SET deleting = :yes, next_check_at = :zero, due_pk = :due"
        return self._table.update(_domain_pk(name), "DOMAIN", update, condition, values=values)

    def _uncount(self, project_id: str) -> Any:
        """One live domain fewer on the project (if its item is still there)."""
        return self._table.update(
            project_pk(project_id), "PROJECT", "ADD domains :less", _EXISTS, values={":less": -1}
        )

    def mark_domain_deleting(self, name: str) -> Domain | None:
        current = self.domain(name)
        if current is None:
            return None
        marked = False
        if not current.deleting:  # it no longer counts against the project's quota, in the same write
            try:
                self._table.transact([self._mark(name, True), self._uncount(current.project_id)])
                marked = True
            except TransactionCanceled as refused:
                if not (refused.failed(0) or refused.failed(1)):
                    raise
        if not marked:  # marked meanwhile, or its project's item is gone: mark it (again) on its own
            self._table.write(self._mark(name, False))
        return self.domain(name)

    def defer_domain_removal(self, name: str, until: float, failures: int, reason: str) -> bool:
        values = {":at": until, ":n": failures, ":kind": "removal", ":why": reason}
        values.update({":yes": True, ":due": "DUE"})
        update = (
            "SET next_check_at = :at, failures = :n, failure = :kind, status_reason = :why, due_pk = :due"
        )
        condition = _EXISTS + " AND deleting = :yes"
        operation = self._table.update(_domain_pk(name), "DOMAIN", update, condition, values=values)
        return self._table.write(operation) is not None

    def domain_certificate(self, name: str) -> tuple[bytes, bytes] | None:
        item = self._table.get(_domain_pk(name), "DOMAIN", ("cert_chain", "cert_key"))
        if item is None or item.get("cert_chain") is None:
            return None
        return bytes(item["cert_chain"]), bytes(item["cert_key"])

    def delete_domain(self, name: str) -> bool:
        t = self._table
        for _ in range(ATTEMPTS):
            current = self.domain(name)
            if current is None:
                return False
            operations = [
                t.delete(
                    _domain_pk(name),
                    "DOMAIN",
                    f"{_EXISTS} AND deleting = :d",
                    values={":d": current.deleting},
                ),
                t.delete(f"LABEL#{current.validation_label}", "CLAIM"),
            ]
            if not current.deleting and self._project_item(current.project_id) is not None:
                operations.append(self._uncount(current.project_id))
            try:
                t.transact(operations)
                return True
            except TransactionCanceled as refused:
                if not (refused.failed(0) or refused.failed(2) or refused.conflicted):
                    raise
        raise StoreContended(f"deleting {name}: too many concurrent writers")
