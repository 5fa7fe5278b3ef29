"""Small helpers shared by the unit and contract suites."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class TickingClock:
    """A deterministic clock: every call returns a time strictly later than the one before."""

    def __init__(self, start: float = 1_700_000_000.0, step: float = 1.0) -> None:
        self.last = start
        self._step = step

    def __call__(self) -> float:
        self.last += self._step
        return self.last


def run_concurrently(
    work: Callable[[str], None], items: Iterable[str], timeout: float = 60
) -> list[BaseException]:
    """Run ``work(item)`` for every item, each on its own thread at once; return what they raised."""
    errors: list[BaseException] = []

    def guarded(item: str) -> None:
        try:
            work(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return errors


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; nothing if it is gone already."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def write_old_style_root(folder: Path) -> None:
    """A root as the first releases made it: no Subject Key Identifier (strict verifiers refuse it)."""
    folder.mkdir(mode=0o700, parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anchor-deploy local CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    pkcs8 = serialization.PrivateFormat.PKCS8
    (folder / "root.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    )
    (folder / "root.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def to_ascii(label: str) -> str:
    """IDNA (UTS #46) to an A-label, as the local provider gives the domain service; ValueError if bad."""
    try:
        return idna.encode(label, uts46=True).decode()
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from exc


def to_unicode(label: str) -> str:
    try:
        return str(idna.decode(label))
    except idna.IDNAError as exc:
        raise ValueError(str(exc)) from exc
