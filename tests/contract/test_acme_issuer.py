"""The ACME issuer against a real ACME server (Pebble) whose dns-01 checks ask a real DNS server
(pebble-challtestsrv): issuance, account reuse, wildcards, refusals in words, revocation."""

from __future__ import annotations

import datetime
import stat
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from anchor_deploy.adapters.acme_issuer import AcmeIssuer
from anchor_deploy.adapters.local.internal_ca import InternalCA
from anchor_deploy.model.errors import IssuanceFailed
from anchor_deploy.ports.domains import Certificate
from tests.pebble_support import ChallTestServer, Pebble, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


class ChallTestZone:
    """A test-only ValidationZone over challtestsrv. challtestsrv answers exactly what it was given and
    Pebble does not chase CNAMEs, so instead of answering at ``validation_fqdn`` (where the users'
    ``_acme-challenge`` CNAMEs point) it publishes the values at ``_acme-challenge.<name>.`` of every name
    delegated to that fqdn, which is what a resolver following the CNAME would end up reading."""

    def __init__(self, server: ChallTestServer, zone: str = "validation.anchor.test") -> None:
        self.server = server
        self.zone = zone
        self.delegations: dict[str, list[str]] = {}  # validation fqdn -> names whose CNAME points at it
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []
        self.garbage = False  # publish wrong values (as if the CNAME pointed somewhere stale)
        self._published: dict[str, tuple[str, ...]] = {}

    def delegate(self, names: Sequence[str]) -> str:
        fqdn = f"{uuid.uuid4().hex[:12]}.{self.zone}"
        self.delegations[fqdn] = list(names)
        return fqdn

    def _hosts(self, fqdn: str) -> set[str]:
        return {f"_acme-challenge.{name.removeprefix('*.')}." for name in self.delegations[fqdn]}

    def publish(self, fqdn: str, values: Sequence[str]) -> None:
        self.calls.append(("publish", fqdn, tuple(values)))
        served = [f"garbage-{i}" for i in range(len(values))] if self.garbage else list(values)
        for host in self._hosts(fqdn):
            self.server.clear_txt(host)
            for value in served:
                self.server.set_txt(host, value)
        self._published[fqdn] = tuple(values)

    def withdraw(self, fqdn: str) -> None:
        self.calls.append(("withdraw", fqdn, ()))
        for host in self._hosts(fqdn):
            self.server.clear_txt(host)
        self._published.pop(fqdn, None)

    def published(self) -> Mapping[str, tuple[str, ...]]:
        return dict(self._published)


@pytest.fixture(scope="module")
def challtestsrv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChallTestServer]:
    with ChallTestServer(tmp_path_factory.mktemp("challtestsrv")) as server:
        yield server


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, challtestsrv: ChallTestServer) -> Iterator[Pebble]:
    with Pebble(tmp_path_factory.mktemp("pebble"), challtestsrv.dns_server) as server:
        yield server


@pytest.fixture
def zone(challtestsrv: ChallTestServer) -> ChallTestZone:
    return ChallTestZone(challtestsrv)


def make_issuer(pebble: Pebble, zone: ChallTestZone, account_dir: Path) -> AcmeIssuer:
    return AcmeIssuer(
        pebble.directory_url,
        account_dir,
        zone,
        email="ops@example.com",
        ca_bundle=pebble.ca_bundle,
        timeout=20.0,
        poll_interval=0.1,
    )


def issue(issuer: AcmeIssuer, zone: ChallTestZone, names: list[str]) -> Certificate:
    return issuer.issue(names, zone.delegate(names))


