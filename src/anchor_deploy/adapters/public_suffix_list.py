"""The Public Suffix List from the `publicsuffixlist` package: the copy of the list bundled in the installed
package, read once when the platform starts (never downloaded at run time). Upgrading the package updates
the list."""

from __future__ import annotations

from publicsuffixlist import PublicSuffixList


class BundledPublicSuffixes:
    """PublicSuffixes over the package's bundled list, ICANN and private sections (as browsers use it)."""

    def __init__(self) -> None:
        # accept_unknown: a TLD the list does not know is a suffix by itself (the list's default rule "*").
        self._list = PublicSuffixList(accept_unknown=True)

    def public_suffix(self, name: str) -> str:
        found = self._list.publicsuffix(name.lower().rstrip("."))
        return found if found is not None else name.rsplit(".", 1)[-1]
