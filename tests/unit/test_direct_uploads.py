"""The 409 missing_files answer offers direct uploads when the blob store takes them, and only then; the
CLI reads the targets it offers, and ignores malformed ones (their blobs go through the API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from anchor_deploy.api.schemas import ErrorBody
from anchor_deploy.cli.direct_upload import Target, read_targets
from anchor_deploy.model.errors import MissingFiles
from anchor_deploy.ports.blobs import DirectUploads, UploadTarget
from anchor_deploy.ports.fakes import FakeBlobStore
from anchor_deploy.services import deployments
from anchor_deploy.services.deployments import DeploymentService
from tests.support import sha
from tests.unit.conftest import ADMIN, BASE, MAX_FILE, App

EXPIRES = 1_767_225_600.5  # 2026-01-01T00:00:00.500Z


class FakeDirectStore(FakeBlobStore):
    """The fake blob store, also offering a direct upload target per blob (as S3BlobStore does)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def upload_targets(self, digests: Sequence[str]) -> list[UploadTarget]:
        self.asked.append(list(digests))
        return [
            UploadTarget(d, f"https://blobs.test/{d}?sig={i}", {"x-check": d[:8]}, EXPIRES)
            for i, d in enumerate(digests)
        ]


def manifest(*contents: bytes) -> dict[str, Any]:
    return {
        "files": [{"path": f"f{i}.txt", "sha256": sha(c), "size": len(c)} for i, c in enumerate(contents)]
    }


def refusal(service: DeploymentService, app: App, body: dict[str, Any]) -> MissingFiles:
    with pytest.raises(MissingFiles) as caught:
        service.create(app.project(), body, ADMIN)
    return caught.value


def test_a_store_offering_direct_uploads_answers_a_target_per_missing_blob(app: App) -> None:
    store = FakeDirectStore()
    assert isinstance(store, DirectUploads) and not isinstance(app.blobs, DirectUploads)
    store.put(sha(b"held"), iter([b"held"]), MAX_FILE)
    service = DeploymentService(app.store, store, app.files, app.aliases, app.sync, BASE, MAX_FILE, app.clock)
    error = refusal(service, app, manifest(b"two", b"held", b"one", b"two"))
    assert error.extra["missing"] == [sha(b"two"), sha(b"one")]
    assert store.asked == [[sha(b"two"), sha(b"one")]]  # only the missing ones, in the same order
    body = error.to_dict()
    assert body["uploads"] == [
        {
            "sha256": sha(b"two"),
            "method": "PUT",
            "url": f"https://blobs.test/{sha(b'two')}?sig=0",
            "headers": {"x-check": sha(b"two")[:8]},
            "expiresAt": "2026-01-01T00:00:00.500Z",
        },
        {
            "sha256": sha(b"one"),
            "method": "PUT",
            "url": f"https://blobs.test/{sha(b'one')}?sig=1",
            "headers": {"x-check": sha(b"one")[:8]},
            "expiresAt": "2026-01-01T00:00:00.500Z",
        },
    ]
    parsed = ErrorBody.model_validate({"error": body})  # the documented error body
    assert (
        parsed.error.uploads is not None
        and parsed.error.uploads[1].expires_at == body["uploads"][1]["expiresAt"]
    )
    assert read_targets(body) == {
        sha(b"two"): Target(body["uploads"][0]["url"], "PUT", {"x-check": sha(b"two")[:8]}),
        sha(b"one"): Target(body["uploads"][1]["url"], "PUT", {"x-check": sha(b"one")[:8]}),
    }


def test_a_store_without_direct_uploads_answers_as_before(app: App) -> None:
    body = refusal(app.deployments, app, manifest(b"new")).to_dict()
    assert body == {
        "code": "missing_files",
        "message": "1 file must be uploaded first",
        "missing": [sha(b"new")],
    }
    assert read_targets(body) == {}


@pytest.mark.parametrize(
    "uploads",
    [
        None,
        "https://blobs.test/x",
        [None, 3, "x"],
        [{"sha256": "a" * 64, "url": "file:///etc/passwd", "method": "PUT", "headers": {}}],
        [{"sha256": "a" * 64, "url": "https://blobs.test/a", "method": "POST", "headers": {}}],
        [{"sha256": "a" * 64, "url": "https://blobs.test/a", "method": "PUT", "headers": {"n": 1}}],
        [{"sha256": "a" * 64, "url": "https://blobs.test/a", "method": "PUT"}],
        [{"url": "https://blobs.test/a", "method": "PUT", "headers": {}}],
    ],
)
def test_malformed_targets_are_skipped(uploads: object) -> None:
    assert read_targets({"code": "missing_files", "missing": ["a" * 64], "uploads": uploads}) == {}


def test_an_answer_offers_at_most_max_upload_targets(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployments, "MAX_UPLOAD_TARGETS", 2)
    store = FakeDirectStore()
    service = DeploymentService(app.store, store, app.files, app.aliases, app.sync, BASE, MAX_FILE, app.clock)
    error = refusal(service, app, manifest(b"a", b"b", b"c"))
    assert error.extra["missing"] == [sha(b"a"), sha(b"b"), sha(b"c")]
    assert [u["sha256"] for u in error.extra["uploads"]] == [sha(b"a"), sha(b"b")]
