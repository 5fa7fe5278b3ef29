"""Ports: the small protocols the services talk to. Each has an in-memory fake in ``ports.fakes``."""

from anchor_deploy.ports.blobs import BlobChecker, BlobStore, DeploymentFiles
from anchor_deploy.ports.edge import Edge
from anchor_deploy.ports.store import (
    AliasRepository,
    DeploymentRepository,
    HostRepository,
    ProjectRepository,
    Store,
    TokenRepository,
)

__all__ = [
    "AliasRepository",
    "BlobChecker",
    "BlobStore",
    "DeploymentFiles",
    "DeploymentRepository",
    "Edge",
    "HostRepository",
    "ProjectRepository",
    "Store",
    "TokenRepository",
]
