"""In-memory fakes of every port, for unit tests. They follow the real adapters' semantics (the contract
suites in ``tests/contract`` run the same tests against them and against SqliteStore, FsBlobStore,
FsDeploymentFiles and SymlinkEdge) and are thread-safe: every method runs under one lock."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.domains import Domain, FailureKind
from anchor_deploy.model.entities import (
    AliasMove,
    Deployment,
    DeploymentStatus,
    HostKind,
    HostRoute,
    MoveReason,
    Project,
    Target,
    Token,
    TokenSource,
    can_transition,
)
from anchor_deploy.model.errors import (
    BlobRejected,
    BlobTooLarge,
    BlobUnavailable,
    BuildFailed,
    Conflict,
    CopyGone,
    DeploymentNotFound,
    DomainTaken,
    EdgeError,
    NameTaken,
    ProjectNotFound,
    WorkerFailed,
    ZoneLinked,
)
from anchor_deploy.model.integrity import CopyKind, StoredCopy
from anchor_deploy.model.logs import BuildLogCap
from anchor_deploy.model.manifest import ManifestFile, is_sha256
from anchor_deploy.model.names import is_valid_hostname
from anchor_deploy.model.paging import page_slice
from anchor_deploy.ports.fake_git import FakeGit
from anchor_deploy.ports.fake_sessions import FakeSessions
from anchor_deploy.ports.runtime import BuildLimits, WorkerSpec

if TYPE_CHECKING:
    from anchor_deploy.ports import BlobChecker, BlobStore, DeploymentFiles, Edge, Store
    from anchor_deploy.ports.domains import DomainStore
    from anchor_deploy.ports.names import PublicSuffixes, UnicodeScripts
    from anchor_deploy.ports.runtime import AppRuntime, EnvironmentBuilder

__all__ = ["FakeBlobStore", "FakeDeploymentFiles", "FakeEdge", "FakeEnvironments", "FakeRuntime", "FakeStore"]


@dataclass(slots=True)
class _StoredDeployment:
    deployment: Deployment
    files: tuple[ManifestFile, ...]
    seq: int
    sealed_env: bytes = b""
    log: list[tuple[int, float, str]] = dataclasses.field(default_factory=list)


class FakeStore(FakeSessions, FakeGit):
    """The Store port (every repository) in dictionaries, like SqliteStore with its cascades."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._tokens: dict[str, Token] = {}  # secret hash -> token
        self._projects: dict[str, Project] = {}
        self._deployments: dict[str, _StoredDeployment] = {}
        self._history: list[AliasMove] = []
        self._hosts: dict[str, HostRoute] = {}
        self._seq = itertools.count(1)
        self._move_ids = itertools.count(1)
        self._env: dict[tuple[str, str], tuple[bytes, bool, float]] = {}
        self._domains: dict[str, tuple[Domain, tuple[bytes, bytes] | None]] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (holder, expires at)
        self._dns_links: dict[str, tuple[DnsLink, bytes | None]] = {}  # zone -> (link, sealed secret)

    # -- tokens ------------------------------------------------------------------------------------
    def add_token(self, token: Token, secret_hash: str) -> None:
        with self._lock:
            if secret_hash in self._tokens:
                raise Conflict("a token with this secret already exists")
            if token.project_id is not None and token.project_id not in self._projects:
                raise ProjectNotFound(f"project {token.project_id} not found")
            self._tokens[secret_hash] = token

    def token_by_hash(self, secret_hash: str) -> Token | None:
        with self._lock:
            return self._tokens.get(secret_hash)

    def has_admin_token(self) -> bool:
        with self._lock:
            return any(t.project_id is None for t in self._tokens.values())

    def token_by_id(self, token_id: str) -> Token | None:
        with self._lock:
            return next((t for t in self._tokens.values() if t.id == token_id), None)

    def list_tokens(self) -> list[Token]:
        with self._lock:
            return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    def delete_token(self, token_id: str) -> bool:
        with self._lock:
            found = [h for h, t in self._tokens.items() if t.id == token_id]
            for secret_hash in found:
                del self._tokens[secret_hash]
            self.forget_sessions([token_id])
            return bool(found)

    def _update_token(self, token_id: str, when: Callable[[Token], bool], **changes: object) -> bool:
        with self._lock:
            for secret_hash, token in self._tokens.items():
                if token.id == token_id and when(token):
                    self._tokens[secret_hash] = dataclasses.replace(token, **changes)  # type: ignore[arg-type]
                    return True
            return False

    def set_token_source(self, token_id: str, source: TokenSource) -> bool:
        return self._update_token(token_id, lambda _t: True, source=source)

    def touch_token(self, token_id: str, at: float, interval: float) -> bool:
        def stale(token: Token) -> bool:
            return token.last_used_at is None or token.last_used_at <= at - interval

        return self._update_token(token_id, stale, last_used_at=at)

    def secret_hashes(self) -> list[str]:
        """Test helper: every stored secret hash (what a database dump would show)."""
        with self._lock:
            return list(self._tokens)

    # -- projects ----------------------------------------------------------------------------------
    def add_project(self, project: Project, hosts: Sequence[HostRoute]) -> None:
        with self._lock:
            if any(p.name == project.name for p in self._projects.values()):
                raise NameTaken(f"project {project.name!r} already exists")
            self._claim_hosts(hosts)
            self._projects[project.id] = project
            self._hosts.update((h.host, h) for h in hosts)

    def _claim_hosts(self, hosts: Sequence[HostRoute]) -> None:
        names = [h.host for h in hosts]
        for host in names:
            if host in self._hosts or names.count(host) > 1:
                raise NameTaken(f"hostname {host} is already in use")

    def project_by_name(self, name: str) -> Project | None:
        with self._lock:
            return next((p for p in self._projects.values() if p.name == name), None)

    def project_by_id(self, project_id: str) -> Project | None:
        with self._lock:
            return self._projects.get(project_id)

    def project_number(self, project_id: str) -> int | None:
        with self._lock:
            if project_id not in self._projects:
                return None
            numbers = self.__dict__.setdefault("_project_numbers", {})
            return int(numbers.setdefault(project_id, len(numbers) + 1))

    def list_projects(self) -> list[Project]:
        with self._lock:
            return sorted(self._projects.values(), key=lambda p: p.name)

    def delete_project(self, project_id: str) -> list[str]:
        with self._lock:
            if self._projects.pop(project_id, None) is None:
                raise ProjectNotFound(f"project {project_id} not found")
            released = [h for h, route in self._hosts.items() if route.project_id == project_id]
            for host in released:
                del self._hosts[host]
            for deployment_id in [
                d for d, s in self._deployments.items() if s.deployment.project_id == project_id
            ]:
                del self._deployments[deployment_id]
            self._history = [m for m in self._history if m.project_id != project_id]
            self.forget_sessions(t.id for t in self._tokens.values() if t.project_id == project_id)
            self._tokens = {h: t for h, t in self._tokens.items() if t.project_id != project_id}
            self._env = {k: v for k, v in self._env.items() if k[0] != project_id}
            self._domains = {k: v for k, v in self._domains.items() if v[0].project_id != project_id}
            self._dns_links = {k: v for k, v in self._dns_links.items() if v[0].project_id != project_id}
            self.forget_git(project_id)
            return released

    # -- linked DNS zones --------------------------------------------------------------------------
    def add_dns_link(self, link: DnsLink, sealed_secret: bytes | None) -> None:
        with self._lock:
            if link.zone in self._dns_links:
                raise ZoneLinked(f"the zone {link.zone} is linked already; unlink it there first")
            if link.project_id not in self._projects:
                raise ProjectNotFound(f"project {link.project_id} not found")
            self._dns_links[link.zone] = (link, sealed_secret)

    def dns_links(self, project_id: str) -> list[DnsLink]:
        with self._lock:
            links = [link for link, _ in self._dns_links.values() if link.project_id == project_id]
            return sorted(links, key=_zone)

    def dns_link_secret(self, zone: str) -> bytes | None:
        with self._lock:
            found = self._dns_links.get(zone)
            return None if found is None else found[1]

    def remove_dns_link(self, project_id: str, zone: str) -> bool:
        with self._lock:
            found = self._dns_links.get(zone)
            if found is None or found[0].project_id != project_id:
                return False
            del self._dns_links[zone]
            return True

    # -- deployments -------------------------------------------------------------------------------
    def add_deployment(
        self, deployment: Deployment, files: Sequence[ManifestFile], host: HostRoute, sealed_env: bytes = b""
    ) -> None:
        with self._lock:
            self._claim_hosts([host])
            if deployment.project_id not in self._projects:
                raise ProjectNotFound(f"project {deployment.project_id} not found")
            if deployment.id in self._deployments:
                raise Conflict(f"deployment {deployment.id} already exists")
            stored = dataclasses.replace(deployment, meta=copy.deepcopy(deployment.meta))
            self._deployments[deployment.id] = _StoredDeployment(
                stored, tuple(files), next(self._seq), sealed_env
            )
            self._hosts[host.host] = host

    def sealed_env(self, deployment_id: str) -> bytes:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            if stored is None:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
            return stored.sealed_env

    def delete_deployment(self, deployment_id: str) -> list[str]:
        with self._lock:
            if self._deployments.pop(deployment_id, None) is None:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
            released = [h for h, route in self._hosts.items() if route.deployment_id == deployment_id]
            for host in released:
                if self.is_branch_host(host):  # a branch host stays, serving nothing (as SqliteStore's)
                    self._hosts[host] = dataclasses.replace(self._hosts[host], deployment_id=None)
                else:
                    del self._hosts[host]
            return released

    build_log_cap = BuildLogCap()  # like SqliteStore's: the first lines, a marker row, the newest lines

    def append_log(self, deployment_id: str, lines: Sequence[str]) -> None:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            if stored is None or not lines:
                return
            at = self._clock()
            start = stored.log[-1][0] if stored.log else 0
            stored.log.extend((start + i, at, line) for i, line in enumerate(lines, start=1))
            cap = self.build_log_cap
            cut = cap.cut([(seq, len(line.encode())) for seq, _at, line in stored.log])
            if cut is not None:
                head = [row for row in stored.log if row[0] <= cap.head_lines]
                marker = (cut - 1, at, cap.marker(cut - 1 - cap.head_lines))
                stored.log = [*head, marker, *(row for row in stored.log if row[0] >= cut)]

    def read_log(self, deployment_id: str, after: int = 0) -> list[tuple[int, float, str]]:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            return [] if stored is None else [row for row in stored.log if row[0] > after]

    def set_env(self, project_id: str, key: str, sealed_value: bytes, secret: bool) -> None:
        with self._lock:
            if project_id in self._projects:
                self._env[(project_id, key)] = (sealed_value, secret, self._clock())

    def list_env(self, project_id: str) -> list[tuple[str, bytes, bool, float]]:
        with self._lock:
            rows = [(k, *v) for (p, k), v in self._env.items() if p == project_id]
            return sorted(rows)

    def delete_env(self, project_id: str, key: str) -> bool:
        with self._lock:
            return self._env.pop((project_id, key), None) is not None

    @staticmethod
    def _copy(deployment: Deployment) -> Deployment:
        # The real store hands out a fresh ``meta`` on every read; so does the fake.
        return dataclasses.replace(deployment, meta=copy.deepcopy(deployment.meta))

    def deployment(self, deployment_id: str) -> Deployment | None:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            return None if stored is None else self._copy(stored.deployment)

    def manifest(self, deployment_id: str) -> list[ManifestFile]:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            if stored is None:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
            return list(stored.files)

    def list_deployments(
        self, project_id: str, limit: int | None = None, offset: int = 0
    ) -> list[Deployment]:
        page = page_slice(limit, offset)
        with self._lock:
            rows = [s for s in self._deployments.values() if s.deployment.project_id == project_id]
            rows.sort(key=lambda s: (s.deployment.created_at, s.seq), reverse=True)
            return [self._copy(s.deployment) for s in rows[page]]

    def count_deployments(self, project_id: str) -> int:
        with self._lock:
            return sum(s.deployment.project_id == project_id for s in self._deployments.values())

    def deployments_with_status(
        self, statuses: Sequence[DeploymentStatus], limit: int | None = None
    ) -> list[Deployment]:
        with self._lock:
            rows = [s for s in self._deployments.values() if s.deployment.status in statuses]
            rows.sort(key=lambda s: (s.deployment.created_at, s.seq))
            return [self._copy(s.deployment) for s in rows[:limit]]

    def set_status(
        self, deployment_id: str, status: DeploymentStatus, error: str | None = None
    ) -> Deployment:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            if stored is None:
                raise DeploymentNotFound(f"deployment {deployment_id} not found")
            current = stored.deployment.status
            if current != status and not can_transition(current, status):
                raise Conflict(f"deployment {deployment_id} cannot go from {current} to {status}")
            becomes_ready = status == DeploymentStatus.READY and current != status
            ready_at = stored.deployment.ready_at
            if ready_at is None and becomes_ready:
                ready_at = self._clock()
            pending = stored.deployment.go_live_pending or (
                becomes_ready and stored.deployment.target == Target.PRODUCTION
            )
            stored.deployment = dataclasses.replace(
                stored.deployment, status=status, error=error, ready_at=ready_at, go_live_pending=pending
            )
            return self._copy(stored.deployment)

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
        with self._lock:
            project = self._projects.get(project_id)
            if project is None:
                raise ProjectNotFound(f"project {project_id} not found")
            if project.production_deployment_id != expected_from:
                raise Conflict("production moved meanwhile; try again")
            self._projects[project_id] = dataclasses.replace(
                project, production_deployment_id=to_deployment_id, pinned=pinned
            )
            move = AliasMove(
                next(self._move_ids),
                project_id,
                expected_from,
                to_deployment_id,
                reason,
                token_name,
                self._clock(),
            )
            self._history.append(move)
            return move

    def settle_go_live(self, deployment_id: str) -> None:
        with self._lock:
            stored = self._deployments.get(deployment_id)
            if stored is not None:
                stored.deployment = dataclasses.replace(stored.deployment, go_live_pending=False)

    def set_pinned(self, project_id: str, pinned: bool) -> None:
        with self._lock:
            project = self._projects.get(project_id)
            if project is not None:  # like an UPDATE that matches no row
                self._projects[project_id] = dataclasses.replace(project, pinned=pinned)

    def alias_history(self, project_id: str) -> list[AliasMove]:
        with self._lock:
            return [m for m in self._history if m.project_id == project_id]

    def alias_history_page(self, project_id: str, limit: int, offset: int = 0) -> list[AliasMove]:
        page = page_slice(limit, offset)
        return self.alias_history(project_id)[::-1][page]

    def count_alias_moves(self, project_id: str) -> int:
        return len(self.alias_history(project_id))

    # -- hosts -------------------------------------------------------------------------------------
    def _target(self, route: HostRoute) -> tuple[HostRoute, str | None]:
        if route.kind == HostKind.ALIAS and not self.is_branch_host(route.host):
            return route, self._projects[route.project_id].production_deployment_id
        return route, route.deployment_id

    def host_target(self, host: str) -> tuple[HostRoute, str | None] | None:
        with self._lock:
            route = self._hosts.get(host)
            return None if route is None else self._target(route)

    def host_targets(self) -> list[tuple[HostRoute, str | None]]:
        with self._lock:
            return [self._target(r) for r in self._hosts.values()]

    def project_hosts(self, project_id: str) -> list[HostRoute]:
        with self._lock:
            return sorted(
                (r for r in self._hosts.values() if r.project_id == project_id), key=lambda r: r.host
            )

    # -- custom domains ----------------------------------------------------------------------------
    def add_domain(self, domain: Domain) -> None:
        self._insert_domain(domain, None)

    def add_domain_within(self, domain: Domain, quota: int) -> bool:
        return self._insert_domain(domain, quota)

    def _insert_domain(self, domain: Domain, quota: int | None) -> bool:
        with self._lock:
            if domain.name in self._domains:
                raise DomainTaken(f"{domain.name} is already added to a project; remove it there first")
            if domain.project_id not in self._projects:
                raise ProjectNotFound(f"project {domain.project_id} not found")
            if quota is not None:
                held = [d for d, _ in self._domains.values() if d.project_id == domain.project_id]
                if sum(not d.deleting for d in held) >= quota:
                    return False
            self._domains[domain.name] = (domain, None)
            return True

    def domain(self, name: str) -> Domain | None:
        with self._lock:
            found = self._domains.get(name)
            return None if found is None else found[0]

    def project_domains(self, project_id: str) -> list[Domain]:
        with self._lock:
            return sorted((d for d, _ in self._domains.values() if d.project_id == project_id), key=_name)

    def all_domains(self) -> list[Domain]:
        with self._lock:
            return sorted((d for d, _ in self._domains.values()), key=_name)

    def domains_due(self, now: float, limit: int = 100) -> list[Domain]:
        with self._lock:
            due = [
                d for d, _ in self._domains.values() if d.next_check_at is not None and d.next_check_at <= now
            ]
            return sorted(due, key=lambda d: d.next_check_at or 0.0)[:limit]

    def domains_due_fairly(self, now: float, per_project: int, limit: int) -> list[Domain]:
        with self._lock:
            by_project: dict[str, list[Domain]] = {}
            for d, _ in self._domains.values():
                if d.next_check_at is not None and d.next_check_at <= now:
                    by_project.setdefault(d.project_id, []).append(d)
            numbered = [
                (turn, d)
                for due in by_project.values()
                for turn, d in enumerate(sorted(due, key=_urgency)[:per_project], start=1)
            ]
            numbered.sort(key=lambda item: (item[0], *_urgency(item[1])))
            return [d for _, d in numbered[:limit]]

    def next_domain_check(self) -> float | None:
        with self._lock:
            times = [d.next_check_at for d, _ in self._domains.values() if d.next_check_at is not None]
            return min(times) if times else None

    def save_domain(self, domain: Domain, certificate: tuple[bytes, bytes] | None = None) -> bool:
        with self._lock:
            found = self._domains.get(domain.name)
            if found is None or found[0].deleting or found[0].project_id != domain.project_id:
                return False
            kept = certificate if certificate is not None else (found[1] if domain.certificate else None)
            self._domains[domain.name] = (domain, kept)
            return True

    def mark_domain_deleting(self, name: str) -> Domain | None:
        with self._lock:
            found = self._domains.get(name)
            if found is None:
                return None
            marked = dataclasses.replace(found[0], deleting=True, next_check_at=0.0)
            self._domains[name] = (marked, found[1])
            return marked

    def defer_domain_removal(self, name: str, until: float, failures: int, reason: str) -> bool:
        with self._lock:
            found = self._domains.get(name)
            if found is None or not found[0].deleting:
                return False
            deferred = dataclasses.replace(
                found[0], next_check_at=until, failures=failures, status_reason=reason
            )
            deferred = dataclasses.replace(deferred, failure=FailureKind.REMOVAL)
            self._domains[name] = (deferred, found[1])
            return True

    def domain_certificate(self, name: str) -> tuple[bytes, bytes] | None:
        with self._lock:
            found = self._domains.get(name)
            return None if found is None else found[1]

    def delete_domain(self, name: str) -> bool:
        with self._lock:
            return self._domains.pop(name, None) is not None

    # -- leases ------------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            held = self._leases.get(name)
            if held is not None and held[1] > now and held[0] != holder:
                return False
            self._leases[name] = (holder, now + ttl)
            return True

    def release_lease(self, name: str, holder: str) -> bool:
        with self._lock:
            held = self._leases.get(name)
            if held is None or held[0] != holder:
                return False
            del self._leases[name]
            return True

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        with self._lock:
            held = self._leases.get(name)
            return held if held is not None and held[1] > self._clock() else None


