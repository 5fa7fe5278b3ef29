"""The Lambda handlers' pure parts: which file a request path names, validators, the WSGI environ."""

from __future__ import annotations

import base64
import sys

import pytest

from anchor_deploy.adapters.aws.lambda_package import DEFAULT_PYTHON, LAMBDA_PYTHONS, lambda_python
from anchor_deploy.model.apps import AppConfig
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.runtime import lambda_app, lambda_static
from anchor_deploy.runtime.lambda_static import Found, Manifest, Served, find
from tests.lambda_emulator import function_url_event

DIGEST = "ab" * 32
MANIFEST = Manifest(
    "dpl_unit",
    {
        name: Served(name, DIGEST, 1, "text/html; charset=utf-8")
        for name in ("index.html", "a.html", "docs/index.html", "nodocs/page.html", "caf\u00e9.txt")
    },
)


def _file(name: str) -> Found:
    return Found(file=MANIFEST.files[name])


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/", "", _file("index.html")),
        ("", "", _file("index.html")),
        ("/a.html", "", _file("a.html")),
        ("/a.html/", "v=1", Found(redirect="/a.html?v=1")),
        ("/docs", "", Found(redirect="/docs/")),
        ("/docs/", "", _file("docs/index.html")),
        ("/docs/./../a.html", "", _file("a.html")),
        ("/../../a.html", "", _file("a.html")),  # never above the root
        ("/caf%C3%A9.txt", "", _file("caf\u00e9.txt")),
        ("/nodocs/", "", Found()),  # a folder without index.html is not listed
        ("/nodocs", "", Found()),
        ("/a.html%00", "", Found()),
        ("/%ff", "", Found()),  # not UTF-8
        ("/missing", "", Found()),
        ("//evil.example/docs", "", Found()),
        ("///docs", "", Found(redirect="/docs/")),
    ],
)
def test_find(path: str, query: str, expected: Found) -> None:
    assert find(MANIFEST, path, query) == expected


def test_no_root_index_means_nothing_at_the_root() -> None:
    bare = Manifest("dpl_bare", {"a.css": Served("a.css", DIGEST, 1, "text/css")})
    assert find(bare, "/") == Found()


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        (f'"{DIGEST}"', True),
        (f'W/"{DIGEST}"', True),
        (f'"x", "{DIGEST}"', True),
        ("*", True),
        (DIGEST, False),  # unquoted is not the same entity tag
        ('"other"', False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert lambda_static.etag_matches(header, f'"{DIGEST}"') is matches


@pytest.mark.parametrize(
    ("path", "cache"),
    [
        ("app.0123abcd.js", lambda_static.IMMUTABLE_CACHE),
        ("assets/chunk-0a1b2c3d4e.css", lambda_static.IMMUTABLE_CACHE),
        ("app.0123abc.js", lambda_static.REVALIDATE_CACHE),  # 7 hex digits: not a content hash
        ("index.html", lambda_static.REVALIDATE_CACHE),
        ("logo.png", lambda_static.REVALIDATE_CACHE),
    ],
)
def test_cache_control(path: str, cache: str) -> None:
    assert lambda_static.cache_control(path) == cache


def test_fits_inline_keeps_base64_under_lambdas_answer_limit() -> None:
    limit = lambda_static.RESPONSE_LIMIT - lambda_static.HEADROOM
    largest = max(n for n in range(limit * 3 // 4 - 8, limit * 3 // 4 + 8) if lambda_static.fits_inline(n))
    assert len(base64.b64encode(b"x" * largest)) <= limit < len(base64.b64encode(b"x" * (largest + 3)))


def test_wsgi_environ_from_a_function_url_event() -> None:
    event = function_url_event(
        "POST",
        "/a%2Fb/c",
        "x=1&y=%20",
        {"Content-Type": "application/json", "X-Forwarded-Proto": "https", "Accept": "a, b"},
        b'{"k": 1}',
        ["one=1", "two=2"],
    )
    environ = lambda_app.wsgi_environ(event)
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/a/b/c" and environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["CONTENT_TYPE"] == "application/json" and environ["CONTENT_LENGTH"] == "8"
    assert environ["HTTP_ACCEPT"] == "a, b" and environ["HTTP_COOKIE"] == "one=1; two=2"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert (
        environ["SERVER_NAME"] == "abc123.lambda-url.us-east-1.on.aws"
        and environ["wsgi.url_scheme"] == "https"
    )
    assert environ["wsgi.input"].read() == b'{"k": 1}'


def test_wsgi_response_headers_and_cookies() -> None:
    answer = lambda_app.wsgi_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("X-A", "1"),
            ("x-a", "2"),
            ("Set-Cookie", "b=2"),
        ],
        "héllo".encode(),
    )
    assert answer == {
        "statusCode": 200,
        "headers": {"content-type": "text/plain", "x-a": "1, 2"},
        "body": "héllo",
        "isBase64Encoded": False,
        "cookies": ["a=1", "b=2"],
    }


def test_an_app_without_a_python_gets_the_platforms_own_on_lambda_when_lambda_has_it() -> None:
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    expected = own if own in LAMBDA_PYTHONS else "3.12"
    assert lambda_python(AppConfig()) == expected == DEFAULT_PYTHON
    assert lambda_python(AppConfig(python="3.13")) == "3.13"
    with pytest.raises(BuildFailed, match=r"Lambda has no Python 2\.7 runtime"):
        lambda_python(AppConfig(python="2.7"))
