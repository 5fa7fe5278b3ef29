"""Which names may be added and where they sit in DNS: the Public Suffix List (the real, bundled list) and the
mixed-script rule (real Unicode Script_Extensions), table-driven."""

from __future__ import annotations

import pytest

from anchor_deploy.adapters.local.edge_plane import EdgePlane
from anchor_deploy.adapters.public_suffix_list import BundledPublicSuffixes
from anchor_deploy.adapters.unicode_scripts import UcdScripts
from anchor_deploy.model.domain_policy import caa_names, check_new_domain_name, is_apex, registrable_domain
from anchor_deploy.model.domains import Domain, DomainName, parse_domain_name
from anchor_deploy.model.entities import Project
from anchor_deploy.model.errors import InvalidName
from anchor_deploy.model.mixed_scripts import mixed_script_problem
from anchor_deploy.ports.fakes import FakeStore
from tests.support import to_ascii, to_unicode
from tests.unit.domain_fakes import FakeDomainEdge, FakeProbe, FakeServedCertificates, XorBox

BASE = "apps.example.net"
SUFFIXES = BundledPublicSuffixes()
SCRIPTS = UcdScripts()
CYRILLIC_A = "\u0430"
GREEK_ALPHA = "\u03b1"


def add(raw: str) -> DomainName:
    """A name as ``anchor domains add`` takes it: spelling, then the rules for adding one."""
    name = parse_domain_name(raw, to_ascii, to_unicode)
    check_new_domain_name(name, BASE, SUFFIXES.public_suffix, SCRIPTS.scripts)
    return name


def refusal(raw: str) -> str:
    with pytest.raises(InvalidName) as caught:
        add(raw)
    return caught.value.message


@pytest.mark.parametrize(
    ("name", "registrable", "apex"),
    [
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", False),
        ("example.co.uk", "example.co.uk", True),
        ("www.example.co.uk", "example.co.uk", False),
        ("a.b.example.co.uk", "example.co.uk", False),
        ("*.example.co.uk", "example.co.uk", False),  # a wildcard's records sit one level below
        ("me.github.io", "me.github.io", True),  # private section: github.io is a suffix, as in browsers
        ("blog.me.github.io", "me.github.io", False),
        ("city.kawasaki.jp", "city.kawasaki.jp", True),  # an exception (!) rule under a wildcard rule
        ("shop.x.kawasaki.jp", "shop.x.kawasaki.jp", True),  # *.kawasaki.jp: x.kawasaki.jp is a suffix
        ("example.test", "example.test", True),  # a TLD the list does not know is a suffix by itself
        ("www.example.test", "example.test", False),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai", True),  # пример.рф
        ("co.uk", None, False),
        ("github.io", None, False),
    ],
)
def test_apex_is_the_registrable_domain(name: str, registrable: str | None, apex: bool) -> None:
    assert registrable_domain(name, SUFFIXES.public_suffix) == registrable
    assert is_apex(name, SUFFIXES.public_suffix) is apex


@pytest.mark.parametrize(
    "raw", ["co.uk", "CO.UK.", "github.io", "s3.amazonaws.com", "x.kawasaki.jp", "公司.cn", "xn--55qx5d.cn"]
)
def test_a_public_suffix_itself_is_refused(raw: str) -> None:
    message = refusal(raw)
    assert "is a public suffix" in message and "Public Suffix List" in message
    assert "such as example." in message


@pytest.mark.parametrize(
    ("raw", "suffix"),
    [
        ("*.co.uk", "co.uk"),
        ("*.CO.UK.", "co.uk"),
        ("*.github.io", "github.io"),
        ("*.x.kawasaki.jp", "x.kawasaki.jp"),
        ("*.xn--55qx5d.cn", "公司.cn"),
    ],
)
def test_a_wildcard_directly_under_a_public_suffix_is_refused(raw: str, suffix: str) -> None:
    message = refusal(raw)
    assert f"wildcard directly under the public suffix {suffix}" in message
    assert f"such as *.example.{suffix}" in message


@pytest.mark.parametrize(
    ("raw", "ascii_name"),
    [
        ("*.example.co.uk", "*.example.co.uk"),
        ("*.me.github.io", "*.me.github.io"),
        ("me.github.io", "me.github.io"),
        ("example.co.uk", "example.co.uk"),
        ("city.kawasaki.jp", "city.kawasaki.jp"),
        ("*.shop.example.com", "*.shop.example.com"),
    ],
)
def test_names_under_a_registrable_domain_are_taken(raw: str, ascii_name: str) -> None:
    assert add(raw).ascii == ascii_name


