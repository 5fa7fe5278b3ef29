"""Name rules: project names, deployment ids, hostnames."""

from __future__ import annotations

import pytest

from anchor_deploy.model.errors import InvalidName
from anchor_deploy.model.names import (
    HOSTNAME_MAX,
    PROJECT_NAME_MAX,
    deployment_host,
    is_deployment_id,
    is_valid_hostname,
    new_deployment_id,
    production_host,
    validate_project_name,
)


@pytest.mark.parametrize(
    "name",
    ["a", "7", "site", "my-site", "a-b-c", "a--b", "0day", "x" * PROJECT_NAME_MAX, "a" + "-" * 38 + "b"],
)
def test_valid_project_names(name: str) -> None:
    assert validate_project_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "abc\n",
        "\nabc",
        " abc",
        "abc ",
        "x" * (PROJECT_NAME_MAX + 1),
        "-abc",
        "abc-",
        "-",
        "Abc",
        "ABC",
        "my_site",
        "my.site",
        "my/site",
        "..",
        "caf\u00e9",
        "abc\x00",
        "\uff41bc",  # full-width 'a'
    ],
)
def test_invalid_project_names(name: str) -> None:
    with pytest.raises(InvalidName) as caught:
        validate_project_name(name)
    assert caught.value.code == "invalid_name" and caught.value.status == 422


@pytest.mark.parametrize("value", [None, 5, b"abc", ["abc"]])
def test_project_name_must_be_a_string(value: object) -> None:
    with pytest.raises(InvalidName):
        validate_project_name(value)


def test_new_deployment_ids_are_well_formed_and_distinct() -> None:
    ids = {new_deployment_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_deployment_id(i) for i in ids)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("dpl_abcdefghij12", True),
        ("dpl_000000000000", True),
        ("dpl_abcdefghij1", False),
        ("dpl_abcdefghij123", False),
        ("dpl_ABCDEFGHIJ12", False),
        ("dpl_abcdefghij12\n", False),
        ("abcdefghij12", False),
        ("prj_abcdefghij12", False),
        ("dpl_abcdefghij-2", False),
        ("", False),
    ],
)
def test_is_deployment_id(value: str, valid: bool) -> None:
    assert is_deployment_id(value) is valid


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("a", True),
        ("site.anchor.test", True),
        ("site-abc123.anchor.test", True),
        ("xn--caf-dma.example", True),
        ("a" * 63 + ".test", True),
        (".".join(["a" * 63] * 3 + ["b" * 61]), True),  # exactly 253
        ("", False),
        (".", False),
        ("..", False),
        ("A.b", False),
        ("a.B", False),
        ("a..b", False),
        (".a", False),
        ("a.", False),
        ("-a.b", False),
        ("a-.b", False),
        ("a_b.c", False),
        ("a/b", False),
        ("a b", False),
        ("a.b\n", False),
        ("a" * 64 + ".test", False),
        (".".join(["a" * 63] * 4) + ".ab", False),  # 254
    ],
)
def test_is_valid_hostname(host: str, valid: bool) -> None:
    assert is_valid_hostname(host) is valid


def test_hostname_bound_is_253() -> None:
    assert HOSTNAME_MAX == 253


def test_hosts_derived_from_names() -> None:
    assert production_host("site", "anchor.test") == "site.anchor.test"
    assert deployment_host("site", "dpl_abcdefghij12", "anchor.test") == "site-abcdefghij12.anchor.test"
    longest = deployment_host("x" * PROJECT_NAME_MAX, new_deployment_id(), "anchor.test")
    assert is_valid_hostname(longest)  # 40 + 1 + 12 = 53 characters: one label still fits
