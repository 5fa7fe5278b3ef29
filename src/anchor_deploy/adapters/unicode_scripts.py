"""Unicode's Script_Extensions property from `fontTools.unicodedata` (Python's own `unicodedata` has no script
property). fontTools ships tables generated from the Unicode Character Database's Scripts.txt and
ScriptExtensions.txt as Python modules: nothing is read or fetched beyond importing them."""

from __future__ import annotations

from fontTools import unicodedata as ucd  # type: ignore[import-untyped]


class UcdScripts:
    """UnicodeScripts by long script name ("Latin", "Cyrillic", "Common")."""

    def scripts(self, char: str) -> frozenset[str]:
        return frozenset(ucd.script_name(code) for code in ucd.script_extension(char))
