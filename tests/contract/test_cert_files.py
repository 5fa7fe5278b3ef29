"""CertificateFiles and CertificateEndpoint on a real folder and real loopback HTTP, and SymlinkDomainEdge on
real directories."""

from __future__ import annotations

import datetime
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from anchor_deploy.adapters.local import cert_files
from anchor_deploy.adapters.local.caddy_edge import SymlinkDomainEdge
from anchor_deploy.adapters.local.cert_files import CertificateEndpoint, CertificateFiles
from anchor_deploy.adapters.local.internal_ca import InternalCA, InternalIssuer
from anchor_deploy.adapters.local.tls_probe import EdgeTlsProbe
from anchor_deploy.model.errors import EdgeError
from anchor_deploy.ports.domains import Certificate
from tests.ports import free_port

INVALID_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "a/../../x",
    "/etc/passwd",
    "*.",
    "*.*.example.com",
    "A.example",
]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> InternalIssuer:
    ca = InternalCA(tmp_path_factory.mktemp("ca"))
    return InternalIssuer(ca, datetime.timedelta(days=30))


@pytest.fixture
def files(tmp_path: Path) -> CertificateFiles:
    return CertificateFiles(tmp_path / "certs")


def issue(issuer: InternalIssuer, name: str) -> Certificate:
    return issuer.issue([name], "unused.acme-validation.anchor.test")


def bundle_of(certificate: Certificate) -> bytes:
    return certificate.chain_pem.rstrip(b"\n") + b"\n" + certificate.key_pem


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- CertificateFiles ------------------------------------------------------------------------------
def test_put_writes_one_private_bundle_per_name(files: CertificateFiles, issuer: InternalIssuer) -> None:
    certificate = issue(issuer, "www.example.com")
    files.put("www.example.com", certificate)
    path = files.folder / "www.example.com.pem"
    assert path.read_bytes() == bundle_of(certificate)
    assert mode(path) == 0o600 and mode(files.folder) == 0o700
    assert files.names() == ["www.example.com"]
    assert files.serial("www.example.com") == certificate.serial
    leaf = x509.load_pem_x509_certificate(path.read_bytes())
    assert format(leaf.serial_number, "x") == certificate.serial