@pytest.mark.parametrize(
    ("raw", "scripts"),
    [
        (f"p{CYRILLIC_A}ypal.com", "Latin and Cyrillic"),
        (f"P{CYRILLIC_A.upper()}YPAL.COM", "Latin and Cyrillic"),  # case folded first
        ("xn--pypal-4ve.com", "Latin and Cyrillic"),  # the same name typed as punycode
        (f"www.p{CYRILLIC_A}ypal.com", "Latin and Cyrillic"),  # any label, not only the first
        (f"{GREEK_ALPHA}pple.com", "Greek and Latin"),
        (f"{CYRILLIC_A}{GREEK_ALPHA}.com", "Cyrillic and Greek"),
        ("g\u0585\u0585gle.com", "Latin and Armenian"),  # Armenian oh, which looks like 'o'
        ("shopदुकान.com", "Latin and Devanagari"),
        ("shopร้าน.com", "Latin and Thai"),
        ("ひらがな한국.com", "Hiragana and Hangul"),  # Japanese kana with Korean: no allowed mix has both
        ("漢字ㄅ한.com", "Han, Bopomofo and Hangul"),
        (f"p{CYRILLIC_A}y-2024.com", "Latin and Cyrillic"),  # digits and hyphens do not hide a mix
    ],
)
def test_mixed_script_labels_are_refused_naming_the_scripts(raw: str, scripts: str) -> None:
    message = refusal(raw)
    assert f"mixes {scripts} letters" in message, message
    assert "punycode" in message


@pytest.mark.parametrize(
    "raw",
    [
        "bücher.example",  # Latin with diacritics is Latin
        "пример.рф",  # all Cyrillic
        "пример.com",  # one script per label: labels may differ
        "ελληνικά.gr",
        "日本語.jp",
        "ひらがなカタカナ漢字.jp",  # Han + Hiragana + Katakana (Japanese)
        "abcひらがな漢字.jp",  # ... with Latin
        "ラーメン.jp",  # the prolonged sound mark U+30FC is Hiragana and Katakana
        "漢字ㄅㄆ.tw",  # Han + Bopomofo (Chinese)
        "abc漢字ㄅ.tw",
        "한국어abc.kr",  # Hangul + Latin (Korean)
        "韓國한국.kr",  # Han + Hangul
        "中文123.cn",  # digits go with any script
        "xn--bcher-kva.example",  # punycode input of an allowed name
    ],
)
def test_single_script_and_cjk_mixes_are_taken(raw: str) -> None:
    name = add(raw)
    assert name.ascii.startswith("xn--") or name.ascii.isascii()


def test_whole_script_confusable_is_a_known_gap() -> None:
    """An all-Cyrillic look-alike of "paypal" is one script: browsers show it too, and so it is taken."""
    lookalike = "\u0440\u0430\u0443\u0440\u0430\u04cf.com"
    assert add(lookalike).ascii == to_ascii("\u0440\u0430\u0443\u0440\u0430\u04cf") + ".com"


@pytest.mark.parametrize(("label", "ok"), [("abc", True), ("a1-b2", True), ("123", True), ("-", True)])
def test_labels_without_mixed_letters_have_no_problem(label: str, ok: bool) -> None:
    assert (mixed_script_problem(label, SCRIPTS.scripts) is None) is ok


@pytest.mark.parametrize(
    ("raw", "why"),
    [(BASE, "platform's own domain"), ("shop." + BASE, "platform's own domain"), ("*." + BASE, "own domain")],
)
def test_names_under_the_platforms_domain_are_refused(raw: str, why: str) -> None:
    assert why in refusal(raw)


def test_spelling_alone_accepts_a_stored_name_that_the_rules_now_refuse() -> None:
    """Looking up or removing a domain parses its name without the adding rules: one stored before them
    (such as *.co.uk) can still be removed."""
    for raw in ("*.co.uk", f"p{CYRILLIC_A}ypal.com"):
        assert parse_domain_name(raw, to_ascii, to_unicode).ascii in ("*.co.uk", "xn--pypal-4ve.com")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("www.shop.example.co.uk", ["www.shop.example.co.uk", "shop.example.co.uk", "example.co.uk"]),
        ("example.co.uk", ["example.co.uk"]),
        ("*.example.com", ["example.com"]),
        ("blog.me.github.io", ["blog.me.github.io", "me.github.io"]),
    ],
)
def test_caa_is_looked_up_from_the_name_to_its_registrable_domain(name: str, expected: list[str]) -> None:
    assert caa_names(name, SUFFIXES.public_suffix) == expected


def _routing(name: str) -> list[tuple[str, str, str]]:
    """The routing records the local edge asks for (adapters/local/edge_plane.py), for an apex or not."""
    domain = Domain(name=name, project_id="p1", validation_label="v" * 20, created_at=0.0)
    apex = is_apex(name, SUFFIXES.public_suffix)
    plane = EdgePlane(
        FakeStore(), XorBox(), FakeServedCertificates(), FakeDomainEdge(), FakeProbe(FakeServedCertificates(),
        FakeDomainEdge()), "apps.example.net", "edge.example.net", ("192.0.2.1", "2001:db8::1")
    )  # fmt: skip
    records = plane.routing_records(domain, Project("p1", "site", 0.0), apex)
    return [(r.type, r.name, r.value) for r in records if r.purpose == "routing"]


def test_dns_records_for_an_apex_under_a_two_label_suffix() -> None:
    assert _routing("example.co.uk") == [
        ("A", "example.co.uk", "192.0.2.1"),
        ("AAAA", "example.co.uk", "2001:db8::1"),
    ]
    assert _routing("www.example.co.uk") == [("CNAME", "www.example.co.uk", "edge.example.net")]
    assert _routing("*.example.co.uk") == [("CNAME", "*.example.co.uk", "edge.example.net")]
