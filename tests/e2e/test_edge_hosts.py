"""Host-header abuse at the real Caddy edge, over raw sockets (no client library normalizes anything).

The edge maps a request's host straight into a path (edge/a/<host>, edge/d/<host>), so a host that is not a
strict lowercase hostname must never reach the file system. Sentinel files containing LEAK are planted
where such a host would land, beside and above the edge's trees: the edge must never serve them, never
answer 5xx, answer unknown or invalid hosts with its own 404, and serve a valid host only its own files.

A host in capitals or with one trailing dot is the same name (DNS is case-insensitive, "name." is the
fully qualified form): it is served exactly as the lowercase host, 200 and the same content, on the HTTP
edge (alias and immutable hosts) and on the HTTPS edge (custom domains, where the Host must still name the
connection's TLS name).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from anchor_deploy.adapters.local.edge_rules import EDGE_404_BODY, FILE_404_BODY, MISDIRECTED_BODY
from tests.e2e.dns_support import Resolver, UserDns
from tests.e2e.harness import LOOPBACK, AnchorProcess, ensure_project, upload_and_deploy

pytestmark = pytest.mark.edges  # every test here runs on Caddy and on nginx

TIMEOUT = 5.0
SITE_INDEX = b"SITE-A"
SITE_SECRET = b"SITE-SECRET-MARKER-7f3a"
OTHER_INDEX = b"OTHER-B"
LEAK = b"LEAK"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes


def raw_request(port: int, request: bytes, tls: tuple[str, Path] | None = None) -> Reply:
    """Send bytes as they are; read until the server closes (every request says Connection: close or is
    HTTP/1.0), within a deadline. ``tls``: (SNI, CA root) to speak HTTPS, verifying the certificate."""
    deadline = time.monotonic() + TIMEOUT
    chunks: list[bytes] = []
    with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as plain:
        sock = plain
        if tls is not None:
            sni, root = tls
            sock = ssl.create_default_context(cafile=str(root)).wrap_socket(plain, server_hostname=sni)
        sock.sendall(request)
        while True:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no complete answer within {TIMEOUT}s to {request[:80]!r}") from None
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"not an HTTP response: {raw[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, body, raw)


def get(
    port: int,
    host: str | None,
    target: str = "/",
    version: str = "HTTP/1.1",
    tls: tuple[str, Path] | None = None,
) -> Reply:
    lines = [f"GET {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    if version == "HTTP/1.1":
        lines.append("Connection: close")
    return raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), tls)


def spellings(host: str, port: int | None = None) -> list[str]:
    """The other ways to write ``host``: capitals, mixed case, a trailing dot, both, and with the port."""
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(host))
    forms = [host.upper(), mixed, host + ".", host.upper() + ".", mixed + "."]
    return forms + ([f"{host.upper()}.:{port}", f"{host}.:{port}"] if port else [])


def assert_safe(reply: Reply) -> None:
    assert LEAK not in reply.raw, reply.raw[:300]
    assert reply.status < 500, reply.raw[:300]


def assert_edge_404(reply: Reply) -> None:
    assert_safe(reply)
    assert reply.status == 404, reply.raw[:300]
    assert reply.body == EDGE_404_BODY.encode(), reply.raw[:300]
    assert SITE_INDEX not in reply.raw and OTHER_INDEX not in reply.raw and SITE_SECRET not in reply.raw


def _host(deployment: dict[str, object]) -> str:
    return str(deployment["url"]).split("//", 1)[1].rsplit(":", 1)[0]


@dataclass
class Edge:
    anchor: AnchorProcess
    site_host: str  # site's immutable deployment host
    other_host: str  # other's immutable deployment host
    site_suffix: str
    other_suffix: str

    @property
    def port(self) -> int:
        return self.anchor.http_port


@pytest.fixture(scope="module")
def edge(shared_anchor: AnchorProcess) -> Edge:
    anchor = shared_anchor
    with anchor.api() as api:
        ensure_project(api, "site")
        ensure_project(api, "other")
        site = upload_and_deploy(api, "site", {"index.html": SITE_INDEX, "secret-marker.txt": SITE_SECRET})
        other = upload_and_deploy(api, "other", {"index.html": OTHER_INDEX})
    assert site["status"] == other["status"] == "READY"
    data = anchor.data_dir
    # Where a host such as '..' or '.' would land if it ever reached a path: edge/a/../public = edge/public,
    # with edge/deployment.json satisfying the edge's "is this deployment complete" check; and more above.
    sentinels = [
        data / "edge" / "index.html",
        data / "edge" / "deployment.json",
        data / "edge" / "public" / "index.html",
        data / "deployments" / "index.html",
        data / "deployments" / "public" / "index.html",
        data / "index.html",
        data / "public" / "index.html",
    ]
    for path in sentinels:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(LEAK)
    return Edge(
        anchor, _host(site), _host(other), site["id"].removeprefix("dpl_"), other["id"].removeprefix("dpl_")
    )


def test_valid_hosts_serve_their_own_deployment(edge: Edge) -> None:
    for host in ("site.localhost", edge.site_host, f"site.localhost:{edge.port}"):
        reply = get(edge.port, host)
        assert_safe(reply)
        assert (reply.status, reply.body) == (200, SITE_INDEX), (host, reply.raw[:300])
        assert get(edge.port, host, "/secret-marker.txt").body == SITE_SECRET
    for host in ("other.localhost", edge.other_host):
        reply = get(edge.port, host)
        assert_safe(reply)
        assert (reply.status, reply.body) == (200, OTHER_INDEX), (host, reply.raw[:300])
        # other's hosts never serve site's files.
        missing = get(edge.port, host, "/secret-marker.txt")
        assert_safe(missing)
        assert missing.status == 404 and SITE_SECRET not in missing.raw, missing.raw[:300]
        assert missing.body == FILE_404_BODY.encode()


INVALID_HOSTS = {
    "dotdot": "..",
    "dot": ".",
    "dotdot-port": "..:8000",
    "bracketed-dotdot": "[..]:80",
    "unknown": "nope.localhost",
    "unknown-single-label": "nope",
    "leading-dot": ".site.localhost",
    "empty-label": "site..localhost",
    "leading-hyphen": "-site.localhost",
    "underscore": "si_te.localhost",
    "long-300": ("a" * 60 + ".") * 4 + "a" * 56,  # labels fine, 300 characters in all
    "label-70": "a" * 70 + ".localhost",
    "base-domain-only": "localhost",
    "tmp-link-name": ".tmp-000000000000",
    "edge-kind-dir": "a",
    "edge-kind-dir-d": "d",
    "percent-encoded-dots": "%2e%2e",
    # Lowercased and stripped of one trailing dot, these are still unknown or invalid:
    "unknown-upper": "NOPE.localhost",
    "unknown-trailing-dot": "nope.localhost.",
    "unknown-both": "NOPE.LOCALHOST.",
    "two-trailing-dots": "site.localhost..",
    "upper-two-trailing-dots": "SITE.LOCALHOST..",
    "upper-empty-label": "SITE..LOCALHOST",
    "three-dots": "...",
    "upper-base-domain": "LOCALHOST.",
    "upper-kind-dir": "A",
    "kind-dir-dot": "d.",
    "upper-dotdot-port": "..:8000",
    "dot-before-port-only": ".:8000",
}


@pytest.mark.parametrize("host", INVALID_HOSTS.values(), ids=INVALID_HOSTS.keys())
def test_invalid_or_unknown_host_gets_the_edge_404(edge: Edge, host: str) -> None:
    assert_edge_404(get(edge.port, host))
    assert_edge_404(get(edge.port, host, "/index.html"))
    assert_edge_404(get(edge.port, host, "/../../index.html"))


def test_http10_without_host(edge: Edge) -> None:
    reply = get(edge.port, None, "/", version="HTTP/1.0")
    assert_edge_404(reply)
    assert_edge_404(get(edge.port, None, "/index.html", version="HTTP/1.0"))


@pytest.mark.parametrize(
    "target",
    [
        "http://../",
        "http://../../index.html",
        "http://./index.html",
        "http://..:8000/index.html",
        "http://nope.localhost/",
    ],
)
def test_absolute_form_with_a_bad_host(edge: Edge, target: str) -> None:
    """In absolute form the URI's host wins over the Host header (RFC 9112 3.2.2): a valid Host header
    must not rescue, nor be confused by, an invalid one in the URI."""
    assert_edge_404(get(edge.port, "site.localhost", target))


def test_host_with_a_separator_is_refused(edge: Edge) -> None:
    """Go's HTTP server rejects '/' and '\\' in Host before Caddy routes (400); that or the edge's 404."""
    hosts = (
        "a/../site.localhost",
        "site.localhost/..",
        "../site.localhost",
        "./..",
        "..%2fsite.localhost",
        "..\\..",
        "site.localhost\\..\\other.localhost",
    )
    for host in hosts:
        reply = get(edge.port, host)
        assert_safe(reply)
        assert reply.status in (400, 404), (host, reply.raw[:300])
        assert SITE_INDEX not in reply.body and OTHER_INDEX not in reply.body
        if reply.status == 404:
            assert reply.body == EDGE_404_BODY.encode()


def test_capitals_and_a_trailing_dot_serve_the_lowercase_host(edge: Edge) -> None:
    """The same 200 and the same content as the lowercase host, for an alias and an immutable host."""
    for host in ("site.localhost", edge.site_host):
        for form in spellings(host, edge.port):
            reply = get(edge.port, form)
            assert_safe(reply)
            assert (reply.status, reply.body) == (200, SITE_INDEX), (form, reply.raw[:300])
            secret = get(edge.port, form, "/secret-marker.txt")
            assert (secret.status, secret.body) == (200, SITE_SECRET), (form, secret.raw[:300])
            assert get(edge.port, form, "/missing.txt").body == FILE_404_BODY.encode()


def test_another_spelling_of_one_projects_host_never_shows_another_project(edge: Edge) -> None:
    for host in ("other.localhost", edge.other_host):
        for form in spellings(host, edge.port):
            reply = get(edge.port, form)
            assert_safe(reply)
            assert (reply.status, reply.body) == (200, OTHER_INDEX), (form, reply.raw[:300])
            missing = get(edge.port, form, "/secret-marker.txt")
            assert missing.status == 404 and SITE_SECRET not in missing.raw, (form, missing.raw[:300])
    for host in (f"SITE-{edge.other_suffix}.LOCALHOST.", f"Other-{edge.site_suffix}.localhost."):
        assert_edge_404(get(edge.port, host))


def test_path_traversal_with_another_spelling_of_the_host(edge: Edge) -> None:
    for host in ("SITE.LOCALHOST.", edge.site_host.upper()):
        for path in ("/../../../index.html", "/%2e%2e/%2e%2e/index.html", "/../deployment.json"):
            reply = get(edge.port, host, path)
            assert_safe(reply)
            assert reply.status in (200, 400, 404), (host, path, reply.raw[:300])
            if reply.status == 200:
                assert reply.body == SITE_INDEX


@pytest.mark.parametrize(
    "path",
    [
        "/%2e%2e/%2e%2e/index.html",
        "/%2E%2E/%2E%2E/%2E%2E/index.html",
        "/..%2f..%2findex.html",
        "/..%2F..%2F..%2Fedge%2Findex.html",
        "/../../../index.html",
        "/../../../edge/index.html",
        "/./../public/../../index.html",
        "/..\\..\\index.html",
        "/%5c..%5c..%5cindex.html",
        "/%00/../index.html",
        "//../../index.html",
        "/deployment.json",
        "/../deployment.json",
        "/index.html.anchor-etag",
        "/secret-marker.txt.anchor-etag",
    ],
)
def test_path_traversal_stays_inside_the_deployment(edge: Edge, path: str) -> None:
    """A path may resolve to one of the deployment's own files (Caddy cleans it) or be a 404; never above."""
    for host in ("site.localhost", edge.site_host):
        reply = get(edge.port, host, path)
        assert_safe(reply)
        assert reply.status in (200, 400, 404), (host, path, reply.raw[:300])
        if reply.status == 200:
            assert reply.body == SITE_INDEX, (host, path, reply.raw[:300])
        assert OTHER_INDEX not in reply.raw
        assert b"anchor-etag" not in reply.body and b'"files"' not in reply.body  # no sidecar, no marker


