"""Deployments (with their manifests and sealed environments) and the production alias of the DynamoDB
store. Every move of the alias is one transaction: the project's production target compared and set, and
its history row, or neither."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anchor_deploy.adapters.aws.dynamo_base import (
    ATTEMPTS,
    LIVE_NAMES,
    LIVE_PROJECT,
    LIVE_VALUES,
    DynamoBase,
)
from anchor_deploy.adapters.aws.dynamo_codec import (
    CHUNK_BYTES,
    Item,
    decode_manifest,
    deploy_pk,
    deployment_item,
    deployment_of,
    encode_manifest,
    host_item,
    host_pk,
    move_of,
    move_sk,
    project_pk,
)
from anchor_deploy.adapters.aws.dynamo_schema import PROJECT_ID_INDEX, STATUS_INDEX
from anchor_deploy.adapters.aws.dynamo_table import TRANSACTION_MAX, StoreContended, TransactionCanceled
from anchor_deploy.model.entities import (
    AliasMove,
    Deployment,
    DeploymentStatus,
    HostRoute,
    MoveReason,
    Target,
    can_transition,
)
from anchor_deploy.model.errors import Conflict, DeploymentNotFound, NameTaken
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.model.paging import page_slice

_TRANSACTION_BYTES = 3 * 1024 * 1024  # manifest bytes carried inside add_deployment's transaction (4 MB max)


class DeploymentItems(DynamoBase):
    chunk_bytes = CHUNK_BYTES

    # -- deployments -------------------------------------------------------------------------------
    def add_deployment(
        self, deployment: Deployment, files: Sequence[ManifestFile], host: HostRoute, sealed_env: bytes = b""
    ) -> None:
        """The manifest and the sealed environment are stored in chunks (an item holds at most 400 KB); they
        go in the deployment's transaction when they fit in it, else are written just before it, unreachable
        until the deployment item exists, and taken back if the transaction is refused."""
        pk = deploy_pk(deployment.id)
        chunk_items: list[Item] = [
            {"pk": pk, "sk": f"MANIFEST#{i:06d}", "data": c}
            for i, c in enumerate(encode_manifest(files, self.chunk_bytes))
        ]
        chunk_items += [
            {"pk": pk, "sk": f"SEALED_ENV#{i:06d}", "data": sealed_env[at : at + self.chunk_bytes]}
            for i, at in enumerate(range(0, len(sealed_env), self.chunk_bytes))
        ]
        size = sum(len(i["data"]) for i in chunk_items)
        inline = len(chunk_items) <= TRANSACTION_MAX - 4 and size <= _TRANSACTION_BYTES
        if not inline:
            self._table.batch_put(chunk_items)
        try:
            self._insert_deployment(deployment, host, chunk_items if inline else [])
        except BaseException:
            if not inline:
                self._table.batch_delete([(pk, str(i["sk"])) for i in chunk_items])
            raise

    def _insert_deployment(self, deployment: Deployment, host: HostRoute, chunk_items: list[Item]) -> None:
        t = self._table
        pk = deploy_pk(deployment.id)
        for _ in range(ATTEMPTS):
            order = int(self._require_project(deployment.project_id)["deploys"]) + 1
            operations = [
                t.update(
                    project_pk(deployment.project_id),
                    "PROJECT",
                    "SET deploys = :order",
                    f"{LIVE_PROJECT} AND deploys = :before",
                    LIVE_NAMES,
                    {**LIVE_VALUES, ":order": order, ":before": order - 1},
                ),
                t.put(host_item(host), "attribute_not_exists(pk)"),
                t.put(deployment_item(deployment, order, host.host), "attribute_not_exists(pk)"),
                t.put(
                    {
                        "pk": pk,
                        "sk": "LOGHEAD",
                        "project_id": deployment.project_id,
                        "last_seq": 0,
                        "line_count": 0,
                        "byte_count": 0,
                    }
                ),
                *(t.put(i) for i in chunk_items),
            ]
            try:
                t.transact(operations)
                return
            except TransactionCanceled as refused:
                if refused.failed(1):
                    raise NameTaken(f"hostname {host.host} is already in use") from None
                if refused.failed(2):
                    raise Conflict(f"deployment {deployment.id} already exists") from None
                if not (refused.failed(0) or refused.conflicted):
                    raise
        raise StoreContended(f"adding a deployment to {deployment.project_id}: too many concurrent writers")

    def _deployment_item(self, deployment_id: str) -> Item:
        item = self._table.get(deploy_pk(deployment_id), "DEPLOY")
        if item is None:
            raise DeploymentNotFound(f"deployment {deployment_id} not found")
        return item

    def sealed_env(self, deployment_id: str) -> bytes:
        self._deployment_item(deployment_id)
        chunks = self._table.query(
            "pk = :p AND begins_with(sk, :e)", {":p": deploy_pk(deployment_id), ":e": "SEALED_ENV#"}
        )
        return b"".join(bytes(c["data"]) for c in chunks)

    def _partition_keys(self, deployment_id: str, prefix: str = "") -> list[tuple[str, str]]:
        pk = deploy_pk(deployment_id)
        if prefix:
            found = self._table.query(
                "pk = :p AND begins_with(sk, :s)", {":p": pk, ":s": prefix}, projection="pk, sk"
            )
        else:
            found = self._table.query("pk = :p", {":p": pk}, projection="pk, sk")
        return [(i["pk"], i["sk"]) for i in found]

    def delete_deployment(self, deployment_id: str) -> list[str]:
        """The build log goes first, then the deployment with its host, manifest and sealed environment in
        one transaction: a deletion cut short leaves the deployment in place; deleting it again ends it."""
        item = self._deployment_item(deployment_id)
        rest = [k for k in self._partition_keys(deployment_id) if k[1] != "DEPLOY"]
        logs = [k for k in rest if k[1].startswith("LOG")]
        self._table.batch_delete(logs)
        others = [k for k in rest if not k[1].startswith("LOG")]
        t = self._table
        operations = [t.delete(deploy_pk(deployment_id), "DEPLOY", "attribute_exists(pk)")]
        operations.append(t.delete(host_pk(item["host"]), "HOST"))
        operations += [t.delete(pk, sk) for pk, sk in others[: TRANSACTION_MAX - 2]]
        try:
            t.transact(operations)
        except TransactionCanceled as refused:
            if refused.failed(0):
                raise DeploymentNotFound(f"deployment {deployment_id} not found") from None
            raise
        t.batch_delete(others[TRANSACTION_MAX - 2 :])
        return [item["host"]]

    def deployment(self, deployment_id: str) -> Deployment | None:
        item = self._table.get(deploy_pk(deployment_id), "DEPLOY")
        return None if item is None else deployment_of(item)

    def manifest(self, deployment_id: str) -> list[ManifestFile]:
        self._deployment_item(deployment_id)
        chunks = self._table.query(
            "pk = :p AND begins_with(sk, :m)", {":p": deploy_pk(deployment_id), ":m": "MANIFEST#"}
        )
        return decode_manifest([bytes(c["data"]) for c in chunks])

    def list_deployments(
        self, project_id: str, limit: int | None = None, offset: int = 0
    ) -> list[Deployment]:
        """All of them: one read of the project's deployments in ProjectIdIndex. A page: the same read
        for the sort keys only (created_at, order; a few dozen bytes an item sent, though DynamoDB counts
        the read capacity of whole items), sliced, then the page's items in one BatchGetItem (strongly
        consistent; a deployment deleted in between is left out of the page)."""
        page = page_slice(limit, offset)
        if limit is None and offset == 0:
            return [deployment_of(i) for i in self._newest_first(project_id)]
        keys = [(str(i["pk"]), "DEPLOY") for i in self._newest_first(project_id, "pk, created_at, #o")]
        return [deployment_of(i) for i in self._table.batch_get(keys[page])]

    def _newest_first(self, project_id: str, projection: str | None = None) -> list[Item]:
        items = self._table.query(
            "project_id = :p AND begins_with(project_sk, :d)",
            {":p": project_id, ":d": "DEPLOY#"},
            {"#o": "order"} if projection else None,
            index=PROJECT_ID_INDEX,
            projection=projection,
        )
        return sorted(items, key=lambda i: (i["created_at"], i["order"]), reverse=True)

    def count_deployments(self, project_id: str) -> int:
        return self._table.count(
            "project_id = :p AND begins_with(project_sk, :d)",
            {":p": project_id, ":d": "DEPLOY#"},
            index=PROJECT_ID_INDEX,
        )

    def deployments_with_status(
        self, statuses: Sequence[DeploymentStatus], limit: int | None = None
    ) -> list[Deployment]:
        items: list[Item] = []
        for status in dict.fromkeys(statuses):
            items += self._table.query("#s = :s", {":s": status.value}, {"#s": "status"}, index=STATUS_INDEX)
        return [deployment_of(i) for i in sorted(items, key=lambda i: i["created_at"])[:limit]]

    def set_status(
        self, deployment_id: str, status: DeploymentStatus, error: str | None = None
    ) -> Deployment:
        for _ in range(ATTEMPTS):
            item = self._deployment_item(deployment_id)
            current = DeploymentStatus(item["status"])
            if current != status and not can_transition(current, status):
                raise Conflict(f"deployment {deployment_id} cannot go from {current} to {status}")
            becomes_ready = status == DeploymentStatus.READY and current != status
            sets = ["#s = :s"]
            values: dict[str, Any] = {":s": status.value, ":was": current.value}
            if error is not None:
                sets.append("#e = :e")
                values[":e"] = error
            if becomes_ready:
                sets.append("ready_at = if_not_exists(ready_at, :now)")
                values[":now"] = self._clock()
                if item["target"] == Target.PRODUCTION.value:
                    sets.append("go_live_pending = :t")
                    values[":t"] = True
            update = "SET " + ", ".join(sets) + ("" if error is not None else " REMOVE #e")
            operation = self._table.update(
                deploy_pk(deployment_id),
                "DEPLOY",
                update,
                "attribute_exists(pk) AND #s = :was",
                {"#s": "status", "#e": "error"},
                values,
            )
            updated = self._table.write(operation, "ALL_NEW")
            if updated is not None:
                return deployment_of(updated)
        raise StoreContended(f"deployment {deployment_id}: too many concurrent status changes")

    # -- production alias --------------------------------------------------------------------------
    def move_production(
        self,
        project_id: str,
        expected_from: str | None,
        to_deployment_id: str,
        reason: MoveReason,
        token_name: str,
        pinned: bool,
    ) -> AliasMove:
        t = self._table
        for _ in range(ATTEMPTS):
            project = self._require_project(project_id)
            if project.get("production") != expected_from:
                raise Conflict("production moved meanwhile; try again")
            n = int(project["moves"]) + 1
            expected = "production = :from" if expected_from else "attribute_not_exists(production)"
            values: dict[str, Any] = {**LIVE_VALUES, ":to": to_deployment_id, ":pin": pinned, ":n": n}
            values[":before"] = n - 1
            if expected_from:
                values[":from"] = expected_from
            row = {
                "pk": project_pk(project_id),
                "sk": move_sk(n),
                "n": n,
                "project_id": project_id,
                "from": expected_from,
                "to": to_deployment_id,
                "reason": reason.value,
                "token_name": token_name,
                "at": self._clock(),
            }
            try:
                t.transact(
                    [
                        t.update(
                            project_pk(project_id),
                            "PROJECT",
                            "SET production = :to, pinned = :pin, moves = :n",
                            f"{LIVE_PROJECT} AND {expected} AND moves = :before",
                            LIVE_NAMES,
                            values,
                        ),
                        t.put(row, "attribute_not_exists(pk)"),
                    ]
                )
            except TransactionCanceled as refused:
                if refused.failed(0) or refused.failed(1) or refused.conflicted:
                    continue  # read again: a lost race is a Conflict, a history row taken a retry
                raise
            return move_of(row)
        raise StoreContended(f"project {project_id}: too many concurrent alias moves")

    def set_pinned(self, project_id: str, pinned: bool) -> None:
        operation = self._table.update(
            project_pk(project_id),
            "PROJECT",
            "SET pinned = :pin",
            LIVE_PROJECT,
            LIVE_NAMES,
            {**LIVE_VALUES, ":pin": pinned},
        )
        self._table.write(operation)

    def settle_go_live(self, deployment_id: str) -> None:
        operation = self._table.update(
            deploy_pk(deployment_id),
            "DEPLOY",
            "SET go_live_pending = :f",
            "attribute_exists(pk)",
            values={":f": False},
        )
        self._table.write(operation)

    def alias_history(self, project_id: str) -> list[AliasMove]:
        rows = self._table.query(
            "pk = :p AND begins_with(sk, :m)", {":p": project_pk(project_id), ":m": "MOVE#"}
        )
        return [move_of(r) for r in rows]

    def alias_history_page(self, project_id: str, limit: int, offset: int = 0) -> list[AliasMove]:
        """The rows are numbered 1..``moves`` (the project's counter, set with each row in its transaction),
        so a page is one key range read backwards: it costs the page's rows, whatever the offset."""
        page_slice(limit, offset)
        newest = self.count_alias_moves(project_id) - offset
        if newest < 1 or limit == 0:
            return []
        rows = self._table.query(
            "pk = :p AND sk BETWEEN :first AND :newest",
            {":p": project_pk(project_id), ":first": move_sk(1), ":newest": move_sk(newest)},
            forward=False,
            limit=limit,
        )
        return [move_of(r) for r in rows]

    def count_alias_moves(self, project_id: str) -> int:
        """The project's move counter (also while the project is being deleted, as alias_history reads)."""
        item = self._table.get(project_pk(project_id), "PROJECT", ("moves",))
        return 0 if item is None else int(item.get("moves", 0))
