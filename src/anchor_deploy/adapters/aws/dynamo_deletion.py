"""Project deletion in the DynamoDB store: a resumable state machine in bounded writes.

1. The project's item is marked ``deleting`` (one conditional update). From then on the project is gone for
   every reader (project_by_name/id, list_projects, host_target(s), project_hosts) and every write that
   needs a live project is refused (new deployments, hosts, tokens, domains, env, alias moves, log lines).
2. Its items are deleted in BatchWriteItem calls of at most 25 keys, in this order: tokens (their hash
   claims first, so they stop authenticating at once) and their dashboard sessions, hosts, domains (with
   their label claims), linked DNS zones, every deployment's own items (manifest, sealed environment,
   build log), the deployments, the environment variables and alias history.
3. The project's item and its name claim go last, in one transaction: the name is free only then.

A deletion cut short anywhere (the process killed between two batches) is finished by calling
``delete_project`` again or by ``resume_deletions``, which finds the projects still marked ``deleting``.
Deleting an item twice is harmless, so a resumed deletion starts its sweep from the beginning.
"""

from __future__ import annotations

from collections.abc import Iterator

from anchor_deploy.adapters.aws.dynamo_base import DynamoBase
from anchor_deploy.adapters.aws.dynamo_codec import DELETING, LIVE, deploy_pk, project_pk
from anchor_deploy.adapters.aws.dynamo_schema import LIST_INDEX, PROJECT_ID_INDEX
from anchor_deploy.adapters.aws.dynamo_sessions import drop_sessions_of
from anchor_deploy.adapters.aws.dynamo_table import TransactionCanceled
from anchor_deploy.model.errors import ProjectNotFound

_SWEEPS = 5  # rounds of sweeping before the project's item goes (an index may lag behind the table)
_STATE = {"#state": "state"}


class DeletionItems(DynamoBase):
    def delete_project(self, project_id: str) -> list[str]:
        """Delete the project with everything it holds; return the hosts this call released (a resumed
        deletion returns the ones it released itself)."""
        item = self._table.get(project_pk(project_id), "PROJECT")
        if item is None:
            raise ProjectNotFound(f"project {project_id} not found")
        if item.get("state") == LIVE:
            self._mark_deleting(project_id)
        return self._finish_deletion(project_id)

    def resume_deletions(self) -> dict[str, list[str]]:
        """Finish every project deletion that was cut short; {project id: hosts released}."""
        marked = self._table.query("list_pk = :l", {":l": "DELETING"}, index=LIST_INDEX)
        return {i["id"]: self._finish_deletion(i["id"]) for i in list(marked)}

    def _mark_deleting(self, project_id: str) -> None:
        operation = self._table.update(
            project_pk(project_id),
            "PROJECT",
            "SET #state = :deleting, list_pk = :l, list_sk = :id",
            "#state = :live",
            _STATE,
            {":deleting": DELETING, ":live": LIVE, ":l": "DELETING", ":id": project_id},
        )
        self._table.write(operation)

    def _owned(self, project_id: str, prefix: str) -> Iterator[dict[str, object]]:
        return self._table.query(
            "project_id = :p AND begins_with(project_sk, :k)",
            {":p": project_id, ":k": prefix},
            index=PROJECT_ID_INDEX,
        )

    def _finish_deletion(self, project_id: str) -> list[str]:
        released: list[str] = []
        for _ in range(_SWEEPS):
            hosts, deleted = self._sweep(project_id)
            released += hosts
            if not deleted:
                break
        pk = project_pk(project_id)
        item = self._table.get(pk, "PROJECT")
        if item is None:
            return released  # another process finished it
        try:
            self._table.transact(
                [
                    self._table.delete(pk, "PROJECT", "#state = :deleting", _STATE, {":deleting": DELETING}),
                    self._table.delete(
                        f"NAME#{item['name']}", "CLAIM", "project_id = :p", values={":p": project_id}
                    ),
                ]
            )
        except TransactionCanceled as refused:
            if not (refused.failed(0) or refused.failed(1)):
                raise
            self._table.write(
                self._table.delete(pk, "PROJECT", "#state = :deleting", _STATE, {":deleting": DELETING})
            )
        return released

    def _sweep(self, project_id: str) -> tuple[list[str], int]:
        """One pass over everything the project holds; (hosts deleted, items deleted)."""
        t = self._table
        tokens = list(self._owned(project_id, "TOKEN#"))  # first: they stop authenticating at once
        t.batch_delete([(f"TOKENHASH#{i['secret_hash']}", "CLAIM") for i in tokens])
        t.batch_delete([(f"TOKEN#{i['id']}", "TOKEN") for i in tokens])
        if tokens:
            drop_sessions_of(t, [str(i["id"]) for i in tokens])
        hosts = [str(i["host"]) for i in self._owned(project_id, "HOST#")]
        deleted = len(hosts)
        t.batch_delete([(f"HOST#{h}", "HOST") for h in hosts])
        domains = list(self._owned(project_id, "DOMAIN#"))
        t.batch_delete([(f"DOMAIN#{i['name']}", "DOMAIN") for i in domains])
        t.batch_delete([(f"LABEL#{i['validation_label']}", "CLAIM") for i in domains])
        links = [(str(i["pk"]), str(i["sk"])) for i in self._owned(project_id, "DNSLINK#")]
        t.batch_delete(links)
        deployments = [str(i["id"]) for i in self._owned(project_id, "DEPLOY#")]
        owned: list[tuple[str, str]] = []
        for deployment_id in deployments:  # their own items first: a deployment found again is swept again
            found = self._table.query("pk = :p", {":p": deploy_pk(deployment_id)}, projection="pk, sk")
            owned += [(str(i["pk"]), str(i["sk"])) for i in found if i["sk"] != "DEPLOY"]
        t.batch_delete(owned)
        t.batch_delete([(deploy_pk(d), "DEPLOY") for d in deployments])
        rest = self._table.query("pk = :p", {":p": project_pk(project_id)}, projection="pk, sk")
        mine = [(str(i["pk"]), str(i["sk"])) for i in rest if i["sk"] != "PROJECT"]
        t.batch_delete(mine)
        deleted += 2 * len(tokens) + 2 * len(domains) + len(links) + len(owned) + len(deployments) + len(mine)
        return hosts, deleted
