"""The client's hash cache: an unchanged file is not read again; a changed size, mtime or inode is; a file
changed too recently to be told apart from its cached state (git's "racy" entry) is hashed again; a
damaged cache is ignored; the cache lives under the cache dir, never in the project."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from anchor_deploy.cli import deploy as deploy_module
from anchor_deploy.cli.deploy import build_manifest, plan_files
from anchor_deploy.cli.hash_cache import RACY_MARGIN_NS, HashCache
from anchor_deploy.settings import ClientSettings
from tests.support import sha

OLD_NS = 1_600_000_000 * 10**9  # files last changed long before any hashing here


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the manifest builder reads."""
    seen: list[Path] = []
    real = deploy_module.hash_file

    def counting(path: Path) -> tuple[str, int]:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(deploy_module, "hash_file", counting)
    return seen


def site(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / "site" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(OLD_NS, OLD_NS))
    return root / "site"


def deploy_once(folder: Path, cache_dir: Path, settled: bool = True) -> tuple[dict[str, str], int]:
    """Build the manifest with the folder's cache, as `anchor deploy` does; (path -> digest, cache hits).
    ``settled``: as if the deploy ran well after the files' last change (their ctime is now: os.utime
    cannot set it back)."""
    now = time.time_ns() + 2 * RACY_MARGIN_NS if settled else None
    cache = HashCache.for_folder(cache_dir, folder, now)
    manifest = build_manifest(plan_files(folder), None, cache)
    cache.save()
    return {m["path"]: m["sha256"] for m in manifest}, cache.hits


def test_an_unchanged_folder_is_not_read_again(tmp_path: Path, reads: list[Path]) -> None:
    folder = site(tmp_path, {"index.html": b"<h1>a</h1>", "css/site.css": b"body{}"})
    first, hits = deploy_once(folder, tmp_path / "cache")
    assert hits == 0 and len(reads) == 2
    assert first == {"index.html": sha(b"<h1>a</h1>"), "css/site.css": sha(b"body{}")}
    reads.clear()
    written = os.stat(HashCache.for_folder(tmp_path / "cache", folder).file).st_ino
    again, hits = deploy_once(folder, tmp_path / "cache")
    assert again == first and hits == 2 and reads == []
    assert os.stat(HashCache.for_folder(tmp_path / "cache", folder).file).st_ino == written  # not rewritten
    assert sorted(p.name for p in folder.rglob("*")) == ["css", "index.html", "site.css"]  # nothing added
    assert len(list((tmp_path / "cache" / "anchor-deploy" / "hashes").iterdir())) == 1


@pytest.mark.parametrize("change", ["content of another size", "mtime", "inode"])
def test_a_changed_file_is_read_again(tmp_path: Path, reads: list[Path], change: str) -> None:
    folder = site(tmp_path, {"a.txt": b"aaaa", "b.txt": b"bbbb"})
    deploy_once(folder, tmp_path / "cache")
    target = folder / "a.txt"
    if change == "content of another size":
        target.write_bytes(b"a longer a")
        os.utime(target, ns=(OLD_NS, OLD_NS))  # same mtime: the size tells
    elif change == "mtime":
        target.write_bytes(b"AAAA")  # same size
        os.utime(target, ns=(OLD_NS + 1, OLD_NS + 1))
    else:
        replacement = folder / "a.new"
        replacement.write_bytes(b"AAAA")  # same size and mtime, a new inode (an editor's save)
        os.utime(replacement, ns=(OLD_NS, OLD_NS))
        os.replace(replacement, target)
    reads.clear()
    manifest, hits = deploy_once(folder, tmp_path / "cache")
    assert reads == [target] and hits == 1
    assert manifest["a.txt"] == sha(target.read_bytes())


def test_a_racy_entry_is_hashed_again_until_it_is_old_enough(tmp_path: Path, reads: list[Path]) -> None:
    folder = site(tmp_path, {"fresh.txt": b"v1"})
    (folder / "fresh.txt").write_bytes(b"v1")  # changed just now: within the margin of the cache's write
    deploy_once(folder, tmp_path / "cache", settled=False)
    # Changed again within the same timestamp tick: size and mtime as cached, other bytes.
    stamp = os.stat(folder / "fresh.txt").st_mtime_ns
    (folder / "fresh.txt").write_bytes(b"v2")
    os.utime(folder / "fresh.txt", ns=(stamp, stamp))
    reads.clear()
    manifest, hits = deploy_once(folder, tmp_path / "cache", settled=False)
    assert hits == 0 and manifest["fresh.txt"] == sha(b"v2")  # not the cached v1
    # The rule itself: an entry for exactly the file's state is trusted only once the cache was written
    # (its hashing began) more than the margin after the file's last change.
    cache_file = HashCache.for_folder(tmp_path / "cache", folder).file
    info = os.stat(folder / "fresh.txt")
    changed = max(info.st_mtime_ns, info.st_ctime_ns)
    for written, trusted in (
        (changed, False),
        (changed + RACY_MARGIN_NS - 1, False),
        (changed + RACY_MARGIN_NS + 1, True),
    ):
        cache = HashCache(cache_file, now_ns=written)
        cache.remember("fresh.txt", info, sha(b"v2"))
        cache.save()
        assert HashCache(cache_file).lookup("fresh.txt", info) == (sha(b"v2") if trusted else None)


@pytest.mark.parametrize(
    "damage", [b"", b"{not json", b'{"format": 1, "hashedAt": "x", "entries": []}', b"\xff"]
)
def test_a_damaged_cache_is_ignored(tmp_path: Path, reads: list[Path], damage: bytes) -> None:
    folder = site(tmp_path, {"a.txt": b"a"})
    deploy_once(folder, tmp_path / "cache")
    HashCache.for_folder(tmp_path / "cache", folder).file.write_bytes(damage)
    reads.clear()
    manifest, hits = deploy_once(folder, tmp_path / "cache")
    assert hits == 0 and reads == [folder / "a.txt"] and manifest == {"a.txt": sha(b"a")}
    reads.clear()
    assert deploy_once(folder, tmp_path / "cache")[1] == 1  # and rewritten whole


def test_an_entry_with_another_digest_shape_is_not_trusted_blindly(tmp_path: Path) -> None:
    folder = site(tmp_path, {"a.txt": b"a"})
    cache = HashCache.for_folder(tmp_path / "cache", folder)
    cache.file.parent.mkdir(parents=True)
    cache.file.write_text('{"format": 1, "hashedAt": 5, "entries": {"a.txt": [1, 2, 3]}}')
    assert HashCache(cache.file).lookup("a.txt", os.stat(folder / "a.txt")) is None


def test_the_cache_dir_follows_xdg_and_can_be_turned_off(tmp_path: Path) -> None:
    settings = ClientSettings.from_env({"XDG_CACHE_HOME": str(tmp_path), "HOME": "/nowhere"})
    assert settings.cache_dir == tmp_path
    assert ClientSettings.from_env({"ANCHOR_HASH_CACHE": "off"}).cache_dir is None