def _zone(link: DnsLink) -> str:
    return link.zone


def _name(domain: Domain) -> str:
    return domain.name


def _urgency(domain: Domain) -> tuple[bool, float, str]:
    """Never checked first, then the most overdue (as SqliteStore.domains_due_fairly orders them)."""
    return domain.last_checked_at is not None, domain.next_check_at or 0.0, domain.name


class FakeBlobStore:
    """The BlobStore and BlobChecker ports in a dictionary of bytes, like FsBlobStore (one copy per blob,
    named "ab/<digest>" as FsBlobStore names it; no spares, no sidecars). ``damage`` plays bit rot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}
        self._corrupt: dict[str, str] = {}
        self.quarantined: dict[str, tuple[bytes, str]] = {}  # name -> (bytes, note)
        self.on_stored: Callable[[str, bool], None] = lambda _digest, _replaced: None

    @staticmethod
    def copy_name(digest: str) -> str:
        return f"{digest[:2]}/{digest}"

    @staticmethod
    def _check(digest: str) -> None:
        if not is_sha256(digest):
            raise BlobRejected(f"{digest[:80]!r} is not a sha256 digest")

    def has(self, digest: str) -> bool:
        self._check(digest)
        with self._lock:
            return digest in self._blobs

    def missing(self, digests: Iterable[str]) -> list[str]:
        seen: dict[str, None] = {}
        for digest in digests:
            if digest not in seen and (not self.has(digest) or self.copy_name(digest) in self._corrupt):
                seen[digest] = None
        return list(seen)

    def put(self, digest: str, chunks: Iterator[bytes], max_size: int) -> int:
        self._check(digest)
        data = bytearray()
        for chunk in chunks:
            if len(data) + len(chunk) > max_size:
                raise BlobTooLarge(f"blob is larger than the {max_size}-byte limit")
            data += chunk
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise BlobRejected(f"content does not match its digest: got sha256 {actual}")
        name = self.copy_name(digest)
        with self._lock:
            held = self._blobs.get(digest)
            if held is not None and hashlib.sha256(held).hexdigest() == digest:
                return 0
            if held is not None:  # damaged: set aside, as FsBlobStore does, and replaced
                self.quarantined[f"{name}@{len(self.quarantined)}"] = (held, "replaced by an upload")
            self._blobs[digest] = bytes(data)
            self._corrupt.pop(name, None)
        self.on_stored(digest, held is not None)
        return len(data)

    def damage(self, digest: str, data: bytes) -> None:
        """Test helper: change a held blob's bytes behind the store's back, as bit rot would."""
        with self._lock:
            self._blobs[digest] = data

    def usable(self, digest: str) -> bytes:
        """A blob's bytes once checked; BlobUnavailable (noted, like FsBlobStore.link) if missing or wrong."""
        with self._lock:
            data = self._blobs.get(digest)
            if data is None:
                raise BlobUnavailable(f"blob {digest} is missing", digest=digest, problem="is missing")
            found = hashlib.sha256(data).hexdigest()
            if found != digest:
                self._corrupt[self.copy_name(digest)] = f"content hashes to {found}"
                problem = f"is damaged on disk: its content hashes to {found}"
                raise BlobUnavailable(f"blob {digest} {problem}", digest=digest, problem=problem)
            return data

    def copies(self) -> Iterator[StoredCopy]:
        with self._lock:
            found = sorted(self._blobs.items())
        for digest, data in found:
            yield StoredCopy(digest, self.copy_name(digest), CopyKind.BLOB, len(data))

    def check(self, copy: StoredCopy, pace: Callable[[int], None] | None = None) -> str | None:
        with self._lock:
            data = self._blobs.get(copy.digest)
        if data is None:
            raise CopyGone(f"{copy.name} is gone")
        if pace is not None:
            pace(len(data))
        found = hashlib.sha256(data).hexdigest()
        with self._lock:
            if found == copy.digest:
                self._corrupt.pop(copy.name, None)
                return None
            self._corrupt[copy.name] = f"content hashes to {found}"
            return self._corrupt[copy.name]

    def corrupt(self) -> dict[str, str]:
        with self._lock:
            return dict(self._corrupt)

    def quarantine(self, copy: StoredCopy, note: str) -> str:
        with self._lock:
            if copy.digest not in self._blobs:
                raise CopyGone(f"{copy.name} is gone")
            self.quarantined[copy.name] = (self._blobs.pop(copy.digest), note)
            self._corrupt.pop(copy.name, None)
        return f"quarantine/{copy.name}"

    def restore(self, digest: str) -> bool:
        with self._lock:  # no spares to restore from
            return digest in self._blobs and self.copy_name(digest) not in self._corrupt

    def read(self, digest: str) -> bytes:
        with self._lock:
            if digest not in self._blobs:
                raise BlobRejected(f"blob {digest} is not stored")
            return self._blobs[digest]

    def collect(self, keep: set[str], older_than: float) -> int:
        with self._lock:
            gone = [d for d in self._blobs if d not in keep]
            for digest in gone:
                del self._blobs[digest]
                self._corrupt.pop(self.copy_name(digest), None)
            return len(gone)

    def lose(self, digest: str) -> None:
        """Test helper: forget a blob, as a damaged disk would."""
        with self._lock:
            self._blobs.pop(digest, None)


