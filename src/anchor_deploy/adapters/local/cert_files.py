"""Served certificates: one PEM bundle (chain, then key) per custom domain in a 0700 folder, files 0600,
replaced by rename so a handshake reads the old or the new bundle whole. Caddy fetches them per handshake
from ``CertificateEndpoint``, a loopback HTTP server behind a random secret path: adding or renewing a
certificate never reloads Caddy's config, so no keep-alive connection is dropped."""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509

from anchor_deploy.model.errors import EdgeError
from anchor_deploy.ports.domains import Certificate

log = logging.getLogger(__name__)
_SERVER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_WILDCARD_FILE = "_."  # "*.example.com" is stored as "_.example.com.pem" ('_' is never in a hostname)


def _file_name(name: str) -> str:
    if name.startswith("*."):
        return _WILDCARD_FILE + name[2:] + ".pem"
    return name + ".pem"


def _domain_name(file_name: str) -> str:
    name = file_name.removesuffix(".pem")
    return "*." + name[2:] if name.startswith(_WILDCARD_FILE) else name


class CertificateFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)

    def _path(self, name: str) -> Path:
        if not _SERVER_NAME.fullmatch(name.removeprefix("*.")):
            raise ValueError(f"not a certificate name: {name[:80]!r}")
        return self.folder / _file_name(name)

    def put(self, name: str, certificate: Certificate) -> None:
        path = self._path(name)
        tmp = path.with_name(f".tmp-{secrets.token_hex(6)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(certificate.chain_pem.rstrip(b"\n") + b"\n" + certificate.key_pem)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise EdgeError(f"could not install the certificate of {name}: {exc.strerror or exc}") from exc

    def remove(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise EdgeError(f"could not remove the certificate of {name}: {exc.strerror or exc}") from exc

    def names(self) -> list[str]:
        found = []
        for entry in os.scandir(self.folder):
            if entry.name.startswith(".tmp-"):
                os.unlink(entry.path)
            elif entry.name.endswith(".pem"):
                found.append(_domain_name(entry.name))
        return sorted(found)

    def bundle(self, server_name: str) -> bytes | None:
        """The bundle for a handshake: the exact name first, then the wildcard one level up."""
        server_name = server_name.lower().rstrip(".")
        if not _SERVER_NAME.fullmatch(server_name):
            return None
        candidates = [server_name]
        if "." in server_name:
            candidates.append("*." + server_name.split(".", 1)[1])
        for name in candidates:
            try:
                return (self.folder / _file_name(name)).read_bytes()
            except OSError:
                continue
        return None

    def serial(self, name: str) -> str | None:
        try:
            pem = self._path(name).read_bytes()
        except OSError:
            return None
        try:
            return format(x509.load_pem_x509_certificate(pem).serial_number, "x")
        except ValueError:
            return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self) -> tuple[socket.socket, object]:
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the bundle leaves in one write
        return conn, addr


class CertificateEndpoint:
    """Answers Caddy's ``get_certificate`` HTTP manager: GET /<secret>/certificate?server_name=NAME gives
    the PEM bundle, or 404 for a name the platform does not own (the handshake then fails)."""

    def __init__(self, files: CertificateFiles, host: str = "127.0.0.1") -> None:
        self._files = files
        self._secret = secrets.token_urlsafe(24)
        self._server = _Server((host, 0), self._handler())
        self._thread: threading.Thread | None = None
        self.handshakes = 0

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{self._secret}/certificate"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                expected = f"/{endpoint._secret}/certificate".encode()
                if not hmac.compare_digest(parts.path.encode(), expected):
                    self._answer(404, b"")
                    return
                names = parse_qs(parts.query).get("server_name", [""])
                bundle = endpoint._files.bundle(names[0])
                endpoint.handshakes += 1
                self._answer(200, bundle) if bundle else self._answer(404, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-pem-file")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="cert-endpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: without it, it would block forever
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