def test_the_folder_is_made_private_even_if_it_existed(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    CertificateFiles(folder)
    assert mode(folder) == 0o700


def test_put_replaces_whole_and_leaves_no_temporary_file(
    files: CertificateFiles, issuer: InternalIssuer
) -> None:
    old, new = issue(issuer, "www.example.com"), issue(issuer, "www.example.com")
    files.put("www.example.com", old)
    files.put("www.example.com", new)
    assert files.serial("www.example.com") == new.serial != old.serial
    assert files.bundle("www.example.com") == bundle_of(new)
    assert sorted(p.name for p in files.folder.iterdir()) == ["www.example.com.pem"]
    assert mode(files.folder / "www.example.com.pem") == 0o600


def test_remove_is_idempotent(files: CertificateFiles, issuer: InternalIssuer) -> None:
    files.put("www.example.com", issue(issuer, "www.example.com"))
    files.remove("www.example.com")
    files.remove("www.example.com")
    assert files.names() == [] and files.serial("www.example.com") is None
    assert files.bundle("www.example.com") is None


def test_names_maps_wildcards_back_and_cleans_leftovers(
    files: CertificateFiles, issuer: InternalIssuer
) -> None:
    files.put("*.example.com", issue(issuer, "*.example.com"))
    files.put("example.com", issue(issuer, "example.com"))
    (files.folder / ".tmp-abc123").write_bytes(b"half a bundle")  # a crash between write and rename
    (files.folder / "README").write_text("not a bundle")
    assert (files.folder / "_.example.com.pem").is_file()
    assert files.names() == ["*.example.com", "example.com"]
    assert not (files.folder / ".tmp-abc123").exists()


def test_serial_of_a_broken_file_is_none(files: CertificateFiles) -> None:
    (files.folder / "www.example.com.pem").write_bytes(b"not a certificate")
    assert files.serial("www.example.com") is None
    assert files.serial("missing.example.com") is None


def test_bundle_is_the_exact_name_then_the_wildcard_one_level_up(
    files: CertificateFiles, issuer: InternalIssuer
) -> None:
    wildcard, exact = issue(issuer, "*.example.com"), issue(issuer, "www.example.com")
    files.put("*.example.com", wildcard)
    assert files.bundle("shop.example.com") == bundle_of(wildcard)
    assert files.bundle("www.example.com") == bundle_of(wildcard)
    files.put("www.example.com", exact)
    assert files.bundle("www.example.com") == bundle_of(exact)
    assert files.bundle("WWW.Example.COM.") == bundle_of(exact)
    assert files.bundle("shop.example.com") == bundle_of(wildcard)
    assert files.bundle("a.b.example.com") is None  # a wildcard covers one label only
    assert files.bundle("example.com") is None
    assert files.bundle("other.example.net") is None


@pytest.mark.parametrize("server_name", ["", "../example.com", "a/b.example.com", "*.example.com", "x y.com"])
def test_bundle_of_a_malformed_server_name_is_none(
    files: CertificateFiles, issuer: InternalIssuer, server_name: str
) -> None:
    files.put("*.example.com", issue(issuer, "*.example.com"))
    assert files.bundle(server_name) is None


@pytest.mark.parametrize("name", ["", "../x", "a/b", "../../etc/passwd", "/abs", ".hidden", "x/../y", "*./x"])
def test_path_like_names_are_refused(files: CertificateFiles, issuer: InternalIssuer, name: str) -> None:
    certificate = issue(issuer, "www.example.com")
    with pytest.raises(ValueError, match="not a certificate name"):
        files.put(name, certificate)
    with pytest.raises(ValueError, match="not a certificate name"):
        files.remove(name)
    assert list(files.folder.iterdir()) == []
    assert sorted(p.name for p in files.folder.parent.iterdir()) == ["certs"]


def test_a_name_with_a_trailing_newline_is_refused(files: CertificateFiles, issuer: InternalIssuer) -> None:
    with pytest.raises(ValueError):
        files.put("www.example.com\n", issue(issuer, "www.example.com"))


# -- CertificateEndpoint ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def quick_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve_forever notices shutdown() once per poll interval (0.5 s by default): poll faster in tests."""

    def serve_forever(server: socketserver.BaseServer, poll_interval: float = 0.02) -> None:
        socketserver.BaseServer.serve_forever(server, poll_interval)

    monkeypatch.setattr(cert_files._Server, "serve_forever", serve_forever)


@pytest.fixture
def endpoint(files: CertificateFiles) -> Iterator[CertificateEndpoint]:
    served = CertificateEndpoint(files)
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=5.0) as http:  # loopback only: never a proxy
        yield http


def test_endpoint_serves_the_bundle_on_its_secret_path(
    endpoint: CertificateEndpoint, files: CertificateFiles, issuer: InternalIssuer, client: httpx.Client
) -> None:
    assert endpoint.url.startswith("http://127.0.0.1:") and endpoint.url.endswith("/certificate")
    wildcard = issue(issuer, "*.example.com")
    files.put("*.example.com", wildcard)
    answer = client.get(endpoint.url, params={"server_name": "shop.example.com"})
    assert answer.status_code == 200 and answer.content == bundle_of(wildcard)
    assert answer.headers["content-type"] == "application/x-pem-file"
    assert client.get(endpoint.url, params={"server_name": "a.b.example.com"}).status_code == 404
    assert client.get(endpoint.url, params={"server_name": "unknown.example.net"}).status_code == 404
    assert client.get(endpoint.url).status_code == 404
    assert endpoint.handshakes == 4