def assert_verifies(
    pebble: Pebble, cert: Certificate, names: list[str], hosts: list[str] | None = None
) -> x509.Certificate:
    """The chain holds, against Pebble's issuance root, for ``hosts`` (default: the names) and not for
    another host; the certificate carries exactly ``names``; the metadata matches the leaf."""
    leaf, *intermediates = x509.load_pem_x509_certificates(cert.chain_pem)
    assert intermediates, "the full chain includes the intermediate"
    store = Store(x509.load_pem_x509_certificates(pebble.issuance_roots()))
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)

    def verify(host: str) -> None:
        verifier = PolicyBuilder().store(store).time(moment).build_server_verifier(x509.DNSName(host))
        verifier.verify(leaf, intermediates)

    for host in hosts or names:
        verify(host)
    with pytest.raises(VerificationError):
        verify("other.example.org")
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    assert cert.serial == format(leaf.serial_number, "x")
    assert cert.not_before == leaf.not_valid_before_utc and cert.not_before.tzinfo is not None
    assert cert.not_after == leaf.not_valid_after_utc and cert.not_after > moment
    assert cert.issuer == leaf.issuer.rfc4514_string() and "Pebble Intermediate" in cert.issuer
    assert leaf.public_key() == x509.load_pem_x509_certificate(cert.chain_pem).public_key()
    assert b"BEGIN PRIVATE KEY" in cert.key_pem  # PKCS8
    return leaf


def test_issues_a_chain_that_verifies_and_withdraws_the_record(
    pebble: Pebble, zone: ChallTestZone, tmp_path: Path
) -> None:
    issuer = make_issuer(pebble, zone, tmp_path / "acme")
    fqdn = zone.delegate(["shop.example.com"])
    cert = issuer.issue(["shop.example.com"], fqdn)
    assert_verifies(pebble, cert, ["shop.example.com"])
    # One TXT value published at the validation name, then withdrawn.
    assert [(op, name, len(values)) for op, name, values in zone.calls] == [
        ("publish", fqdn, 1),
        ("withdraw", fqdn, 0),
    ]
    assert zone.published() == {}