class FakeDeploymentFiles:
    """The DeploymentFiles port: each deployment a dictionary path -> bytes, built all or nothing."""

    def __init__(self, blobs: FakeBlobStore) -> None:
        self._blobs = blobs
        self._lock = threading.Lock()
        self._trees: dict[str, dict[str, bytes]] = {}

    def materialize(
        self, deployment_id: str, files: Sequence[ManifestFile], app: AppConfig | None = None
    ) -> None:
        with self._lock:
            if deployment_id in self._trees:
                return
            tree: dict[str, bytes] = {}
            prefix = f"{app.static_dir}/" if app and app.static_dir else None
            for entry in files:
                data = self._usable(entry)
                if app is None:
                    tree[entry.path] = data
                else:
                    tree["app/" + entry.path] = data
                    if prefix and entry.path.startswith(prefix):
                        tree[entry.path.removeprefix(prefix)] = data
            self._trees[deployment_id] = tree

    def _usable(self, entry: ManifestFile) -> bytes:
        try:
            return self._blobs.usable(entry.sha256)
        except BlobUnavailable as exc:  # named with its file, as FsDeploymentFiles names it
            problem = exc.extra["problem"]
            raise BlobUnavailable(
                f"blob {entry.sha256} of {entry.path} {problem}", digest=entry.sha256, problem=problem
            ) from exc

    def relink(
        self,
        deployment_id: str,
        files: Sequence[ManifestFile],
        digests: set[str],
        app: AppConfig | None = None,
    ) -> int:
        prefix = f"{app.static_dir}/" if app and app.static_dir else None
        with self._lock:
            tree = self._trees.get(deployment_id)
            if tree is None:
                return 0
            count = 0
            for entry in files:
                served = entry.path if app is None else None
                if prefix and entry.path.startswith(prefix):
                    served = entry.path.removeprefix(prefix)
                if served is not None and entry.sha256 in digests:
                    tree[served] = self._usable(entry)
                    count += 1
            return count

    def app_files(self, deployment_id: str) -> str:
        return f"fake-deployments/{deployment_id}/app"

    def exists(self, deployment_id: str) -> bool:
        with self._lock:
            return deployment_id in self._trees

    def remove(self, deployment_id: str) -> None:
        with self._lock:
            self._trees.pop(deployment_id, None)

    def present(self) -> list[str]:
        """Deployment ids that have a directory, like FsDeploymentFiles.present."""
        with self._lock:
            return list(self._trees)

    def collect(self, older_than: float) -> int:
        return 0  # each deployment holds its own dictionary: nothing is shared

    def read(self, deployment_id: str, path: str) -> bytes:
        """Test helper: one file of a materialized deployment (KeyError if absent)."""
        with self._lock:
            return self._trees[deployment_id][path]


