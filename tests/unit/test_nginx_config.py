"""The nginx edge's config (adapters/local/nginx_config.py): nginx itself accepts it, with and without the
HTTPS server; it keeps everything nginx writes in the data dir; it holds nothing that a deployment, a rollback
or a domain could change (so none of them needs a reload); and the settings and checks around it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.edge_rules import EdgePaths, WorkerSockets
from anchor_deploy.adapters.local.nginx_config import NJS_MODULE, NginxFiles, NginxHttps, render, temp_folders
from anchor_deploy.adapters.local.nginx_process import check_installed
from anchor_deploy.model.errors import EdgeError, InvalidInput
from anchor_deploy.settings import Settings
from tests.ports import free_port

NGINX = Settings.from_env({}).nginx_bin
needs_nginx = pytest.mark.skipif(
    not Path(NGINX).is_file() or not NJS_MODULE.is_file(),
    reason="nginx is not installed: apt-get install nginx libnginx-mod-http-js",
)


def _render(data: Path, https: bool, as_root: bool | None = None) -> NginxFiles:
    paths = EdgePaths(data / "edge/a", data / "edge/d", data / "deployments", data / "edge/c")
    sockets = data / "run/sockets"
    return render(
        http_listen=f"127.0.0.1:{free_port()}",
        paths=paths,
        workers=WorkerSockets(sockets, sockets / "activator.sock"),
        run_dir=data / "run",
        error_log=data / "logs/nginx.log",
        https=NginxHttps(f"127.0.0.1:{free_port()}", 8443, data / "certificates") if https else None,
        as_root=as_root,
    )


def _nginx_test(data: Path, files: NginxFiles) -> subprocess.CompletedProcess[str]:
    run = data / "run"
    for folder in [*temp_folders(run), run / "sockets", data / "logs"]:
        folder.mkdir(parents=True, exist_ok=True)
    (run / "nginx.conf").write_text(files.conf)
    if files.js is not None:
        (run / "nginx-certificate.js").write_text(files.js)
    command = [
        NGINX,
        "-t",
        "-e",
        str(data / "logs/nginx.log"),
        "-p",
        f"{run}/nginx/",
        "-c",
        str(run / "nginx.conf"),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@needs_nginx
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_nginx_accepts_the_config(tmp_path: Path, https: bool) -> None:
    files = _render(tmp_path / "data", https)
    checked = _nginx_test(tmp_path / "data", files)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    assert "[warn]" not in checked.stderr, checked.stderr
    assert ("load_module" in files.conf) is https and (files.js is not None) is https


@needs_nginx
def test_a_broken_config_is_refused_so_the_check_is_real(tmp_path: Path) -> None:
    files = _render(tmp_path / "data", https=True)
    broken = NginxFiles(files.conf.replace("etag on;", "etag maybe;", 1), files.js)
    checked = _nginx_test(tmp_path / "data", broken)
    assert checked.returncode != 0 and "etag" in checked.stderr


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_what_nginx_writes_stays_in_the_data_dir(tmp_path: Path, https: bool) -> None:
    data = tmp_path / "data"
    conf = _render(data, https).conf
    for directive in ("pid", "error_log", *(f"{f.name}_temp_path" for f in temp_folders(data / "run"))):
        found = re.findall(rf"^\s*{directive} (\S+)( warn)?;$", conf, re.MULTILINE)
        assert found and all(path.startswith(str(data)) for path, _level in found), (directive, found)
    assert "access_log off;" in conf and "daemon off;" in conf
    assert "/etc/" not in conf and "/var/" not in conf


def test_no_open_file_cache_and_date_validators_off(tmp_path: Path) -> None:
    conf = _render(tmp_path / "data", https=True).conf
    assert not re.search(
        r"^\s*open_file_cache", conf, re.MULTILINE
    )  # it would answer from before a switch for as long as it caches
    served = conf.count("etag on;")
    # Per server (HTTP, HTTPS): files and directories' index.html through the link, and again under the
    # resolved deployment after a miss; and the date-free server.
    assert served == 9
    assert len(re.findall(r"etag on;\n\s*if_modified_since off;", conf)) == served
    assert 'add_header Last-Modified "";' in conf


def test_the_config_names_no_host_deployment_or_domain(tmp_path: Path) -> None:
    """Only the tree's folders: every host, deployment and certificate is found per request, so the config
    (and nginx) never changes with them."""
    data = tmp_path / "data"
    conf = _render(data, https=True).conf
    assert not re.search(r"dpl_[a-z0-9]{12}", conf)
    assert "localhost" not in conf and ".pem" not in conf
    js = _render(data, https=True).js
    assert js is not None and f"const FOLDER = '{data / 'certificates'}';" in js


def test_workers_run_as_root_only_when_nginx_starts_as_root(tmp_path: Path) -> None:
    assert "user root;" in _render(tmp_path, https=False, as_root=True).conf
    assert "user " not in _render(tmp_path, https=False, as_root=False).conf


def test_edge_setting() -> None:
    assert Settings.from_env({}).edge == "caddy"
    chosen = Settings.from_env({"ANCHOR_EDGE": "nginx", "ANCHOR_NGINX_BIN": "/opt/nginx/sbin/nginx"})
    assert (chosen.edge, chosen.nginx_bin) == ("nginx", "/opt/nginx/sbin/nginx")
    with pytest.raises(InvalidInput, match="ANCHOR_EDGE must be caddy or nginx, got 'apache'"):
        Settings.from_env({"ANCHOR_EDGE": "apache"}).validate()


def test_a_missing_nginx_is_one_readable_error_naming_the_packages(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match=r"no nginx at /nope .*apt-get install nginx libnginx-mod-http-js"):
        check_installed("/nope", needs_njs=True, njs_module=NJS_MODULE)
    binary = tmp_path / "nginx"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    with pytest.raises(EdgeError, match="libnginx-mod-http-js"):
        check_installed(str(binary), needs_njs=True, njs_module=tmp_path / "missing.so")
    check_installed(str(binary), needs_njs=False, njs_module=tmp_path / "missing.so")
