"""The local provider with ANCHOR_ISSUER=acme, as the ACME end-to-end tests run it: the user's zone on knot,
the platform's own DNS server for the validation zone, BIND as the recursive resolver that both the platform
and pebble ask (it returns the delegated CNAME and the TXT at its target together, which pebble needs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.dns_support import Resolver, UserDns
from tests.e2e.harness import LOOPBACK, AnchorProcess, free_port
from tests.pebble_support import Pebble

VALIDATION_ZONE = "validation.anchor.test"


@contextmanager
def acme_stack(
    root: Path,
    zone: str,
    tsig: tuple[str, str, str] | None = None,
    validity: int | None = None,
    edge_server: str = "caddy",
) -> Iterator[tuple[AnchorProcess, UserDns, Pebble]]:
    """``zone`` on knot (updates signed with ``tsig`` only, if given), pebble issuing certificates valid
    ``validity`` seconds (its default if None), and `anchor up` using them (on ``edge_server``), started in
    ``root``."""
    dns_port = free_port()
    with (
        UserDns([zone], workdir=root / "knot", tsig=tsig) as user_dns,
        Resolver(
            {zone: user_dns.address, VALIDATION_ZONE: (LOOPBACK, dns_port)}, workdir=root / "named"
        ) as resolver,
    ):
        (root / "pebble").mkdir()
        pebble = Pebble(root / "pebble", resolver.address, validity=validity).start()
        anchor = AnchorProcess(
            root / "data",
            extra_env={
                "ANCHOR_ISSUER": "acme",
                "ANCHOR_ACME_DIRECTORY": pebble.directory_url,
                "ANCHOR_ACME_CA_BUNDLE": pebble.ca_bundle,
                "ANCHOR_ACME_EMAIL": f"ops@{zone}",
                "ANCHOR_DNS_ADDR": f"{LOOPBACK}:{dns_port}",
                "ANCHOR_DNS_RESOLVERS": resolver.address,
                "ANCHOR_VALIDATION_ZONE": VALIDATION_ZONE,
                "ANCHOR_EDGE_HOSTNAME": "edge.anchor.test",
                "ANCHOR_DOMAIN_CHECK_MIN": "0.2",
                "ANCHOR_DOMAIN_CHECK_MAX": "1",
            },
            edge_server=edge_server,
        )
        try:
            anchor.start()
            yield anchor, user_dns, pebble
        finally:
            anchor.stop()
            pebble.stop()
