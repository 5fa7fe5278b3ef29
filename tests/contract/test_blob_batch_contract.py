"""A batch of blobs (UploadService.put_batch, behind POST /v1/blob-batches) on every blob store: FsBlobStore
(its own put_many), the fake and S3BlobStore on the moto server (one put per blob): all stored, or, with one
bad blob, none of them."""

from __future__ import annotations

import pytest

from anchor_deploy.model.errors import BlobRejected, BlobTooLarge
from anchor_deploy.services.uploads import UploadService
from tests.contract.test_blob_store_contract import LIMIT, AnyStore, blobs  # noqa: F401 (the fixture)
from tests.support import sha

ONE, TWO, HELD = b"one\n", b"two, longer\n", b"held before\n"


def test_a_batch_is_stored_whole(blobs: AnyStore) -> None:  # noqa: F811 (the fixture)
    blobs.put(sha(HELD), iter([HELD]), LIMIT)
    done = UploadService(blobs, LIMIT).put_batch([(sha(ONE), ONE), (sha(TWO), TWO), (sha(HELD), HELD)])
    assert (done.stored, done.held, done.bytes) == (2, 1, len(ONE) + len(TWO))
    assert blobs.missing([sha(ONE), sha(TWO), sha(HELD)]) == []
    assert [blobs.read(sha(x)) for x in (ONE, TWO)] == [ONE, TWO]


@pytest.mark.parametrize(
    ("bad", "error"),
    [((sha(b"x"), b"not x"), BlobRejected), ((sha(b"y" * (LIMIT + 1)), b"y" * (LIMIT + 1)), BlobTooLarge)],
)
def test_a_bad_blob_stores_none_of_the_batch(
    blobs: AnyStore,  # noqa: F811 (the fixture)
    bad: tuple[str, bytes],
    error: type[Exception],
) -> None:
    with pytest.raises(error) as caught:
        UploadService(blobs, LIMIT).put_batch([(sha(ONE), ONE), bad])
    assert caught.value.extra["digest"] == bad[0]  # type: ignore[attr-defined]
    assert blobs.missing([sha(ONE), bad[0]]) == [sha(ONE), bad[0]]
