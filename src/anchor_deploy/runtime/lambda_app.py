"""The Lambda handler of an app deployment (shipped in its zip beside the app and its dependencies).

At cold start: every ``ANCHOR_SEALED_<KEY>`` variable (base64 KMS ciphertext) is decrypted with KMS into
``os.environ[KEY]`` and removed, so the app reads its secrets as plain variables while the function's
configuration holds only ciphertext; then the app named by ``ANCHOR_APP_ENTRY`` (``module:attribute``; the
bundled manifest's entry when unset) is imported from the zip's root, its dependencies from
``anchor_deps/``. An ASGI app runs through Mangum (lifespan "auto"), a WSGI callable through the small
adapter below. Files of the app's static directory are answered first, as the local edge does.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from . import lambda_static

SEALED_PREFIX = "ANCHOR_SEALED_"
DEPS_DIR = "anchor_deps"
ROOT = Path(__file__).resolve().parent.parent
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def unseal_environment(kms: Any = None) -> list[str]:
    """Decrypt every ANCHOR_SEALED_<KEY> into KEY and drop the sealed variable; return the keys."""
    sealed = sorted(name for name in os.environ if name.startswith(SEALED_PREFIX))
    if sealed and kms is None:
        import boto3

        kms = boto3.client("kms")
    opened = []
    for name in sealed:
        key = name.removeprefix(SEALED_PREFIX)
        blob = base64.b64decode(os.environ[name])  # empty for an empty secret
        os.environ[key] = kms.decrypt(CiphertextBlob=blob)["Plaintext"].decode("utf-8") if blob else ""
        del os.environ[name]
        opened.append(key)
    return opened


def is_asgi(app: Any) -> bool:
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app)


def import_app(entry: str) -> Any:
    for path in (str(ROOT / DEPS_DIR), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    module_name, _, attribute = entry.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


# -- WSGI ---------------------------------------------------------------------------------------------------
def _request_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def wsgi_environ(event: dict[str, Any]) -> dict[str, Any]:
    """PEP 3333 environ for a function URL event (payload 2.0: repeated headers arrive comma-joined,
    cookies in their own list)."""
    http = event.get("requestContext", {}).get("http", {})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    body = _request_body(event)
    host = headers.get("host") or event.get("requestContext", {}).get("domainName") or "localhost"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": str(http.get("method", "GET")).upper(),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(str(event.get("rawPath") or "/")).decode("latin-1"),
        "QUERY_STRING": str(event.get("rawQueryString") or ""),
        "SERVER_NAME": host.split(":")[0],
        "SERVER_PORT": headers.get("x-forwarded-port", "443"),
        "SERVER_PROTOCOL": str(http.get("protocol") or "HTTP/1.1"),
        "REMOTE_ADDR": str(http.get("sourceIp") or ""),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": headers.get("x-forwarded-proto", "https"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if "content-type" in headers:
        environ["CONTENT_TYPE"] = headers["content-type"]
    for name, value in headers.items():
        if name not in ("content-type", "content-length"):
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    if event.get("cookies"):
        environ["HTTP_COOKIE"] = "; ".join(event["cookies"])
    return environ


def wsgi_response(status: str, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """A function URL answer: Set-Cookie headers as ``cookies``, other repeated headers comma-joined."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "set-cookie":
            cookies.append(value)
        else:
            merged[lower] = f"{merged[lower]}, {value}" if lower in merged else value
    answer = lambda_static.make_response(
        int(status.split(" ", 1)[0]), merged, body, merged.get("content-type")
    )
    if cookies:
        answer["cookies"] = cookies
    return answer


def wsgi_handler(app: Any) -> Handler:
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started: dict[str, Any] = {}
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started.update(status=status, headers=list(headers))
            return written.append

        result: Iterable[bytes] = app(wsgi_environ(event), start_response)
        try:
            for chunk in result:
                written.append(bytes(chunk))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return wsgi_response(started["status"], started["headers"], b"".join(written))

    return handle


# -- the Lambda entry point ---------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _manifest() -> lambda_static.Manifest | None:
    path = ROOT / lambda_static.MANIFEST_NAME
    return lambda_static.load_manifest(path) if path.exists() else None


def boot() -> dict[str, Any]:
    """Cold start, once: secrets, the static manifest, the app and its adapter."""
    if not _STATE:
        unseal_environment()
        manifest = _manifest()
        raw = json.loads((ROOT / lambda_static.MANIFEST_NAME).read_text("utf-8")) if manifest else {}
        entry = os.environ.get("ANCHOR_APP_ENTRY") or raw.get("app", {}).get("entry") or "app:app"
        os.chdir(ROOT)
        app = import_app(entry)
        if is_asgi(app):
            from mangum import Mangum

            adapter: Handler = Mangum(app, lifespan="auto")
        else:
            adapter = wsgi_handler(app)
        bucket = os.environ.get("ANCHOR_BLOB_BUCKET", "")
        _STATE.update(manifest=manifest, adapter=adapter, blobs=lambda_static.Blobs(bucket))
    return _STATE


def _static_answer(event: dict[str, Any], state: dict[str, Any]) -> dict[str, Any] | None:
    manifest: lambda_static.Manifest | None = state["manifest"]
    method = str(event.get("requestContext", {}).get("http", {}).get("method", "GET")).upper()
    if manifest is None or not manifest.files or method not in ("GET", "HEAD"):
        return None
    found = lambda_static.find(
        manifest, str(event.get("rawPath") or "/"), str(event.get("rawQueryString") or "")
    )
    if found.file is None:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return lambda_static.serve_file(found.file, method, headers, state["blobs"])


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    state = boot()
    static = _static_answer(event, state)
    if static is not None:
        return static
    answer: dict[str, Any] = state["adapter"](event, context)
    return answer


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # on Lambda: boot in the init phase, not the first request
    boot()
