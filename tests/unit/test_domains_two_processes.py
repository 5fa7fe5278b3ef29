"""Custom domains with two control-plane processes on one database: the per-name locks of the domain service
and of its edge plane are each process's own, so a removal in one process can run while the other one's
check attaches the name."""

from __future__ import annotations

from tests.unit.test_domain_service import WWW, another_process, make_harness


def test_a_removal_by_another_process_during_an_attach_leaves_the_name_detached() -> None:
    h = make_harness()
    # The other process: the same database and data planes, locks of its own.
    other = another_process(h)
    h.add(WWW)
    h.validate(WWW)
    attach = h.edge.attach

    def removed_meanwhile(name: str, production_host: str) -> None:
        h.edge.attach = attach  # type: ignore[method-assign]
        other.remove(h.site, WWW)  # marks the row, detaches, deletes the certificate files and the row
        assert h.store.domain(WWW) is None and h.edge.links == {}
        attach(name, production_host)  # then this process's attach lands

    h.edge.attach = removed_meanwhile  # type: ignore[method-assign]
    h.run()
    assert h.store.domain(WWW) is None
    assert h.edge.links == {} and h.certs.installed == {}  # taken down again after the attach
    assert h.issuer.issued and h.issuer.revoked == [h.issuer.issued[0].chain_pem]
