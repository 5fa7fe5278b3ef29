"""NoBlobChecks, the BlobChecker side of the AWS provider's blob store (S3 checks its own copies): it lists
no copies, and any copy it is asked to check or set aside is one it does not hold (CopyGone, as the port
says of a copy gone since it was listed), while the blob questions go to S3 on the moto server."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor_deploy.adapters.aws.clients import AwsClients
from anchor_deploy.adapters.aws.s3_blobs import S3BlobStore
from anchor_deploy.adapters.aws.unoffered import NoBlobChecks
from anchor_deploy.model.errors import CopyGone
from anchor_deploy.model.integrity import CopyKind, StoredCopy
from tests.aws_support import MotoServer
from tests.support import sha

DATA = b"hello, anchor\n"


@pytest.fixture
def checks(aws: MotoServer, tmp_path: Path) -> NoBlobChecks:
    clients = AwsClients()
    clients.client("s3").create_bucket(Bucket="anchor-blobs")
    return NoBlobChecks(S3BlobStore(clients, "anchor-blobs", spool_dir=tmp_path))


def test_no_copies_to_walk_and_a_named_copy_is_gone(checks: NoBlobChecks) -> None:
    digest = sha(DATA)
    assert checks.put(digest, iter([DATA]), 1024) == len(DATA)
    assert list(checks.copies()) == [] and checks.corrupt() == {}
    copy = StoredCopy(digest, f"{digest[:2]}/{digest}", CopyKind.BLOB, len(DATA))
    assert checks.check(copy) is None
    with pytest.raises(CopyGone) as gone:
        checks.quarantine(copy, "fsck --repair")
    assert gone.value.code == "copy_gone" and gone.value.status == 404
    assert checks.has(digest) and checks.read(digest) == DATA  # nothing was set aside
    assert checks.restore(digest)


def test_restore_and_has_follow_s3(checks: NoBlobChecks) -> None:
    digest = sha(DATA)
    assert not checks.has(digest) and not checks.restore(digest)
    assert checks.missing([digest]) == [digest]
    checks.put(digest, iter([DATA]), 1024)
    assert checks.has(digest) and checks.restore(digest) and checks.missing([digest]) == []
