"""Which custom domain names may be added, and where a name sits in DNS, by the Public Suffix List.

The apex of a name is its registrable domain (eTLD+1, "the public suffix plus one label"): example.com,
example.co.uk, me.github.io. The list's private section counts as browsers count it, so github.io is a
public suffix like co.uk. The list itself comes in as a function (ports.names.PublicSuffixes), as the model
stays free of libraries.

Spelling (case, IDNA, lengths) is checked by ``parse_domain_name``; these rules apply only when a name is
added, so a name stored under older rules can still be looked at and removed.
"""

from __future__ import annotations

from collections.abc import Callable

from anchor_deploy.model.domains import DomainName
from anchor_deploy.model.errors import InvalidName
from anchor_deploy.model.mixed_scripts import ScriptsOf, mixed_script_problem

PublicSuffixOf = Callable[[str], str]
"""The longest public suffix a name is or ends with (ports.names.PublicSuffixes.public_suffix)."""


def registrable_domain(name: str, public_suffix: PublicSuffixOf) -> str | None:
    """The registrable domain ``name`` is or is under (``example.co.uk`` for ``www.example.co.uk``, the
    wildcard's ``*.`` aside), or None for a name that is itself a public suffix."""
    base = name.removeprefix("*.")
    suffix = public_suffix(base)
    if base == suffix or not base.endswith("." + suffix):
        return None
    owner = base[: -len(suffix) - 1].rsplit(".", 1)[-1]
    return f"{owner}.{suffix}"


def is_apex(name: str, public_suffix: PublicSuffixOf) -> bool:
    """An apex (the registrable domain itself) needs A/AAAA or ALIAS records: a CNAME is not allowed at a
    zone's apex. A wildcard is never one: its records sit one level below."""
    return not name.startswith("*.") and registrable_domain(name, public_suffix) == name


def caa_names(name: str, public_suffix: PublicSuffixOf) -> list[str]:
    """Where CAA records that govern ``name`` may be, closest first: the name, then each parent up to its
    registrable domain (a public suffix publishes none for its registrants)."""
    base = name.removeprefix("*.")
    top = registrable_domain(base, public_suffix) or base
    labels = base.split(".")
    names = [".".join(labels[i:]) for i in range(len(labels))]
    return names[: names.index(top) + 1] if top in names else [base]


def check_new_domain_name(
    name: DomainName, base_domain: str, public_suffix: PublicSuffixOf, scripts_of: ScriptsOf
) -> None:
    """InvalidName, with the reason, for a name the platform will not take on."""
    shown = repr(name.unicode)
    base = name.ascii.removeprefix("*.")
    if base == base_domain or base.endswith("." + base_domain):
        raise InvalidName(f"{shown} is under the platform's own domain {base_domain}; it is served already")
    if registrable_domain(base, public_suffix) is None:
        suffix = name.unicode.removeprefix("*.")
        if name.is_wildcard:
            raise InvalidName(
                f"{shown} is a wildcard directly under the public suffix {suffix} (on the Public Suffix "
                f"List): it would take in every domain registered under {suffix}; use a wildcard under your "
                f"own domain, such as *.example.{suffix}"
            )
        raise InvalidName(
            f"{shown} is a public suffix (on the Public Suffix List): names under it belong to different "
            f"owners; add a domain you own under it, such as example.{suffix}"
        )
    for label in name.unicode.removeprefix("*.").split("."):
        problem = mixed_script_problem(label, scripts_of)
        if problem is not None:
            raise InvalidName(f"{shown}: {problem}")
