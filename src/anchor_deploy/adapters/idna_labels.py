"""Domain labels between Unicode and ASCII: IDNA 2008 with UTS #46 mapping (the idna package)."""

from __future__ import annotations

import idna


def idna_to_ascii(label: str) -> str:
    """The A-label of ``label``; ValueError for a name IDNA refuses."""
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from exc


def idna_to_unicode(label: str) -> str:
    """The U-label of ``label``; ValueError for a name IDNA refuses."""
    try:
        return str(idna.decode(label))
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from exc