def test_endpoint_hides_behind_its_secret(
    endpoint: CertificateEndpoint, files: CertificateFiles, issuer: InternalIssuer, client: httpx.Client
) -> None:
    files.put("www.example.com", issue(issuer, "www.example.com"))
    secret = endpoint.url.split("/")[3]
    assert len(secret) >= 24
    params = {"server_name": "www.example.com"}
    other = "y" if secret.endswith("x") else "x"  # one character off, whatever the secret ends with
    for path in (f"/{secret[:-1]}{other}/certificate", "/certificate", f"/{secret}/certificat", f"/{secret}"):
        wrong = endpoint.url.replace(f"/{secret}/certificate", path)
        assert client.get(wrong, params=params).status_code == 404, path
    assert endpoint.handshakes == 0
    assert client.get(endpoint.url, params=params).status_code == 200


def test_endpoint_secrets_differ_between_instances(files: CertificateFiles) -> None:
    first, second = CertificateEndpoint(files), CertificateEndpoint(files)
    for served in (first, second):
        served.start()
    try:
        assert first.url.split("/")[3] != second.url.split("/")[3]
        assert first.url != second.url
    finally:
        for served in (first, second):
            served.stop()


def test_endpoint_stop_without_start_returns(files: CertificateFiles) -> None:
    served = CertificateEndpoint(files)
    stopper = threading.Thread(target=served.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=0.3)
    hung = stopper.is_alive()
    if hung:
        served.start()  # serve_forever sees the pending shutdown at once and releases the stuck stop()
        stopper.join(timeout=5.0)
    assert not hung, "stop() hung: shutdown() waits for a serve_forever that never ran"


def test_endpoint_sets_tcp_nodelay_on_accepted_connections(
    files: CertificateFiles, issuer: InternalIssuer, monkeypatch: pytest.MonkeyPatch, client: httpx.Client
) -> None:
    seen: list[int] = []
    accept = cert_files._Server.get_request

    def spying(server: cert_files._Server) -> tuple[socket.socket, object]:
        conn, addr = accept(server)
        seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return conn, addr

    monkeypatch.setattr(cert_files._Server, "get_request", spying)
    files.put("www.example.com", issue(issuer, "www.example.com"))
    served = CertificateEndpoint(files)
    served.start()
    try:
        answer = client.get(served.url, params={"server_name": "www.example.com"})
        assert answer.status_code == 200
    finally:
        served.stop()
    assert seen and all(seen)


def test_endpoint_stops_listening(files: CertificateFiles, client: httpx.Client) -> None:
    served = CertificateEndpoint(files)
    served.start()
    url = served.url
    assert client.get(url, params={"server_name": "x.example.com"}).status_code == 404
    served.stop()
    with httpx.Client(trust_env=False, timeout=5.0) as fresh, pytest.raises(httpx.ConnectError):
        fresh.get(url, params={"server_name": "x.example.com"})  # a new connection: nobody listens


# -- SymlinkDomainEdge -----------------------------------------------------------------------------
@pytest.fixture
def domain_edge(tmp_path: Path) -> SymlinkDomainEdge:
    return SymlinkDomainEdge(tmp_path / "edge" / "c", tmp_path / "edge" / "a")


def serve_production(tmp_path: Path, host: str, deployment: str) -> Path:
    """What SymlinkEdge keeps: edge/a/<host> -> ../../deployments/<id>, with a page in it."""
    site = tmp_path / "deployments" / deployment
    site.mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text(f"<h1>{deployment}</h1>")
    alias = tmp_path / "edge" / "a" / host
    alias.parent.mkdir(parents=True, exist_ok=True)
    tmp = alias.with_name(".new")
    tmp.symlink_to(os.path.relpath(site, alias.parent))
    os.replace(tmp, alias)
    return site


def test_attach_links_the_name_through_the_production_host(
    tmp_path: Path, domain_edge: SymlinkDomainEdge
) -> None:
    first = serve_production(tmp_path, "site.anchor.test", "dpl_aaaaaaaaaaaa")
    domain_edge.attach("www.example.com", "site.anchor.test")
    link = tmp_path / "edge" / "c" / "www.example.com"
    assert link.is_symlink() and os.readlink(link) == "../a/site.anchor.test"
    assert domain_edge.attached() == {"www.example.com": "site.anchor.test"}
    assert link.resolve() == first.resolve()
    assert (link / "index.html").read_text() == "<h1>dpl_aaaaaaaaaaaa</h1>"
    second = serve_production(tmp_path, "site.anchor.test", "dpl_bbbbbbbbbbbb")  # a deploy or rollback
    assert link.resolve() == second.resolve()  # followed without touching the custom link
    assert (link / "index.html").read_text() == "<h1>dpl_bbbbbbbbbbbb</h1>"


