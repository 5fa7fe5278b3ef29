"""The Lambda handlers of static and app deployments, run from their packages against the moto server.

Static: the handler's answers to function URL events (bytes from S3 blobs, content types, index and
redirects, 404 pages, HEAD, 304, the cache headers of hashed and unhashed names, a file too large for a
Lambda answer redirected to S3) and a rollback between two packages as CloudFront would see it. Apps: an
ASGI and a WSGI app packaged with app_package and run in a fresh process (tests/lambda_emulator.py), with a
secret sealed by moto's KMS. Packaging: same input gives the same zip, Lambda's size limits.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.kms_box import KmsBox
from anchor_deploy.adapters.aws.lambda_package import (
    APP_HANDLER,
    DEFAULT_PYTHON,
    MANIFEST_NAME,
    STATIC_HANDLER,
    LambdaPackage,
    app_package,
    static_package,
    version_environment,
)
from anchor_deploy.model.apps import AppConfig, FrozenEnv
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.runtime import lambda_static
from anchor_deploy.runtime.lambda_static import IMMUTABLE_CACHE, REVALIDATE_CACHE
from tests.aws_support import MotoServer
from tests.lambda_emulator import function_url_event, invoke_package

BUCKET = "anchor-blobs-test"
SITE: dict[str, bytes] = {
    "index.html": b"<!doctype html><p>home</p>",
    "app.0123abcd.js": b"console.log('hashed')",
    "plain.js": b"console.log('plain')",
    "style.css": b"body{margin:0}",
    "data.json": b'{"ok": true}',
    "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
    "pixel.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    "docs/index.html": b"<!doctype html><p>docs</p>",
    "404.html": b"<!doctype html><p>custom not found</p>",
}


def etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def manifest_files(files: dict[str, bytes]) -> list[ManifestFile]:
    return [ManifestFile(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in sorted(files.items())]


def upload_blobs(files: dict[str, bytes]) -> None:
    s3 = boto3.client("s3")
    for data in files.values():
        s3.put_object(Bucket=BUCKET, Key=f"blobs/{hashlib.sha256(data).hexdigest()}", Body=data)


def body_of(answer: dict[str, Any]) -> bytes:
    body = answer.get("body") or ""
    return base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode("utf-8")


def packaged_manifest(package: LambdaPackage) -> lambda_static.Manifest:
    with zipfile.ZipFile(io.BytesIO(package.read())) as archive, archive.open(MANIFEST_NAME) as source:
        raw = json.load(source)
    files = {p: lambda_static.Served(p, e["sha256"], e["size"], e["type"]) for p, e in raw["files"].items()}
    return lambda_static.Manifest("", files)


@pytest.fixture
def bucket(aws: MotoServer) -> str:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def site(bucket: str) -> Callable[..., dict[str, Any]]:
    """Requests answered in-process by the static handler over the packaged manifest of SITE."""
    upload_blobs(SITE)
    manifest = packaged_manifest(static_package("dpl_site", manifest_files(SITE)))
    blobs = lambda_static.Blobs(bucket, boto3.client("s3"))

    def request(path: str, method: str = "GET", query: str = "", **headers: str) -> dict[str, Any]:
        return lambda_static.respond(function_url_event(method, path, query, headers), manifest, blobs)

    return request


# -- static ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "name", "content_type", "cache"),
    [
        ("/", "index.html", "text/html; charset=utf-8", REVALIDATE_CACHE),
        ("/index.html", "index.html", "text/html; charset=utf-8", REVALIDATE_CACHE),
        ("/docs/", "docs/index.html", "text/html; charset=utf-8", REVALIDATE_CACHE),
        ("/app.0123abcd.js", "app.0123abcd.js", "text/javascript; charset=utf-8", IMMUTABLE_CACHE),
        ("/plain.js", "plain.js", "text/javascript; charset=utf-8", REVALIDATE_CACHE),
        ("/style.css", "style.css", "text/css; charset=utf-8", REVALIDATE_CACHE),
        ("/data.json", "data.json", "application/json", REVALIDATE_CACHE),
        ("/logo.svg", "logo.svg", "image/svg+xml", REVALIDATE_CACHE),
        ("/pixel.png", "pixel.png", "image/png", REVALIDATE_CACHE),
        ("/docs/../style.css", "style.css", "text/css; charset=utf-8", REVALIDATE_CACHE),
        ("/d%6Fcs/index.html", "docs/index.html", "text/html; charset=utf-8", REVALIDATE_CACHE),
    ],
)
def test_files_with_their_types_etags_and_cache_headers(
    site: Callable[..., dict[str, Any]], path: str, name: str, content_type: str, cache: str
) -> None:
    answer = site(path)
    assert answer["statusCode"] == 200, answer
    assert answer["headers"] == {
        "content-type": content_type,
        "cache-control": cache,
        "etag": etag(SITE[name]),
    }
    assert body_of(answer) == SITE[name]
    assert answer["isBase64Encoded"] is (name == "pixel.png")  # text as text, binary as base64


def test_head_conditional_and_redirects(site: Callable[..., dict[str, Any]]) -> None:
    head = site("/style.css", "HEAD")
    assert (head["statusCode"], head["body"], head["headers"]["content-length"]) == (200, "", "14")
    assert head["headers"]["etag"] == etag(SITE["style.css"])
    current = site("/", **{"If-None-Match": etag(SITE["index.html"])})
    assert (current["statusCode"], current["body"]) == (304, "")
    assert current["headers"] == {
        "content-type": "text/html; charset=utf-8",
        "cache-control": REVALIDATE_CACHE,
        "etag": etag(SITE["index.html"]),
    }
    assert site("/", **{"If-None-Match": f'"nope", W/{etag(SITE["index.html"])}'})["statusCode"] == 304
    stale = site("/", **{"If-None-Match": etag(b"other")})
    assert (stale["statusCode"], body_of(stale)) == (200, SITE["index.html"])
    docs = site("/docs", query="a=1")
    assert (docs["statusCode"], docs["headers"]["location"]) == (308, "/docs/?a=1")
    slash = site("/style.css/")
    assert (slash["statusCode"], slash["headers"]["location"]) == (308, "/style.css")
    # A location is rebuilt from the cleaned path: never a protocol-relative redirect to another host.
    assert site("//docs")["headers"]["location"] == "/docs/"
    posted = site("/", "POST")
    assert (posted["statusCode"], posted["headers"]["allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize("path", ["/missing", "/missing.html", "/docs/missing/deeper.js", "/404", "/docs/x/"])
def test_missing_paths_get_the_404_page_whole(site: Callable[..., dict[str, Any]], path: str) -> None:
    page_etag = etag(SITE["404.html"])
    for headers in ({}, {"If-None-Match": page_etag}):
        answer = site(path, **headers)
        assert (answer["statusCode"], body_of(answer)) == (404, SITE["404.html"])
        assert answer["headers"] == {
            "content-type": "text/html; charset=utf-8",
            "cache-control": REVALIDATE_CACHE,
        }


def test_no_404_page_means_a_plain_404(bucket: str) -> None:
    files = {"index.html": b"bare"}
    upload_blobs(files)
    manifest = packaged_manifest(static_package("dpl_bare", manifest_files(files)))
    answer = lambda_static.respond(
        function_url_event("GET", "/missing"), manifest, lambda_static.Blobs(bucket)
    )
    assert (answer["statusCode"], body_of(answer)) == (404, b"404 Not Found\n")
    assert answer["headers"] == {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"}


def test_a_file_too_large_for_a_lambda_answer_redirects_to_a_presigned_s3_get(bucket: str) -> None:
    large = os.urandom(4_700_000)  # base64 of it passes Lambda's 6 MB answer limit
    fits = os.urandom(4_400_000)
    files = {"index.html": b"home", "video.mp4": large, "fits.bin": fits}
    upload_blobs(files)
    package = static_package("dpl_large", manifest_files(files))
    environment = {"ANCHOR_BLOB_BUCKET": bucket}
    answer = invoke_package(
        package.read(), package.handler, environment, function_url_event("GET", "/video.mp4")
    )
    assert answer["statusCode"] == 307 and answer["headers"]["cache-control"] == "no-store"
    fetched = httpx.get(answer["headers"]["location"], timeout=30)
    assert (fetched.status_code, fetched.content) == (200, large)
    assert fetched.headers["content-type"] == "video/mp4"
    inline = invoke_package(
        package.read(), package.handler, environment, function_url_event("GET", "/fits.bin")
    )
    assert (inline["statusCode"], body_of(inline)) == (200, fits)
    assert len(json.dumps(inline)) < 6 * 1024 * 1024


def test_rollback_behind_cloudfront_revalidates_to_the_other_versions_bytes(bucket: str) -> None:
    """Production moves v1 -> v2 -> v1 (the alias points at the other version's package). CloudFront holds
    the page with its ETag and revalidates every request (max-age=0, s-maxage=0): the moved alias answers
    the other bytes and ETag at once, and a 304 only while the version is the same."""
    v1 = {"index.html": b"<!doctype html><p>version A</p>", "app.11111111.js": b"a()"}
    v2 = {"index.html": b"<!doctype html><p>version B</p>", "app.22222222.js": b"b()"}
    upload_blobs(v1)
    upload_blobs(v2)
    package_1 = static_package("dpl_one", manifest_files(v1))
    package_2 = static_package("dpl_two", manifest_files(v2))
    assert package_1.code_sha256 != package_2.code_sha256
    environment = {"ANCHOR_BLOB_BUCKET": bucket}

    def via(package: LambdaPackage, **headers: str) -> dict[str, Any]:
        return invoke_package(
            package.read(), STATIC_HANDLER, environment, function_url_event("GET", "/", headers=headers)
        )

    served_2 = via(package_2)
    assert (served_2["statusCode"], body_of(served_2)) == (200, v2["index.html"])
    assert served_2["headers"] == {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "public, max-age=0, s-maxage=0, must-revalidate",
        "etag": etag(v2["index.html"]),
    }
    rolled_back = via(package_1, **{"If-None-Match": served_2["headers"]["etag"]})
    assert (rolled_back["statusCode"], body_of(rolled_back)) == (200, v1["index.html"])
    assert rolled_back["headers"] == {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "public, max-age=0, s-maxage=0, must-revalidate",
        "etag": etag(v1["index.html"]),
    }
    same = via(package_1, **{"If-None-Match": rolled_back["headers"]["etag"]})
    assert (same["statusCode"], same["body"], same["headers"]["etag"]) == (304, "", etag(v1["index.html"]))


# -- apps ---------------------------------------------------------------------------------------------------
ASGI_APP = b"""
import json, os

STARTED = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                STARTED.append(True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])
    answer = {
        "kind": "asgi",
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "body": body.decode(),
        "cookie": headers.get(b"cookie", b"").decode(),
        "secret": os.environ.get("API_TOKEN"),
        "plain": os.environ.get("PLAIN"),
        "sealed_visible": sorted(k for k in os.environ if k.startswith("ANCHOR_SEALED_")),
        "started": STARTED == [True],
    }
    await send({"type": "http.response.start", "status": 201, "headers": [
        (b"content-type", b"application/json"), (b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2"),
        (b"x-app", b"asgi"),
    ]})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
"""
WSGI_APP = b"""
import hashlib, json, os


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if environ["PATH_INFO"] == "/binary":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [bytes(range(256))]
    answer = {
        "kind": "wsgi",
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "cookie": environ.get("HTTP_COOKIE"),
        "remote": environ["REMOTE_ADDR"],
        "secret": os.environ.get("API_TOKEN"),
        "sealed_visible": sorted(k for k in os.environ if k.startswith("ANCHOR_SEALED_")),
    }
    start_response("202 Accepted", [
        ("Content-Type", "application/json"), ("Set-Cookie", "s=1"), ("Set-Cookie", "t=2"),
        ("Vary", "Accept"), ("Vary", "Cookie"),
    ])
    return [json.dumps(answer).encode()]
"""


def mangum_dependencies(root: Path) -> Path:
    """A dependency folder as the Lambda dependency build makes it (mangum and what it imports), copied
    from this virtualenv; the real build is tested in tests/e2e/test_lambda_deps.py."""
    import mangum
    import typing_extensions

    deps = root / "deps"
    deps.mkdir()
    shutil.copytree(
        Path(mangum.__file__).parent, deps / "mangum", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(typing_extensions.__file__, deps / "typing_extensions.py")
    return deps


@pytest.fixture
def kms_box(aws: MotoServer) -> KmsBox:
    key = boto3.client("kms").create_key(Description="anchor secrets")["KeyMetadata"]["KeyId"]
    return KmsBox(AwsClients(), key)


def _app_files(source: bytes, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    return {"app.py": source, "requirements.txt": b"", **(extra or {})}


def _reader(files: dict[str, bytes]) -> Callable[[str], bytes]:
    by_digest = {hashlib.sha256(d).hexdigest(): d for d in files.values()}
    return by_digest.__getitem__


def test_asgi_app_with_a_kms_secret(tmp_path: Path, kms_box: KmsBox, bucket: str) -> None:
    files = _app_files(ASGI_APP, {"public/hello.txt": b"static hello"})
    upload_blobs(files)
    app = AppConfig(entry="app:app", python="3.11", static_dir="public")
    package = app_package(
        "dpl_asgi", manifest_files(files), _reader(files), mangum_dependencies(tmp_path), app
    )
    assert (package.handler, package.runtime) == (APP_HANDLER, "python3.11")
    frozen = FrozenEnv({"API_TOKEN": "tok-7f3a", "PLAIN": "visible"}, frozenset({"API_TOKEN"}))
    environment = version_environment(
        frozen, kms_box, {"ANCHOR_APP_ENTRY": "app:app", "ANCHOR_BLOB_BUCKET": bucket}
    )
    # The configuration holds ciphertext only.
    assert set(environment) == {"ANCHOR_SEALED_API_TOKEN", "PLAIN", "ANCHOR_APP_ENTRY", "ANCHOR_BLOB_BUCKET"}
    assert b"tok-7f3a" not in base64.b64decode(environment["ANCHOR_SEALED_API_TOKEN"])
    assert "tok-7f3a" not in json.dumps(environment)

    event = function_url_event(
        "POST", "/items/1", "x=1&y=2", {"content-type": "text/plain"}, b"hi there", ["c=3", "d=4"]
    )
    answer = invoke_package(package.read(), package.handler, environment, event)
    assert answer["statusCode"] == 201, answer
    assert answer["headers"]["content-type"] == "application/json" and answer["headers"]["x-app"] == "asgi"
    assert sorted(answer["cookies"]) == ["a=1; Path=/", "b=2"]
    assert json.loads(body_of(answer)) == {
        "kind": "asgi",
        "method": "POST",
        "path": "/items/1",
        "query": "x=1&y=2",
        "body": "hi there",
        "cookie": "c=3; d=4",
        "secret": "tok-7f3a",
        "plain": "visible",
        "sealed_visible": [],
        "started": True,
    }
    # The static directory's files are answered from S3 before the app.
    static = invoke_package(
        package.read(), package.handler, environment, function_url_event("GET", "/hello.txt")
    )
    assert (static["statusCode"], body_of(static)) == (200, b"static hello")
    assert static["headers"]["etag"] == etag(b"static hello")


def test_wsgi_app_needs_no_dependencies(kms_box: KmsBox) -> None:
    files = _app_files(WSGI_APP)
    package = app_package("dpl_wsgi", manifest_files(files), _reader(files), None, AppConfig(entry="app:app"))
    assert package.runtime == f"python{DEFAULT_PYTHON}"  # no Python named: the platform's own
    frozen = FrozenEnv({"API_TOKEN": "wsgi-secret"}, frozenset({"API_TOKEN"}))
    environment = version_environment(frozen, kms_box)
    payload = bytes(range(256)) * 3
    event = function_url_event(
        "PUT", "/caf%C3%A9", "q=%20a", {"content-type": "application/octet-stream"}, payload, ["k=v"]
    )
    assert event["isBase64Encoded"] is True
    answer = invoke_package(package.read(), package.handler, environment, event)
    assert answer["statusCode"] == 202, answer
    assert answer["cookies"] == ["s=1", "t=2"] and answer["headers"]["vary"] == "Accept, Cookie"
    assert json.loads(body_of(answer)) == {
        "kind": "wsgi",
        "method": "PUT",
        "path": "/caf\u00c3\u00a9",  # PEP 3333: the path's bytes as latin-1
        "query": "q=%20a",
        "body_sha256": hashlib.sha256(payload).hexdigest(),
        "cookie": "k=v",
        "remote": "203.0.113.7",
        "secret": "wsgi-secret",
        "sealed_visible": [],
    }
    binary = invoke_package(
        package.read(), package.handler, environment, function_url_event("GET", "/binary")
    )
    assert binary["isBase64Encoded"] is True and body_of(binary) == bytes(range(256))


def test_an_asgi_app_without_mangum_in_its_package_fails_as_on_lambda() -> None:
    files = _app_files(ASGI_APP)
    package = app_package("dpl_nomangum", manifest_files(files), _reader(files), None, AppConfig())
    with pytest.raises(AssertionError, match="No module named 'mangum'"):
        invoke_package(package.read(), package.handler, {}, function_url_event())


# -- packaging ----------------------------------------------------------------------------------------------
def test_the_same_input_gives_the_same_zip(tmp_path: Path) -> None:
    files = _app_files(WSGI_APP, {"public/a.css": b"a{}"})
    deps = mangum_dependencies(tmp_path)

    def build() -> LambdaPackage:
        return app_package(
            "dpl_same", manifest_files(files), _reader(files), deps, AppConfig(static_dir="public")
        )

    first = build()
    for path in deps.rglob("*"):  # new timestamps and byte-code caches change nothing
        os.utime(path, (1_900_000_000, 1_900_000_000))
    (deps / "mangum" / "__pycache__").mkdir()
    (deps / "mangum" / "__pycache__" / "adapter.cpython-311.pyc").write_bytes(os.urandom(64))
    second = build()
    assert first.read() == second.read() and first.code_sha256 == second.code_sha256
    assert first.code_sha256 == base64.b64encode(hashlib.sha256(first.read()).digest()).decode()
    assert first.zipped_size == len(first.read()) and not first.needs_s3
    with zipfile.ZipFile(io.BytesIO(first.read())) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert first.unzipped_size == sum(i.file_size for i in archive.infolist())
    assert (
        static_package("dpl_s", manifest_files(SITE)).read()
        == static_package("dpl_s", manifest_files(SITE)).read()
    )
    other = {**files, "app.py": WSGI_APP + b"\n"}
    changed = app_package(
        "dpl_same", manifest_files(other), _reader(other), deps, AppConfig(static_dir="public")
    )
    assert changed.code_sha256 != first.code_sha256


def test_lambda_size_limits(tmp_path: Path) -> None:
    huge = ManifestFile("model.bin", "0" * 64, 251 * 1024 * 1024)

    def unreadable(digest: str) -> bytes:
        raise AssertionError("the limit is checked before any byte is read")

    with pytest.raises(BuildFailed, match="250 MB unzipped"):
        app_package("dpl_huge", [huge], unreadable, None, AppConfig())
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "blob.bin").write_bytes(os.urandom(51 * 1024 * 1024))  # incompressible
    package = app_package("dpl_big", [], unreadable, deps, AppConfig())
    try:
        assert package.needs_s3 and package.zip_bytes is None and package.zip_path is not None
        assert (
            package.zipped_size > 50 * 1024 * 1024 and package.zip_path.stat().st_size == package.zipped_size
        )
        assert package.code_sha256 == base64.b64encode(hashlib.sha256(package.read()).digest()).decode()
    finally:
        package.discard()
    assert not package.zip_path.exists()


def test_package_names_versions_and_environment_are_checked(kms_box: KmsBox, tmp_path: Path) -> None:
    files = {"anchor_lambda/evil.py": b"x = 1"}
    with pytest.raises(BuildFailed, match="used by the Lambda package"):
        app_package("dpl_x", manifest_files(files), _reader(files), None, AppConfig())
    with pytest.raises(BuildFailed, match=r"no Python 3\.8 runtime"):
        app_package("dpl_x", [], _reader({}), None, AppConfig(python="3.8"))
    with pytest.raises(BuildFailed, match="set by the Lambda runtime"):
        version_environment(FrozenEnv({"AWS_REGION": "eu-west-1"}), kms_box)
    many = {f"SECRET_{i}": "v" * 40 for i in range(40)}
    with pytest.raises(BuildFailed, match=r"4096 bytes \(4 KB\)"):
        version_environment(FrozenEnv(many, frozenset(many)), kms_box)
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "leak").symlink_to("/etc/hostname")
    with pytest.raises(BuildFailed, match="not a regular file"):
        app_package("dpl_x", [], _reader({}), tmp_path / "deps", AppConfig())