class FakeEdge:
    """The Edge port in a dictionary host -> (kind, deployment id). Set ``failing`` to make every change
    raise EdgeError, as an unreachable data plane would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, tuple[HostKind, str]] = {}
        self.failing = False

    def _check(self, host: str) -> None:
        if not is_valid_hostname(host):
            raise EdgeError(f"refusing to route invalid hostname {host[:80]!r}")
        if self.failing:
            raise EdgeError(f"the edge is unavailable; could not change {host}")

    def point(self, host: str, kind: HostKind, deployment_id: str) -> None:
        with self._lock:
            self._check(host)
            self._routes[host] = (kind, deployment_id)

    def remove(self, host: str) -> None:
        with self._lock:
            self._check(host)
            self._routes.pop(host, None)

    def current(self) -> Mapping[str, tuple[HostKind, str]]:
        with self._lock:
            return dict(self._routes)


class FakePublicSuffixes:
    """A few rules of the Public Suffix List (no wildcard or exception rules); any other top-level label is a
    suffix by itself, as the list's default rule says."""

    RULES = frozenset({"com", "net", "org", "uk", "co.uk", "io", "github.io", "jp", "co.jp", "xn--p1ai"})

    def public_suffix(self, name: str) -> str:
        labels = name.split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in self.RULES:
                return ".".join(labels[i:])
        return labels[-1]


