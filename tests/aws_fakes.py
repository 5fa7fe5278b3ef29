"""Stateful fakes for the AWS rules moto does not emulate.

FakeLambda keeps one function's versions and aliases and enforces what moto skips (moto/awslambda/models.py):
an alias's RevisionId changes on every update and UpdateAlias with a stale one fails with
PreconditionFailedException; ListVersionsByFunction and ListAliases return pages of MaxItems with a
NextMarker; a function URL belongs to its qualifier. ``before_update_alias`` lets a test run another writer
between a writer's read and its write.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from anchor_deploy.model.entities import HostKind, HostRoute


def client_error(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code}}, operation)


class FakeLambda:
    def __init__(self, name: str) -> None:
        self.name = name
        self.versions: dict[str, str] = {}  # version -> Description
        self.aliases: dict[str, dict[str, Any]] = {}
        self.urls: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.preconditions_failed = 0
        self.before_update_alias: Callable[[], None] = lambda: None
        self._numbers = itertools.count(1)

    def publish(self, description: str) -> str:
        version = str(next(self._numbers))
        self.versions[version] = description
        return version

    def _function(self, name: str, operation: str) -> None:
        self.calls[operation] += 1
        if name != self.name:
            raise client_error("ResourceNotFoundException", operation, f"Function not found: {name}")

    def _found_alias(self, name: str, operation: str) -> dict[str, Any]:
        if name not in self.aliases:
            raise client_error("ResourceNotFoundException", operation, f"Alias not found: {name}")
        return self.aliases[name]

    def get_alias(self, FunctionName: str, Name: str) -> dict[str, Any]:
        self._function(FunctionName, "GetAlias")
        return dict(self._found_alias(Name, "GetAlias"))

    def create_alias(self, FunctionName: str, Name: str, FunctionVersion: str, Description: str = "") -> Any:
        self._function(FunctionName, "CreateAlias")
        if Name in self.aliases:
            raise client_error("ResourceConflictException", "CreateAlias", f"Alias already exists: {Name}")
        if FunctionVersion not in self.versions:
            raise client_error("ResourceNotFoundException", "CreateAlias")
        self.aliases[Name] = {
            "Name": Name,
            "FunctionVersion": FunctionVersion,
            "Description": Description,
            "RevisionId": str(uuid.uuid4()),
        }
        return dict(self.aliases[Name])

    def update_alias(
        self, FunctionName: str, Name: str, FunctionVersion: str, RevisionId: str | None = None
    ) -> dict[str, Any]:
        self._function(FunctionName, "UpdateAlias")
        self.before_update_alias()
        alias = self._found_alias(Name, "UpdateAlias")
        if RevisionId is not None and RevisionId != alias["RevisionId"]:
            self.preconditions_failed += 1
            raise client_error(
                "PreconditionFailedException", "UpdateAlias", "The RevisionId provided does not match"
            )
        if FunctionVersion not in self.versions:
            raise client_error("ResourceNotFoundException", "UpdateAlias")
        alias.update(FunctionVersion=FunctionVersion, RevisionId=str(uuid.uuid4()))
        return dict(alias)

    def delete_alias(self, FunctionName: str, Name: str) -> None:
        self._function(FunctionName, "DeleteAlias")
        self.aliases.pop(Name, None)

    def _page(self, items: list[dict[str, Any]], key: str, MaxItems: int = 50, Marker: str = "") -> Any:
        start = int(Marker or 0)
        page: dict[str, Any] = {key: items[start : start + MaxItems]}
        if start + MaxItems < len(items):
            page["NextMarker"] = str(start + MaxItems)
        return page

    def list_aliases(self, FunctionName: str, **paging: Any) -> Any:
        self._function(FunctionName, "ListAliases")
        return self._page([dict(a) for _, a in sorted(self.aliases.items())], "Aliases", **paging)

    def list_versions_by_function(self, FunctionName: str, **paging: Any) -> Any:
        self._function(FunctionName, "ListVersionsByFunction")
        items = [{"Version": "$LATEST", "Description": ""}] + [
            {"Version": v, "Description": d} for v, d in self.versions.items()
        ]
        return self._page(items, "Versions", **paging)

    def get_function_configuration(self, FunctionName: str, Qualifier: str = "$LATEST") -> Any:
        self._function(FunctionName, "GetFunctionConfiguration")
        if Qualifier not in self.versions:
            raise client_error("ResourceNotFoundException", "GetFunctionConfiguration")
        return {"Version": Qualifier, "Description": self.versions[Qualifier]}

    def delete_function(self, FunctionName: str, Qualifier: str) -> None:
        self._function(FunctionName, "DeleteFunction")
        if any(a["FunctionVersion"] == Qualifier for a in self.aliases.values()):
            raise client_error("ResourceConflictException", "DeleteFunction", "an alias points at it")
        if self.versions.pop(Qualifier, None) is None:
            raise client_error("ResourceNotFoundException", "DeleteFunction")

    def get_function_url_config(self, FunctionName: str, Qualifier: str) -> Any:
        self._function(FunctionName, "GetFunctionUrlConfig")
        if Qualifier not in self.urls:
            raise client_error("ResourceNotFoundException", "GetFunctionUrlConfig")
        return {"FunctionUrl": self.urls[Qualifier], "AuthType": "NONE"}

    def create_function_url_config(self, FunctionName: str, Qualifier: str, AuthType: str) -> Any:
        self._function(FunctionName, "CreateFunctionUrlConfig")
        self._found_alias(Qualifier, "CreateFunctionUrlConfig")
        self.urls[Qualifier] = f"https://{uuid.uuid4().hex}.lambda-url.us-east-1.on.aws/"
        return {"FunctionUrl": self.urls[Qualifier], "AuthType": AuthType}

    def delete_function_url_config(self, FunctionName: str, Qualifier: str) -> None:
        self._function(FunctionName, "DeleteFunctionUrlConfig")
        if self.urls.pop(Qualifier, None) is None:
            raise client_error("ResourceNotFoundException", "DeleteFunctionUrlConfig")

    def add_permission(self, FunctionName: str, **statement: Any) -> None:
        self._function(FunctionName, "AddPermission")


class FakeClients:
    """Hands out the given fakes as the AwsClients would hand out clients."""

    def __init__(self, **fakes: Any) -> None:
        self._fakes = fakes

    def client(self, service: str) -> Any:
        return self._fakes[service]


@dataclass
class FakeHosts:
    """The database's word on hosts (what LambdaEdge asks the store), changed by tests between calls."""

    routes: dict[str, HostRoute] = field(default_factory=dict)
    production: dict[str, str | None] = field(default_factory=dict)  # project -> deployment
    after_read: Callable[[], None] = lambda: None  # runs after each host_target answer is taken

    def add(self, host: str, kind: HostKind, project_id: str, deployment_id: str | None = None) -> None:
        self.routes[host] = HostRoute(host, kind, project_id, deployment_id)

    def host_target(self, host: str) -> tuple[HostRoute, str | None] | None:
        found = self._target(host)
        self.after_read()
        return found

    def _target(self, host: str) -> tuple[HostRoute, str | None] | None:
        route = self.routes.get(host)
        if route is None:
            return None
        if route.kind is HostKind.ALIAS:
            return route, self.production.get(route.project_id)
        return route, route.deployment_id

    def host_targets(self) -> list[tuple[HostRoute, str | None]]:
        return [found for host in self.routes if (found := self._target(host))]
