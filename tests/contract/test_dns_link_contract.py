"""The DnsLinkRepository port's contract (ports/dns_zones.py): SqliteStore, the fake and DynamoStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor_deploy.model.dns_links import DnsLink
from anchor_deploy.model.entities import HostKind, HostRoute, Project
from anchor_deploy.model.errors import ProjectNotFound, ZoneLinked
from anchor_deploy.ports import Store
from tests.contract.dynamo_support import EVERY_STORE, store_for
from tests.support import TickingClock


@pytest.fixture(params=EVERY_STORE)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return store_for(request, tmp_path, TickingClock())


def add_project(store: Store, name: str) -> Project:
    project = Project(id=f"prj_{name}", name=name, created_at=1.0)
    store.add_project(project, [HostRoute(f"{name}.test", HostKind.ALIAS, project.id, None)])
    return project


def rfc2136(zone: str, project: Project) -> DnsLink:
    return DnsLink(zone, project.id, "rfc2136", "192.0.2.53:53", "anchor-key", "hmac-sha512", 7.5)


def test_a_link_is_listed_under_its_project_with_its_sealed_secret_apart(store: Store) -> None:
    blog, shop = add_project(store, "blog"), add_project(store, "shop")
    store.add_dns_link(rfc2136("example.com", blog), b"sealed-1")
    store.add_dns_link(DnsLink("a.example.net", blog.id, "route53", "Z0123456789ABC", created_at=3.0), None)
    store.add_dns_link(rfc2136("shop.example", shop), b"sealed-2")
    assert store.dns_links(blog.id) == [
        DnsLink("a.example.net", blog.id, "route53", "Z0123456789ABC", "", "hmac-sha256", 3.0),
        rfc2136("example.com", blog),
    ]
    assert store.dns_links(shop.id) == [rfc2136("shop.example", shop)]
    assert store.dns_link_secret("example.com") == b"sealed-1"
    assert store.dns_link_secret("shop.example") == b"sealed-2"
    assert store.dns_link_secret("a.example.net") is None
    assert store.dns_link_secret("unlinked.example") is None


def test_a_zone_is_linked_by_one_project_at_a_time(store: Store) -> None:
    blog, shop = add_project(store, "blog"), add_project(store, "shop")
    store.add_dns_link(rfc2136("example.com", blog), b"blog's")
    with pytest.raises(ZoneLinked, match=r"example\.com"):
        store.add_dns_link(rfc2136("example.com", shop), b"shop's")
    with pytest.raises(ZoneLinked):
        store.add_dns_link(rfc2136("example.com", blog), b"again")
    assert store.dns_links(shop.id) == []
    assert store.dns_link_secret("example.com") == b"blog's"


def test_a_link_for_a_missing_project_stores_nothing(store: Store) -> None:
    ghost = Project(id="prj_ghost", name="ghost", created_at=1.0)
    with pytest.raises(ProjectNotFound):
        store.add_dns_link(rfc2136("example.com", ghost), b"s")
    assert store.dns_link_secret("example.com") is None
    blog = add_project(store, "blog")
    store.add_dns_link(rfc2136("example.com", blog), b"s")  # the zone was not claimed by the failed add
    assert [link.zone for link in store.dns_links(blog.id)] == ["example.com"]


def test_only_the_owning_project_removes_a_link(store: Store) -> None:
    blog, shop = add_project(store, "blog"), add_project(store, "shop")
    store.add_dns_link(rfc2136("example.com", blog), b"s")
    assert not store.remove_dns_link(shop.id, "example.com")
    assert store.dns_link_secret("example.com") == b"s"
    assert store.remove_dns_link(blog.id, "example.com")
    assert not store.remove_dns_link(blog.id, "example.com")
    assert store.dns_links(blog.id) == [] and store.dns_link_secret("example.com") is None
    store.add_dns_link(rfc2136("example.com", shop), b"now shop's")  # free for another project
    assert [link.project_id for link in store.dns_links(shop.id)] == [shop.id]


def test_a_projects_links_go_with_it_and_free_their_zones(store: Store) -> None:
    blog, shop = add_project(store, "blog"), add_project(store, "shop")
    store.add_dns_link(rfc2136("example.com", blog), b"s")
    store.add_dns_link(rfc2136("example.org", blog), b"t")
    store.add_dns_link(rfc2136("shop.example", shop), b"u")
    store.delete_project(blog.id)
    assert store.dns_links(blog.id) == []
    assert store.dns_link_secret("example.com") is None and store.dns_link_secret("example.org") is None
    assert store.dns_link_secret("shop.example") == b"u"
    again = add_project(store, "blog")
    store.add_dns_link(rfc2136("example.com", again), b"new")
    assert store.dns_link_secret("example.com") == b"new"
