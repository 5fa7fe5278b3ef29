"""The SecretBox port on KMS: a symmetric key seals, and only that key opens.

Sealed bytes are KMS ciphertext blobs, which Lambda's app handler opens itself with ``kms.decrypt`` at
cold start (the function's role may decrypt with the key; the configuration holds ciphertext only).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.model.errors import InvalidInput

# KMS's answers for bytes that are not a ciphertext of this key (or of any key). AccessDenied is KMS's answer
# for a ciphertext of a key in another account (and moto's for bytes naming no key it knows).
_NOT_OURS = {
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "NotFoundException",
    "ValidationException",
    "AccessDeniedException",
}
KMS_MAX_PLAINTEXT = 4096


class KmsBox:
    def __init__(self, clients: AwsClients, key_id: str) -> None:
        self._clients = clients
        self.key_id = key_id  # an id, ARN or alias name
        self._key_arn: str | None = None

    @property
    def key_arn(self) -> str:
        if self._key_arn is None:
            metadata = self._kms.describe_key(KeyId=self.key_id)["KeyMetadata"]
            self._key_arn = str(metadata["Arn"])
        return self._key_arn

    @property
    def _kms(self) -> Any:
        return self._clients.client("kms")

    def seal(self, plaintext: bytes) -> bytes:
        """KMS encrypts 1 to 4096 bytes directly; anything else is refused with InvalidInput."""
        if not 1 <= len(plaintext) <= KMS_MAX_PLAINTEXT:
            raise InvalidInput(f"KMS seals values of 1 to {KMS_MAX_PLAINTEXT} bytes, not {len(plaintext)}")
        answer = self._kms.encrypt(KeyId=self.key_id, Plaintext=plaintext)
        blob: bytes = answer["CiphertextBlob"]
        return blob

    def open(self, sealed: bytes) -> bytes:
        if not sealed:
            raise InvalidInput("sealed value was not made with this platform's key")
        # The key that sealed the bytes is read from KMS's answer and compared, rather than named in the
        # request (KMS answers a mismatch with an error code that differs between services and emulators).
        try:
            answer = self._kms.decrypt(CiphertextBlob=sealed)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_OURS:
                raise InvalidInput("sealed value was not made with this platform's key") from exc
            raise
        if answer.get("KeyId") != self.key_arn:
            raise InvalidInput("sealed value was not made with this platform's key")
        plaintext: bytes = answer["Plaintext"]
        return plaintext
