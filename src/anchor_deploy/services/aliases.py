"""Production alias moves: deploy, promote, rollback, unpin, and the history of them all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from anchor_deploy.model.entities import (
    AliasMove,
    Deployment,
    DeploymentStatus,
    MoveReason,
    Project,
    Token,
    last_switch,
)
from anchor_deploy.model.errors import Conflict, DeploymentNotFound, DeploymentNotReady, NoRollbackTarget
from anchor_deploy.model.names import production_host
from anchor_deploy.ports.store import ReleaseRepositories
from anchor_deploy.services.edge_sync import EdgeSync

_CAS_ATTEMPTS = 20


@dataclass(frozen=True)
class Faults:
    """Test-only crash points: ``hit(name)`` kills the process when the configured fault matches."""

    active: str | None = None
    kill: Callable[[], None] = lambda: None

    def hit(self, point: str) -> None:
        if self.active == point:
            self.kill()


class AliasService:
    def __init__(
        self,
        store: ReleaseRepositories,
        edge_sync: EdgeSync,
        base_domain: str,
        faults: Faults,
        on_moved: Callable[[Project, AliasMove], None] = lambda _project, _move: None,
    ) -> None:
        self._store = store
        self._sync = edge_sync
        self._base = base_domain
        self._faults = faults
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.on_moved = on_moved  # told of every move (the runtime keeps production warm)

    def _project_lock(self, project_id: str) -> threading.Lock:
        """An in-process optimization only: this process's writers of one project take turns instead of
        losing compare-and-set rounds to each other. Correctness never depends on it: moves from several
        control-plane processes are serialized by the store's compare-and-set (move_production), and the
        edge converges on the last one by EdgeSync's rule (services/edge_sync.py)."""
        with self._guard:
            return self._locks.setdefault(project_id, threading.Lock())

    def _target(self, project: Project, deployment_id: str) -> Deployment:
        deployment = self._store.deployment(deployment_id)
        if deployment is None or deployment.project_id != project.id:
            raise DeploymentNotFound(
                f"deployment {deployment_id[:40]!r} not found in project {project.name!r}"
            )
        if deployment.status != DeploymentStatus.READY:
            raise DeploymentNotReady(
                f"deployment {deployment_id} is {deployment.status}; only READY deployments can serve"
            )
        return deployment

    def _move(
        self,
        project: Project,
        choose: Callable[[Project], str],
        reason: MoveReason,
        token_name: str,
        pinned: bool | None,
    ) -> AliasMove:
        """Compare-and-set production, retrying if another writer moved it meanwhile; then apply."""
        with self._project_lock(project.id):
            for _ in range(_CAS_ATTEMPTS):
                current = self._store.project_by_id(project.id)
                if current is None:
                    raise Conflict(f"project {project.name!r} was deleted")
                target = choose(current)
                pin = current.pinned if pinned is None else pinned
                try:
                    move = self._store.move_production(
                        project.id, current.production_deployment_id, target, reason, token_name, pin
                    )
                    break
                except Conflict:
                    continue
            else:
                raise Conflict("production is being moved by others; try again")
            self._faults.hit(f"{reason.value}:after_commit")
            self._sync.apply(production_host(project.name, self._base))
        self.on_moved(project, move)
        return move

    def promote(
        self, project: Project, deployment_id: str, token: Token, shown: str | None = None
    ) -> AliasMove:
        """``shown``: the production the caller showed before asking ("" for none); if production is
        another when the move is made (inside the compare-and-set), Conflict and nothing moves."""
        self._target(project, deployment_id)
        choose = _unless_moved(shown, lambda _: deployment_id)
        return self._move(project, choose, MoveReason.PROMOTE, token.name, pinned=False)

    def rollback(
        self, project: Project, deployment_id: str | None, token: Token, shown: str | None = None
    ) -> AliasMove:
        """``shown`` as for promote."""
        if deployment_id is not None:
            self._target(project, deployment_id)
            choose = _unless_moved(shown, lambda _: deployment_id)
            return self._move(project, choose, MoveReason.ROLLBACK, token.name, pinned=True)
        choose = _unless_moved(shown, self._previous_production)
        return self._move(project, choose, MoveReason.ROLLBACK, token.name, pinned=True)

    def rollback_target(self, project: Project) -> str:
        """Where a rollback without a named deployment would move production now (NoRollbackTarget if
        nowhere): what a confirmation shows before the rollback is asked for by id."""
        return self._previous_production(project)

    def _previous_production(self, project: Project) -> str:
        """The READY deployment that first became production just before the current one did."""
        current = project.production_deployment_id
        if current is None:
            raise NoRollbackTarget(f"project {project.name!r} has no production deployment to roll back")
        order: list[str] = []
        for move in self._store.alias_history(project.id):
            if move.to_deployment_id not in order:
                order.append(move.to_deployment_id)
        for candidate in reversed(order[: order.index(current)] if current in order else order):
            deployment = self._store.deployment(candidate)
            if deployment is not None and deployment.status == DeploymentStatus.READY:
                return candidate
        others = [
            d.id
            for d in self._store.list_deployments(project.id)
            if d.id != current and d.status == DeploymentStatus.READY
        ]
        if not others:
            raise NoRollbackTarget(
                f"project {project.name!r} has no earlier deployment to roll back to: {current} is its only "
                "READY deployment"
            )
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise NoRollbackTarget(
            f"project {project.name!r} had no production deployment before {current}; roll back to one of "
            f"its other READY deployments by id (`anchor rollback {project.name} --to ID`): {shown}"
        )

    def deployed(self, project: Project, deployment: Deployment) -> AliasMove | None:
        """A production build became READY: move production unless pinned, already there, or a newer
        deployment serves; then settle the go-live so a restart does not decide it again."""

        def choose(current: Project) -> str:
            if current.pinned or current.production_deployment_id == deployment.id:
                raise _Skip
            serving = current.production_deployment_id and self._store.deployment(
                current.production_deployment_id
            )
            if serving and serving.created_at > deployment.created_at:
                raise _Skip
            return deployment.id

        try:
            return self._move(project, choose, MoveReason.DEPLOY, deployment.created_by, pinned=None)
        except _Skip:
            return None
        finally:
            self._store.settle_go_live(deployment.id)

    def warm_set(self, project: Project) -> set[str]:
        """The versions kept running: production and the previous production, so a rollback never waits."""
        last = last_switch(self._store.alias_history(project.id))
        if last is None:
            return set()
        return {last.to_deployment_id} | ({last.from_deployment_id} if last.from_deployment_id else set())

    def unpin(self, project: Project, token: Token) -> AliasMove | None:
        """Release the pin a rollback set, recorded in the history (reason unpin, from = to = production).
        Nothing to record when production was not pinned. Production and the warm set do not change."""
        with self._project_lock(project.id):
            for _ in range(_CAS_ATTEMPTS):
                current = self._store.project_by_id(project.id)
                if current is None:
                    raise Conflict(f"project {project.name!r} was deleted")
                serving = current.production_deployment_id
                if not current.pinned:
                    return None
                if serving is None:
                    self._store.set_pinned(project.id, False)
                    return None
                try:
                    return self._store.move_production(
                        project.id, serving, serving, MoveReason.UNPIN, token.name, pinned=False
                    )
                except Conflict:
                    continue
            raise Conflict("production is being moved by others; try again")

    def history(self, project: Project) -> list[AliasMove]:
        return self._store.alias_history(project.id)

    def history_page(self, project: Project, limit: int, offset: int = 0) -> list[AliasMove]:
        """Newest first: at most ``limit`` moves after the ``offset`` newest."""
        return self._store.alias_history_page(project.id, limit, offset)

    def count_moves(self, project: Project) -> int:
        return self._store.count_alias_moves(project.id)


class _Skip(Exception):
    """Production stays where it is."""


def _unless_moved(shown: str | None, choose: Callable[[Project], str]) -> Callable[[Project], str]:
    """``choose``, refusing (Conflict) when production is no longer the one ``shown`` (None: no check)."""

    def checked(current: Project) -> str:
        now = current.production_deployment_id or ""
        if shown is not None and now != shown:
            raise Conflict(
                f"production moved after this move was shown: it now serves {now or 'nothing'}. "
                "Nothing was changed; review the move again."
            )
        return choose(current)

    return checked
