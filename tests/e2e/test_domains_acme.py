"""Custom domains end to end with ANCHOR_ISSUER=acme against pebble: the user's zone on knot, the platform's
own DNS server for the validation zone, BIND as the recursive resolver that both the platform and pebble ask
(it returns the delegated CNAME and the TXT at its target together, which pebble needs)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.e2e.acme_stack import VALIDATION_ZONE, acme_stack
from tests.e2e.dns_support import UserDns
from tests.e2e.harness import LOOPBACK, AnchorProcess, ensure_project, upload_and_deploy
from tests.e2e.test_domains import Handshakes, active, add_records, curl, wait_domain
from tests.pebble_support import Pebble

pytestmark = pytest.mark.e2e

ZONE = "acme-example.test"


@pytest.fixture
def stack(
    tmp_path: Path, request: pytest.FixtureRequest, edge_server: str
) -> Iterator[tuple[AnchorProcess, UserDns, Pebble]]:
    validity = getattr(request, "param", None)
    with acme_stack(tmp_path, ZONE, validity=validity, edge_server=edge_server) as started:
        yield started


@pytest.mark.edges
def test_acme_domain_is_issued_by_pebble_served_verified_and_revoked_on_removal(
    stack: tuple[AnchorProcess, UserDns, Pebble], tmp_path: Path
) -> None:
    anchor, user_dns, pebble = stack
    name = f"shop.{ZONE}"
    roots = tmp_path / "pebble-roots.pem"
    with anchor.api() as api:
        ensure_project(api, "shop")
        first = upload_and_deploy(api, "shop", {"index.html": b"acme shop v1"})
        upload_and_deploy(api, "shop", {"index.html": b"acme shop"})
        domain = api.post("/v1/projects/shop/domains", json={"name": name}).json()
        validation = domain["dnsRecords"][0]
        assert validation["name"] == f"_acme-challenge.{name}"
        assert validation["value"].endswith("." + VALIDATION_ZONE)
        add_records(user_dns, domain)
        live = wait_domain(api, "shop", name, active, timeout=60)
        assert "Pebble" in live["certificate"]["issuer"]

        # The served chain verifies against pebble's issuance root (fetched after issuance: it is made
        # anew at every pebble start).
        roots.write_bytes(pebble.issuance_roots())
        served = curl(anchor, name, root=roots)
        assert served.returncode == 0, served.stderr
        assert served.stdout == "acme shop"
        assert api.post("/v1/projects/shop/rollback", json={"deploymentId": first["id"]}).status_code == 200
        assert curl(anchor, name, root=roots).stdout == "acme shop v1"

        # The dns-01 TXT lived only during the issuance: the validation zone holds nothing now.
        query = dns.message.make_query(validation["value"], "TXT")
        answer = dns.query.udp(query, LOOPBACK, port=int(anchor.extra_env["ANCHOR_DNS_ADDR"].split(":")[1]))
        assert answer.rcode() == dns.rcode.NXDOMAIN

        serial = live["certificate"]["serial"]
        assert pebble.cert_status(serial) == "Valid"
        assert api.delete(f"/v1/projects/shop/domains/{name}").status_code == 200
        assert pebble.cert_status(serial) == "Revoked"
        assert curl(anchor, name, root=roots).returncode != 0  # no certificate for the name any more
        assert (anchor.data_dir / "acme" / "account.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("stack", [15], indirect=True)  # pebble issues 15-second certificates
def test_acme_certificate_is_renewed_through_the_same_cname_without_a_failed_handshake(
    stack: tuple[AnchorProcess, UserDns, Pebble], tmp_path: Path
) -> None:
    anchor, user_dns, pebble = stack
    name = f"renew.{ZONE}"
    roots = tmp_path / "pebble-roots.pem"

    with anchor.api() as api:
        ensure_project(api, "renew")
        upload_and_deploy(api, "renew", {"index.html": b"renewing"})
        add_records(user_dns, api.post("/v1/projects/renew/domains", json={"name": name}).json())
        first = wait_domain(api, "renew", name, active, timeout=60)["certificate"]
        roots.write_bytes(pebble.issuance_roots())
        with Handshakes(anchor, name, "renewing", roots) as handshakes:
            renewed = wait_domain(
                api, "renew", name, lambda d: active(d) and d["certificate"]["serial"] != first["serial"], 60
            )
        assert renewed["certificate"]["notAfter"] > first["notAfter"]
    assert handshakes.failures == []


def test_a_busy_dns_address_is_one_readable_line_at_start(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind((LOOPBACK, 0))
    try:
        port = busy.getsockname()[1]
        anchor = AnchorProcess(
            tmp_path / "data",
            extra_env={"ANCHOR_ISSUER": "acme", "ANCHOR_DNS_ADDR": f"{LOOPBACK}:{port}"},
        )
        with pytest.raises(RuntimeError) as failed:
            anchor.start()
        assert anchor.proc is not None and anchor.proc.wait(timeout=30) == 1
        log = str(failed.value)
        assert f"error: the validation zone's DNS server cannot listen on {LOOPBACK}:{port}" in log
        assert "Traceback" not in log
    finally:
        busy.close()