def test_wildcards_are_linked_as_underscore_dot(tmp_path: Path, domain_edge: SymlinkDomainEdge) -> None:
    domain_edge.attach("*.example.com", "site.anchor.test")
    assert os.readlink(tmp_path / "edge" / "c" / "_.example.com") == "../a/site.anchor.test"
    assert domain_edge.attached() == {"*.example.com": "site.anchor.test"}
    domain_edge.detach("*.example.com")
    assert domain_edge.attached() == {} and list((tmp_path / "edge" / "c").iterdir()) == []


def test_attach_is_idempotent_and_moves_to_another_host(
    tmp_path: Path, domain_edge: SymlinkDomainEdge
) -> None:
    domain_edge.attach("www.example.com", "site.anchor.test")
    link = tmp_path / "edge" / "c" / "www.example.com"
    inode = os.lstat(link).st_ino
    domain_edge.attach("www.example.com", "site.anchor.test")
    assert os.lstat(link).st_ino == inode  # not rewritten
    domain_edge.attach("www.example.com", "other.anchor.test")
    assert domain_edge.attached() == {"www.example.com": "other.anchor.test"}
    assert sorted(p.name for p in link.parent.iterdir()) == ["www.example.com"]


def test_detach_is_idempotent(domain_edge: SymlinkDomainEdge) -> None:
    domain_edge.attach("www.example.com", "site.anchor.test")
    domain_edge.attach("shop.example.com", "site.anchor.test")
    domain_edge.detach("www.example.com")
    domain_edge.detach("www.example.com")
    domain_edge.detach("never.example.com")
    assert domain_edge.attached() == {"shop.example.com": "site.anchor.test"}


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_raise_edge_error(tmp_path: Path, domain_edge: SymlinkDomainEdge, name: str) -> None:
    with pytest.raises(EdgeError):
        domain_edge.attach(name, "site.anchor.test")
    with pytest.raises(EdgeError):
        domain_edge.detach(name)
    with pytest.raises(EdgeError):
        domain_edge.attach("www.example.com", name)
    assert domain_edge.attached() == {}
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["edge", "edge/c"]


def test_attached_cleans_temporary_and_foreign_entries(
    tmp_path: Path, domain_edge: SymlinkDomainEdge
) -> None:
    domain_edge.attach("www.example.com", "site.anchor.test")
    root = tmp_path / "edge" / "c"
    (root / ".tmp-abc").symlink_to("../a/site.anchor.test")
    (root / "stray.example.com").write_text("a file, not a link")
    assert domain_edge.attached() == {"www.example.com": "site.anchor.test"}
    assert sorted(p.name for p in root.iterdir()) == ["www.example.com"]


def test_a_disk_that_refuses_is_an_edge_error_not_an_os_error(
    files: CertificateFiles, issuer: InternalIssuer, tmp_path: Path
) -> None:
    """ServedCertificates fails with the platform's EdgeError (the domain service records it and retries)."""
    certificate = issuer.issue(["www.example.test"], "v.example.test")
    files.folder.rename(tmp_path / "moved-away")  # every write into the folder now fails with ENOENT
    with pytest.raises(EdgeError, match=r"could not install the certificate of www\.example\.test"):
        files.put("www.example.test", certificate)


def test_a_probe_of_an_edge_that_does_not_answer_is_an_edge_error() -> None:
    probe = EdgeTlsProbe(("127.0.0.1", free_port()), timeout=2.0)
    with pytest.raises(EdgeError, match=r"could not reach the edge at 127\.0\.0\.1"):
        probe.served_serial("www.example.test")
