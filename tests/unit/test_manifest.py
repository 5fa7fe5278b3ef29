"""Manifest validation: what a client may send before anything is stored."""

from __future__ import annotations

import stat
from typing import Any

import pytest

from anchor_deploy.model.errors import InvalidManifest
from anchor_deploy.model.manifest import (
    ETAG_SUFFIX,
    MAX_FILES,
    MAX_PATH_BYTES,
    MAX_SEGMENT_BYTES,
    ManifestFile,
    is_sha256,
    parse_manifest,
    validate_mode,
    validate_path,
)
from tests.support import sha

DIGEST = sha(b"x")
LIMIT = 1000


def f(path: object = "index.html", digest: object = DIGEST, size: object = 1, **extra: Any) -> dict[str, Any]:
    return {"path": path, "sha256": digest, "size": size, **extra}


@pytest.mark.parametrize(
    "path",
    [
        "index.html",
        "a/b/c.js",
        ".well-known/security.txt",
        "...",
        "..hidden",
        "a..b",
        "caf\u00e9.html",
        "sp ace.html",
        "x" * MAX_SEGMENT_BYTES,
        "/".join(["a" * 254] * 4) + "/" + "b" * 3,  # 255*4 + 3 = exactly 1023 bytes
        "/".join(["a" * 255] * 4),  # 1023
        ("a/" * 511) + "bc",  # exactly 1024 bytes
        "x" + ETAG_SUFFIX + ".html",
        "etag" + ETAG_SUFFIX[1:],
    ],
)
def test_valid_paths(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "non-empty"),
        (None, "non-empty"),
        (7, "non-empty"),
        ("..", "'..' segment"),
        ("../etc/passwd", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a/..", "'..' segment"),
        (".", "'.' segment"),
        ("./index.html", "'.' segment"),
        ("/etc/passwd", "absolute"),
        ("/", "absolute"),
        ("a\x00b", "NUL"),
        ("a\\b", "backslash"),
        ("..\\..\\x", "backslash"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a/\t/b", "control character"),
        ("a\nb", "control character"),
        ("a\rb", "control character"),
        ("a\x1bb", "control character"),
        ("a\x7fb", "control character"),
        ("\ud800.html", "UTF-8"),
        ("x" * (MAX_SEGMENT_BYTES + 1), "segment longer"),
        ("\u00e9" * 128, "segment longer"),  # 128 characters, 256 bytes
        (("a/" * 512) + "b", "longer than"),  # 1025 bytes
        ("a" * (MAX_PATH_BYTES + 1), "longer than"),
        ("index.html" + ETAG_SUFFIX, "reserved"),
        ("a/b" + ETAG_SUFFIX, "reserved"),
        (ETAG_SUFFIX, "reserved"),
        ("dir" + ETAG_SUFFIX + "/index.html", "reserved"),
    ],
)
def test_invalid_paths(path: object, why: str) -> None:
    with pytest.raises(InvalidManifest, match=why):
        validate_path(path)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (None, 0o644),
        (0o644, 0o644),
        (0o755, 0o755),
        (0, 0),
        (stat.S_IFREG | 0o600, 0o600),
        (stat.S_IFREG | 0o4755, 0o755),  # setuid/setgid/sticky are dropped
        (0o7777, 0o777),
    ],
)
def test_valid_modes(mode: object, expected: int) -> None:
    assert validate_mode(mode, "x") == expected


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        (stat.S_IFLNK | 0o777, "a symlink"),
        (stat.S_IFDIR | 0o755, "a directory"),
        (stat.S_IFCHR | 0o600, "a device"),
        (stat.S_IFBLK | 0o600, "a device"),
        (stat.S_IFIFO | 0o600, "a FIFO"),
        (stat.S_IFSOCK | 0o600, "a socket"),
        (0o110644, "not a regular file"),
        (0o177777, "not a regular file"),
        (0o200000 | 0o644, "integer from 0 to 177777"),
        (2**64 | 0o644, "integer from 0 to 177777"),
        (-1, "integer from 0"),
        (True, "integer from 0"),
        ("644", "integer from 0"),
        (0o644 * 1.0, "integer from 0"),
        (None.__class__, "integer from 0"),
    ],
)
def test_invalid_modes(mode: object, why: str) -> None:
    with pytest.raises(InvalidManifest, match=why):
        validate_mode(mode, "x")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (DIGEST, True),
        ("0" * 64, True),
        (DIGEST.upper(), False),
        (DIGEST[:-1], False),
        (DIGEST + "0", False),
        ("g" * 64, False),
        (DIGEST + "\n", False),
        (None, False),
        (int(DIGEST, 16), False),
    ],
)
def test_is_sha256(value: object, valid: bool) -> None:
    assert is_sha256(value) is valid


def test_parse_manifest_returns_typed_files_in_order() -> None:
    raw = [f("b.js", size=3, mode=0o755), f("a/index.html", sha(b"y"), 0), f("c.css", size=LIMIT)]
    assert parse_manifest(raw, LIMIT) == (
        ManifestFile("b.js", DIGEST, 3, 0o755),
        ManifestFile("a/index.html", sha(b"y"), 0, 0o644),
        ManifestFile("c.css", DIGEST, LIMIT, 0o644),
    )
    assert parse_manifest([], LIMIT) == ()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (None, "must be a list"),
        ({"files": []}, "must be a list"),
        ("index.html", "must be a list"),
        (["index.html"], "must be an object"),
        ([f(), None], "must be an object"),
        ([f(path="../x")], "'..' segment"),
        ([f(digest=DIGEST.upper())], "sha256"),
        ([f(digest="abc")], "sha256"),
        ([f(digest=None)], "sha256"),
        ([{"path": "a", "size": 1}], "sha256"),
        ([f(size=-1)], "size"),
        ([f(size=True)], "size"),
        ([f(size="1")], "size"),
        ([f(size=1.0)], "size"),
        ([f(size=None)], "size"),
        ([f(size=LIMIT + 1)], "larger than"),
        ([f(mode=stat.S_IFLNK | 0o777)], "symlink"),
        ([f("a"), f("b"), f("a")], "listed twice"),
        ([f("a"), f("a/b")], "both a file and the directory"),
        ([f("a/b/c/d"), f("a/b")], "both a file and the directory"),
    ],
)
def test_parse_manifest_refuses(raw: object, why: str) -> None:
    with pytest.raises(InvalidManifest, match=why):
        parse_manifest(raw, LIMIT)


def test_sibling_names_do_not_clash() -> None:
    paths = ["a", "ab/c", "a.d/x", "b/a"]
    assert [m.path for m in parse_manifest([f(p) for p in paths], LIMIT)] == paths


def test_file_count_is_bounded() -> None:
    entry = f()
    with pytest.raises(InvalidManifest, match="at most"):
        parse_manifest([entry] * (MAX_FILES + 1), LIMIT)


def test_manifest_file_to_dict_round_trips() -> None:
    entry = ManifestFile("a/b.js", DIGEST, 3, 0o755)
    assert parse_manifest([entry.to_dict()], LIMIT) == (entry,)
