"""The Edge port's contract: SymlinkEdge on real directories and the in-memory fake pass it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from anchor_deploy.adapters.local.caddy_edge import SymlinkEdge
from anchor_deploy.model.entities import HostKind
from anchor_deploy.model.errors import EdgeError
from anchor_deploy.ports import Edge
from anchor_deploy.ports.fakes import FakeEdge

A, D = HostKind.ALIAS, HostKind.DEPLOYMENT
X, Y = "dpl_xxxxxxxxxxxx", "dpl_yyyyyyyyyyyy"
INVALID_HOSTS = [
    "",
    ".",
    "..",
    "../etc",
    "a/b",
    "A.b",
    "site.Example.com",
    "a..b",
    ".a.b",
    "a.b.",
    "-a.b",
    "a-.b",
    "a_b.test",
    "a b.test",
    "a.test\n",
    "a\x00.test",
    "x" * 64 + ".test",
    ".".join(["a" * 63] * 4) + ".ab",  # 254 characters
]


@pytest.fixture(params=["symlink", "fake"])
def edge(request: pytest.FixtureRequest, tmp_path: Path) -> Edge:
    if request.param == "symlink":
        return SymlinkEdge(tmp_path / "edge", tmp_path / "deployments")
    return FakeEdge()


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_new_edge_serves_nothing(edge: Edge) -> None:
    assert dict(edge.current()) == {}


def test_point_then_current_reports_every_host(edge: Edge) -> None:
    edge.point("site.test", A, X)
    edge.point("site-xxxxxxxxxxxx.test", D, X)
    edge.point("www.example.com", A, Y)
    assert dict(edge.current()) == {
        "site.test": (A, X),
        "site-xxxxxxxxxxxx.test": (D, X),
        "www.example.com": (A, Y),
    }


def test_point_switches_and_is_idempotent(edge: Edge) -> None:
    edge.point("site.test", A, X)
    edge.point("site.test", A, Y)
    assert dict(edge.current()) == {"site.test": (A, Y)}
    edge.point("site.test", A, Y)
    assert dict(edge.current()) == {"site.test": (A, Y)}
    edge.point("site.test", A, X)
    assert dict(edge.current()) == {"site.test": (A, X)}


@pytest.mark.parametrize(("first", "second"), [(A, D), (D, A)])
def test_a_host_serves_one_thing_even_when_its_kind_changes(
    edge: Edge, first: HostKind, second: HostKind
) -> None:
    # A released host can come back as the other kind (e.g. a deleted project's production name
    # becoming another project's immutable deployment host): "serve deployment_id from now on".
    edge.point("site-xxxxxxxxxxxx.test", first, X)
    edge.point("site-xxxxxxxxxxxx.test", second, Y)
    assert dict(edge.current()) == {"site-xxxxxxxxxxxx.test": (second, Y)}


def test_remove_is_idempotent_and_leaves_other_hosts(edge: Edge) -> None:
    edge.point("site.test", A, X)
    edge.point("other.test", D, Y)
    edge.remove("site.test")
    edge.remove("site.test")
    edge.remove("never.test")
    assert dict(edge.current()) == {"other.test": (D, Y)}


def test_current_is_a_snapshot(edge: Edge) -> None:
    edge.point("site.test", A, X)
    before = edge.current()
    edge.point("site.test", A, Y)
    edge.point("new.test", A, Y)
    assert dict(before) == {"site.test": (A, X)}


@pytest.mark.parametrize("host", INVALID_HOSTS)
def test_invalid_host_is_refused_and_changes_nothing(edge: Edge, tmp_path: Path, host: str) -> None:
    edge.point("site.test", A, X)
    files_before = tree(tmp_path)
    for kind in HostKind:
        with pytest.raises(EdgeError):
            edge.point(host, kind, Y)
    with pytest.raises(EdgeError):
        edge.remove(host)
    assert dict(edge.current()) == {"site.test": (A, X)}
    assert tree(tmp_path) == files_before
    assert not (tmp_path / "etc").exists()


def test_longest_valid_host_is_accepted(edge: Edge) -> None:
    host = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    edge.point(host, D, X)
    assert dict(edge.current()) == {host: (D, X)}


# -- SymlinkEdge only ------------------------------------------------------------------------------
@pytest.fixture
def symlinks(tmp_path: Path) -> SymlinkEdge:
    (tmp_path / "deployments" / X).mkdir(parents=True)
    (tmp_path / "deployments" / Y).mkdir(parents=True)
    return SymlinkEdge(tmp_path / "edge", tmp_path / "deployments")


def test_links_resolve_to_the_deployment_directory(symlinks: SymlinkEdge, tmp_path: Path) -> None:
    symlinks.point("site.test", A, X)
    symlinks.point("site-yyyyyyyyyyyy.test", D, Y)
    alias = tmp_path / "edge" / "a" / "site.test"
    own = tmp_path / "edge" / "d" / "site-yyyyyyyyyyyy.test"
    assert not os.path.isabs(os.readlink(alias))  # relative: the data dir can move
    assert alias.resolve() == (tmp_path / "deployments" / X).resolve()
    assert own.resolve() == (tmp_path / "deployments" / Y).resolve()
    assert tree(tmp_path / "edge") == ["a", "a/site.test", "d", "d/site-yyyyyyyyyyyy.test"]


def test_point_replaces_the_link_by_one_rename(
    symlinks: SymlinkEdge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "edge" / "a" / "site.test"
    symlinks.point("site.test", A, X)
    old_target = os.readlink(link)
    renames: list[tuple[str, str, str]] = []
    unlinked: list[str] = []
    real_replace, real_unlink = os.replace, os.unlink

    def spy_replace(src: str, dst: str) -> None:
        # At the moment of the switch the old link is still in place and the new one is complete.
        assert os.readlink(dst) == old_target
        renames.append((str(src), str(dst), os.readlink(src)))
        real_replace(src, dst)

    def spy_unlink(path: str, *args: object, **kwargs: object) -> None:
        unlinked.append(str(path))
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "unlink", spy_unlink)
    symlinks.point("site.test", A, Y)
    monkeypatch.undo()

    assert len(renames) == 1
    src, dst, new_target = renames[0]
    assert dst == str(link) and os.path.dirname(src) == str(link.parent)
    assert os.path.basename(new_target) == Y
    assert str(link) not in unlinked
    assert os.path.basename(os.readlink(link)) == Y
    assert tree(tmp_path / "edge") == ["a", "a/site.test", "d"]  # no temporary left behind


def test_readers_never_see_a_missing_link_during_switches(symlinks: SymlinkEdge, tmp_path: Path) -> None:
    link = tmp_path / "edge" / "a" / "site.test"
    symlinks.point("site.test", A, X)
    stop = threading.Event()
    seen: set[str] = set()
    failures: list[OSError] = []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(os.path.basename(os.readlink(link)))
            except OSError as exc:
                failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(400):
            symlinks.point("site.test", A, (X, Y)[i % 2])
    finally:
        stop.set()
        reader.join(timeout=10)
    assert failures == []
    assert seen <= {X, Y}


def test_current_reports_what_is_on_disk(symlinks: SymlinkEdge, tmp_path: Path) -> None:
    symlinks.point("site.test", A, X)
    by_hand = tmp_path / "edge" / "d" / "site-yyyyyyyyyyyy.test"
    os.symlink(f"../../deployments/{Y}", by_hand)
    (tmp_path / "edge" / "a" / ".tmp-crashed").symlink_to("../../deployments/x")
    os.utime(tmp_path / "edge" / "a" / ".tmp-crashed", (1.0, 1.0), follow_symlinks=False)
    # A fresh one may be another process's switch between its symlink and its rename: not reported, kept.
    (tmp_path / "edge" / "a" / ".tmp-switching").symlink_to("../../deployments/x")
    (tmp_path / "edge" / "a" / "junk.test").write_text("not a link")
    reopened = SymlinkEdge(tmp_path / "edge", tmp_path / "deployments")
    assert dict(reopened.current()) == {"site.test": (A, X), "site-yyyyyyyyyyyy.test": (D, Y)}
    kept = ["a", "a/.tmp-switching", "a/site.test", "d", "d/site-yyyyyyyyyyyy.test"]
    assert tree(tmp_path / "edge") == kept


def test_remove_deletes_the_link_of_either_kind(symlinks: SymlinkEdge, tmp_path: Path) -> None:
    symlinks.point("site.test", A, X)
    symlinks.point("site-yyyyyyyyyyyy.test", D, Y)
    symlinks.remove("site.test")
    symlinks.remove("site-yyyyyyyyyyyy.test")
    assert tree(tmp_path / "edge") == ["a", "d"]
    assert (tmp_path / "deployments" / X).is_dir()  # the deployment itself is not the edge's
