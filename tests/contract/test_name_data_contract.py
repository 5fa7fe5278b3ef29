"""The contracts of ports.names: the bundled Public Suffix List and Unicode's Script_Extensions (fontTools)
agree with their in-memory fakes on the names and characters unit tests use, and neither reads anything
from the network (the list comes from the installed package)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from anchor_deploy.adapters.public_suffix_list import BundledPublicSuffixes
from anchor_deploy.adapters.unicode_scripts import UcdScripts
from anchor_deploy.ports.fakes import FakePublicSuffixes, FakeUnicodeScripts
from anchor_deploy.ports.names import PublicSuffixes, UnicodeScripts


@pytest.fixture(params=["bundled", "fake"])
def suffixes(request: pytest.FixtureRequest) -> PublicSuffixes:
    return BundledPublicSuffixes() if request.param == "bundled" else FakePublicSuffixes()


@pytest.fixture(params=["ucd", "fake"])
def scripts(request: pytest.FixtureRequest) -> UnicodeScripts:
    return UcdScripts() if request.param == "ucd" else FakeUnicodeScripts()


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("example.com", "com"),
        ("com", "com"),
        ("www.example.co.uk", "co.uk"),
        ("example.co.uk", "co.uk"),
        ("co.uk", "co.uk"),
        ("me.github.io", "github.io"),  # the list's private section counts, as in browsers
        ("github.io", "github.io"),
        ("example.io", "io"),
        ("a.b.example.test", "test"),  # an unknown top-level label is a suffix by itself
        ("xn--e1afmkfd.xn--p1ai", "xn--p1ai"),  # пример.рф, in A-labels
    ],
)
def test_public_suffix_is_the_longest_rule_a_name_ends_with(
    suffixes: PublicSuffixes, name: str, suffix: str
) -> None:
    assert suffixes.public_suffix(name) == suffix


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("a", {"Latin"}),
        ("\u00fc", {"Latin"}),  # ü
        ("\u0430", {"Cyrillic"}),
        ("\u03b1", {"Greek"}),
        ("7", {"Common"}),
        ("-", {"Common"}),
        ("\u3042", {"Hiragana"}),
        ("\u30a2", {"Katakana"}),
        ("\u30fc", {"Hiragana", "Katakana"}),  # the prolonged sound mark belongs to both
        ("\u6f22", {"Han"}),
        ("\u3105", {"Bopomofo"}),
        ("\ud55c", {"Hangul"}),
    ],
)
def test_scripts_are_script_extensions_by_name(
    scripts: UnicodeScripts, char: str, expected: set[str]
) -> None:
    assert scripts.scripts(char) == frozenset(expected)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the name data must not reach the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


def test_the_real_adapters_load_offline(no_network: None) -> None:
    assert BundledPublicSuffixes().public_suffix("shop.example.co.uk") == "co.uk"
    assert UcdScripts().scripts("\u0430") == frozenset({"Cyrillic"})
