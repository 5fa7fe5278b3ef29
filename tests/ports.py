"""Free loopback ports for the test servers, picked where the kernel never puts a client's own end.

Asking the kernel for port 0 hands out a port from the ephemeral range, which the kernel also uses for the
local end of outgoing connections: between the moment a test picks such a port and the moment its server
binds it, any client connection on the machine may take it ("address already in use"). Ports are picked at
random below the ephemeral range instead, checked free for TCP and UDP, and never handed out twice in one
test process (a server killed a moment ago may still hold its port).
"""

from __future__ import annotations

import random
import socket

LOOPBACK = "127.0.0.1"
_RANGE = (20_000, 32_000)  # below Linux's default ephemeral range (32768-60999)
_handed_out: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 right now, outside the ephemeral range."""
    low, high = _RANGE[0], min(_RANGE[1], _ephemeral_floor() - 1)
    for _ in range(500):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((LOOPBACK, port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((LOOPBACK, port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")
