"""Ports for the data that domain name rules read: the Public Suffix List and Unicode's script properties.

Both are data shipped with installed packages and read from there, never fetched at run time, so the
platform and its tests work offline."""

from __future__ import annotations

from typing import Protocol


class PublicSuffixes(Protocol):
    """The Public Suffix List (ICANN and private sections, as browsers use it)."""

    def public_suffix(self, name: str) -> str:
        """The longest public suffix that ``name`` (lowercase A-labels, no trailing dot) is or ends with:
        ``co.uk`` for ``www.example.co.uk``, ``github.io`` for ``me.github.io``. A top-level label the list
        does not know is a public suffix by itself (the list's default rule ``*``)."""
        ...


class UnicodeScripts(Protocol):
    """Unicode's Script_Extensions property, by script name."""

    def scripts(self, char: str) -> frozenset[str]:
        """The scripts ``char`` is used with, by their Unicode names (``{"Latin"}``, ``{"Cyrillic"}``,
        ``{"Hiragana", "Katakana"}`` for 'ー'); ``{"Common"}`` or ``{"Inherited"}`` for characters shared by
        every script (digits, the hyphen); ``{"Unknown"}`` for an unassigned code point."""
        ...
