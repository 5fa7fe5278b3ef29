"""Real DNS for the custom-domain end-to-end tests, all on loopback.

Three roles take part in checking a custom domain:

- the user's DNS provider, played by Knot DNS (:class:`UserDns`): authoritative for the user's zones and
  open to RFC 2136 dynamic updates from 127.0.0.1 (no TSIG), so a test edits records the way a user would;
- the platform's own authoritative server for the validation zone (started by the platform, not here);
- a recursive resolver, played by BIND 9 (:class:`Resolver`), which the platform and the ACME server ask.
  It forwards each zone it is given to that zone's server and nothing else: no root hints, no internet.
  A TXT query for ``_acme-challenge.<domain>`` returns the CNAME *and* the TXT at its target in one answer,
  which the ACME server needs, as it does not chase CNAMEs itself.

TTLs are 1 s, and the resolver caches answers for at most 1 s and negative answers for 0 s, whatever TTLs the
servers give. named counts time in whole seconds, so a record a test adds shows through the resolver within
about 1 s of the update and a deleted one is gone within about 2 s; poll with :func:`wait_for`.

Both servers are child processes in a temp dir, stopped by :meth:`stop` or the ``with`` block, and killed
by the kernel if the Python thread that started them dies (PR_SET_PDEATHSIG through ``setpriv``), so start
them from a thread that outlives them (pytest fixtures run in the main thread). If a server fails to start,
the error carries the tail of its log and its temp dir is kept.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from tests.ports import free_port
from tests.support import stop_process

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0

Record = tuple[str, str, str]
"""(owner name, type, value): ``("www.example.test", "A", "127.0.0.1")``; see :func:`rdata`."""


def split_address(address: str | tuple[str, int]) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` or ``("127.0.0.1", 5353)`` -> ``("127.0.0.1", 5353)``."""
    if isinstance(address, tuple):
        return address
    host, _, port = address.rpartition(":")
    return host, int(port)


def fqdn(name: str) -> dns.name.Name:
    """An absolute name whether or not ``name`` ends with a dot."""
    return dns.name.from_text(name, origin=dns.name.root)


def rdata(rdtype: str, value: str) -> dns.rdata.Rdata:
    """``value`` in presentation format, names in it absolute (``tok.acme.test`` means ``tok.acme.test.``).

    A TXT value not already quoted is one string: ``abc def`` is ``"abc def"``.
    """
    if dns.rdatatype.from_text(rdtype) == dns.rdatatype.TXT and not value.startswith('"'):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False)


# -- queries -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """A response's rcode and answer section."""

    rcode: str
    rrsets: tuple[dns.rrset.RRset, ...]

    def records(self) -> list[Record]:
        """The answer as (owner without final dot, type, value) in order, e.g. the CNAME before the TXT."""
        return [
            (rrset.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rrset.rdtype), rd.to_text())
            for rrset in self.rrsets
            for rd in rrset
        ]

    def values(self, rdtype: str) -> list[str]:
        """The values of one type; TXT strings unquoted and joined, as an ACME server reads them."""
        wanted = dns.rdatatype.from_text(rdtype)
        out: list[str] = []
        for rrset in self.rrsets:
            if rrset.rdtype != wanted:
                continue
            for rd in rrset:
                if wanted == dns.rdatatype.TXT:
                    out.append(b"".join(rd.strings).decode())
                else:
                    out.append(rd.to_text())
        return out


def query(
    server: str | tuple[str, int], name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 2.0
) -> Answer:
    """Ask ``server`` (``"127.0.0.1:PORT"``) one recursive question over UDP (or TCP); raises on a timeout."""
    host, port = split_address(server)
    request = dns.message.make_query(fqdn(name), rdtype)
    if tcp:
        response = dns.query.tcp(request, host, port=port, timeout=timeout)
    else:
        response = dns.query.udp(request, host, port=port, timeout=timeout)
        if response.flags & dns.flags.TC:
            raise AssertionError(f"truncated UDP answer for {name} {rdtype} from {host}:{port}")
    return Answer(dns.rcode.to_text(response.rcode()), tuple(response.answer))


def wait_for(
    server: str | tuple[str, int],
    name: str,
    rdtype: str,
    predicate: Callable[[Answer], bool],
    timeout: float = 3.0,
) -> Answer:
    """Query every 0.1 s until ``predicate`` holds for the answer; AssertionError with the last one if not."""
    deadline = time.monotonic() + timeout
    last: Answer | str = "no answer"
    while True:
        try:
            answer = query(server, name, rdtype)
            if predicate(answer):
                return answer
            last = answer
        except dns.exception.Timeout:
            last = "timeout"
        if time.monotonic() >= deadline:
            raise AssertionError(f"{name} {rdtype} at {server}: still {last} after {timeout}s")
        time.sleep(0.1)


