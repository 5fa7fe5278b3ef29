#!/usr/bin/env python3
"""A small keep-alive HTTP/1.1 load generator that speaks TCP *and* unix sockets (wrk cannot do the latter).

    python bench/loadgen.py --tcp 127.0.0.1:8000 --host app.localhost -c 16 -d 5
    python bench/loadgen.py --unix /path/to/worker.sock -c 16 -d 5

One process, one event loop (uvloop if installed), N connections, one request in flight per connection (no
pipelining), either as fast as the server answers (closed loop) or paced at a total rate. Responses are framed
by Content-Length, or chunked (the activator answers a cold start that way); anything else is a failure. It
reports requests/s, latency percentiles, failures by kind, the bodies it saw (when told which to expect) and
its own CPU time, so a caller can tell whether the generator itself was the bottleneck.

bench_apps.py runs it in a separate process with ``LoadProcess`` (so its CPU and GIL are its own). Every run
is bounded: a fixed duration, or until told to stop but never longer than ``max_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import multiprocessing as mp
import resource
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

_CRLF2 = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CHUNKED = b"\r\ntransfer-encoding: chunked"
_CONNECTION_CLOSE = b"\r\nconnection: close"
_STALL_SECONDS = 10.0  # a request unanswered this long counts as a timeout and its connection is replaced


@dataclass
class LoadConfig:
    """Where to send and how. ``unix`` wins over ``tcp`` ("HOST:PORT") if both are set."""

    tcp: str | None = None
    unix: str | None = None
    host: str = "app"
    path: str = "/"
    connections: int = 16
    duration: float | None = 5.0  # None: until stop() (bounded by max_seconds)
    warmup: float = 1.0  # seconds of load before the measured window (not recorded)
    rate: float = 0.0  # total requests/s; 0 = closed loop, as fast as the server answers
    expect: dict[str, str] = field(default_factory=dict)  # body (latin-1 text) -> label; empty = any body
    max_seconds: float = 900.0
    headers: list[list[str]] = field(default_factory=list)  # more request headers, [[name, value], ...]
    keep_latencies: bool = False  # return every latency (ms), not just the summary
    # Return (send time on time.monotonic(), label) of every expected response, to line up with events of
    # another process on the same machine (CLOCK_MONOTONIC is shared).
    timeline: bool = False


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest rank, on an already sorted list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``start``: (body, end offset), or None if it is not all there yet.
    Raises ValueError if it is malformed. Trailers are not supported (none of the servers here send any)."""
    body = bytearray()
    at = start
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buf[at:line_end]).split(b";", 1)[0], 16)
        if size == 0:
            if len(buf) < line_end + 4:
                return None
            if buf[line_end + 2 : line_end + 4] != b"\r\n":
                raise ValueError("chunk trailers are not supported")
            return bytes(body), line_end + 4
        data_end = line_end + 2 + size
        if len(buf) < data_end + 2:
            return None
        body += buf[line_end + 2 : data_end]
        at = data_end + 2


class _Conn(asyncio.Protocol):
    __slots__ = ("buf", "gen", "next_at", "sent_at", "transport", "waiting")

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.waiting = False
        self.next_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.gen.opened(self)

    def send(self) -> None:
        if self.transport is None or self.transport.is_closing() or not self.gen.running:
            return
        self.waiting = True
        self.sent_at = time.monotonic()
        self.transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while self.waiting:
            end = buf.find(_CRLF2)
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            try:
                status = int(head[9:12])
                at = head.find(_CONTENT_LENGTH)
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    length = int(head[at + len(_CONTENT_LENGTH) : stop if stop >= 0 else None])
                    total = end + 4 + length
                    if len(buf) < total:
                        return
                    body = bytes(buf[end + 4 : total])
                elif _CHUNKED in head:
                    found = _dechunk(buf, end + 4)
                    if found is None:
                        return
                    body, total = found
                    self.gen.chunked += 1
                else:
                    raise ValueError("neither Content-Length nor chunked")
            except ValueError:
                self.gen.failed(self, "unparseable_response")
                return
            del buf[:total]
            self.waiting = False
            if _CONNECTION_CLOSE in head and self.transport is not None:
                # The server ends the connection after this answer (nginx's keepalive_requests): as an
                # HTTP/1.1 client must, send nothing more on it and reconnect.
                self.transport.close()
            self.gen.answered(self, status, body, time.monotonic() - self.sent_at)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.gen.lost(self)


