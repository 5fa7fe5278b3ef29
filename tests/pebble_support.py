"""Pebble (a test-only ACME server) and pebble-challtestsrv (its mock DNS server) as real processes on
loopback, for the ACME issuer's contract tests.

Pebble ships no test certificates in the Debian package, so every run makes a throwaway CA with the
``openssl`` CLI: a root (``ca_bundle``, the trust for Pebble's own HTTPS) and a leaf for localhost and
127.0.0.1. The certificates Pebble *issues* chain to a different root, generated at each start and served
on its management port (``issuance_roots()``).

Pebble's dns-01 check asks the ``-dnsserver`` for TXT at ``_acme-challenge.<name>`` itself: it does not
follow CNAMEs, and answers over 512 bytes (UDP, no EDNS) break it.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx

from tests.ports import free_port
from tests.support import stop_process

LOOPBACK = "127.0.0.1"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (Debian package 'pebble': apt-get install pebble)")
    return path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def make_tls_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway root and a leaf for localhost/127.0.0.1 signed by it: (root.pem, leaf.pem, leaf.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-days", "2",
        "-subj", "/CN=anchor-deploy test root for pebble TLS",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-new", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost", cwd=folder
    )
    (folder / "leaf.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "x509", "-req", "-in", "leaf.csr", "-CA", "root.pem", "-CAkey", "root.key", "-set_serial", "2",
        "-days", "2", "-extfile", "leaf.ext", "-out", "leaf.pem",
        cwd=folder,
    )  # fmt: skip
    return folder / "root.pem", folder / "leaf.pem", folder / "leaf.key"


class _Process:
    """A child process with its output in a log file, stopped by its own pid."""

    name = "process"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)


class ChallTestServer(_Process):
    """pebble-challtestsrv with only its mock DNS server (UDP+TCP) and management API, both on loopback.

    Its DNS answers TXT from what ``set_txt`` added (a set per name, appended to), and A/AAAA for any
    name with 127.0.0.1/::1."""

    name = "challtestsrv"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.dns_port = free_port()
        self.management_port = free_port()

    @property
    def dns_server(self) -> str:
        """host:port, as Pebble's -dnsserver wants it."""
        return f"{LOOPBACK}:{self.dns_port}"

    @property
    def management_url(self) -> str:
        return f"http://{LOOPBACK}:{self.management_port}"

    def start(self, timeout: float = 10) -> ChallTestServer:
        self._spawn(
            [
                _binary("pebble-challtestsrv"),
                "-dns01", self.dns_server,
                "-management", f"{LOOPBACK}:{self.management_port}",
                "-http01", "",
                "-https01", "",
                "-tlsalpn01", "",
            ]
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                # An unknown host is harmless to clear and proves the API answers.
                self.clear_txt("ready.invalid.")
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"challtestsrv did not answer within {timeout}s:\n{self.log_tail()}")
                time.sleep(0.05)

    def _post(self, path: str, body: dict[str, str]) -> None:
        httpx.post(f"{self.management_url}{path}", json=body, timeout=5).raise_for_status()

    def set_txt(self, host: str, value: str) -> None:
        """Add ``value`` to the TXT set of ``host`` (a fully qualified name, with the trailing dot)."""
        self._post("/set-txt", {"host": host, "value": value})

    def clear_txt(self, host: str) -> None:
        self._post("/clear-txt", {"host": host})

    def __enter__(self) -> ChallTestServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Pebble(_Process):
    """A Pebble ACME server on loopback, resolving through ``dns_server`` (host:port)."""

    name = "pebble"

    def __init__(
        self, workdir: Path, dns_server: str, env: dict[str, str] | None = None, validity: int | None = None
    ) -> None:
        super().__init__(workdir)
        self.validity = validity  # seconds; pebble's default is 5 years
        self.dns_server = dns_server
        self.port = free_port()
        self.management_port = free_port()
        self.extra_env = env or {}
        self.ca_bundle = ""

    @property
    def directory_url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://{LOOPBACK}:{self.management_port}"

    def start(self, timeout: float = 15) -> Pebble:
        root, leaf, key = make_tls_ca(self.workdir / "tls")
        self.ca_bundle = str(root)
        config = {
            "pebble": {
                "listenAddress": f"{LOOPBACK}:{self.port}",
                "managementListenAddress": f"{LOOPBACK}:{self.management_port}",
                "certificate": str(leaf),
                "privateKey": str(key),
                # http-01 / tls-alpn-01 are never used here: point them at ports nobody listens on.
                "httpPort": free_port(),
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        if self.validity is not None:
            config["pebble"]["certificateValidityPeriod"] = self.validity
        config_path = self.workdir / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        env.update(
            {
                "PEBBLE_VA_NOSLEEP": "1",  # no random 0-15 s pause before each validation
                "PEBBLE_VA_ALWAYS_VALID": "0",  # really look the TXT up
                "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce rejections
                "PEBBLE_AUTHZREUSE": "0",  # every order validates afresh
                **self.extra_env,
            }
        )
        self._spawn([_binary("pebble"), "-config", str(config_path), "-dnsserver", self.dns_server], env)
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                with self._http() as client:
                    client.get(self.directory_url).raise_for_status()
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pebble did not answer within {timeout}s:\n{self.log_tail()}")
                time.sleep(0.05)

    def _http(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=self.ca_bundle), timeout=5)

    def _management_pem(self, path: str) -> bytes:
        with self._http() as client:
            response = client.get(f"{self.management_url}{path}")
            response.raise_for_status()
            return response.content

    def cert_status(self, serial: str) -> str:
        """What pebble says of a certificate it issued: "Valid" or "Revoked"."""
        with self._http() as client:
            response = client.get(f"{self.management_url}/cert-status-by-serial/{serial}")
            response.raise_for_status()
            return str(json.loads(response.content)["Status"])

    def issuance_roots(self) -> bytes:
        """PEM of the root that signs the certificates Pebble issues (new at every start)."""
        return self._management_pem("/roots/0")

    def issuance_intermediates(self) -> bytes:
        return self._management_pem("/intermediates/0")

    def __enter__(self) -> Pebble:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