class FakeUnicodeScripts:
    """Script_Extensions for the ranges tests use: ASCII, Latin-1 and Latin Extended-A/B letters, Greek,
    Cyrillic, Hiragana, Katakana (and the prolonged sound mark of both), Bopomofo, CJK ideographs, Hangul."""

    RANGES = (
        (0x2D, 0x2D, ("Common",)),
        (0x30, 0x39, ("Common",)),
        (0x61, 0x7A, ("Latin",)),
        (0xDF, 0x24F, ("Latin",)),
        (0x370, 0x3FF, ("Greek",)),
        (0x400, 0x4FF, ("Cyrillic",)),
        (0x3041, 0x3096, ("Hiragana",)),
        (0x30A1, 0x30FA, ("Katakana",)),
        (0x30FC, 0x30FC, ("Hiragana", "Katakana")),
        (0x3105, 0x312F, ("Bopomofo",)),
        (0x4E00, 0x9FFF, ("Han",)),
        (0xAC00, 0xD7A3, ("Hangul",)),
    )

    def scripts(self, char: str) -> frozenset[str]:
        point = ord(char)
        found = (frozenset(names) for low, high, names in self.RANGES if low <= point <= high)
        return next(found, frozenset({"Unknown"}))


class FakeEnvironments:
    """An EnvironmentBuilder keyed by (requirements, python): ``ensure`` makes one unless it exists;
    ``broken`` requirements fail their build."""

    def __init__(self, broken: bytes | None = None) -> None:
        self._lock = threading.Lock()
        self._made: dict[tuple[bytes, str | None], str] = {}
        self.broken = broken
        self.installed: list[bytes] = []

    def ensure(
        self, requirements: bytes, python: str | None, limits: BuildLimits, log: Callable[[str], None]
    ) -> str:
        if requirements == self.broken:
            raise BuildFailed("pip install failed: no matching distribution")
        with self._lock:
            if (requirements, python) not in self._made:
                self.installed.append(requirements)
                digest = hashlib.sha256(requirements).hexdigest()[:12]
                self._made[requirements, python] = f"env-{digest}-{python or 'default'}"
            return self._made[requirements, python]

    def locate(self, requirements: bytes, python: str | None) -> str | None:
        with self._lock:
            return self._made.get((requirements, python))

    def collect(self, keep: set[str]) -> int:
        with self._lock:
            gone = [k for k, env in self._made.items() if env not in keep]
            for k in gone:
                del self._made[k]
            return len(gone)


