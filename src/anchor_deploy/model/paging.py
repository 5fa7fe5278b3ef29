"""Pages of a newest-first list (the dashboard's deployments and production history)."""

from __future__ import annotations


def page_slice(limit: int | None, offset: int) -> slice:
    """The slice of a full list a page is: ``offset`` skipped, then at most ``limit`` (None: the rest).
    ValueError for a negative limit or offset: the caller validates what a user asked for."""
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError(f"a page needs a limit and offset of 0 or more, not {limit} and {offset}")
    return slice(offset, None if limit is None else offset + limit)