def test_host_naming_another_projects_deployment(edge: Edge) -> None:
    """A deployment host is <project>-<id suffix>: mixing one project with another's id names nothing."""
    for host in (
        f"site-{edge.other_suffix}.localhost",
        f"other-{edge.site_suffix}.localhost",
        f"{edge.site_suffix}.localhost",
        f"dpl_{edge.site_suffix}.localhost",
        f"site-{edge.site_suffix}x.localhost",
        f"site-{edge.site_suffix}.localhost.localhost",
    ):
        assert_edge_404(get(edge.port, host))


def test_immutable_host_of_other_serves_only_other(edge: Edge) -> None:
    for path, expected in (("/", OTHER_INDEX), ("/index.html", OTHER_INDEX)):
        reply = get(edge.port, edge.other_host, path)
        assert_safe(reply)
        assert (reply.status, reply.body) == (200, expected)
    for path in (
        "/secret-marker.txt",
        "/../site/index.html",
        f"/../{edge.site_host}/public/index.html",
        f"/../../d/{edge.site_host}/public/secret-marker.txt",
    ):
        reply = get(edge.port, edge.other_host, path)
        assert_safe(reply)
        assert reply.status == 404, (path, reply.raw[:300])
        assert SITE_INDEX not in reply.raw and SITE_SECRET not in reply.raw


