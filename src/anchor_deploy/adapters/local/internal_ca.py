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


# What a TLS server certificate's key may do (RFC 5280 4.2.1.3; strict verifiers want it present).
_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _is_complete_root(root: x509.Certificate) -> bool:
    """Whether a root carries what RFC 5280 strict verification (OpenSSL's -x509_strict, Python 3.13's
    default VERIFY_X509_STRICT) needs to build a chain from it: a Subject Key Identifier."""
    try:
        root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return False
    return True


class InternalCA:
    def __init__(self, folder: Path, now: Callable[[], datetime.datetime] | None = None) -> None:
        self.folder = folder
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        # Set when this start replaced a root that strict verifiers refuse: the path of the old one.
        self.replaced_root: Path | None = None
        if not self.root_path.exists():
            self._create_root()
        self._load()
        if not _is_complete_root(self._root):
            self.replaced_root = self._retire_root()
            self._create_root()
            self._load()

    def _load(self) -> None:
        key = serialization.load_pem_private_key((self.folder / "root.key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._root_key = key
        self._root = x509.load_pem_x509_certificate(self.root_path.read_bytes())

    @property
    def issuer_name(self) -> str:
        """The root's subject, as certificates it issued name their issuer."""
        return self._root.subject.rfc4514_string()

    def _retire_root(self) -> Path:
        """Keep an old root beside the new one (clients may still trust it) instead of deleting it."""
        stamp = self._now().strftime("%Y%m%dT%H%M%S")
        old = self.folder / f"root-replaced-{stamp}.pem"
        os.replace(self.root_path, old)
        os.replace(self.folder / "root.key", self.folder / f"root-replaced-{stamp}.key")
        return old

    @property
    def root_path(self) -> Path:
        """The root certificate to trust (`anchor ca path`)."""
        return self.folder / "root.pem"

    def _create_root(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._now()
        # A name of its own per root (with its creation time), so a replaced root and its successor, and
        # the certificates each issued, are never mistaken for one another.
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "anchor-deploy"),
                x509.NameAttribute(
                    NameOID.COMMON_NAME, f"anchor-deploy local CA {now.strftime('%Y-%m-%d %H:%M:%S')}"
                ),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
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
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    self._root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                ),
                critical=False,
            )
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

    def issue(self, names: Sequence[str], validation_fqdn: str) -> Certificate:
        issued = self._ca.issue(names, self._lifetime)
        return Certificate(
            issued.chain_pem,
            issued.key_pem,
            issued.serial,
            issued.not_before,
            issued.not_after,
            self._ca.issuer_name,
        )

    def revoke(self, chain_pem: bytes) -> None:
        return None

    def outdated(self, issuer: str) -> bool:
        """A certificate of an earlier root (replaced since) is re-issued by the current one."""
        return issuer != self._ca.issuer_name
