"""Leases in the database: how several control-plane processes sharing one database do each job once."""

from __future__ import annotations

from typing import Protocol


class LeaseRepository(Protocol):
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``holder`` until the store's clock + ``ttl`` seconds. True if it was
        free, expired, or already ``holder``'s (then renewed). One conditional write: two holders racing
        for a free lease never both get it."""
        ...

    def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if ``holder`` holds it; False if it did not (expired and taken over)."""
        ...

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        """(holder, expires at) of the live lease ``name``; None if free or expired."""
        ...