def test_sentinels_are_really_in_place(edge: Edge) -> None:
    """Guard against a vacuous pass: the LEAK files exist where a path escape would find them."""
    data = edge.anchor.data_dir
    assert (data / "edge" / "public" / "index.html").read_bytes() == LEAK
    assert (data / "edge" / "deployment.json").read_bytes() == LEAK
    assert (data / "index.html").read_bytes() == LEAK
    assert Path(data / "edge" / "a" / "site.localhost").is_symlink()


# -- custom domains: the HTTPS edge, and plain HTTP's redirect to it ------------------------------------
ZONE = "hosts.test"
SITE_DOMAIN = f"www.{ZONE}"
OTHER_DOMAIN = f"shop.{ZONE}"


@dataclass
class TlsEdge:
    anchor: AnchorProcess
    root: Path  # the platform's local CA root

    def get(self, sni: str, host: str, target: str = "/") -> Reply:
        return get(self.anchor.https_port, host, target, tls=(sni, self.root))


def _wait_served(api: httpx.Client, project: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    domain: dict[str, object] = {}
    while time.monotonic() < deadline:
        domain = api.get(f"/v1/projects/{project}/domains/{name}").json()
        if domain.get("certificateStatus") == "ISSUED" and domain.get("cdnStatus") == "active":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} was never served over HTTPS; last: {domain}")


