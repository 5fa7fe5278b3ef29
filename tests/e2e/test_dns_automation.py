"""DNS automation end to end on the local provider with ANCHOR_ISSUER=acme: the user's zone on knot, which
takes only RFC 2136 updates signed with the user's TSIG key; pebble as the CA; BIND as the resolver the
platform and pebble ask. The zone is linked with `anchor dns link`, a domain is added, and with no step of
the user's the platform writes its validation and routing CNAMEs into knot, gets it issued and serves it;
removing it deletes them."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.acme_stack import acme_stack
from tests.e2e.dns_support import UserDns, query, wait_for
from tests.e2e.harness import AnchorProcess, ensure_project, upload_and_deploy
from tests.e2e.test_domains import active, curl, wait_domain
from tests.pebble_support import Pebble

pytestmark = pytest.mark.e2e

ZONE = "linked-example.test"
KEY = ("anchor-update", "hmac-sha256", base64.b64encode(b"0123456789abcdef0123456789abcdef").decode())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[AnchorProcess, UserDns, Pebble]]:
    with acme_stack(tmp_path, ZONE, tsig=KEY) as started:
        yield started


def cname(user_dns: UserDns, name: str) -> list[str]:
    return [value.rstrip(".") for value in query(user_dns.address, name, "CNAME", tcp=True).values("CNAME")]


def test_a_linked_zone_gets_the_records_written_issued_and_cleaned_up_with_no_user_step(
    stack: tuple[AnchorProcess, UserDns, Pebble], tmp_path: Path
) -> None:
    anchor, user_dns, pebble = stack
    name = f"shop.{ZONE}"
    key_file = tmp_path / "anchor.key"
    key_file.write_text(f'key "{KEY[0]}" {{\n\talgorithm {KEY[1]};\n\tsecret "{KEY[2]}";\n}};\n')
    with anchor.api() as api:
        ensure_project(api, "shop")
        upload_and_deploy(api, "shop", {"index.html": b"linked shop"})
        linked = anchor.cli("dns", "link", ZONE, "--project", "shop", "--rfc2136", user_dns.address,
                            "--tsig-key-file", str(key_file), "--json")  # fmt: skip
        assert '"keyName": "anchor-update"' in linked.stdout and KEY[2] not in linked.stdout
        listed = anchor.cli("dns", "links", "--project", "shop")
        assert ZONE in listed.stdout and KEY[2] not in listed.stdout

        domain = api.post("/v1/projects/shop/domains", json={"name": name}).json()
        records = {(r["type"], r["name"]): r["value"] for r in domain["dnsRecords"]}
        validation = records[("CNAME", f"_acme-challenge.{name}")]
        assert records[("CNAME", name)] == "edge.anchor.test"
        # No add_records: the platform writes them into knot itself, signed with the linked key.
        wait_for(user_dns.address, f"_acme-challenge.{name}", "CNAME", lambda a: bool(a.values("CNAME")), 30)
        assert cname(user_dns, f"_acme-challenge.{name}") == [validation]
        assert cname(user_dns, name) == ["edge.anchor.test"]

        live = wait_domain(api, "shop", name, active, timeout=90)
        assert "Pebble" in live["certificate"]["issuer"]
        roots = tmp_path / "pebble-roots.pem"
        roots.write_bytes(pebble.issuance_roots())
        served = curl(anchor, name, root=roots)
        assert served.returncode == 0 and served.stdout == "linked shop", served.stderr

        assert api.delete(f"/v1/projects/shop/domains/{name}").status_code == 200
        wait_for(user_dns.address, name, "CNAME", lambda a: not a.values("CNAME"), 30)
        assert cname(user_dns, f"_acme-challenge.{name}") == []

        unlinked = anchor.cli("dns", "unlink", ZONE, "--project", "shop")
        assert "unlinked" in unlinked.stdout
        assert anchor.cli("dns", "links", "--project", "shop", "--json").stdout.count(ZONE) == 0