def _answers_soa(host: str, port: int, zone: str) -> bool:
    request = dns.message.make_query(fqdn(zone), "SOA")
    try:
        for send in (dns.query.tcp, dns.query.udp):  # TCP first: refused at once when not up yet
            response = send(request, host, port=port, timeout=0.5)
            if response.rcode() != dns.rcode.NOERROR or not response.answer:
                return False
    except (OSError, dns.exception.DNSException):
        return False
    return True


# -- processes ---------------------------------------------------------------------------------------------
def find_binary(name: str) -> str:
    """``name`` on PATH or in /usr/sbin or /sbin (not on a non-root PATH), or a readable failure."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(f"{name} not found; install it (Debian: knot for knotd, bind9 for named)")
    return found


class _Daemon:
    """A foreground server in its own temp dir, logging to ``<workdir>/<name>.log``."""

    kind = "daemon"

    def __init__(self, workdir: Path | None, port: int | None) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"anchor-{self.kind}-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.kind}.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _hint(self) -> str:
        if "permission denied" not in self.log_tail().lower():
            return ""
        return (
            f"\n(hint: an AppArmor profile for {self.kind}, as on Ubuntu, confines it to its system dirs; "
            f"`aa-complain {self.kind}` or a copy of the binary elsewhere escapes it)"
        )

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        command = self._command()
        setpriv = shutil.which("setpriv")
        if setpriv:  # killed by the kernel if the starting thread dies; PDEATHSIG survives the exec
            command = [setpriv, "--pdeathsig", "KILL", "--", *command]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        try:
            while not self._ready():
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.kind} exited with {self.proc.returncode} while starting on {self.address}; "
                        f"{self.log_path}:\n{self.log_tail()}{self._hint()}"
                    )
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"{self.kind} did not answer on {self.address} within {timeout}s; "
                        f"{self.log_path}:\n{self.log_tail()}{self._hint()}"
                    )
                time.sleep(0.05)
        except BaseException:
            self._kill(keep_dir=True)
            raise
        return self

    def _kill(self, keep_dir: bool) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)
        if self._own_dir and not keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove the temp dir if it made one."""
        self._kill(keep_dir=False)

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class UserDns(_Daemon):
    """The user's DNS provider: knotd, authoritative for ``zones``, taking RFC 2136 updates from 127.0.0.1.

    ``zones`` is zone names, or zone -> initial records. Every zone gets an SOA (all timers and the
    negative TTL 1 s), ``NS ns1.<zone>`` and ``ns1.<zone> A 127.0.0.1``. Updates live in memory only.
    With ``tsig`` (key name, algorithm, base64 secret) an update must be signed with that key, as a
    user's server open to the platform would be; :meth:`add` and :meth:`delete` then sign with it.
    """

    kind = "knot"

    def __init__(
        self,
        zones: Mapping[str, Iterable[Record]] | Iterable[str],
        *,
        workdir: Path | None = None,
        port: int | None = None,
        tsig: tuple[str, str, str] | None = None,
    ) -> None:
        self.tsig = tsig
        if isinstance(zones, Mapping):
            self.records: dict[str, list[Record]] = {_zone(z): list(r) for z, r in zones.items()}
        else:
            self.records = {_zone(z): [] for z in zones}
        if not self.records:
            raise ValueError("UserDns needs at least one zone")
        for zone, records in self.records.items():
            _zone_file(zone, records)  # raises on a bad record before anything starts
        super().__init__(workdir, port)
        self._socket_dir: Path | None = None

    @property
    def zones(self) -> list[str]:
        return list(self.records)

    def _command(self) -> list[str]:
        rundir = self.workdir
        if len(str(rundir / "knot.sock")) > 100:  # knotd exits if its control socket path is too long
            self._socket_dir = Path(tempfile.mkdtemp(prefix="knot-"))
            rundir = self._socket_dir
        zone_entries = []
        for zone, records in self.records.items():
            (self.workdir / f"{zone}.zone").write_text(_zone_file(zone, records))
            zone_entries.append(
                f'  - domain: "{zone}"\n    file: "{self.workdir}/{zone}.zone"\n    acl: update'
            )
        config = f"""\
server:
    rundir: "{rundir}"
    listen: {self.host}@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{self.workdir}"
    journal-db-max-size: 64M
    timer-db-max-size: 8M
    kasp-db-max-size: 8M
    catalog-db-max-size: 8M
log:
  - target: stderr
    any: info
{self._keys()}acl:
  - id: update
    address: 127.0.0.1
{self._acl_key()}    action: update
template:
  - id: default
    zonefile-sync: -1
    journal-content: none
zone:
""" + "\n".join(zone_entries)
        (self.workdir / "knot.conf").write_text(config + "\n")
        return [find_binary("knotd"), "-c", str(self.workdir / "knot.conf")]

    def _ready(self) -> bool:
        return all(_answers_soa(self.host, self.port, zone) for zone in self.records)

    def _keys(self) -> str:
        if self.tsig is None:
            return ""
        name, algorithm, secret = self.tsig
        return f"key:\n  - id: {name}\n    algorithm: {algorithm}\n    secret: {secret}\n"

    def _acl_key(self) -> str:
        return "" if self.tsig is None else f"    key: {self.tsig[0]}\n"

    def _kill(self, keep_dir: bool) -> None:
        super()._kill(keep_dir)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def zone_of(self, name: str) -> str:
        """The served zone that holds ``name`` (the longest match)."""
        owner = fqdn(name)
        matches = [zone for zone in self.records if owner.is_subdomain(fqdn(zone))]
        if not matches:
            raise ValueError(f"{name} is in none of the zones {self.zones}")
        return max(matches, key=len)

    def add(self, name: str, rdtype: str, value: str, ttl: int = 1) -> None:
        """Add one record by RFC 2136 over TCP; ``value`` as in :func:`rdata`."""
        zone = self.zone_of(name)
        update = dns.update.UpdateMessage(fqdn(zone))
        update.add(fqdn(name), ttl, rdata(rdtype, value))
        self._send(update, f"add {name} {ttl} {rdtype} {value}")

    def delete(self, name: str, rdtype: str | None = None) -> None:
        """Delete every record of ``rdtype`` at ``name`` (all types if None) by RFC 2136 over TCP."""
        update = dns.update.UpdateMessage(fqdn(self.zone_of(name)))
        if rdtype is None:
            update.delete(fqdn(name))
        else:
            update.delete(fqdn(name), rdtype)
        self._send(update, f"delete {name} {rdtype or 'ANY'}")

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        if self.tsig is not None:
            update.use_tsig(dns.tsig.Key(self.tsig[0], self.tsig[2], self.tsig[1]))
        response = dns.query.tcp(update, self.host, port=self.port, timeout=3)
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"knot refused to {what}: {dns.rcode.to_text(response.rcode())}")