class _Generator:
    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        extra = "".join(f"{name}: {value}\r\n" for name, value in config.headers)
        self.request = (
            f"GET {config.path} HTTP/1.1\r\nHost: {config.host}\r\nUser-Agent: anchor-bench-loadgen\r\n"
            f"{extra}\r\n"
        ).encode("latin-1")
        self.expect = {body.encode("latin-1"): label for body, label in config.expect.items()}
        self.labels = sorted(set(config.expect.values()))
        self.running = True
        self.measuring = False
        self.loop = asyncio.get_running_loop()
        self.conns: set[_Conn] = set()
        self.interval = config.connections / config.rate if config.rate > 0 else 0.0
        self.reset()

    def reset(self) -> None:
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self.failure_samples: list[str] = []
        self.served: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.timeline: list[tuple[float, int]] = []
        self.reconnects = 0
        self.chunked = 0

    # -- connections ------------------------------------------------------------------------------------
    async def connect(self) -> None:
        while self.running:
            try:
                if self.config.unix:
                    await self.loop.create_unix_connection(lambda: _Conn(self), self.config.unix)
                else:
                    host, _, port = str(self.config.tcp).rpartition(":")
                    await self.loop.create_connection(lambda: _Conn(self), host, int(port))
                return
            except OSError as exc:
                self._fail("connect_error", repr(exc))
                await asyncio.sleep(0.01)

    def opened(self, conn: _Conn) -> None:
        self.conns.add(conn)
        conn.next_at = self.loop.time()
        conn.send()

    def lost(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn.waiting:
            conn.waiting = False
            self._fail("connection_lost_in_flight", "the server closed a connection with a request in flight")
        if self.running:
            self.reconnects += 1
            self.loop.create_task(self.connect())

    # -- responses ------------------------------------------------------------------------------------
    def _fail(self, kind: str, sample: str) -> None:
        if self.measuring:
            self.failures[kind] += 1
            if len(self.failure_samples) < 5:
                self.failure_samples.append(f"{kind}: {sample[:160]}")

    def failed(self, conn: _Conn, kind: str) -> None:
        conn.waiting = False
        self._fail(kind, bytes(conn.buf[:160]).decode("latin-1"))
        if conn.transport is not None:
            conn.transport.close()

    def answered(self, conn: _Conn, status: int, body: bytes, seconds: float) -> None:
        if self.measuring:
            self.latencies.append(seconds)
            if status != 200:
                self._fail(f"status_{status}", body.decode("latin-1"))
            elif self.expect:
                label = self.expect.get(body)
                if label is None:
                    self._fail("unexpected_body", body.decode("latin-1"))
                else:
                    self.served[label] += 1
                    self.ok += 1
                    if self.config.timeline:
                        self.timeline.append((conn.sent_at, self.labels.index(label)))
            else:
                self.ok += 1
        if not self.running:
            return
        if self.interval:
            conn.next_at = max(conn.next_at + self.interval, self.loop.time())
            self.loop.call_at(conn.next_at, conn.send)
        else:
            conn.send()

    def stalled(self) -> None:
        now = time.monotonic()
        for conn in list(self.conns):
            if conn.waiting and now - conn.sent_at > _STALL_SECONDS:
                conn.waiting = False
                self._fail("timeout", f"no answer within {_STALL_SECONDS:.0f}s")
                if conn.transport is not None:
                    conn.transport.close()


async def _run(config: LoadConfig, stop: Any = None, measuring: Any = None) -> dict[str, Any]:
    gen = _Generator(config)
    started = time.monotonic()
    deadline = started + config.max_seconds
    await asyncio.gather(*(gen.connect() for _ in range(config.connections)))
    if config.warmup > 0:
        await asyncio.sleep(config.warmup)
    gen.reset()
    gen.measuring = True
    if measuring is not None:
        measuring.set()
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    end = time.monotonic() + config.duration if config.duration is not None else deadline
    end = min(end, deadline)
    while time.monotonic() < end:
        await asyncio.sleep(min(0.05, max(0.0, end - time.monotonic())))
        gen.stalled()
        if stop is not None and stop.is_set():
            break
    wall = time.perf_counter() - wall0
    cpu = _cpu_seconds() - cpu0
    gen.measuring = False
    gen.running = False
    for conn in list(gen.conns):
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0)
    ordered = sorted(gen.latencies)
    failed = sum(gen.failures.values())
    responses = len(ordered)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    result: dict[str, Any] = {
        "target": f"unix:{config.unix}" if config.unix else f"tcp:{config.tcp}",
        "host": config.host,
        "path": config.path,
        "connections": config.connections,
        "rate": config.rate,
        "seconds": round(wall, 3),
        "responses": responses,
        "ok": gen.ok,
        "failed": failed,
        "failures": dict(gen.failures),
        "failure_samples": gen.failure_samples,
        "served": dict(gen.served),
        "reconnects": gen.reconnects,
        "chunked_responses": gen.chunked,
        "requests_per_s": round(responses / wall, 1) if wall else None,
        "latency_ms": {
            "p50": ms(percentile(ordered, 50)),
            "p90": ms(percentile(ordered, 90)),
            "p99": ms(percentile(ordered, 99)),
            "max": ms(ordered[-1] if ordered else None),
        },
        "loadgen_cpu_s": round(cpu, 3),
        # 1.0 = one core busy all the time: the generator (one thread) cannot go faster than that.
        "loadgen_cpu_fraction": round(cpu / wall, 3) if wall else None,
        "loadgen_cpu_us_per_response": round(cpu / responses * 1e6, 1) if responses else None,
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    if config.keep_latencies:
        result["latencies_ms"] = [round(x * 1000, 3) for x in gen.latencies]
    if config.timeline:
        result["timeline"] = {"labels": gen.labels, "sent_label": gen.timeline}
    return result


def run(config: LoadConfig, stop: Any = None, measuring: Any = None) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_run(config, stop, measuring))
    return uvloop.run(_run(config, stop, measuring))


