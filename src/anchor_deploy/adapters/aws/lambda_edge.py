"""The Edge port on Lambda aliases: a project's production hosts are its function's ``production`` alias, a
deployment's host is that deployment's own alias (and function URL).

Several control-plane processes may apply moves at once, so a production move is a compare-and-set that a
stale writer cannot win: read the alias (its RevisionId) FIRST, THEN ask the database what the host must
serve, then UpdateAlias with that RevisionId. If the write succeeds, nothing moved the alias between our read
and our write, and our database answer is at least as new as that read; any commit after our database read
is applied by a writer whose alias read comes later, so it either sees our write or its own write fails on
the RevisionId and it starts over. On PreconditionFailed (someone moved it) we start over, a bounded number of
times. A rollback is one GetAlias and one UpdateAlias (the deployment's version is remembered since it
was published or first looked up), and no CloudFront call: CloudFront serves the alias's URL, which does not
change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from anchor_deploy.adapters.aws.lambda_functions import (
    PRODUCTION_ALIAS,
    AliasChanged,
    LambdaFunctions,
    deployment_alias,
)
from anchor_deploy.model.entities import HostKind, HostRoute
from anchor_deploy.model.errors import EdgeError
from anchor_deploy.model.names import is_valid_hostname


class HostTargets(Protocol):
    """The database's word on hosts (the Store's HostRepository answers both)."""

    def host_target(self, host: str) -> tuple[HostRoute, str | None] | None: ...

    def host_targets(self) -> list[tuple[HostRoute, str | None]]: ...


class LambdaEdge:
    def __init__(
        self,
        functions: LambdaFunctions,
        hosts: HostTargets,
        attempts: int = 5,
        on_production_created: Callable[[str], None] = lambda _project_id: None,
    ) -> None:
        self._functions = functions
        self._hosts = hosts
        self._attempts = attempts
        # Told the project id when its production alias (and URL) is first made: the CDN goes in front.
        self._on_production_created = on_production_created

    def point(self, host: str, kind: HostKind, deployment_id: str) -> None:
        _check(host)
        route = self._route(host)
        with _lambda_failures(host):
            if kind is HostKind.DEPLOYMENT:
                self._functions.ensure_deployment_alias(route.project_id, deployment_id)
            else:
                self._point_production(host, route.project_id)

    def _route(self, host: str) -> HostRoute:
        found = self._hosts.host_target(host)
        if found is None:
            raise EdgeError(f"{host} belongs to no project: nothing to point it at")
        return found[0]

    def _point_production(self, host: str, project_id: str) -> None:
        for _ in range(self._attempts):
            read = self._functions.production(project_id)  # the alias first ...
            found = self._hosts.host_target(host)  # ... then the database
            if found is None or found[0].project_id != project_id or found[1] is None:
                return  # the host changed hands or has nothing to serve: the change's own apply follows
            version = self._functions.version_of(project_id, found[1])
            if version is None:
                version = self._functions.ensure_deployment_alias(project_id, found[1])
            if read is not None and read.version == version:
                return
            try:
                self._functions.move_production(project_id, version, read)
            except AliasChanged:
                continue
            if read is None:
                self._on_production_created(project_id)
            return
        raise EdgeError(f"the production alias of {host} kept moving; the reconciler will try again")

    def remove(self, host: str) -> None:
        """A production host with no production deployment stops being served (its alias goes); any other
        host's alias is left to retention (a deployment keeps its URL) or goes with its project's function."""
        _check(host)
        found = self._hosts.host_target(host)
        if found is None:
            return
        route, target = found
        if route.kind is HostKind.ALIAS and target is None:
            with _lambda_failures(host):
                self._functions.remove_production(route.project_id)

    def current(self) -> Mapping[str, tuple[HostKind, str]]:
        """Every host the database knows that a Lambda alias serves now: one paginated ListAliases per
        project (plus one GetFunctionConfiguration when production's version has no deployment alias)."""
        by_project: dict[str, list[HostRoute]] = defaultdict(list)
        for route, _target in self._hosts.host_targets():
            by_project[route.project_id].append(route)
        served: dict[str, tuple[HostKind, str]] = {}
        for project_id, routes in by_project.items():
            with _lambda_failures(project_id):
                aliases = self._functions.aliases(self._functions.function_name(project_id))
                production = self._production_deployment(project_id, aliases)
            named = {str(alias["Name"]) for alias in aliases}
            for route in routes:
                if route.kind is HostKind.ALIAS and production is not None:
                    served[route.host] = (HostKind.ALIAS, production)
                elif (
                    route.kind is HostKind.DEPLOYMENT
                    and route.deployment_id
                    and deployment_alias(route.deployment_id) in named
                ):
                    served[route.host] = (HostKind.DEPLOYMENT, route.deployment_id)
        return served

    def _production_deployment(self, project_id: str, aliases: list[dict[str, Any]]) -> str | None:
        versions = {str(a["Name"]): str(a["FunctionVersion"]) for a in aliases}
        version = versions.get(PRODUCTION_ALIAS)
        if version is None:
            return None
        for alias in aliases:
            same = alias["Name"] != PRODUCTION_ALIAS and str(alias["FunctionVersion"]) == version
            if same and alias.get("Description"):
                return str(alias["Description"])
        return self._functions.deployment_of_version(project_id, version)


@contextmanager
def _lambda_failures(subject: str) -> Iterator[None]:
    """Lambda's refusals and unreachability as the port's EdgeError (the reconciler retries)."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise EdgeError(f"Lambda could not serve {subject}: {error}") from error


def _check(host: str) -> None:
    if not is_valid_hostname(host):
        raise EdgeError(f"refusing to route invalid hostname {host[:80]!r}")