@pytest.fixture(scope="module")
def tls_edge(tmp_path_factory: pytest.TempPathFactory, edge_server: str) -> Iterator[TlsEdge]:
    """A platform whose projects site and other each have a custom domain served over HTTPS (local CA),
    validated through knot (the user's DNS) and BIND (the resolver the platform asks)."""
    with (
        UserDns([ZONE], workdir=tmp_path_factory.mktemp("knot")) as user_dns,
        Resolver({ZONE: user_dns.address}, workdir=tmp_path_factory.mktemp("named")) as resolver,
    ):
        env = {
            "ANCHOR_DNS_RESOLVERS": resolver.address,
            "ANCHOR_VALIDATION_ZONE": "anchor-validation.test",
            "ANCHOR_EDGE_HOSTNAME": "edge.anchor.test",
            "ANCHOR_DOMAIN_CHECK_MIN": "0.2",
            "ANCHOR_DOMAIN_CHECK_MAX": "1",
        }
        data = tmp_path_factory.mktemp("tls") / "data"
        anchor = AnchorProcess(data, extra_env=env, edge_server=edge_server).start()
        try:
            with anchor.api() as api:
                for project, name, index in (
                    ("site", SITE_DOMAIN, SITE_INDEX),
                    ("other", OTHER_DOMAIN, OTHER_INDEX),
                ):
                    ensure_project(api, project)
                    files = {"index.html": index}
                    if project == "site":
                        files["secret-marker.txt"] = SITE_SECRET
                    assert upload_and_deploy(api, project, files)["status"] == "READY"
                    added = api.post(f"/v1/projects/{project}/domains", json={"name": name}).json()
                    for record in added["dnsRecords"]:
                        if record["purpose"] == "validation":
                            user_dns.add(record["name"], record["type"], record["value"] + ".")
                for project, name in (("site", SITE_DOMAIN), ("other", OTHER_DOMAIN)):
                    _wait_served(api, project, name)
            yield TlsEdge(anchor, anchor.data_dir / "ca" / "root.pem")
        finally:
            anchor.stop()


