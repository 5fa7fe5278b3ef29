"""The internal CA: root kept private and stable, leaves that verify against it for exactly their names."""

from __future__ import annotations

import datetime
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from anchor_deploy.adapters.local.internal_ca import InternalCA, InternalIssuer
from tests.support import write_old_style_root


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
    # A real TLS stack accepts the chain for the names, and only for them, with strict RFC 5280 checks on
    # (the default of Python 3.13 and newer, asked for here on every Python).
    context = ssl.create_default_context(cafile=str(ca.root_path))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
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


def test_certificates_are_rfc5280_complete_for_strict_verifiers(tmp_path: Path) -> None:
    ca = InternalCA(tmp_path / "ca")
    issued = ca.issue(["shop.example.com"], datetime.timedelta(days=30))
    leaf, root = x509.load_pem_x509_certificates(issued.chain_pem)
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    leaf_ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert leaf_ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    checked = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", str(ca.root_path), str(tmp_path / "leaf.pem")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_root_without_key_identifiers_is_replaced_and_its_certificates_outdated(tmp_path: Path) -> None:
    write_old_style_root(tmp_path / "ca")
    old_pem = (tmp_path / "ca" / "root.pem").read_bytes()
    old_issuer = x509.load_pem_x509_certificate(old_pem).subject.rfc4514_string()
    ca = InternalCA(tmp_path / "ca")
    assert ca.replaced_root is not None and ca.replaced_root.read_bytes() == old_pem  # kept, not deleted
    new_root = x509.load_pem_x509_certificate(ca.root_path.read_bytes())
    new_root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert stat.S_IMODE((tmp_path / "ca" / "root.key").stat().st_mode) == 0o600
    issuer = InternalIssuer(ca, datetime.timedelta(days=30))
    assert issuer.outdated(old_issuer) and not issuer.outdated(ca.issuer_name)
    again = InternalCA(tmp_path / "ca")  # the next start keeps the new root
    assert again.replaced_root is None and again.root_path.read_bytes() == ca.root_path.read_bytes()