class FakeRuntime:
    """An AppRuntime whose workers are names in a set: ``failing`` deployments fail their health check."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running: set[str] = set()
        self.warm: dict[str, set[str]] = {}
        self.failing: set[str] = set()
        self.logs: dict[str, list[str]] = {}

    def ensure(self, spec: WorkerSpec, timeout: float) -> None:
        if spec.deployment_id in self.failing:
            raise WorkerFailed(f"the worker of {spec.deployment_id} never became healthy")
        with self._lock:
            self.running.add(spec.deployment_id)

    def stop(self, deployment_id: str) -> None:
        with self._lock:
            self.running.discard(deployment_id)

    def discard(self, deployment_id: str) -> None:
        with self._lock:
            self.running.discard(deployment_id)
            self.logs.pop(deployment_id, None)

    def stop_project(self, project_id: str, deployment_ids: list[str]) -> None:
        with self._lock:
            self.warm.pop(project_id, None)
        for deployment_id in deployment_ids:
            self.discard(deployment_id)

    def keep_warm(self, project_id: str, deployment_ids: set[str]) -> None:
        with self._lock:
            self.warm[project_id] = set(deployment_ids)

    def runtime_log(self, deployment_id: str, limit: int = 200) -> list[str]:
        with self._lock:
            return self.logs.get(deployment_id, [])[-limit:]


if TYPE_CHECKING:

    def _fake_name_data(
        suffixes: FakePublicSuffixes, scripts: FakeUnicodeScripts
    ) -> tuple[PublicSuffixes, UnicodeScripts]:
        return suffixes, scripts  # mypy checks the fakes against ports.names here

    def _fakes_satisfy_their_ports(
        store: FakeStore, blobs: FakeBlobStore, files: FakeDeploymentFiles, edge: FakeEdge
    ) -> tuple[Store, BlobStore, BlobChecker, DeploymentFiles, Edge]:
        return store, blobs, blobs, files, edge  # mypy checks each fake against its Protocol here

    def _fake_store_serves_domains(store: FakeStore) -> DomainStore:
        return store

    def _fake_runtimes(runtime: FakeRuntime, envs: FakeEnvironments) -> tuple[AppRuntime, EnvironmentBuilder]:
        return runtime, envs
