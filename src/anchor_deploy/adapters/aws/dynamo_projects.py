"""Tokens, projects, hosts, environment variables and leases of the DynamoDB store."""

from __future__ import annotations

from collections.abc import Sequence

from anchor_deploy.adapters.aws.dynamo_base import DynamoBase
from anchor_deploy.adapters.aws.dynamo_codec import (
    LIVE,
    host_item,
    host_pk,
    project_of,
    project_pk,
    route_of,
    token_item,
    token_of,
)
from anchor_deploy.adapters.aws.dynamo_schema import LIST_INDEX, PROJECT_ID_INDEX
from anchor_deploy.adapters.aws.dynamo_sessions import drop_sessions_of
from anchor_deploy.adapters.aws.dynamo_table import TransactionCanceled
from anchor_deploy.model.entities import HostKind, HostRoute, Project, Token, TokenSource
from anchor_deploy.model.errors import Conflict, NameTaken, ProjectNotFound

_NEW = "attribute_not_exists(pk)"
_EXISTS = "attribute_exists(pk)"


class ProjectItems(DynamoBase):
    # -- tokens ------------------------------------------------------------------------------------
    def add_token(self, token: Token, secret_hash: str) -> None:
        t = self._table
        operations = [
            t.put({"pk": f"TOKENHASH#{secret_hash}", "sk": "CLAIM", "token_id": token.id}, _NEW),
            t.put(token_item(token, secret_hash), _NEW),
        ]
        if token.project_id is not None:
            operations.append(self._check_live(token.project_id))
        try:
            t.transact(operations)
        except TransactionCanceled as refused:
            if refused.failed(0) or refused.failed(1):
                raise Conflict("a token with this secret already exists") from None
            if refused.failed(2):
                raise ProjectNotFound(f"project {token.project_id} not found") from None
            raise

    def token_by_hash(self, secret_hash: str) -> Token | None:
        claim = self._table.get(f"TOKENHASH#{secret_hash}", "CLAIM")
        if claim is None:
            return None
        item = self._table.get(f"TOKEN#{claim['token_id']}", "TOKEN")
        return None if item is None or item["secret_hash"] != secret_hash else token_of(item)

    def token_by_id(self, token_id: str) -> Token | None:
        item = self._table.get(f"TOKEN#{token_id}", "TOKEN")
        return None if item is None else token_of(item)

    def list_tokens(self) -> list[Token]:
        items = self._table.query("list_pk = :l", {":l": "TOKENS"}, index=LIST_INDEX)
        return sorted((token_of(i) for i in items), key=lambda t: (t.created_at, t.id))

    def has_admin_token(self) -> bool:
        admins = self._table.query(
            "list_pk = :l",
            {":l": "TOKENS"},
            index=LIST_INDEX,
            filter_expression="attribute_not_exists(project_id)",
            limit=1,
        )
        return next(admins, None) is not None

    def delete_token(self, token_id: str) -> bool:
        item = self._table.get(f"TOKEN#{token_id}", "TOKEN")
        if item is None:
            return False
        try:
            self._table.transact(
                [
                    self._table.delete(f"TOKEN#{token_id}", "TOKEN", _EXISTS),
                    self._table.delete(f"TOKENHASH#{item['secret_hash']}", "CLAIM"),
                ]
            )
        except TransactionCanceled as refused:
            if refused.failed(0):
                return False
            raise
        drop_sessions_of(self._table, [token_id])
        return True

    def set_token_source(self, token_id: str, source: TokenSource) -> bool:
        operation = self._table.update(
            f"TOKEN#{token_id}", "TOKEN", "SET #s = :s", _EXISTS, {"#s": "source"}, {":s": source.value}
        )
        return self._table.write(operation) is not None

    def touch_token(self, token_id: str, at: float, interval: float) -> bool:
        operation = self._table.update(
            f"TOKEN#{token_id}",
            "TOKEN",
            "SET last_used_at = :at",
            f"{_EXISTS} AND (attribute_not_exists(last_used_at) OR last_used_at <= :since)",
            values={":at": at, ":since": at - interval},
        )
        return self._table.write(operation) is not None

    # -- projects ----------------------------------------------------------------------------------
    def _next_project_number(self) -> int:
        counter = self._table.update("COUNTER#projects", "COUNTER", "ADD n :one", values={":one": 1})
        return int((self._table.write(counter, "UPDATED_NEW") or {})["n"])

    def add_project(self, project: Project, hosts: Sequence[HostRoute]) -> None:
        project_item = {
            "pk": project_pk(project.id),
            "sk": "PROJECT",
            "id": project.id,
            "name": project.name,
            "created_at": project.created_at,
            "production": project.production_deployment_id,
            "pinned": project.pinned,
            "number": self._next_project_number(),
            "moves": 0,
            "deploys": 0,
            "domains": 0,
            "state": LIVE,
            "list_pk": "PROJECTS",
            "list_sk": project.name,
        }
        t = self._table
        operations = [
            t.put({"pk": f"NAME#{project.name}", "sk": "CLAIM", "project_id": project.id}, _NEW),
            t.put(project_item, _NEW),
            *(t.put(host_item(route), _NEW) for route in hosts),
        ]
        try:
            t.transact(operations)
        except TransactionCanceled as refused:
            if refused.failed(0):
                raise NameTaken(f"project {project.name!r} already exists") from None
            if refused.failed(1):
                raise Conflict(f"project {project.id} already exists") from None
            taken = [route.host for i, route in enumerate(hosts, start=2) if refused.failed(i)]
            if taken:
                raise NameTaken(f"hostname {taken[0]} is already in use") from None
            raise

    def project_by_name(self, name: str) -> Project | None:
        claim = self._table.get(f"NAME#{name}", "CLAIM")
        if claim is None:
            return None
        item = self._project_item(claim["project_id"])
        return None if item is None or item["name"] != name else project_of(item)

    def project_by_id(self, project_id: str) -> Project | None:
        item = self._project_item(project_id)
        return None if item is None else project_of(item)

    def project_number(self, project_id: str) -> int | None:
        item = self._project_item(project_id)
        return None if item is None else int(item["number"])

    def list_projects(self) -> list[Project]:
        items = self._table.query("list_pk = :l", {":l": "PROJECTS"}, index=LIST_INDEX)
        return [project_of(i) for i in items if i.get("state") == LIVE]

    # -- hosts -------------------------------------------------------------------------------------
    def host_target(self, host: str) -> tuple[HostRoute, str | None] | None:
        item = self._table.get(host_pk(host), "HOST")
        if item is None:
            return None
        project = self._project_item(item["project_id"])
        if project is None:
            return None  # the project is being deleted: its hosts serve nothing
        route = route_of(item)
        return route, project.get("production") if route.kind == HostKind.ALIAS else route.deployment_id

    def host_targets(self) -> list[tuple[HostRoute, str | None]]:
        production = {p.id: p.production_deployment_id for p in self.list_projects()}
        found: list[tuple[HostRoute, str | None]] = []
        for item in self._table.query("list_pk = :l", {":l": "HOSTS"}, index=LIST_INDEX):
            route = route_of(item)
            if route.project_id in production:
                live = production[route.project_id]
                found.append((route, live if route.kind == HostKind.ALIAS else route.deployment_id))
        return found

    def project_hosts(self, project_id: str) -> list[HostRoute]:
        if self._project_item(project_id) is None:
            return []
        items = self._table.query(
            "project_id = :p AND begins_with(project_sk, :h)",
            {":p": project_id, ":h": "HOST#"},
            index=PROJECT_ID_INDEX,
        )
        return [route_of(i) for i in items]

    # -- environment variables ---------------------------------------------------------------------
    def set_env(self, project_id: str, key: str, sealed_value: bytes, secret: bool) -> None:
        item = {
            "pk": project_pk(project_id),
            "sk": f"ENV#{key}",
            "key": key,
            "value": sealed_value,
            "secret": secret,
            "updated_at": self._clock(),
        }
        try:
            self._table.transact([self._check_live(project_id), self._table.put(item)])
        except TransactionCanceled as refused:
            if refused.failed(0):
                raise ProjectNotFound(f"project {project_id} not found") from None
            raise

    def list_env(self, project_id: str) -> list[tuple[str, bytes, bool, float]]:
        items = self._table.query(
            "pk = :p AND begins_with(sk, :e)", {":p": project_pk(project_id), ":e": "ENV#"}
        )
        return [(i["key"], bytes(i["value"]), bool(i["secret"]), float(i["updated_at"])) for i in items]

    def delete_env(self, project_id: str, key: str) -> bool:
        operation = self._table.delete(project_pk(project_id), f"ENV#{key}", _EXISTS)
        return self._table.write(operation) is not None

    # -- leases ------------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        now = self._clock()
        operation = self._table.put(
            {"pk": f"LEASE#{name}", "sk": "LEASE", "holder": holder, "expires": now + ttl},
            "attribute_not_exists(pk) OR expires <= :now OR holder = :holder",
            values={":now": now, ":holder": holder},
        )
        return self._table.write(operation) is not None

    def release_lease(self, name: str, holder: str) -> bool:
        operation = self._table.delete(
            f"LEASE#{name}", "LEASE", "holder = :holder", values={":holder": holder}
        )
        return self._table.write(operation) is not None

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        item = self._table.get(f"LEASE#{name}", "LEASE")
        if item is None or float(item["expires"]) <= self._clock():
            return None
        return str(item["holder"]), float(item["expires"])
