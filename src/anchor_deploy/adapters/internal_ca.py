"""A local certificate authority (the `internal` issuer): an EC P-256 root kept 0600 in the data dir, and
short-lived leaf certificates for validated custom domains (the domain service issues only after it saw
the validation CNAME)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from anchor_deploy.ports.domains import Certificate

ROOT_LIFETIME = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class IssuedCertificate:
    chain_pem: bytes  # leaf first, then the root
    key_pem: bytes
    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime


def write_private(path: Path, data: bytes) -> None:
    """Write a secret (a key, an account) readable by this user only, replacing the file atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


class InternalCA:
    def __init__(self, folder: Path, now: Callable[[], datetime.datetime] | None = None) -> None:
        self.folder = folder
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        if not self.root_path.exists():
            self._create_root()
        key = serialization.load_pem_private_key((folder / "root.key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._root_key = key
        self._root = x509.load_pem_x509_certificate(self.root_path.read_bytes())

    @property
    def root_path(self) -> Path:
        """The root certificate to trust (`anchor ca path`)."""
        return self.folder / "root.pem"

    def _create_root(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anchor-deploy local CA")])
        now = self._now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(self.folder / "root.key", key_pem)
        write_private(self.root_path, cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, names: Sequence[str], lifetime: datetime.timedelta) -> IssuedCertificate:
        """A leaf certificate for ``names`` (A-labels, wildcards allowed) with a fresh P-256 key."""
        if not names:
            raise ValueError("a certificate needs at least one name")
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._now()
        # Backdated for clock skew, but by little for a short-lived certificate (its renewal time is 2/3 of
        # the whole validity window).
        backdate = min(datetime.timedelta(minutes=5), lifetime / 20)
        not_before, not_after = now - backdate, now + lifetime
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._root_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        chain = cert.public_bytes(pem) + self._root.public_bytes(pem)
        key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return IssuedCertificate(chain, key_pem, format(cert.serial_number, "x"), not_before, not_after)


class InternalIssuer:
    """The Issuer port on the local CA. Revocation is a no-op: a local CA publishes no CRL, and removing a
    domain deletes its certificate and key."""

    kind = "internal"

    def __init__(self, ca: InternalCA, lifetime: datetime.timedelta) -> None:
        self._ca = ca
        self._lifetime = lifetime
        self._issuer = ca._root.subject.rfc4514_string()

    def issue(self, names: Sequence[str], validation_fqdn: str) -> Certificate:
        issued = self._ca.issue(names, self._lifetime)
        return Certificate(
            issued.chain_pem, issued.key_pem, issued.serial, issued.not_before, issued.not_after, self._issuer
        )

    def revoke(self, chain_pem: bytes) -> None:
        return None
