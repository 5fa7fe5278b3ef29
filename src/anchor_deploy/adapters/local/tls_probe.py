"""The TlsProbe port: a real TLS handshake with the edge for a name, reporting the leaf's serial."""

from __future__ import annotations

import socket
import ssl

from cryptography import x509

from anchor_deploy.model.errors import EdgeError


class EdgeTlsProbe:
    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self._address = address
        self._timeout = timeout
        # Not a trust check (the issuer may be a private CA): the caller compares the serial with the one
        # it installed, which proves the edge serves that certificate for that name. One context for every
        # probe, without the system's CA bundle: create_default_context() parses that bundle on each call
        # (about 40 ms of CPU, most of an attach), only for verification to be switched off.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self._context = context

    def served_serial(self, name: str) -> str:
        try:
            with (
                socket.create_connection(self._address, timeout=self._timeout) as raw,
                self._context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
        except ssl.SSLError as exc:
            raise EdgeError(f"TLS handshake for {name} failed: {exc.reason or exc}") from exc
        except OSError as exc:
            host, port = self._address
            raise EdgeError(f"could not reach the edge at {host}:{port}: {exc.strerror or exc}") from exc
        if not der:
            raise EdgeError(f"the edge presented no certificate for {name}")
        return format(x509.load_der_x509_certificate(der).serial_number, "x")
