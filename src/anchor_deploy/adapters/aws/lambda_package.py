"""Deployments packaged as Lambda zips, byte for byte the same for the same input.

Entries are sorted, every timestamp is 1980-01-01, every mode 0644 (0755 for executables), the compression
level fixed: the same deployment gives the same CodeSha256, so publishing it again changes nothing.

A static deployment's zip holds only the handler (``anchor_lambda/lambda_static.py``) and the manifest; its
bytes are read from S3 ``blobs/<sha256>``. An app's zip holds the app's files at the root, its dependencies
under ``anchor_deps/`` and the app handler (``anchor_lambda/lambda_app.py``), with a manifest of its static
directory's files (served from S3 like a static site's).

Limits (Lambda's own): a zip above 50 MB cannot be sent in the API call (every package is published from
S3, so that one never bites; ``needs_s3`` now only says that such a zip is kept in a file, not in memory);
above 250 MB unzipped Lambda refuses the code (BuildFailed names the limit); the environment may hold 4 KB
of variables in total.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import mimetypes
import os
import stat
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from anchor_deploy.model.apps import AppConfig, FrozenEnv
from anchor_deploy.model.errors import BuildFailed
from anchor_deploy.model.manifest import ManifestFile
from anchor_deploy.ports.runtime import SecretBox

MANIFEST_NAME = "anchor_manifest.json"
RUNTIME_PACKAGE = "anchor_lambda"
DEPS_DIR = "anchor_deps"
STATIC_HANDLER = f"{RUNTIME_PACKAGE}.lambda_static.handler"
APP_HANDLER = f"{RUNTIME_PACKAGE}.lambda_app.handler"
SEALED_PREFIX = "ANCHOR_SEALED_"
LAMBDA_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# An app that names no Python gets the Lambda runtime of the platform's own Python when Lambda has one (as
# the local provider runs it on the platform's own), else 3.12.
_OWN_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
DEFAULT_PYTHON = _OWN_PYTHON if _OWN_PYTHON in LAMBDA_PYTHONS else "3.12"
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
UNZIPPED_LIMIT = 250 * 1024 * 1024
ENVIRONMENT_LIMIT = 4 * 1024
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6
_RESERVED_TOP = (RUNTIME_PACKAGE, DEPS_DIR, MANIFEST_NAME)
# Variables the Lambda runtime sets itself: a function may not define them.
LAMBDA_RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
# The types the local edge (Caddy, Go's table) gives the common web files; others from Python's own table
# (never the machine's mime.types, so every machine packages the same bytes).
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/vnd.microsoft.icon",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "text/xml; charset=utf-8",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
_PYTHON_TYPES = mimetypes.MimeTypes(filenames=())


def content_type(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed = _PYTHON_TYPES.guess_type(path, strict=True)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


@dataclass(frozen=True)
class LambdaPackage:
    """A zip ready for Lambda: in memory, or (above the direct-upload limit) a temporary file the caller
    uploads to S3 and then removes with ``discard()``."""

    zip_bytes: bytes | None
    zip_path: Path | None
    code_sha256: str  # base64 of the zip's sha256, as Lambda reports CodeSha256
    zipped_size: int
    unzipped_size: int
    handler: str
    runtime: str
    needs_s3: bool

    def read(self) -> bytes:
        if self.zip_bytes is not None:
            return self.zip_bytes
        assert self.zip_path is not None
        return self.zip_path.read_bytes()

    def discard(self) -> None:
        if self.zip_path is not None:
            self.zip_path.unlink(missing_ok=True)


def lambda_python(app: AppConfig | None) -> str:
    """The Python version of the Lambda runtime for this app (the app's own, else the default)."""
    wanted = app.python if app is not None and app.python else DEFAULT_PYTHON
    if wanted not in LAMBDA_PYTHONS:
        raise BuildFailed(
            f"Lambda has no Python {wanted} runtime; use one of {', '.join(LAMBDA_PYTHONS)} (app.python)"
        )
    return wanted


# -- entries ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    executable: bool
    opener: Callable[[], IO[bytes]]


def _bytes_entry(name: str, data: bytes, executable: bool = False) -> _Entry:
    return _Entry(name, len(data), executable, lambda: io.BytesIO(data))


def _runtime_entries(*modules: str) -> list[_Entry]:
    runtime = resources.files("anchor_deploy.runtime")
    entries = [_bytes_entry(f"{RUNTIME_PACKAGE}/__init__.py", b"")]
    for module in modules:
        entries.append(
            _bytes_entry(f"{RUNTIME_PACKAGE}/{module}.py", (runtime / f"{module}.py").read_bytes())
        )
    return entries


def _manifest_entry(deployment_id: str, served: Mapping[str, ManifestFile], app: AppConfig | None) -> _Entry:
    files = {
        path: {"sha256": f.sha256, "size": f.size, "type": content_type(path)}
        for path, f in sorted(served.items())
    }
    # The deployment id is not in the zip (it is in the version's environment, ANCHOR_DEPLOYMENT_ID): the same
    # files make the same zip, stored once, so an unchanged redeploy uploads nothing, not even its package.
    del deployment_id
    document: dict[str, object] = {"format": 1, "files": files}
    if app is not None:
        document["app"] = {"entry": app.entry, "static": app.static_dir}
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return _bytes_entry(MANIFEST_NAME, data)


def _dependency_entries(root: Path) -> Iterator[_Entry]:
    """Regular files under ``root`` (no symlink is followed or packaged: the build that made the folder ran
    user code), minus byte-code caches, which differ from build to build."""
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            path = Path(folder) / name
            info = path.lstat()
            relative = path.relative_to(root).as_posix()
            if not stat.S_ISREG(info.st_mode):
                raise BuildFailed(f"the dependency build made {relative}, which is not a regular file")
            if name.endswith(".pyc"):
                continue
            executable = bool(info.st_mode & 0o111)
            yield _Entry(f"{DEPS_DIR}/{relative}", info.st_size, executable, _no_follow_opener(path))
        for name in dirs:
            if (Path(folder) / name).is_symlink():
                raise BuildFailed(f"the dependency build made a symlink {name}; it is not packaged")


def _no_follow_opener(path: Path) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    return opener


def _user_entries(files: Sequence[ManifestFile], read_blob: Callable[[str], bytes]) -> list[_Entry]:
    entries = []
    for f in files:
        top = f.path.split("/", 1)[0]
        if top in _RESERVED_TOP:
            raise BuildFailed(f"{f.path}: the name {top} is used by the Lambda package; rename it")
        entries.append(_Entry(f.path, f.size, bool(f.mode & 0o111), _blob_opener(f, read_blob)))
    return entries


def _blob_opener(entry: ManifestFile, read_blob: Callable[[str], bytes]) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        data = read_blob(entry.sha256)
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise BuildFailed(f"blob {entry.sha256} of {entry.path} does not match its digest")
        return io.BytesIO(data)

    return opener


# -- the zip ------------------------------------------------------------------------------------------------
def _zip(entries: list[_Entry], handler: str, runtime: str) -> LambdaPackage:
    entries = sorted(entries, key=lambda e: e.name)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise BuildFailed("two files of the package have the same name")
    unzipped = sum(e.size for e in entries)
    if unzipped > UNZIPPED_LIMIT:
        raise BuildFailed(
            f"the Lambda package would be {unzipped / 1024**2:.1f} MB unzipped; Lambda's limit is "
            f"{UNZIPPED_LIMIT // 1024**2} MB unzipped (code and dependencies): remove large files or "
            "dependencies"
        )
    handle, name = tempfile.mkstemp(prefix="anchor-lambda-", suffix=".zip")
    path = Path(name)
    try:
        with os.fdopen(handle, "w+b") as out:
            _write_zip(out, entries)
            zipped = out.tell()
            out.seek(0)
            digest = hashlib.sha256()
            for chunk in iter(lambda: out.read(1 << 20), b""):
                digest.update(chunk)
        sha = base64.b64encode(digest.digest()).decode("ascii")
        needs_s3 = zipped > DIRECT_UPLOAD_LIMIT
        data = None if needs_s3 else path.read_bytes()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if data is not None:
        path.unlink()
    return LambdaPackage(data, path if needs_s3 else None, sha, zipped, unzipped, handler, runtime, needs_s3)


def _write_zip(out: IO[bytes], entries: list[_Entry]) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so the modes below are read
            info.external_attr = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = entry.size
            with entry.opener() as source, archive.open(info, "w", force_zip64=entry.size > 2**31) as sink:
                copied = _copy(source, sink)
            if copied != entry.size:
                raise BuildFailed(f"{entry.name} changed size while it was packaged")


def _copy(source: IO[bytes], sink: IO[bytes]) -> int:
    copied = 0
    while chunk := source.read(1 << 20):
        sink.write(chunk)
        copied += len(chunk)
    return copied


# -- the two kinds of package -------------------------------------------------------------------------------
def static_package(deployment_id: str, files: Sequence[ManifestFile]) -> LambdaPackage:
    served = {f.path: f for f in files}
    entries = [*_runtime_entries("lambda_static"), _manifest_entry(deployment_id, served, None)]
    return _zip(entries, STATIC_HANDLER, f"python{DEFAULT_PYTHON}")


def app_package(
    deployment_id: str,
    files: Sequence[ManifestFile],
    read_blob: Callable[[str], bytes],
    dependency_dir: Path | None,
    app: AppConfig,
) -> LambdaPackage:
    """The app's files at the root, ``dependency_dir`` (from LambdaDependencies.ensure) under anchor_deps/,
    the handler, and the manifest of the static directory's files."""
    runtime = f"python{lambda_python(app)}"
    prefix = f"{app.static_dir}/" if app.static_dir else None
    served = {f.path.removeprefix(prefix): f for f in files if prefix and f.path.startswith(prefix)}
    entries = [
        *_runtime_entries("lambda_static", "lambda_app"),
        _manifest_entry(deployment_id, served, app),
        *_user_entries(files, read_blob),
    ]
    if dependency_dir is not None:
        entries += list(_dependency_entries(dependency_dir))
    return _zip(entries, APP_HANDLER, runtime)


def version_environment(
    frozen: FrozenEnv, box: SecretBox, platform: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The Lambda version's variables: plain ones as they are, each secret sealed by ``box`` (KMS) as
    ``ANCHOR_SEALED_<KEY>`` (base64), and the platform's own (``ANCHOR_BLOB_BUCKET``, ...)."""
    environment: dict[str, str] = {}
    for key in sorted(frozen.values):
        if key in LAMBDA_RESERVED_ENV or key.startswith("AWS_LAMBDA_"):
            raise BuildFailed(f"{key} is set by the Lambda runtime itself; rename the variable")
        value = frozen.values[key]
        if key in frozen.secret_keys:  # an empty secret stays empty (KMS seals 1 byte or more)
            sealed = box.seal(value.encode("utf-8")) if value else b""
            environment[SEALED_PREFIX + key] = base64.b64encode(sealed).decode("ascii")
        else:
            environment[key] = value
    environment.update(platform or {})
    size = sum(len(k.encode()) + len(v.encode()) for k, v in environment.items())
    if size > ENVIRONMENT_LIMIT:
        secrets = len(frozen.secret_keys)
        raise BuildFailed(
            f"the environment is {size} bytes; Lambda allows {ENVIRONMENT_LIMIT} bytes (4 KB) of "
            "variables in total, names and values"
            + (
                f" (each of the {secrets} secrets counts sealed: about 4/3 of its length + 200 bytes)"
                if secrets
                else ""
            )
            + ": remove or shorten variables"
        )
    return environment