def test_https_custom_domain_in_any_spelling_serves_its_project(tls_edge: TlsEdge) -> None:
    port = tls_edge.anchor.https_port
    for host in [SITE_DOMAIN, *spellings(SITE_DOMAIN, port)]:
        reply = tls_edge.get(SITE_DOMAIN, host)
        assert_safe(reply)
        assert (reply.status, reply.body) == (200, SITE_INDEX), (host, reply.raw[:300])
        assert tls_edge.get(SITE_DOMAIN, host, "/secret-marker.txt").body == SITE_SECRET
    for host in spellings(OTHER_DOMAIN, port):
        reply = tls_edge.get(OTHER_DOMAIN, host)
        assert (reply.status, reply.body) == (200, OTHER_INDEX), (host, reply.raw[:300])
        missing = tls_edge.get(OTHER_DOMAIN, host, "/secret-marker.txt")
        assert missing.status == 404 and SITE_SECRET not in missing.raw


def test_https_sni_in_capitals_picks_the_certificate_and_serves(tls_edge: TlsEdge) -> None:
    """The SNI is what picks the certificate: in capitals it still finds the name's certificate."""
    for host in (SITE_DOMAIN, SITE_DOMAIN.upper() + "."):
        reply = tls_edge.get(SITE_DOMAIN.upper(), host)
        assert (reply.status, reply.body) == (200, SITE_INDEX), (host, reply.raw[:300])


def test_https_host_of_another_domain_on_this_connection_is_misdirected(tls_edge: TlsEdge) -> None:
    """A connection made for site's name never serves other's, however the Host is spelled (421, as
    Caddy's strict SNI check answered before the edge lowercased hosts)."""
    port = tls_edge.anchor.https_port
    for host in [OTHER_DOMAIN, *spellings(OTHER_DOMAIN, port), "nope." + ZONE, "site.localhost", ".."]:
        reply = tls_edge.get(SITE_DOMAIN, host)
        assert_safe(reply)
        assert OTHER_INDEX not in reply.raw and SITE_INDEX not in reply.raw, (host, reply.raw[:300])
        assert reply.status == 421 and reply.body == MISDIRECTED_BODY.encode(), (host, reply.raw[:300])


def test_https_sni_with_a_trailing_dot_or_of_an_unknown_name_gets_no_certificate(tls_edge: TlsEdge) -> None:
    """An SNI never carries a trailing dot (RFC 6066; clients drop it and Caddy's TLS stack refuses it),
    and a name the platform does not serve has no certificate: the handshake fails, nothing is served."""
    for sni in (SITE_DOMAIN + ".", "nope." + ZONE):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_edge.get(sni, SITE_DOMAIN)


def test_plain_http_for_a_custom_domain_in_any_spelling_redirects_to_the_lowercase_https_url(
    tls_edge: TlsEdge,
) -> None:
    anchor = tls_edge.anchor
    for name in (SITE_DOMAIN, OTHER_DOMAIN):
        for host in [name, *spellings(name, anchor.http_port)]:
            reply = get(anchor.http_port, host, "/a/b?c=1")
            assert_safe(reply)
            assert reply.status == 308, (host, reply.raw[:300])
            assert reply.headers["location"] == f"https://{name}:{anchor.https_port}/a/b?c=1", host