# -- in a separate process -------------------------------------------------------------------------------
def _parent_death_signal() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child_main(config: dict[str, Any], stop: Any, measuring: Any, out: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us through `stop`
    _parent_death_signal()
    try:
        out.put(run(LoadConfig(**config), stop, measuring))
    except BaseException as exc:
        out.put({"error": repr(exc)})
        raise


class LoadProcess:
    """One load run in its own (spawned) process: start(), then wait_measuring(), then result()."""

    def __init__(self, config: LoadConfig) -> None:
        ctx = mp.get_context("spawn")
        self.config = config
        self._stop = ctx.Event()
        self._measuring = ctx.Event()
        self._out: Any = ctx.Queue()
        self._proc = ctx.Process(
            target=_child_main,
            name="bench-loadgen",
            daemon=True,
            args=(asdict(config), self._stop, self._measuring, self._out),
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def start(self) -> LoadProcess:
        self._proc.start()
        return self

    def wait_measuring(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._measuring.wait(0.1):
            if not self._proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the load generator did not start: {self._error()}")

    def _error(self) -> str:
        with contextlib.suppress(Exception):
            return str(self._out.get(timeout=1))
        return f"exit code {self._proc.exitcode}"

    def stop(self) -> None:
        self._stop.set()

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the run to end (stop() first for a run without a duration) and return its report."""
        if timeout is None:
            timeout = (self.config.duration or 0) + self.config.warmup + 60
        try:
            found = dict(self._out.get(timeout=timeout))
        finally:
            self.kill()
        if "error" in found:
            raise RuntimeError(f"the load generator failed: {found['error']}")
        return found

    def kill(self) -> None:
        self._stop.set()
        if self._proc.pid is None:
            return
        self._proc.join(timeout=15)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", help="HOST:PORT")
    where.add_argument("--unix", help="path of a unix socket")
    parser.add_argument("--host", default="app", help="Host header (default: app)")
    parser.add_argument("--path", default="/")
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.0, help="total requests/s (0 = closed loop)")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value' (repeatable)")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 1000 or not 0 < args.duration <= 600:
        parser.error("1 <= connections <= 1000 and 0 < duration <= 600")
    config = LoadConfig(
        tcp=args.tcp,
        unix=args.unix,
        host=args.host,
        path=args.path,
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        rate=args.rate,
        headers=[[part.strip() for part in h.split(":", 1)] for h in args.header],
    )
    json.dump(run(config), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
