"""A dependency's build code (what pip runs for an sdist) is user code too: it runs in the build sandbox.

The package `evil` is an sdist with an in-tree PEP 517 backend (no setuptools needed, so pip builds it offline
from a local folder). Its backend tries to read the platform's data dir and to write outside the environment
being built, prints what happened, and then fails the build on purpose so that pip shows its output.
"""

from __future__ import annotations

import io
import secrets
import tarfile
from pathlib import Path

import pytest

from tests.e2e.apps_support import as_bytes, build_log, wheelhouse
from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy

APP = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
"""
BACKEND = """
import os

TARGETS = {targets!r}


def _attempt(kind, path):
    try:
        if kind == "read":
            with open(path, "rb") as source:
                source.read(64)
        else:
            with open(path, "w") as out:
                out.write("written by a build")
        return f"ESCAPE-{{kind.upper()}}-OK {{path}}"
    except OSError as exc:
        return f"ESCAPE-{{kind.upper()}}-FAILED {{path}} ({{type(exc).__name__}})"


def get_requires_for_build_wheel(config_settings=None):
    for kind, path in TARGETS:
        print(_attempt(kind, path), flush=True)
    print("ESCAPE-UID", os.getuid(), flush=True)
    raise SystemExit("ESCAPE-DONE: the build stops here on purpose")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit("never reached")
"""


def _sdist(folder: Path, targets: list[tuple[str, str]]) -> None:
    files = {
        "evil-1.0/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        "evil-1.0/backend.py": BACKEND.format(targets=targets),
        "evil-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "evil-1.0.tar.gz", "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.mark.timeout(180)
def test_a_build_cannot_read_the_data_dir_or_write_outside_its_environment(tmp_path: Path) -> None:
    data = (tmp_path / "data").resolve()
    sdists = tmp_path / "sdists"
    sdists.mkdir()  # a --find-links folder must exist when the platform starts: builds see it from then on
    anchor = AnchorProcess(
        data, extra_env={"ANCHOR_PIP_ARGS": f"--no-index --find-links {wheelhouse()} --find-links {sdists}"}
    )
    anchor.start()
    try:
        with anchor.api() as api:
            # An environment another project built: a build must not be able to change it.
            ensure_project(api, "other")
            other = upload_and_deploy(api, "other", as_bytes({"app.py": APP, "requirements.txt": "\n"}))
            other_env = next(p for p in (data / "envs").iterdir() if p.is_dir())
            secret = (data / "secrets.key").read_bytes()
            marker = secrets.token_hex(6)
            targets = [
                ("read", str(data / "secrets.key")),
                ("read", str(data / "anchor.db")),
                ("read", str(data / "admin-token")),
                ("read", str(data / "ca" / "root.key")),
                ("write", str(data / f"pwned-{marker}")),
                ("write", str(other_env / f"pwned-{marker}")),
                ("write", str(tmp_path / f"pwned-{marker}")),
                ("write", f"/tmp/build-scratch-{marker}"),  # control: its private /tmp is writable
            ]
            _sdist(sdists, targets)
            ensure_project(api, "builder")
            built = upload_and_deploy(api, "builder", as_bytes({"app.py": APP, "requirements.txt": "evil\n"}))
            log = "\n".join(build_log(api, built["id"]))
        assert other["status"] == "READY", other
        assert built["status"] == "ERROR", built
        assert "ESCAPE-DONE" in log, log  # the backend ran: the attempts below are real
        assert f"ESCAPE-WRITE-OK /tmp/build-scratch-{marker}" in log, log
        for kind, path in targets[:-1]:
            assert f"ESCAPE-{kind.upper()}-FAILED {path}" in log, log
        assert "ESCAPE-READ-OK" not in log
        assert secret.decode() not in log
        assert not list(data.rglob(f"pwned-{marker}")) and not (tmp_path / f"pwned-{marker}").exists()
        assert not Path(f"/tmp/build-scratch-{marker}").exists()
    finally:
        anchor.stop()
