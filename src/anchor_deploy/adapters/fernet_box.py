"""The SecretBox port with Fernet (AES-128-CBC + HMAC-SHA256); the key lives in the data dir, mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from anchor_deploy.model.errors import InvalidInput


class FernetBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_key_file(cls, path: Path) -> FernetBox:
        """Load the key, creating it (0600, written atomically) on first use."""
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key())
            os.replace(tmp, path)
        os.chmod(path, 0o600)
        return cls(path.read_bytes().strip())

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken as exc:
            raise InvalidInput("sealed value was not made with this platform's key") from exc
