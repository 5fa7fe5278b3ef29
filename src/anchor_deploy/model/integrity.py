"""Storage integrity: the stored copies of a blob, what fsck finds wrong with them, and what it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class CopyKind(StrEnum):
    BLOB = "blob"  # the blob itself: what `missing` and uploads are about
    SPARE = "spare"  # another inode with the same bytes, made past the filesystem's hard-link limit
    ETAG = "etag"  # the ETag sidecar (or a spare of it): the quoted digest


class ProblemKind(StrEnum):
    CORRUPT = "corrupt"  # the content is not what its name says
    MISSING = "missing"  # a deployment needs the blob and the store does not hold it


@dataclass(frozen=True)
class StoredCopy:
    """One file of the blob store. ``name`` is its path inside the store (``ab/<digest>``, ``ab/<digest>.2``,
    ``etags/<digest>``): unique, and what an operator looks for on disk."""

    digest: str
    name: str
    kind: CopyKind
    size: int


@dataclass
class BlobProblem:
    digest: str
    kind: CopyKind
    problem: ProblemKind
    detail: str
    name: str | None = None  # the copy; None when no copy of the blob is left
    deployments: list[str] = field(default_factory=list)  # the deployments whose manifest uses the blob
    action: str = ""  # what --repair did about it ("" without --repair)


@dataclass
class FsckReport:
    repair: bool
    copies_checked: int = 0
    bytes_checked: int = 0
    problems: list[BlobProblem] = field(default_factory=list)
    relinked: list[str] = field(default_factory=list)  # deployments rebuilt from good copies in place
    taken_down: list[str] = field(default_factory=list)  # deployments no longer served until a re-upload
    damaged: dict[str, str] = field(default_factory=dict)  # every damaged deployment after the run: reason
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.problems