def test_account_key_is_private_and_the_account_is_reused(
    pebble: Pebble, zone: ChallTestZone, tmp_path: Path
) -> None:
    account_dir = tmp_path / "acme"
    first = make_issuer(pebble, zone, account_dir)
    assert stat.S_IMODE((account_dir / "account.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(account_dir.stat().st_mode) == 0o700
    assert first.account_url() is None  # registered lazily, on the first issue
    issue(first, zone, ["a.example.com"])
    url = first.account_url()
    assert url is not None and url.startswith(pebble.directory_url.removesuffix("/dir"))
    stored, key = (account_dir / "account.json").read_bytes(), (account_dir / "account.key").read_bytes()
    assert stat.S_IMODE((account_dir / "account.json").stat().st_mode) == 0o600

    second = make_issuer(pebble, zone, account_dir)
    cert = issue(second, zone, ["b.example.com"])
    assert_verifies(pebble, cert, ["b.example.com"])
    assert second.account_url() == url  # the same account, not a new one
    assert (account_dir / "account.json").read_bytes() == stored
    assert (account_dir / "account.key").read_bytes() == key


def test_an_account_the_ca_forgot_is_registered_again(
    challtestsrv: ChallTestServer, zone: ChallTestZone, tmp_path: Path
) -> None:
    """Pebble keeps accounts in memory: after a restart the stored account URL is unknown to it."""
    with Pebble(tmp_path / "pebble", challtestsrv.dns_server) as ca:
        running = make_issuer(ca, zone, tmp_path / "acme")
        issue(running, zone, ["before.example.com"])
        url = running.account_url()
        ca.stop()
        ca.start()
        # A new process (the stored URL is checked first) registers again and stores the new URL.
        restarted = make_issuer(ca, zone, tmp_path / "acme")
        assert_verifies(ca, issue(restarted, zone, ["after.example.com"]), ["after.example.com"])
        assert restarted.account_url() not in (None, url)
        # The instance that was running fails once, readably, then sets its account up again.
        with pytest.raises(
            IssuanceFailed, match=r"^the CA refused to issue .*again\.example\.com: Account .* not found$"
        ):
            issue(running, zone, ["again.example.com"])
        assert_verifies(ca, issue(running, zone, ["again.example.com"]), ["again.example.com"])


def test_wildcard_and_apex_share_one_validation_name(
    pebble: Pebble, zone: ChallTestZone, tmp_path: Path
) -> None:
    names = ["*.wild.example.com", "wild.example.com"]
    cert = issue(make_issuer(pebble, zone, tmp_path / "acme"), zone, names)
    assert_verifies(pebble, cert, names, hosts=["wild.example.com", "a.wild.example.com"])
    # Both values went out together, as one TXT set.
    publishes = [values for op, _, values in zone.calls if op == "publish"]
    assert len(publishes) == 1 and len(set(publishes[0])) == 2


def test_wrong_txt_fails_with_the_domain_and_the_ca_reason(
    pebble: Pebble, zone: ChallTestZone, tmp_path: Path
) -> None:
    zone.garbage = True
    issuer = make_issuer(pebble, zone, tmp_path / "acme")
    fqdn = zone.delegate(["bad.example.com"])
    started = time.monotonic()
    with pytest.raises(IssuanceFailed) as failed:
        issuer.issue(["bad.example.com"], fqdn)
    assert time.monotonic() - started < 10
    message = failed.value.message
    assert message.startswith("the CA could not validate bad.example.com: "), message
    assert "Correct value not found for DNS challenge" in message, message  # Pebble's own words
    assert f"_acme-challenge.bad.example.com is a CNAME to {fqdn}" in message
    assert "Traceback" not in message and "\n" not in message
    assert zone.calls[-1] == ("withdraw", fqdn, ())
    assert zone.published() == {}


def test_revoke_and_revoke_again(pebble: Pebble, zone: ChallTestZone, tmp_path: Path) -> None:
    issuer = make_issuer(pebble, zone, tmp_path / "acme")
    cert = issue(issuer, zone, ["gone.example.com"])
    assert pebble.cert_status(cert.serial) == "Valid"
    issuer.revoke(cert.chain_pem)
    assert pebble.cert_status(cert.serial) == "Revoked"
    issuer.revoke(cert.chain_pem)  # alreadyRevoked counts as done
    # A fresh instance (same account) agrees.
    make_issuer(pebble, zone, tmp_path / "acme").revoke(cert.chain_pem)


def test_deadline_bounds_the_whole_issuance(pebble: Pebble, zone: ChallTestZone, tmp_path: Path) -> None:
    ticks = iter([0.0])
    issuer = AcmeIssuer(
        pebble.directory_url,
        tmp_path / "acme",
        zone,
        ca_bundle=pebble.ca_bundle,
        timeout=20.0,
        clock=lambda: next(ticks, 1000.0),  # the deadline has passed by the second look at the clock
    )
    fqdn = zone.delegate(["slow.example.com"])
    with pytest.raises(
        IssuanceFailed,
        match=r"^the CA did not (finish validating|issue a certificate for) slow\.example\.com within 20 s$",
    ):
        issuer.issue(["slow.example.com"], fqdn)
    assert zone.calls[-1] == ("withdraw", fqdn, ())


def test_unreachable_directory_fails_fast_and_readably(zone: ChallTestZone, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{free_port()}/dir"  # nobody listens there
    issuer = AcmeIssuer(url, tmp_path / "acme", zone, timeout=5.0)
    fqdn = zone.delegate(["x.example.com"])
    started = time.monotonic()
    with pytest.raises(IssuanceFailed) as failed:
        issuer.issue(["x.example.com"], fqdn)
    assert time.monotonic() - started < 5
    assert failed.value.message == f"could not reach the certificate authority at {url}: connection refused"
    assert zone.calls == [("withdraw", fqdn, ())]
    other = InternalCA(tmp_path / "ca").issue(["x.example.com"], datetime.timedelta(days=1))
    with pytest.raises(
        IssuanceFailed, match=r"^could not reach the certificate authority at .*: connection refused$"
    ):
        issuer.revoke(other.chain_pem)
    with pytest.raises(IssuanceFailed, match="not a PEM certificate"):
        issuer.revoke(b"garbage")


def test_untrusted_ca_certificate_is_named(pebble: Pebble, zone: ChallTestZone, tmp_path: Path) -> None:
    issuer = AcmeIssuer(pebble.directory_url, tmp_path / "acme", zone, timeout=5.0)  # no ca_bundle
    with pytest.raises(IssuanceFailed) as failed:
        issue(issuer, zone, ["x.example.com"])
    assert "its TLS certificate is not trusted" in failed.value.message, failed.value.message
