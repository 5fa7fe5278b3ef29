"""The SecretBox port: every box (Fernet for the local provider, KMS for AWS) seals so that only its own key
opens, and refuses anything else with InvalidInput."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.kms_box import KmsBox
from anchor_deploy.adapters.fernet_box import FernetBox
from anchor_deploy.model.errors import InvalidInput
from anchor_deploy.ports.runtime import SecretBox
from tests.aws_support import MotoServer

BoxMaker = Callable[[], SecretBox]


def _fernet(tmp_path: Path) -> BoxMaker:
    counter = iter(range(1000))
    return lambda: FernetBox.from_key_file(tmp_path / f"key-{next(counter)}")


def _kms(aws: MotoServer) -> BoxMaker:
    kms = boto3.client("kms")
    return lambda: KmsBox(AwsClients(), kms.create_key(Description="contract")["KeyMetadata"]["KeyId"])


@pytest.fixture(params=["fernet", "kms"])
def new_box(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BoxMaker]:
    """Makes boxes, each with a key of its own."""
    if request.param == "fernet":
        yield _fernet(tmp_path)
    else:
        yield _kms(request.getfixturevalue("aws"))


# KMS encrypts 1 to 4096 bytes (its own rule); the platform seals nothing outside that range.
@pytest.mark.parametrize("plaintext", [b"s", b"s3cret", "päss wörd".encode(), bytes(range(256)) * 4])
def test_seal_then_open_gives_the_plaintext(new_box: BoxMaker, plaintext: bytes) -> None:
    box = new_box()
    sealed = box.seal(plaintext)
    assert box.open(sealed) == plaintext
    if len(plaintext) > 3:
        assert plaintext not in sealed


def test_only_the_sealing_key_opens(new_box: BoxMaker) -> None:
    mine, other = new_box(), new_box()
    sealed = other.seal(b"not for you")
    with pytest.raises(InvalidInput):
        mine.open(sealed)


@pytest.mark.parametrize("garbage", [b"", b"not sealed", base64.b64encode(b"x" * 120)])
def test_bytes_never_sealed_are_refused(new_box: BoxMaker, garbage: bytes) -> None:
    with pytest.raises(InvalidInput):
        new_box().open(garbage)


def test_altered_ciphertext_is_refused(new_box: BoxMaker) -> None:
    box = new_box()
    sealed = bytearray(box.seal(b"integrity"))
    sealed[len(sealed) // 2] ^= 0x01
    with pytest.raises(InvalidInput):
        box.open(bytes(sealed))
