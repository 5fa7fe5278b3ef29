"""Mixed-script labels: the rule browsers use to decide whether an internationalized label is shown as it is
or as punycode ("paypal" spelled with a Cyrillic 'a', U+0430, is a look-alike), applied when a domain is
added.

The rule is the "Highly Restrictive" level of Unicode's security mechanisms (UTS #39, section 5.2), which
Chrome and Firefox use for their IDN display policy. A label passes when:

- all of its letters share one script (digits, the hyphen and other characters of the Common or Inherited
  script go with any script), or
- it is covered by Latin + Han + Hiragana + Katakana (Japanese), Latin + Han + Bopomofo (Chinese) or
  Latin + Han + Hangul (Korean): every letter belongs to one of those scripts.

A character belongs to every script of its Script_Extensions (the prolonged sound mark U+30FC to both
Hiragana and Katakana), so the checks work on sets of scripts, never on one script per character.

Not covered (stated in docs/domains.md): whole-script confusables. "paypal" written entirely in Cyrillic
letters that look Latin is single-script and passes, as it does in browsers.
"""

from __future__ import annotations

from collections.abc import Callable

ScriptsOf = Callable[[str], frozenset[str]]
"""A character's Script_Extensions by Unicode script name (ports.names.UnicodeScripts.scripts)."""

SHARED = frozenset({"Common", "Inherited"})
ALLOWED_MIXES = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)


def mixed_script_problem(label: str, scripts_of: ScriptsOf) -> str | None:
    """Why ``label`` (a U-label, lowercase) mixes scripts the way browsers refuse to display, or None."""
    letters = [scripts for char in label if not (scripts := scripts_of(char)) <= SHARED]
    if not letters or frozenset.intersection(*letters):
        return None  # no letters, or one script shared by all of them
    if any(all(scripts & mix for scripts in letters) for mix in ALLOWED_MIXES):
        return None
    named = _script_names(letters)
    return (
        f"label {label!r} mixes {', '.join(named[:-1])} and {named[-1]} letters, which browsers show as "
        "punycode (a mix like this is how look-alikes of other names are made); write each label in one "
        "script (Latin may be mixed only with Han, Hiragana and Katakana, with Han and Bopomofo, or with "
        "Han and Hangul)"
    )


def _script_names(letters: list[frozenset[str]]) -> list[str]:
    """The scripts of a label's letters in order of appearance; a letter used with several scripts adds
    none when one of them is named already."""
    named: list[str] = []
    for scripts in letters:
        if not scripts & set(named):
            named.append(min(scripts))
    return named