class Resolver(_Daemon):
    """A recursive resolver: named, forwarding each zone in ``forwards`` (zone -> server) and nothing else.

    Servers are ``"127.0.0.1:PORT"`` or ``(host, port)``; a forwarded server need not be recursive. Other
    names get NXDOMAIN from a local root zone. DNSSEC validation off, caching at most 1 s, none negative.
    It runs as the current user (no ``-u``: as root it stays root, so it can read 0700 pytest temp dirs).
    """

    kind = "named"

    def __init__(
        self,
        forwards: Mapping[str, str | tuple[str, int]],
        *,
        workdir: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.forwards = {_zone(zone): split_address(server) for zone, server in forwards.items()}
        super().__init__(workdir, port)

    def _command(self) -> list[str]:
        d = self.workdir
        (d / "root.zone").write_text(_root_zone(self.forwards))
        (d / "named.conf").write_text(_named_conf(d, self.host, self.port, self.forwards))
        return [find_binary("named"), "-g", "-4", "-n", "1", "-c", str(d / "named.conf")]

    def _ready(self) -> bool:
        return _answers_soa(self.host, self.port, ".")


def _zone(name: str) -> str:
    return fqdn(name).to_text(omit_final_dot=True).lower()


def _zone_file(zone: str, records: Iterable[Record]) -> str:
    lines = [
        "$TTL 1",
        f"{zone}. IN SOA ns1.{zone}. hostmaster.{zone}. 1 1 1 1 1",
        f"{zone}. IN NS ns1.{zone}.",
        f"ns1.{zone}. IN A 127.0.0.1",
    ]
    for owner, rdtype, value in records:
        if not fqdn(owner).is_subdomain(fqdn(zone)):
            raise ValueError(f"{owner} is not in zone {zone}")
        lines.append(f"{fqdn(owner)} 1 IN {rdtype} {rdata(rdtype, value).to_text()}")
    return "\n".join(lines) + "\n"


def _root_zone(forwards: Mapping[str, tuple[str, int]]) -> str:
    # named answers a name under a zone it is authoritative for (here the root) from that zone, and only
    # follows a forward zone where the root delegates it: so each forwarded zone gets an NS (never asked,
    # as the forwarding is "only").
    lines = ["$TTL 1", ". IN SOA . hostmaster. 1 1 1 1 1", ". IN NS ns.root.", "ns.root. IN A 127.0.0.1"]
    for zone in forwards:
        lines += [f"{zone}. IN NS ns.{zone}.", f"ns.{zone}. IN A 127.0.0.1"]
    return "\n".join(lines) + "\n"


def _named_conf(d: Path, host: str, port: int, forwards: Mapping[str, tuple[str, int]]) -> str:
    zones = "\n".join(
        f'zone "{zone}" {{ type forward; forward only; forwarders {{ {fhost} port {fport}; }}; }};'
        for zone, (fhost, fport) in forwards.items()
    )
    return f"""\
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    lock-file "{d}/named.lock";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ {host}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-query {{ 127.0.0.1; }};
    allow-recursion {{ 127.0.0.1; }};
    dnssec-validation no;
    qname-minimization off;
    empty-zones-enable no;
    max-cache-ttl 1;
    max-ncache-ttl 0;
    max-cache-size 32m;
    notify no;
}};
controls {{ }};
zone "." {{ type primary; file "{d}/root.zone"; }};
{zones}
"""
