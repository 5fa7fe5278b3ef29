"""The internal CA: root kept private and stable, leaves that verify against it for exactly their names."""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

from cryptography import x509

from anchor_deploy.adapters.internal_ca import InternalCA


def test_root_is_private_and_reused(tmp_path: Path) -> None:
    ca = InternalCA(tmp_path / "ca")
    root = ca.root_path.read_bytes()
    assert stat.S_IMODE((tmp_path / "ca" / "root.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    assert InternalCA(tmp_path / "ca").root_path.read_bytes() == root  # not regenerated


def test_issued_chain_verifies_for_its_names_only(tmp_path: Path) -> None:
    ca = InternalCA(tmp_path / "ca")
    issued = ca.issue(["shop.example.com", "*.shop.example.com"], datetime.timedelta(days=30))
    leaf = x509.load_pem_x509_certificates(issued.chain_pem)[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["shop.example.com", "*.shop.example.com"]
    assert format(leaf.serial_number, "x") == issued.serial
    assert issued.not_after - issued.not_before > datetime.timedelta(days=29)
    # A real TLS stack accepts the chain for the names, and only for them.
    context = ssl.create_default_context(cafile=str(ca.root_path))
    (tmp_path / "leaf.pem").write_bytes(issued.chain_pem)
    (tmp_path / "leaf.key").write_bytes(issued.key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    for name, ok in (("shop.example.com", True), ("a.shop.example.com", True), ("other.example.com", False)):
        assert _handshake(context, server, name) is ok, name


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> bool:
    """A TLS handshake over in-memory BIOs (no sockets): does the client accept the server for ``name``?"""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError:
                return False
            except ssl.SSLError:
                if side is s:
                    return False
                raise
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        try:
            c.do_handshake()
            return True
        except ssl.SSLWantReadError:
            continue
        except ssl.SSLCertVerificationError:
            return False
    return False
