"""Custom domain name rules, table-driven."""

from __future__ import annotations

import pytest

from anchor_deploy.adapters.public_suffix_list import BundledPublicSuffixes
from anchor_deploy.adapters.unicode_scripts import UcdScripts
from anchor_deploy.model.domain_policy import check_new_domain_name, is_apex
from anchor_deploy.model.domains import DomainName, parse_domain_name
from anchor_deploy.model.errors import InvalidName
from tests.support import to_ascii, to_unicode

BASE = "apps.example.net"


SUFFIXES = BundledPublicSuffixes()


def parse(raw: object) -> DomainName:
    """A name as ``anchor domains add`` takes it: spelling, then the rules for adding one."""
    name = parse_domain_name(raw, to_ascii, to_unicode)
    check_new_domain_name(name, BASE, SUFFIXES.public_suffix, UcdScripts().scripts)
    return name


@pytest.mark.parametrize(
    ("raw", "ascii_name", "unicode_name"),
    [
        ("shop.example.com", "shop.example.com", "shop.example.com"),
        ("Shop.Example.COM", "shop.example.com", "shop.example.com"),
        ("shop.example.com.", "shop.example.com", "shop.example.com"),
        ("  example.com  ", "example.com", "example.com"),
        ("*.example.com", "*.example.com", "*.example.com"),
        ("bücher.example", "xn--bcher-kva.example", "bücher.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", "bücher.example"),
        ("a-b.c-d.example", "a-b.c-d.example", "a-b.c-d.example"),
        ("x" * 63 + ".com", "x" * 63 + ".com", "x" * 63 + ".com"),
        ("apps.example.net.evil.com", "apps.example.net.evil.com", "apps.example.net.evil.com"),
    ],
)
def test_valid_names_are_normalized(raw: str, ascii_name: str, unicode_name: str) -> None:
    name = parse(raw)
    assert (name.ascii, name.unicode) == (ascii_name, unicode_name)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("127.0.0.1", "IP address"),
        ("::1", "IP address"),
        ("[2001:db8::1]", "IP address"),
        ("localhost", "single label"),
        ("com", "single label"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
        ("x" * 64 + ".com", "longer than 63"),
        (".".join(["a" * 62] * 4) + ".com", "longer than 253"),
        ("*.*.x.com", "leftmost"),
        ("foo.*.com", "leftmost"),
        ("*foo.example.com", "leftmost"),
        ("_x.com", "no '_'"),
        ("-a.example.com", "letters, digits"),
        ("a-.example.com", "letters, digits"),
        ("exa mple.com", "letters, digits"),
        ("example.123", "all-numeric"),
        ("xn--zz.example.com", "internationalized"),
        ("bü_cher.example", "internationalized"),
        (BASE, "platform's own domain"),
        ("shop." + BASE, "platform's own domain"),
        ("*." + BASE, "platform's own domain"),
        ("", "empty"),
        (".", "empty"),
        (42, "string"),
        (None, "string"),
    ],
)
def test_bad_names_are_refused_with_a_reason(raw: object, why: str) -> None:
    with pytest.raises(InvalidName) as caught:
        parse(raw)
    assert why in caught.value.message


def test_apex_and_wildcard() -> None:
    apex = [is_apex(parse(n).ascii, SUFFIXES.public_suffix) for n in ("example.com", "www.example.com")]
    assert apex == [True, False]
    assert parse("*.example.com").is_wildcard and not is_apex("*.example.com", SUFFIXES.public_suffix)
